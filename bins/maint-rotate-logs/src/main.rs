//! `maint-rotate-logs`: rotate, compress and prune log files without losing a line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use maint_core::{Task, TaskContext, TaskReport, one_line};
use maint_logs::{Compression, Config, Error, LogRotation, Mode, Naming, Truncate};

#[derive(Debug, Parser)]
#[command(name = "maint-rotate-logs", version, about = "Rotate, compress and prune log files without losing a line")]
struct Cli {
    /// TOML file with the settings (the fields of maint_logs::Config); flags override it.
    #[arg(long, env = "MAINT_LOGS_CONFIG")]
    config: Option<PathBuf>,
    /// A log file or glob (repeatable).
    #[arg(long = "path", value_name = "GLOB")]
    paths: Vec<String>,
    /// Hand-off mode: rename or copytruncate.
    #[arg(long, env = "MAINT_LOGS_MODE")]
    mode: Option<String>,
    /// Compression: gzip, zstd or none.
    #[arg(long, env = "MAINT_LOGS_COMPRESS")]
    compress: Option<String>,
    /// Compression level (gzip 1-9, zstd 1-19).
    #[arg(long, env = "MAINT_LOGS_LEVEL", allow_hyphen_values = true)]
    level: Option<String>,
    /// Archive naming: date or numbered.
    #[arg(long, env = "MAINT_LOGS_NAMING")]
    naming: Option<String>,
    /// Keep at most N archives per log.
    #[arg(long, env = "MAINT_LOGS_KEEP", allow_hyphen_values = true)]
    keep: Option<String>,
    /// Delete archives older than DAYS.
    #[arg(long = "max-age", value_name = "DAYS", env = "MAINT_LOGS_MAX_AGE", allow_hyphen_values = true)]
    max_age: Option<String>,
    /// Keep at most N bytes of archives per log (suffixes K, M, G).
    #[arg(long, env = "MAINT_LOGS_MAX_TOTAL_BYTES", allow_hyphen_values = true)]
    max_total_bytes: Option<String>,
    /// Rotate only logs of at least N bytes (suffixes K, M, G).
    #[arg(long, env = "MAINT_LOGS_MIN_SIZE", allow_hyphen_values = true)]
    min_size: Option<String>,
    /// Rotate logs of at least N bytes whatever the interval.
    #[arg(long, env = "MAINT_LOGS_MAX_SIZE", allow_hyphen_values = true)]
    max_size: Option<String>,
    /// Rotate only when the last rotation is at least this many seconds old.
    #[arg(long, env = "MAINT_LOGS_INTERVAL", allow_hyphen_values = true)]
    interval: Option<String>,
    /// Directory for archives (created if missing).
    #[arg(long, env = "MAINT_LOGS_ARCHIVE_DIR")]
    archive_dir: Option<PathBuf>,
    /// Directory of the state file and the per-log locks, writable only by this user
    /// (default: /var/lib/aindusdb-maint/logs, created 0700).
    #[arg(long, env = "MAINT_LOGS_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// State file (default: state.json in the state directory); its directory must be
    /// writable only by this user.
    #[arg(long, env = "MAINT_LOGS_STATE_FILE")]
    state_file: Option<PathBuf>,
    /// The user who must own each log (name or uid); default: the owner of the log's
    /// directory, or this user.
    #[arg(long, env = "MAINT_LOGS_OWNER")]
    owner: Option<String>,
    /// Rename mode: pid file of the writer, which gets --signal.
    #[arg(long, env = "MAINT_LOGS_PID_FILE")]
    pid_file: Option<PathBuf>,
    /// Signal sent to the pid in --pid-file (HUP, USR1, ...).
    #[arg(long, env = "MAINT_LOGS_SIGNAL")]
    signal: Option<String>,
    /// Rename mode: shell command run after the rename.
    #[arg(long, env = "MAINT_LOGS_POST_COMMAND")]
    post_command: Option<String>,
    /// Rename mode: seconds to wait for the writer to close the old file.
    #[arg(long, env = "MAINT_LOGS_REOPEN_TIMEOUT", allow_hyphen_values = true)]
    reopen_timeout: Option<String>,
    /// Copytruncate: auto (collapse-range where supported) or truncate.
    #[arg(long, env = "MAINT_LOGS_TRUNCATE")]
    truncate: Option<String>,
    /// Upload each archive to this object store URL (s3://bucket/prefix, file:///dir).
    #[arg(long, env = "MAINT_LOGS_ARCHIVE_URL")]
    archive_url: Option<String>,
    /// How many logs are rotated at once.
    #[arg(long, env = "MAINT_LOGS_CONCURRENCY", allow_hyphen_values = true)]
    concurrency: Option<String>,
    /// Print the plan, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = match maint_core::cli::parse_args::<Cli>("maint-rotate-logs") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("maint-rotate-logs: {}", one_line(&e));
            maint_core::ExitCode::BadInput.into()
        }
    }
}

fn num<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, Error> {
    v.trim().parse().map_err(|_| Error::invalid(field, format!("{v:?} is not a valid number")))
}

