//! `aindusdb-standin`: serves the AindusDB stand-in on `--listen` (default `0.0.0.0:8080`).
//!
//! Environment: `STANDIN_VERSION` (reported version), `STANDIN_TOKEN` (the bearer token
//! the `/v1` routes accept), and the faults: `STANDIN_BROKEN=1` (readiness fails),
//! `STANDIN_VERITAS_OFFSET` (added to every VERITAS answer), `STANDIN_LOSE_VECTORS=1`
//! (queries miss the upserted vectors), `STANDIN_NO_AUTH=1` (no token needed),
//! `STANDIN_DELAY_MS` (every request delayed).

use std::process::ExitCode;

use aindusdb_standin::Options;

const USAGE: &str = "usage: aindusdb-standin [--listen ADDR] [--broken]";

fn main() -> ExitCode {
    let mut listen = "0.0.0.0:8080".to_owned();
    let mut opts = match Options::from_env() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("aindusdb-standin: {e}");
            return ExitCode::from(2);
        }
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => match args.next() {
                Some(v) => listen = v,
                None => {
                    eprintln!("aindusdb-standin: --listen needs an address\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--broken" => opts.broken = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("aindusdb-standin: unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("aindusdb-standin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("aindusdb-standin: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let faults = opts.faults();
        let faults = if faults.is_empty() { String::new() } else { format!(" (faults: {})", faults.join(", ")) };
        eprintln!("aindusdb-standin {} listening on {listen}{faults}", opts.version);
        match axum::serve(listener, aindusdb_standin::app(opts)).with_graceful_shutdown(shutdown()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aindusdb-standin: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Ctrl-C or SIGTERM (`docker stop`; as PID 1 the default action would be ignored).
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
