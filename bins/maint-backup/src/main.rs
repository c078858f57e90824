//! `maint-backup`: PostgreSQL backups in object storage that are proven to restore.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{NaiveDate, TimeDelta, Utc};
use clap::{Parser, Subcommand};
use maint_backup::{
    Compression, Config, Error, catalog, day_prefix, open_store, prune_report, restore_report, verify_report,
};
use maint_core::{Secret, Size, TaskReport, one_line};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(name = "maint-backup", version, about = "PostgreSQL backups in object storage, proven to restore")]
struct Cli {
    /// Where backups live: s3://bucket/prefix (AWS_* variables for credentials, region,
    /// endpoint, allow-http) or file:///path.
    #[arg(long, env = "MAINT_BACKUP_STORE", global = true)]
    store: Option<String>,
    /// TOML file with a [backup] table (store, database_url, admin_url, compression, jobs,
    /// client_dir, retention, restore_jobs, maintenance_work_mem, max_parallel_maintenance_workers).
    #[arg(long, env = "MAINT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The directory of the pg_dump/pg_restore to run, whatever the server's version (default:
    /// /usr/lib/postgresql/<server's major or the lowest newer one>/bin, else PATH).
    #[arg(long, env = "MAINT_BACKUP_CLIENT_DIR", global = true)]
    client_dir: Option<PathBuf>,
    /// Print the plan, change nothing.
    #[arg(long, global = true)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dump a database into the store with its manifest.
    Create {
        /// The database to back up (password through PGPASSWORD to pg_dump, never on its command line).
        #[arg(long, env = "MAINT_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// zstd (the default: multi-threaded), gzip or none; pg_dump itself runs uncompressed.
        #[arg(long, value_parser = parse_compression)]
        compress: Option<Compression>,
    },
    /// Check backups against their manifests (default: yesterday's, UTC).
    Verify {
        /// The day (YYYY-MM-DD).
        #[arg(long, conflicts_with = "prefix", value_parser = parse_day)]
        date: Option<NaiveDate>,
        /// A key prefix instead of a day (`backups` for all).
        #[arg(long)]
        prefix: Option<String>,
        /// Only backups not verified successfully in the last N days (rolling mode).
        #[arg(long)]
        rolling_days: Option<u32>,
        /// Backups verified at once.
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Restore a backup into a scratch database and compare its data with the manifest.
    RestoreTest {
        /// The backup key (default: the newest complete backup).
        #[arg(long)]
        key: Option<String>,
        /// A database on the server that hosts the scratch database (needs CREATEDB).
        #[arg(long, env = "MAINT_RESTORE_ADMIN_URL", hide_env_values = true)]
        admin_url: Option<String>,
        /// pg_restore --jobs (default 1, streamed; more spools the dump to a private file in TMPDIR).
        #[arg(long)]
        jobs: Option<usize>,
        /// maintenance_work_mem of the restore (`1GB`; default 1GB capped at a quarter of the
        /// server's memory, shared by the jobs).
        #[arg(long)]
        maintenance_work_mem: Option<Size>,
        /// max_parallel_maintenance_workers of the restore (default 0).
        #[arg(long)]
        max_parallel_maintenance_workers: Option<u32>,
    },
    /// Delete backups outside the retention policy (grandfather-father-son, each database on its own).
    Prune {
        /// Days to keep (newest backup of each).
        #[arg(long)]
        keep_daily: Option<u32>,
        /// ISO weeks to keep.
        #[arg(long)]
        keep_weekly: Option<u32>,
        /// Months to keep.
        #[arg(long)]
        keep_monthly: Option<u32>,
        /// Keep everything younger than this (a dump without a manifest is kept for an hour
        /// after its upload whatever this says).
        #[arg(long)]
        min_age_days: Option<u32>,
    },
    /// List backups with their state.
    List {
        /// Key prefix.
        #[arg(long, default_value = "backups")]
        prefix: String,
    },
}

/// The configuration file: its `[backup]` (the other sections are `maint`'s).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct File {
    backup: Config,
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse()
}

fn parse_day(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

fn main() -> ExitCode {
    let cli = match maint_core::cli::parse_args::<Cli>("maint-backup") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !cli.json {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maint-backup: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print_human(&report);
            }
            report.status.exit_code().into()
        }
        Err(e) => {
            eprintln!("maint-backup: {}", one_line(&e));
            if e.is_bad_input() { maint_core::ExitCode::BadInput.into() } else { maint_core::ExitCode::Failed.into() }
        }
    }
}