/// Parses `123`, `10K`, `5M`, `2G` (powers of 1024).
fn size(field: &str, v: &str) -> Result<u64, Error> {
    let t = v.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(Error::invalid(field, format!("{v:?}: unknown suffix (use K, M or G)"))),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num(field, digits)?;
    n.checked_mul(mult).ok_or_else(|| Error::invalid(field, format!("{v:?} is too large")))
}

fn build_config(cli: &Cli) -> Result<Config, Error> {
    let mut cfg = match &cli.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::invalid("config", format!("cannot read {}: {e}", p.display())))?;
            maint_core::parse_toml::<Config>(&text, p).map_err(|e| Error::invalid("config", e.to_string()))?
        }
        None => Config::default(),
    };
    if !cli.paths.is_empty() {
        cfg.paths.clone_from(&cli.paths);
    }
    if let Some(v) = &cli.mode {
        cfg.mode = v.parse::<Mode>()?;
    }
    if let Some(v) = &cli.compress {
        cfg.compress = v.parse::<Compression>()?;
    }
    if let Some(v) = &cli.level {
        cfg.level = Some(num("level", v)?);
    }
    if let Some(v) = &cli.naming {
        cfg.naming = match v.as_str() {
            "date" => Naming::Date,
            "numbered" => Naming::Numbered,
            _ => return Err(Error::invalid("naming", format!("{v:?} is not date or numbered"))),
        };
    }
    if let Some(v) = &cli.keep {
        cfg.keep = Some(num("keep", v)?);
    }
    if let Some(v) = &cli.max_age {
        cfg.max_age_days = Some(num("max-age", v)?);
    }
    if let Some(v) = &cli.max_total_bytes {
        cfg.max_total_bytes = Some(size("max-total-bytes", v)?);
    }
    if let Some(v) = &cli.min_size {
        cfg.min_size = size("min-size", v)?;
    }
    if let Some(v) = &cli.max_size {
        cfg.max_size = Some(size("max-size", v)?);
    }
    if let Some(v) = &cli.interval {
        cfg.interval_secs = Some(num("interval", v)?);
    }
    if let Some(v) = &cli.archive_dir {
        cfg.archive_dir = Some(v.clone());
    }
    if let Some(v) = &cli.state_dir {
        cfg.state_dir = Some(v.clone());
    }
    if let Some(v) = &cli.state_file {
        cfg.state_file = Some(v.clone());
    }
    if let Some(v) = &cli.owner {
        cfg.owner = Some(v.clone());
    }
    if let Some(v) = &cli.pid_file {
        cfg.pid_file = Some(v.clone());
    }
    if let Some(v) = &cli.signal {
        cfg.signal.clone_from(v);
    }
    if let Some(v) = &cli.post_command {
        cfg.post_command = Some(v.clone());
    }
    if let Some(v) = &cli.reopen_timeout {
        cfg.reopen_timeout_secs = num("reopen-timeout", v)?;
    }
    if let Some(v) = &cli.truncate {
        cfg.truncate = match v.as_str() {
            "auto" => Truncate::Auto,
            "truncate" => Truncate::Truncate,
            _ => return Err(Error::invalid("truncate", format!("{v:?} is not auto or truncate"))),
        };
    }
    if let Some(v) = &cli.archive_url {
        cfg.archive_url = Some(v.clone());
    }
    if let Some(v) = &cli.concurrency {
        cfg.concurrency = num("concurrency", v)?;
    }
    Ok(cfg)
}

fn run(cli: &Cli) -> Result<ExitCode, Error> {
    let cfg = build_config(cli)?;
    let task = LogRotation::new(cfg)?;
    // Bad input found by expanding the globs (two logs whose archives would share names): exit 2.
    task.check_targets()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(task.config().concurrency.clamp(1, 64))
        .enable_all()
        .build()
        .map_err(|e| Error::Io { op: "start runtime", path: PathBuf::new(), source: e })?;
    let report = rt.block_on(task.run(&TaskContext::new(cli.dry_run)));
    if cli.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
    } else {
        print!("{}", text(&report));
    }
    Ok(report.status.exit_code().into())
}

fn text(r: &TaskReport) -> String {
    let mut out = String::new();
    for item in &r.items {
        let path = item["path"].as_str().unwrap_or("?");
        let action = item["action"].as_str().unwrap_or("?");
        let reason = item["reason"].as_str().unwrap_or("");
        out += &format!("{path}: {action} ({reason})\n");
        for a in item["archives"].as_array().into_iter().flatten() {
            out += &format!("  -> {}\n", a.as_str().unwrap_or("?"));
        }
        for d in item["deleted"].as_array().into_iter().flatten() {
            let verb = if r.dry_run { "would delete" } else { "deleted" };
            out += &format!("  {verb} {} ({})\n", d[0].as_str().unwrap_or("?"), d[1].as_str().unwrap_or(""));
        }
    }
    for w in &r.warnings {
        out += &format!("warning: {w}\n");
    }
    if let Some(e) = &r.error {
        out += &format!("error: {e}\n");
    }
    let metrics: Vec<String> = r.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let dry = if r.dry_run { " (dry run)" } else { "" };
    out += &format!("{}: {}{dry} {}\n", r.task, r.status.as_str(), metrics.join(" "));
    out
}
