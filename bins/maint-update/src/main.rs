//! `maint-update`: update AindusDB safely (plan, or run with rollback).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clap::{Parser, Subcommand};
use maint_core::chrono::Utc;
use maint_core::{Calendar, Secret, TaskContext, TaskReport, one_line};
use maint_release::deadpool_postgres::{self, Runtime, tokio_postgres::NoTls};
use maint_release::maint_backup::{CreateOptions, open_store};
use maint_release::{
    AuditConfig, BackupConfig, ChangeStore, ChangesConfig, Deployer, DockerConfig, Error, MigrationsConfig, Migrator,
    PgAuditLog, Revision, SmokeConfig, SmokeStatus, StoreBackupGate, UpdateConfig, UpdateRequest, Updater,
    check_change_id, parse_version,
};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "maint-update",
    version,
    about = "Update AindusDB safely: migrations around the rollout, smoke checks, rollback"
)]
struct Cli {
    /// TOML file: [update], [migrations], [changes], [backup], [notify], [docker] or [kubernetes].
    #[arg(long, env = "MAINT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print the plan, change nothing (`run --dry-run` is `plan`).
    #[arg(long, global = true)]
    dry_run: bool,
    /// Print the report as one JSON object.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The version to deploy (`1.5.0`, `v2.0.0`).
    #[arg(long)]
    to: String,
    /// The running version (default: read from the current revision's image tag).
    #[arg(long)]
    from: Option<String>,
    /// Allow a downgrade.
    #[arg(long)]
    force: bool,
    /// The change request that covers the update (`CR-12`); required for a major update.
    #[arg(long)]
    change: Option<String>,
    /// The image without its tag (overrides [update] image).
    #[arg(long, env = "MAINT_UPDATE_IMAGE")]
    image: Option<String>,
    /// The workloads to update (repeat; overrides [update] workloads).
    #[arg(long = "workload")]
    workloads: Vec<String>,
    /// Who runs the update, for the audit record (default: $USER).
    #[arg(long, env = "MAINT_ACTOR")]
    actor: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what an update would do, step by step, changing nothing.
    Plan(Target),
    /// Carry out the update.
    Run(Target),
    /// Run the smoke suite against a running service ([smoke] in --config).
    Smoke(SmokeArgs),
}

#[derive(Debug, clap::Args)]
struct SmokeArgs {
    /// The service's base URL (overrides [smoke] base_url).
    #[arg(long, env = "MAINT_SMOKE_BASE_URL")]
    base_url: Option<String>,
    /// A suite file, .toml, .yaml or .json (overrides [smoke] suite; default: the built-in AindusDB suite).
    #[arg(long)]
    suite: Option<PathBuf>,
    /// Also write the results as JUnit XML to this file (overrides [smoke] junit).
    #[arg(long)]
    junit: Option<PathBuf>,
    /// A suite variable, NAME=VALUE (repeat). The token comes from [smoke] token or MAINT_SMOKE_TOKEN.
    #[arg(long = "var")]
    vars: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct File {
    update: UpdateConfig,
    migrations: MigrationsConfig,
    changes: ChangesConfig,
    backup: BackupConfig,
    docker: DockerConfig,
    kubernetes: Option<maint_release_kube::KubeConfig>,
    audit: AuditConfig,
    smoke: SmokeConfig,
    notify: Option<maint_release::maint_notify::Config>,
}

/// The deployer used when none is configured ([docker] has no service): it can name
/// itself and nothing else, so only a plan (with `--from`) can run with it.
#[derive(Debug)]
struct NoDeployer;

const NO_DEPLOYER: &str =
    "no deployer configured (add [kubernetes], or [docker] services): only `plan` with --from works";

#[async_trait]
impl Deployer for NoDeployer {
    fn name(&self) -> String {
        "none".into()
    }
    async fn set_image(&self, _: &[String], _: &str) -> Result<(), Error> {
        Err(Error::Deploy(NO_DEPLOYER.into()))
    }
    async fn wait_rollout(&self, _: &[String], _: Duration) -> Result<(), Error> {
        Err(Error::Deploy(NO_DEPLOYER.into()))
    }
    async fn undo(&self, _: &[String]) -> Result<(), Error> {
        Err(Error::Deploy(NO_DEPLOYER.into()))
    }
    async fn history(&self, _: &str) -> Result<Vec<Revision>, Error> {
        Err(Error::Deploy(format!("cannot read the running version: {NO_DEPLOYER}")))
    }
}

fn main() -> ExitCode {
    let cli = match maint_core::cli::parse_args::<Cli>("maint-update") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !cli.json {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maint-update: cannot start the runtime: {e}");
            return maint_core::ExitCode::Failed.into();
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
            eprintln!("maint-update: {}", one_line(&e));
            e.exit_code().into()
        }
    }
}