fn print_human(r: &TaskReport) {
    for item in &r.items {
        println!("{}", item.as_str().map_or_else(|| item.to_string(), str::to_owned));
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    let metrics: Vec<String> = r.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let dry = if r.dry_run { " (dry run)" } else { "" };
    println!("{}: {}{dry} {}", r.task, r.status.as_str(), metrics.join(" "));
    if let Some(e) = &r.error {
        println!("error: {e}");
    }
}

fn missing(flag: &str) -> Error {
    Error::Invalid {
        field: flag.to_owned(),
        message: "required (flag, environment variable or [backup] in --config)".into(),
    }
}

fn required(value: Option<String>, flag: &str) -> Result<String, Error> {
    value.filter(|v| !v.is_empty()).ok_or_else(|| missing(flag))
}

async fn run(cli: Cli) -> Result<TaskReport, Error> {
    let mut cfg = match &cli.config {
        None => Config::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Invalid {
                field: "--config".into(),
                message: format!("cannot read {}: {e}", path.display()),
            })?;
            maint_core::parse_toml::<File>(&text, path)
                .map_err(|e| Error::Invalid { field: e.field, message: e.message })?
                .backup
        }
    };
    cfg.validate()?;
    let store = open_store(&required(cli.store.or(cfg.store.clone()), "--store")?)?;
    let cancel = maint_core::cli::cancel_on_signals();
    let dry = cli.dry_run;
    cfg.client_dir = cli.client_dir.or(cfg.client_dir);
    match cli.command {
        Command::Create { database_url, compress } => {
            if let Some(url) = database_url.filter(|u| !u.is_empty()) {
                cfg.database_url = Some(Secret::new(url));
            }
            cfg.compression = compress.or(cfg.compression);
            let opts = cfg.create_options().filter(|o| !o.database_url.expose().is_empty());
            let opts = opts.ok_or_else(|| missing("--database-url"))?;
            let mut report = TaskReport::begin("backup-create", dry);
            if dry {
                report.item(format!(
                    "would dump the database with pg_dump --format=custom, {} compression",
                    opts.compression
                ));
                return Ok(report.finish());
            }
            match maint_backup::create(&store, &opts, &cancel).await {
                Ok(m) => {
                    report.metric("stored_bytes", m.stored_bytes as f64).metric("dump_bytes", m.dump_bytes as f64);
                    report.metric("tables", m.tables.len() as f64);
                    report.item(format!("created {} ({} bytes, {} tables)", m.key, m.stored_bytes, m.tables.len()));
                }
                Err(e) if e.is_bad_input() => return Err(e),
                Err(e) => {
                    report.fail(one_line(&e));
                }
            }
            Ok(report.finish())
        }
        Command::Verify { date, prefix, rolling_days, jobs } => {
            let prefix = prefix
                .unwrap_or_else(|| day_prefix(date.unwrap_or_else(|| Utc::now().date_naive() - TimeDelta::days(1))));
            verify_report(&store, &prefix, rolling_days, jobs.unwrap_or(cfg.verify_jobs()), dry).await
        }
        Command::RestoreTest { key, admin_url, jobs, maintenance_work_mem, max_parallel_maintenance_workers } => {
            if let Some(url) = admin_url.filter(|u| !u.is_empty()) {
                cfg.admin_url = Some(Secret::new(url));
            }
            if jobs == Some(0) {
                return Err(Error::Invalid { field: "--jobs".into(), message: "must be at least 1".into() });
            }
            cfg.restore_jobs = jobs.or(cfg.restore_jobs);
            cfg.maintenance_work_mem = maintenance_work_mem.or(cfg.maintenance_work_mem);
            cfg.max_parallel_maintenance_workers =
                max_parallel_maintenance_workers.or(cfg.max_parallel_maintenance_workers);
            let opts = cfg.restore_options().filter(|o| !o.admin_url.expose().is_empty());
            let opts = opts.ok_or_else(|| missing("--admin-url"))?;
            restore_report(&store, key, &opts, dry, &cancel).await
        }
        Command::Prune { keep_daily, keep_weekly, keep_monthly, min_age_days } => {
            let mut policy = cfg.retention.unwrap_or_default();
            policy.keep_daily = keep_daily.unwrap_or(policy.keep_daily);
            policy.keep_weekly = keep_weekly.unwrap_or(policy.keep_weekly);
            policy.keep_monthly = keep_monthly.unwrap_or(policy.keep_monthly);
            policy.min_age_days = min_age_days.unwrap_or(policy.min_age_days);
            prune_report(&store, &policy, dry).await
        }
        Command::List { prefix } => {
            let mut report = TaskReport::begin("backup-list", dry);
            let entries = catalog(&store, &prefix).await?;
            for e in &entries {
                let state = match (&e.object, &e.manifest) {
                    (Some(o), Some(_)) => format!("{} bytes", o.size),
                    (Some(_), None) => "INCOMPLETE: no manifest".into(),
                    (None, _) => "MISSING: manifest without its dump".into(),
                };
                report.item(format!("{}  {state}", e.key));
            }
            report.metric("backups", entries.len() as f64);
            Ok(report.finish())
        }
    }
}
