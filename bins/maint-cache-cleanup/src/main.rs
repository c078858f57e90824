//! `maint-cache-cleanup`: cleans up the AindusDB Redis cache by rule (24 h sessions, 7-day
//! VERITAS results by default) without blocking the server: SCAN, atomic Lua check-and-delete,
//! rate limit, report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use maint_cache::{CacheCleanup, Config, Mode};
use maint_core::{Secret, Task, TaskContext, TaskReport, one_line};
use serde::Deserialize;

const NAME: &str = "maint-cache-cleanup";

#[derive(Debug, Parser)]
#[command(name = NAME, version, about = "Clean up the AindusDB Redis cache by rule, without blocking Redis")]
struct Cli {
    /// Redis URL, redis://[user:password@]host[:port][/db] (never printed). Overrides the
    /// file; the MAINT_REDIS_URL environment variable is used when neither sets it.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// TOML file with the cleanup settings and rules (a [cache] table, or the settings at top level).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the plan (which keys, why); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// At most N Redis operations per second (a SCAN call or one key checked or changed).
    #[arg(long, value_name = "N")]
    max_ops_per_sec: Option<u32>,
    /// Target duration of one Redis call, in milliseconds.
    #[arg(long, value_name = "MS")]
    latency_budget_ms: Option<u64>,
    /// The URL names a cluster node: scan every master.
    #[arg(long)]
    cluster: bool,
    /// Run MEMORY PURGE afterwards (jemalloc only).
    #[arg(long)]
    memory_purge: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    cache: Config,
}

fn main() -> ExitCode {
    let cli = match maint_core::cli::parse_args::<Cli>(NAME) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{NAME}: {message}");
            maint_core::ExitCode::BadInput.into()
        }
    }
}

fn read_config(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table: toml::Table = maint_core::parse_toml(&text, path).map_err(|e| e.to_string())?;
    let parsed = if table.contains_key("cache") {
        maint_core::parse_toml::<FileConfig>(&text, path).map(|f| f.cache)
    } else {
        maint_core::parse_toml::<Config>(&text, path)
    };
    parsed.map_err(|e| e.to_string())
}

/// Builds the configuration (defaults < MAINT_REDIS_URL < file < flags), then runs the task.
/// Bad input is an `Err` (exit 2); a run always gives a report.
fn run(cli: Cli) -> Result<ExitCode, String> {
    let mut config = match &cli.config {
        Some(path) => read_config(path)?,
        None => Config::default(),
    };
    if config.redis_url.is_none() {
        config.redis_url = std::env::var("MAINT_REDIS_URL").ok().filter(|s| !s.is_empty()).map(Secret::new);
    }
    if let Some(url) = cli.redis_url {
        config.redis_url = Some(Secret::new(url));
    }
    if let Some(n) = cli.max_ops_per_sec {
        config.max_ops_per_sec = n;
    }
    if let Some(ms) = cli.latency_budget_ms {
        config.latency_budget_ms = ms;
    }
    if cli.cluster {
        config.mode = Mode::Cluster;
    }
    config.memory_purge |= cli.memory_purge;
    let task = CacheCleanup::new(&config).map_err(|e| one_line(&e))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let report = runtime.block_on(async {
        let ctx = TaskContext::new(cli.dry_run);
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            cancel.cancel();
        });
        task.run(&ctx).await
    });
    if cli.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
    } else {
        print!("{}", render(&report));
    }
    Ok(report.status.exit_code().into())
}

/// Ctrl-C or SIGTERM (a Kubernetes CronJob's stop): the run stops between batches.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn render(report: &TaskReport) -> String {
    let mut out = String::new();
    let dry = if report.dry_run { " (dry run: nothing changed)" } else { "" };
    out += &format!("{}: {}{dry} in {:.1}s\n", report.task, report.status.as_str(), report.duration_ms as f64 / 1000.0);
    for item in &report.items {
        if let Some(key) = item["key"].as_str() {
            let verb = if report.dry_run { "would" } else { "" };
            let outcome = item["outcome"].as_str().map(|o| format!(" -> {o}")).unwrap_or_default();
            out += &format!(
                "  {verb}{}{} {key}: {}{outcome}\n",
                if verb.is_empty() { "" } else { " " },
                item["action"].as_str().unwrap_or("?"),
                item["reason"].as_str().unwrap_or("")
            );
        }
    }
    if !report.metrics.is_empty() {
        let metrics: Vec<String> = report.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out += &format!("  {}\n", metrics.join(" "));
    }
    for w in &report.warnings {
        out += &format!("warning: {w}\n");
    }
    if let Some(e) = &report.error {
        out += &format!("error: {e}\n");
    }
    out
}
