//! What every binary does with its command line (feature `cli`).

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

/// Parses the command line. `--help` and `--version` print and return `Err(0)`; bad usage
/// prints one line, `NAME: reason (see --help)`, and returns `Err(2)`, as the binary
/// contract wants (clap's own error is several lines with the usage).
pub fn parse_args<C: clap::Parser>(name: &str) -> Result<C, ExitCode> {
    match C::try_parse() {
        Ok(c) => Ok(c),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("bad usage");
            eprintln!("{name}: {} (see --help)", first.trim_start_matches("error: "));
            Err(crate::ExitCode::BadInput.into())
        }
    }
}

/// A token cancelled by SIGINT (Ctrl-C) or SIGTERM (how systemd, Kubernetes and
/// `docker stop` stop a job), for the library's clean stop. The handlers are installed
/// before this returns, so a signal from then on cancels instead of killing the process.
/// Must be called inside a tokio runtime.
pub fn cancel_on_signals() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut int = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = recv(int.as_mut()) => {}
            () = recv(term.as_mut()) => {}
        }
        t.cancel();
    });
    token
}

/// The next delivery of a signal; never, when its handler could not be installed.
async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