fn print_human(r: &TaskReport) {
    for item in &r.items {
        let s = |k: &str| item[k].as_str().unwrap_or("").to_owned();
        if item.get("change").is_some() {
            println!("change {} is now {}", s("change"), s("state"));
        } else if item.get("phase").is_some() {
            let what = format!("{} {}", s("method"), s("path"));
            println!("{:<20} {:<8} {what} {}", s("name"), s("status"), s("error"));
        } else {
            println!("{:<20} {:<8} {}", s("step"), s("status"), s("detail"));
        }
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    let dry = if r.dry_run { " (dry run)" } else { "" };
    println!("{}: {}{dry} in {:.1}s", r.task, r.status.as_str(), r.duration_ms as f64 / 1000.0);
    if let Some(e) = &r.error {
        println!("error: {e}");
    }
}

fn load(path: Option<&PathBuf>) -> Result<File, Error> {
    let Some(path) = path else { return Ok(File::default()) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid("--config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::invalid(path.display().to_string(), e.message().to_owned()))
}

fn pool(url: &Secret, field: &str) -> Result<deadpool_postgres::Pool, Error> {
    let cfg = deadpool_postgres::Config { url: Some(url.expose().to_owned()), ..deadpool_postgres::Config::default() };
    // The driver's message never contains the password; the URL itself is not repeated.
    cfg.create_pool(Some(Runtime::Tokio1), NoTls).map_err(|e| Error::invalid(field, one_line(&e)))
}

/// The deployer: [kubernetes] when the section is there, else the [docker] services.
async fn deployer(file: &File, dry_run: bool) -> Result<Arc<dyn Deployer>, Error> {
    Ok(match (&file.kubernetes, file.docker.deployer()?) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("kubernetes", "configure [kubernetes] or [docker] services, not both"));
        }
        (Some(k), None) => Arc::new(k.deployer().await?),
        (None, Some(d)) => Arc::new(d),
        // Refused before anything happens: without a deployer a real run could not roll
        // out, nor roll back.
        (None, None) if !dry_run => return Err(Error::invalid("deployer", NO_DEPLOYER)),
        (None, None) => Arc::new(NoDeployer),
    })
}

