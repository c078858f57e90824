//! `maint-change`: change requests (CAB) for AindusDB updates, stored in PostgreSQL.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use maint_core::chrono::{DateTime, Utc};
use maint_core::{Calendar, Impact, Secret, TaskReport, one_line};
use maint_release::{
    ChangeOp, ChangeRequest, ChangeState, ChangeStore, Config, Error, NewChange, PgChangeStore, Risk,
    changes_to_icalendar, check_change_id, parse_version,
};

#[derive(Debug, Parser)]
#[command(name = "maint-change", version, about = "Change requests (CAB) for AindusDB updates")]
struct Cli {
    /// The PostgreSQL database of the change requests (tables in schema `maint_change`,
    /// created on first use).
    #[arg(long, env = "MAINT_CHANGE_DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// TOML file: [changes] database_url and approvals, [update] calendar.
    #[arg(long, env = "MAINT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The maintenance plan (YAML or TOML) that holds the windows.
    #[arg(long, env = "MAINT_CALENDAR", global = true)]
    calendar: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open a change request: it is pending until enough approvers approve it.
    Create {
        /// One line.
        #[arg(long)]
        title: String,
        /// Who asks for it (can never approve it).
        #[arg(long)]
        requester: String,
        /// Who may approve it (repeat the flag).
        #[arg(long = "approver")]
        approvers: Vec<String>,
        /// low, medium, high or critical.
        #[arg(long, default_value = "low", value_parser = parse_risk)]
        risk: Risk,
        /// none, read_only or downtime.
        #[arg(long, default_value = "none", value_parser = parse_impact)]
        impact: Impact,
        /// The maintenance window it must run in (`monthly`).
        #[arg(long)]
        window: Option<String>,
        /// Expected duration in minutes.
        #[arg(long, default_value_t = 60)]
        duration_minutes: u32,
        /// What and why.
        #[arg(long, default_value = "")]
        description: String,
        /// How to undo it (required from risk high).
        #[arg(long, default_value = "")]
        rollback_plan: String,
        /// How it was tested.
        #[arg(long, default_value = "")]
        test_plan: String,
        /// The version it deploys.
        #[arg(long)]
        target_version: Option<String>,
    },
    /// Approve a pending change.
    Approve {
        /// Change id (`CR-3`).
        id: String,
        /// Who (a listed approver, not the requester).
        #[arg(long)]
        by: String,
        /// Optional comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a pending change.
    Reject {
        /// Change id.
        id: String,
        /// Who.
        #[arg(long)]
        by: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Schedule an approved change (inside its window).
    Schedule {
        /// Change id.
        id: String,
        /// Start, RFC 3339 (`2026-12-06T02:00:00Z`).
        #[arg(long, value_parser = parse_time)]
        start: DateTime<Utc>,
        /// Who.
        #[arg(long)]
        by: String,
    },
    /// Start carrying out a scheduled change (refused outside its slot and window).
    Start {
        /// Change id.
        id: String,
        /// Who.
        #[arg(long)]
        by: String,
    },
    /// Record that a change in progress succeeded.
    Complete {
        /// Change id.
        id: String,
        /// Who.
        #[arg(long)]
        by: String,
    },
    /// Record that a change in progress failed.
    Fail {
        /// Change id.
        id: String,
        /// Who.
        #[arg(long)]
        by: String,
        /// What went wrong.
        #[arg(long)]
        reason: String,
    },
    /// Record that a failed change was undone.
    RolledBack {
        /// Change id.
        id: String,
        /// Who.
        #[arg(long)]
        by: String,
        /// How (optional).
        #[arg(long)]
        detail: Option<String>,
    },
    /// Withdraw a change that has not started (its requester or an approver).
    Cancel {
        /// Change id.
        id: String,
        /// Who.
        #[arg(long)]
        by: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Show one change.
    Show {
        /// Change id.
        id: String,
    },
    /// List changes.
    List {
        /// Only in this state.
        #[arg(long, value_parser = parse_state)]
        state: Option<ChangeState>,
    },
    /// Print the changes that have a slot as iCalendar.
    Ical,
}

fn parse_risk(s: &str) -> Result<Risk, String> {
    s.parse()
}

fn parse_impact(s: &str) -> Result<Impact, String> {
    s.parse()
}

fn parse_state(s: &str) -> Result<ChangeState, String> {
    s.parse()
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time ({e}), e.g. 2026-12-06T02:00:00Z"))
}

fn main() -> ExitCode {
    let cli = match maint_core::cli::parse_args::<Cli>("maint-change") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let json = cli.json;
    let task = format!("change-{}", command_name(&cli.command));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maint-change: cannot start the runtime: {e}");
            return maint_core::ExitCode::Failed.into();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Output::Report(report)) => {
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                for item in &report.items {
                    println!("{}", human(item));
                    if report.task == "change-show" {
                        for event in item["history"].as_array().into_iter().flatten() {
                            println!("  {}", human_event(event));
                        }
                    }
                }
            }
            report.status.exit_code().into()
        }
        Ok(Output::Text(text)) => {
            if json {
                let mut report = TaskReport::begin(task, false);
                report.item(serde_json::json!({ "icalendar": text }));
                println!("{}", serde_json::to_string(&report.finish()).unwrap_or_default());
            } else {
                print!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let msg = one_line(&e);
            if json && !e.is_bad_input() {
                let mut report = TaskReport::begin(task, false);
                report.fail(msg.clone());
                println!("{}", serde_json::to_string(&report.finish()).unwrap_or_default());
            }
            eprintln!("maint-change: {msg}");
            e.exit_code().into()
        }
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Create { .. } => "create",
        Command::Approve { .. } => "approve",
        Command::Reject { .. } => "reject",
        Command::Schedule { .. } => "schedule",
        Command::Start { .. } => "start",
        Command::Complete { .. } => "complete",
        Command::Fail { .. } => "fail",
        Command::RolledBack { .. } => "rolled-back",
        Command::Cancel { .. } => "cancel",
        Command::Show { .. } => "show",
        Command::List { .. } => "list",
        Command::Ical => "ical",
    }
}

/// One line per change for a terminal.
fn human(item: &serde_json::Value) -> String {
    let s = |k: &str| item[k].as_str().unwrap_or("").to_owned();
    let approvals = item["approvals"].as_array().map_or(0, Vec::len);
    let start = item["scheduled_start"].as_str().map(|t| format!(" at {t}")).unwrap_or_default();
    format!(
        "{}  {:<11}  risk {:<8}  impact {:<9}  approvals {}/{}{}  {}",
        s("id"),
        s("state"),
        s("risk"),
        s("impact"),
        approvals,
        item["required_approvals"],
        start,
        s("title")
    )
}

/// One event of a change's history for a terminal: when, who, what, from -> to, detail.
fn human_event(e: &serde_json::Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
    let from = e["from"].as_str().map(|f| format!("{f} -> ")).unwrap_or_default();
    let detail = e["detail"].as_str().map(|d| format!("  ({d})")).unwrap_or_default();
    format!("{}  {:<10} {:<9} {from}{}{detail}", s("at"), s("by"), s("action"), s("to"))
}

enum Output {
    Report(TaskReport),
    Text(String),
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, Error> {
    maint_release::load_toml(path.map(PathBuf::as_path))
}

/// The store, from `--database-url` (or its variable), else `[changes] database_url`.
fn store(flag: Option<String>, cfg: &Config) -> Result<PgChangeStore, Error> {
    let timeouts = cfg.database.timeouts()?;
    match (flag, &cfg.changes.database_url) {
        (Some(url), _) => PgChangeStore::from_url(Secret::new(url).expose(), "--database-url", &timeouts),
        (None, Some(url)) => PgChangeStore::from_url(url.expose(), "changes.database_url", &timeouts),
        (None, None) => Err(Error::invalid(
            "--database-url",
            "required (flag, MAINT_CHANGE_DATABASE_URL or [changes] database_url in --config)",
        )),
    }
}

async fn update(store: &PgChangeStore, id: &str, op: &mut ChangeOp<'_>) -> Result<ChangeRequest, Error> {
    check_change_id("id", id)?;
    store.update(id, op).await.map_err(as_flag)
}

/// Field errors of the library named as the flags that carry them.
fn as_flag(e: Error) -> Error {
    match e {
        Error::Invalid { field, message } => {
            let flag = match field.as_str() {
                "estimated_minutes" => "duration-minutes".to_owned(),
                "approvers" => "approver".to_owned(),
                other => other.replace('_', "-"),
            };
            Error::invalid(format!("--{flag}"), message)
        }
        other => other,
    }
}

async fn run(cli: Cli) -> Result<Output, Error> {
    let cfg = load_config(cli.config.as_ref())?;
    let store = store(cli.database_url, &cfg)?;
    let calendar_path = cli.calendar.or(cfg.update.calendar.clone());
    let calendar = || -> Result<Option<Calendar>, Error> {
        calendar_path
            .as_ref()
            .map(|p| Calendar::from_path(p).map_err(|e| Error::invalid("--calendar", one_line(&e))))
            .transpose()
    };
    let now = Utc::now();
    let task = format!("change-{}", command_name(&cli.command));
    let mut report = TaskReport::begin(task, false);
    let changed = match cli.command {
        Command::Create {
            title,
            requester,
            approvers,
            risk,
            impact,
            window,
            duration_minutes,
            description,
            rollback_plan,
            test_plan,
            target_version,
        } => {
            if let Some(v) = &target_version {
                parse_version("--target-version", v)?;
            }
            let new = NewChange {
                title,
                description,
                risk,
                impact: Some(impact),
                rollback_plan,
                test_plan,
                requester,
                approvers,
                window,
                estimated_minutes: duration_minutes,
                target_version,
            };
            if let Some(cal) = calendar()?
                && let Some(w) = new.window.as_deref()
                && cal.window(w).is_none()
            {
                return Err(Error::invalid("--window", format!("the calendar has no window named {w}")));
            }
            store.create(new, &cfg.changes.approvals, now).await.map_err(as_flag)?
        }
        Command::Approve { id, by, comment } => {
            update(&store, &id, &mut |c| c.approve(&by, comment.as_deref(), now)).await?
        }
        Command::Reject { id, by, reason } => update(&store, &id, &mut |c| c.reject(&by, &reason, now)).await?,
        Command::Schedule { id, start, by } => {
            let cal = calendar()?;
            update(&store, &id, &mut |c| c.schedule(&by, start, cal.as_ref(), now)).await?
        }
        Command::Start { id, by } => {
            let cal = calendar()?;
            update(&store, &id, &mut |c| c.start(&by, cal.as_ref(), now)).await?
        }
        Command::Complete { id, by } => update(&store, &id, &mut |c| c.complete(&by, now)).await?,
        Command::Fail { id, by, reason } => update(&store, &id, &mut |c| c.fail(&by, &reason, now)).await?,
        Command::RolledBack { id, by, detail } => {
            update(&store, &id, &mut |c| c.roll_back(&by, detail.as_deref(), now)).await?
        }
        Command::Cancel { id, by, reason } => update(&store, &id, &mut |c| c.cancel(&by, &reason, now)).await?,
        Command::Show { id } => {
            check_change_id("id", &id)?;
            store.load(&id).await?
        }
        Command::List { state } => {
            let all = store.list().await?;
            let shown: Vec<&ChangeRequest> = all.iter().filter(|c| state.is_none_or(|s| c.state == s)).collect();
            report.metric("changes", shown.len() as f64);
            for c in shown {
                report.item(c);
            }
            return Ok(Output::Report(report.finish()));
        }
        Command::Ical => return Ok(Output::Text(changes_to_icalendar(&store.list().await?))),
    };
    report.item(&changed);
    Ok(Output::Report(report.finish()))
}
