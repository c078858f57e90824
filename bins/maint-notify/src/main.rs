//! `maint-notify`: send one notification to every configured target and report per target.
//!
//! Targets come from `--target URL` (repeatable), `MAINT_NOTIFY_TARGETS` (space-separated),
//! or the `[notify]` table of `--config FILE`; prefer the last two, since command-line
//! arguments are visible to other users in `ps`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use maint_core::{Secret, TaskReport, one_line};
use maint_notify::{Config, Notification, Outcome, Severity};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "maint-notify",
    version,
    about = "Send a notification to Slack, Teams, PagerDuty, webhooks, email or the log"
)]
struct Cli {
    /// Target URL (slack://…, teams://…, pagerduty://…, webhook+https://…, smtp://…, log://).
    #[arg(
        long = "target",
        value_name = "URL",
        env = "MAINT_NOTIFY_TARGETS",
        value_delimiter = ' ',
        hide_env_values = true
    )]
    targets: Vec<String>,
    /// TOML file with a [notify] table (targets, timeouts, retries).
    #[arg(long, env = "MAINT_CONFIG")]
    config: Option<PathBuf>,
    /// One-line title.
    #[arg(long)]
    title: String,
    /// Details.
    #[arg(long, default_value = "")]
    body: String,
    /// info, warning, error or critical.
    #[arg(long, default_value = "info", value_parser = parse_severity)]
    severity: Severity,
    /// Stable key of the condition (defaults to the title); a --resolve with the same key closes it.
    #[arg(long)]
    event_key: Option<String>,
    /// Send a resolve instead of a trigger.
    #[arg(long)]
    resolve: bool,
    /// The task this is about.
    #[arg(long)]
    task: Option<String>,
    /// Extra fact, NAME=VALUE (repeatable).
    #[arg(long = "field", value_name = "NAME=VALUE", value_parser = parse_field)]
    fields: Vec<(String, String)>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

fn parse_field(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct File {
    notify: Config,
}

fn main() -> ExitCode {
    let cli = match maint_core::cli::parse_args::<Cli>("maint-notify") {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !cli.json {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maint-notify: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

fn bad_input(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("maint-notify: {msg}");
    maint_core::ExitCode::BadInput.into()
}

async fn run(cli: Cli) -> ExitCode {
    let mut config = match &cli.config {
        None => Config::default(),
        Some(path) => match std::fs::read_to_string(path) {
            Err(e) => return bad_input(format!("cannot read {}: {e}", path.display())),
            Ok(text) => match maint_core::parse_toml::<File>(&text, path) {
                Ok(f) => f.notify,
                Err(e) => return bad_input(e.to_string()),
            },
        },
    };
    let targets: Vec<&String> = cli.targets.iter().filter(|t| !t.trim().is_empty()).collect();
    if !targets.is_empty() {
        config.targets = targets.into_iter().map(|t| Secret::new(t.as_str())).collect();
    }
    let dispatcher = match config.build() {
        Ok(d) => d,
        Err(e) => return bad_input(one_line(&e)),
    };
    let mut n = Notification::new(&cli.title, &cli.body, cli.severity);
    if let Some(key) = cli.event_key {
        n = n.with_event_key(key);
    }
    if let Some(task) = cli.task {
        n = n.with_task(task);
    }
    for (k, v) in cli.fields {
        n = n.with_field(k, v);
    }
    if cli.resolve {
        n = n.resolve();
    }
    let mut report = TaskReport::begin("notify", false);
    let deliveries = dispatcher.notify_report(&n, &mut report).await;
    for d in &deliveries {
        report.item(d);
    }
    let failed = deliveries.iter().filter(|d| d.outcome == Outcome::Failed).count();
    if failed > 0 {
        report.fail(format!("{failed} of {} target(s) failed", deliveries.len()));
    }
    let report = report.finish();
    if cli.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        for d in &deliveries {
            let outcome = match d.outcome {
                Outcome::Delivered => "delivered",
                Outcome::Failed => "FAILED",
                Outcome::Filtered => "filtered",
            };
            let err = d.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            println!("{outcome:9} {} ({} attempt(s)){err}", d.target, d.attempts);
        }
    }
    report.status.exit_code().into()
}
