//! `maint-db-optimize`: VACUUM/ANALYZE with SKIP_LOCKED, batched retention, cleanup of
//! invalid `_ccnew`/`_ccold` indexes, `REINDEX INDEX CONCURRENTLY` of bloated indexes, amcheck, and
//! read-only health/performance and security reports, without blocking production.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use maint_core::{Secret, Task, TaskContext, TaskReport, one_line};
use maint_db::{
    CapacityPlanning, Config, DatabaseOptimization, Error, IndexIntegrity, IndexRebuild, PerformanceAnalysis,
    PgSecurityAudit, Steps,
};

/// Flags override the `--config` file, which overrides the defaults. The database URL is
/// a secret: it is never printed (`--help` hides the environment value too).
#[derive(Parser)]
#[command(name = "maint-db-optimize", version, about = "PostgreSQL maintenance that does not block production")]
struct Cli {
    /// TOML file with the settings (the fields of maint_db::Config).
    #[arg(long, env = "MAINT_DB_CONFIG")]
    config: Option<PathBuf>,
    /// postgresql://user:password@host:port/db
    #[arg(long, value_name = "URL", env = "MAINT_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Connections used in parallel for per-table work.
    #[arg(long, value_name = "N", env = "MAINT_DB_JOBS", allow_hyphen_values = true)]
    jobs: Option<String>,
    /// lock_timeout of every session (500ms, 5s).
    #[arg(long, value_name = "DURATION", env = "MAINT_DB_LOCK_TIMEOUT", allow_hyphen_values = true)]
    lock_timeout: Option<String>,
    /// statement_timeout of every session (30m, 1h; 0 for none).
    #[arg(long, value_name = "DURATION", env = "MAINT_DB_STATEMENT_TIMEOUT", allow_hyphen_values = true)]
    statement_timeout: Option<String>,
    /// maintenance_work_mem of every session (256MB); the server's when unset.
    #[arg(long, value_name = "SIZE", env = "MAINT_DB_MAINTENANCE_WORK_MEM")]
    maintenance_work_mem: Option<String>,
    /// Step: ANALYZE every table. Naming any step runs only the steps named.
    #[arg(long)]
    analyze: bool,
    /// Step: VACUUM every table (with ANALYZE when --analyze is given too).
    #[arg(long)]
    vacuum: bool,
    /// Step: delete rows by the retention rules, in batches.
    #[arg(long)]
    retention: bool,
    /// Step: drop invalid _ccnew/_ccold indexes left by a failed REINDEX CONCURRENTLY.
    #[arg(long)]
    invalid_indexes: bool,
    /// Step: estimate and measure bloat, REINDEX INDEX CONCURRENTLY the indexes over the
    /// [reindex] thresholds (task index-rebuild).
    #[arg(long)]
    reindex: bool,
    /// Step: the read-only health and performance report (task performance-analysis).
    #[arg(long)]
    report: bool,
    /// Step: the read-only PostgreSQL security audit (task pg-security-audit).
    #[arg(long)]
    audit: bool,
    /// Step: verify btree indexes with amcheck's bt_index_check (task index-integrity).
    #[arg(long)]
    amcheck: bool,
    /// Step: record size snapshots and project growth to the disk budget (task capacity-planning).
    #[arg(long)]
    capacity: bool,
    /// Print the plan, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as one JSON object (one per line when several tasks run).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = match maint_core::cli::parse_args::<Cli>("maint-db-optimize") {
        Ok(c) => c,
        Err(code) => return code,
    };
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("maint-db-optimize: {}", one_line(&e));
            e.exit_code().into()
        }
    }
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
    if let Some(url) = &cli.database_url {
        cfg.url = Some(Secret::new(url.as_str()));
    }
    if let Some(v) = &cli.jobs {
        cfg.jobs = v.trim().parse().map_err(|_| Error::invalid("jobs", format!("{v:?} is not a number")))?;
    }
    if let Some(v) = &cli.lock_timeout {
        cfg.lock_timeout.clone_from(v);
    }
    if let Some(v) = &cli.statement_timeout {
        cfg.statement_timeout.clone_from(v);
    }
    if let Some(v) = &cli.maintenance_work_mem {
        cfg.maintenance_work_mem = Some(v.clone());
    }
    if cli.analyze
        || cli.vacuum
        || cli.retention
        || cli.invalid_indexes
        || cli.reindex
        || cli.report
        || cli.audit
        || cli.capacity
        || cli.amcheck
    {
        cfg.steps = Steps {
            analyze: cli.analyze,
            vacuum: cli.vacuum,
            retention: cli.retention,
            invalid_indexes: cli.invalid_indexes,
        };
    }
    Ok(cfg)
}