async fn run(cli: Cli) -> Result<TaskReport, Error> {
    let mut file = load(cli.config.as_ref())?;
    let (target, dry_run) = match cli.command {
        Command::Plan(t) => (t, true),
        Command::Run(t) => (t, cli.dry_run),
        Command::Smoke(args) => return smoke(file.smoke, args, cli.dry_run).await,
    };
    let to = parse_version("--to", &target.to)?;
    let from = target.from.as_deref().map(|f| parse_version("--from", f)).transpose()?;
    if let Some(image) = target.image {
        file.update.image = image;
    }
    if !target.workloads.is_empty() {
        file.update.workloads = target.workloads;
    }
    if file.update.image.trim().is_empty() {
        return Err(Error::invalid("--image", "required (flag, MAINT_UPDATE_IMAGE or [update] image in --config)"));
    }
    let deployer = deployer(&file, dry_run).await?;
    let mut updater = Updater::new(deployer, file.update.settings()?)?;
    if let Some(opts) = file.migrations.options()? {
        let url = file
            .migrations
            .database_url
            .as_ref()
            .ok_or_else(|| Error::invalid("migrations.database_url", "required"))?;
        updater = updater.with_migrations(Arc::new(Migrator::new(pool(url, "migrations.database_url")?, opts)?));
    }
    if let Some(checks) = file.update.http_checks()? {
        updater = updater.with_checks(Arc::new(checks));
    }
    if let Some(suite) = file.smoke.checks()? {
        updater = updater.with_smoke(Arc::new(suite), file.smoke.pre_checks);
    }
    if let Some(store) = &file.backup.store {
        let url = file
            .backup
            .database_url
            .clone()
            .ok_or_else(|| Error::invalid("backup.database_url", "required with backup.store"))?;
        let store = open_store(store).map_err(|e| Error::invalid("backup.store", one_line(&e)))?;
        let max_age = Duration::from_secs(file.backup.max_age_hours.saturating_mul(3600));
        updater = updater.with_backup(Arc::new(StoreBackupGate::new(store, CreateOptions::new(url), max_age)));
    }
    if let Some(url) = &file.audit.database_url {
        updater = updater.with_audit(Arc::new(PgAuditLog::new(pool(url, "audit.database_url")?)));
    }
    if let Some(n) = file.notify.as_ref().filter(|n| !n.targets.is_empty()) {
        updater = updater.with_notify(n.build().map_err(|e| Error::invalid("notify", one_line(&e)))?);
    }
    let calendar = file
        .update
        .calendar
        .as_ref()
        .map(|p| Calendar::from_path(p).map_err(|e| Error::invalid("update.calendar", one_line(&e))))
        .transpose()?;
    // The change is loaded here (an unknown id stops everything); a real run moves it
    // to in_progress, then completed, failed or rolled_back, through the store.
    let change = match &target.change {
        None => None,
        Some(id) => {
            check_change_id("--change", id)?;
            let store = file
                .changes
                .store()?
                .ok_or_else(|| Error::invalid("changes.database_url", "required with --change"))?;
            let change = store.load(id).await?;
            updater = updater.with_changes(Arc::new(store));
            Some(change)
        }
    };
    let actor = target.actor.or_else(|| std::env::var("USER").ok()).filter(|a| !a.trim().is_empty());
    let req = UpdateRequest { to: Some(to), from, force: target.force, change, calendar, now: Some(Utc::now()), actor };
    let ctx = TaskContext::new(dry_run);
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    Ok(updater.run(&req, &ctx).await)
}

/// `maint-update smoke`: the suite once, as a report (items: one per step; metrics
/// passed, failed, skipped); `--dry-run` lists the steps without sending anything.
async fn smoke(mut cfg: SmokeConfig, args: SmokeArgs, dry_run: bool) -> Result<TaskReport, Error> {
    if args.suite.is_some() {
        cfg.suite = args.suite;
    }
    for v in &args.vars {
        let (k, val) = v.split_once('=').ok_or_else(|| Error::invalid("--var", format!("{v:?} is not NAME=VALUE")))?;
        cfg.variables.insert(k.trim().to_owned(), val.to_owned());
    }
    let base = args
        .base_url
        .or_else(|| cfg.base_url.clone())
        .ok_or_else(|| Error::invalid("--base-url", "required (flag, MAINT_SMOKE_BASE_URL or [smoke] base_url)"))?;
    let suite = cfg.load_suite()?;
    let runner = cfg.runner(&base)?;
    let mut report = TaskReport::begin("smoke", dry_run);
    if dry_run {
        suite.validate_with(&runner.variable_names())?;
        for s in suite.steps.iter().chain(&suite.teardown) {
            report.item(serde_json::json!({
                "name": s.name, "phase": "planned", "status": "planned", "method": s.method.to_uppercase(), "path": s.path,
            }));
        }
        return Ok(report.finish());
    }
    let result = runner.run(&suite).await?;
    if let Some(path) = args.junit.as_ref().or(cfg.junit.as_ref()) {
        std::fs::write(path, result.to_junit()).map_err(|source| Error::Io {
            operation: "cannot write",
            path: path.clone(),
            source,
        })?;
    }
    report.metric("passed", result.passed as f64);
    report.metric("failed", result.failed as f64);
    report.metric("skipped", result.skipped as f64);
    for s in &result.steps {
        report.item(s);
    }
    if !result.ok() {
        report.fail(result.summary());
    } else if result.steps.iter().any(|s| s.status == SmokeStatus::Skipped) {
        report.warn(result.summary());
    }
    Ok(report.finish())
}
