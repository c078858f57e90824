//! What every binary does with its command line (feature `cli`).

use std::process::ExitCode;

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