/// The tasks the switches ask for, in order: optimization (when any of its steps is on),
/// index rebuild, index integrity, performance report, security audit, capacity planning. Without a switch: optimization.
fn tasks(cli: &Cli, cfg: &Config) -> Result<Vec<Box<dyn Task>>, Error> {
    let mut tasks: Vec<Box<dyn Task>> = Vec::new();
    let s = cfg.steps;
    if s.analyze
        || s.vacuum
        || s.retention
        || s.invalid_indexes
        || !(cli.reindex || cli.report || cli.audit || cli.capacity || cli.amcheck)
    {
        tasks.push(Box::new(DatabaseOptimization::new(cfg)?));
    }
    if cli.reindex {
        tasks.push(Box::new(IndexRebuild::new(cfg)?));
    }
    if cli.amcheck {
        tasks.push(Box::new(IndexIntegrity::new(cfg)?));
    }
    if cli.report {
        tasks.push(Box::new(PerformanceAnalysis::new(cfg)?));
    }
    if cli.audit {
        tasks.push(Box::new(PgSecurityAudit::new(cfg)?));
    }
    if cli.capacity {
        tasks.push(Box::new(CapacityPlanning::new(cfg)?));
    }
    Ok(tasks)
}

fn run(cli: &Cli) -> Result<ExitCode, Error> {
    let tasks = tasks(cli, &build_config(cli)?)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::invalid("runtime", e.to_string()))?;
    let ctx = TaskContext::new(cli.dry_run);
    let reports = rt.block_on(async {
        // SIGTERM (a CronJob being stopped) or Ctrl-C: finish the statements in flight,
        // start no new one, and report how far the run got.
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            cancel.cancel();
        });
        let mut reports = Vec::new();
        for task in &tasks {
            reports.push(task.run(&ctx).await);
        }
        reports
    });
    if cli.json {
        // Exactly one JSON object: the task's report, or a RunReport when several ran.
        let json = match reports.as_slice() {
            [one] => serde_json::to_string(one),
            _ => serde_json::to_string(&maint_core::RunReport::new("maint-db-optimize", cli.dry_run, reports.clone())),
        };
        println!("{}", json.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
    } else {
        for report in &reports {
            print!("{}", text(report));
        }
    }
    let worst = reports.iter().map(|r| r.status).max().unwrap_or(maint_core::Status::Ok);
    Ok(worst.exit_code().into())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn text(r: &TaskReport) -> String {
    let mut out = String::new();
    for item in &r.items {
        let s = |k: &str| item[k].as_str().unwrap_or_default().to_owned();
        let line = match s("step").as_str() {
            "table" if r.dry_run => format!("{} ({})", s("sql"), item["reason"].as_str().unwrap_or("")),
            "table" => format!("{}: {}", s("sql"), s("outcome")),
            "retention" if r.dry_run => {
                format!(
                    "{}: would delete {} rows with {} < {}",
                    s("table"),
                    item["would_delete"],
                    s("column"),
                    s("cutoff")
                )
            }
            "retention" => format!("{}: deleted {} rows in {} batches", s("table"), item["deleted"], item["batches"]),
            "invalid_index" => format!("{}: {}", s("index"), s("action")),
            "reindex" => {
                format!("{}: {} ({} bytes wasted, {})", s("sql"), s("outcome"), item["bloat_bytes"], s("basis"))
            }
            "bloat" if item["pgstattuple"] == false => s("note"),
            "amcheck" if item["amcheck"] == false => s("note"),
            "amcheck" => {
                let why = [s("message"), s("error")].concat();
                let why = if why.is_empty() { String::new() } else { format!(": {why}") };
                format!("bt_index_check {}: {}{why}", s("index"), s("outcome"))
            }
            "bloat" => {
                let measured = match item["bloat_bytes_measured"].as_i64() {
                    Some(m) => format!(", measured {m}"),
                    None => String::new(),
                };
                format!(
                    "bloat {} {}: {} of {} bytes estimated{measured}",
                    s("kind"),
                    s("relation"),
                    item["bloat_bytes_estimate"],
                    item["bytes_estimate"]
                )
            }
            "capacity" => {
                let growth = match item["growth_bytes_per_day"].as_f64() {
                    Some(g) => format!("{g:.0} bytes/day"),
                    None => "growth unknown".to_owned(),
                };
                let days = match item["days_until_budget"].as_f64() {
                    Some(d) => format!(", {d:.0} days to the budget"),
                    None => String::new(),
                };
                format!("{:<8} {:<50} {:>14} bytes  {growth}{days}", s("kind"), s("name"), item["bytes"])
            }
            "index_inventory" => {
                let mut opts: Vec<String> = ["m", "ef_construction", "lists", "fastupdate", "distance", "dimensions"]
                    .iter()
                    .filter(|k| !item[**k].is_null())
                    .map(|k| format!("{k}={}", item[*k]))
                    .collect();
                if let Some(n) = item["note"].as_str() {
                    opts.push(n.to_owned());
                }
                let since = &item["since_build"];
                format!(
                    "index {:<8} {} on {}: {} bytes {}; since build +{} ~{} -{}",
                    s("method"),
                    s("index"),
                    s("table"),
                    item["bytes"],
                    opts.join(" "),
                    since["inserted"],
                    since["updated"],
                    since["deleted"]
                )
            }
            "recall" => {
                let needed = match item["needed"].as_i64() {
                    Some(n) => format!("{} = {n} reaches the target", s("parameter")),
                    None => "no value up to the ceiling reaches the target".to_owned(),
                };
                format!(
                    "recall@{} {}: {:.3} at {} = {} over {} queries (index p50 {:.1} ms p95 {:.1} ms, exact p50 {:.1} ms p95 {:.1} ms); {needed}",
                    item["k"],
                    s("index"),
                    item["recall"].as_f64().unwrap_or_default(),
                    s("parameter"),
                    item["value"],
                    item["queries"],
                    item["index_latency"]["p50_ms"].as_f64().unwrap_or_default(),
                    item["index_latency"]["p95_ms"].as_f64().unwrap_or_default(),
                    item["exact_latency"]["p50_ms"].as_f64().unwrap_or_default(),
                    item["exact_latency"]["p95_ms"].as_f64().unwrap_or_default(),
                )
            }
            "vector_rebuild" => {
                let recall = match (item["recall_before"].as_f64(), item["recall_after"].as_f64()) {
                    (Some(b), Some(a)) => format!(", recall {b:.3} -> {a:.3}"),
                    (Some(b), None) => format!(", recall {b:.3}"),
                    _ => String::new(),
                };
                let size = match item["bytes_after"].as_i64() {
                    Some(a) => format!(", {} -> {a} bytes", item["bytes_before"]),
                    None => String::new(),
                };
                format!("{}: {} ({}){size}{recall}", s("sql"), s("outcome"), s("reason"))
            }
            "finding" => {
                format!("[{}] {} {}: {} -> {}", s("severity"), s("check"), s("subject"), s("message"), s("action"))
            }
            _ => item.to_string(),
        };
        out += &line;
        out.push('\n');
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
