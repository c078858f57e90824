//! `maint-update`: update AindusDB safely (plan, or run with rollback).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use maint_core::{TaskContext, TaskReport, one_line};
use maint_release::{Error, SmokeConfig, SmokeStatus};
use maint_update::{Target, load, prepare};

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

async fn run(cli: Cli) -> Result<TaskReport, Error> {
    let file = load(cli.config.as_deref())?;
    let (target, dry_run) = match cli.command {
        Command::Plan(t) => (t, true),
        Command::Run(t) => (t, cli.dry_run),
        Command::Smoke(args) => return smoke(file.smoke, args, cli.dry_run).await,
    };
    let (updater, req) = prepare(file, target, dry_run).await?;
    let ctx = TaskContext { dry_run, cancel: maint_core::cli::cancel_on_signals() };
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
