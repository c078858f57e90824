//! `maint-change`: change requests (CAB) for AindusDB updates, stored as JSON files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use maint_core::chrono::{DateTime, Utc};
use maint_core::{Calendar, Impact, TaskReport, one_line};
use maint_release::{
    ChangeRequest, ChangeState, ChangeStore, Config, Error, JsonDirStore, NewChange, Risk, changes_to_icalendar,
    check_change_id, parse_version,
};

#[derive(Debug, Parser)]
#[command(name = "maint-change", version, about = "Change requests (CAB) for AindusDB updates")]
struct Cli {
    /// The directory of change request files (`CR-<n>.json`).
    #[arg(long, env = "MAINT_CHANGE_DIR", global = true)]
    dir: Option<PathBuf>,
    /// TOML file: [changes] dir and approvals, [update] calendar.
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
    /// Open a change request (a draft).
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
    /// Submit a draft for approval (by its requester).
    Submit {
        /// Change id (`CR-3`).
        id: String,
        /// Who.
        #[arg(long)]
        by: String,
    },
    /// Approve a submitted change.
    Approve {
        /// Change id.
        id: String,
        /// Who (a listed approver, not the requester).
        #[arg(long)]
        by: String,
        /// Optional comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a submitted change.
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
    /// Record the outcome of a scheduled change.
    Complete {
        /// Change id.
        id: String,
        /// Who.
        #[arg(long)]
        by: String,
        /// It failed.
        #[arg(long)]
        failed: bool,
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
    /// Print the scheduled changes as iCalendar.
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
    match run(cli) {
        Ok(Output::Report(report)) => {
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                for item in &report.items {
                    println!("{}", human(item));
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
        Command::Submit { .. } => "submit",
        Command::Approve { .. } => "approve",
        Command::Reject { .. } => "reject",
        Command::Schedule { .. } => "schedule",
        Command::Complete { .. } => "complete",
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
        "{}  {:<9}  risk {:<8}  impact {:<9}  approvals {}/{}{}  {}",
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

enum Output {
    Report(TaskReport),
    Text(String),
}

fn load_config(path: Option<&PathBuf>) -> Result<Config, Error> {
    let Some(path) = path else { return Ok(Config::default()) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid("--config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::invalid(path.display().to_string(), e.message().to_owned()))
}

fn run(cli: Cli) -> Result<Output, Error> {
    let cfg = load_config(cli.config.as_ref())?;
    let dir = cli
        .dir
        .or(cfg.changes.dir.clone())
        .ok_or_else(|| Error::invalid("--dir", "required (flag, MAINT_CHANGE_DIR or [changes] dir in --config)"))?;
    let store = JsonDirStore::open(dir)?;
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
    let update =
        |id: &str, f: &mut dyn FnMut(&mut ChangeRequest) -> Result<(), Error>| -> Result<ChangeRequest, Error> {
            check_change_id("id", id)?;
            store.update(id, f)
        };
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
            let flag = |e: Error| match e {
                Error::Invalid { field, message } => Error::invalid(
                    format!("--{}", field.replace('_', "-").replace("estimated-minutes", "duration-minutes")),
                    message,
                ),
                other => other,
            };
            store.create(&mut |id| ChangeRequest::new(id, new.clone(), now).map_err(flag))?
        }
        Command::Submit { id, by } => update(&id, &mut |c| c.submit(&by, &cfg.changes.approvals, now))?,
        Command::Approve { id, by, comment } => update(&id, &mut |c| c.approve(&by, comment.clone(), now))?,
        Command::Reject { id, by, reason } => update(&id, &mut |c| {
            c.reject(&by, &reason, now).map_err(|e| match e {
                Error::Invalid { message, .. } => Error::invalid("--reason", message),
                other => other,
            })
        })?,
        Command::Schedule { id, start, by } => {
            let cal = calendar()?;
            update(&id, &mut |c| c.schedule(&by, start, cal.as_ref(), now))?
        }
        Command::Complete { id, by, failed } => update(&id, &mut |c| c.complete(&by, !failed, now))?,
        Command::Show { id } => {
            check_change_id("id", &id)?;
            store.load(&id)?
        }
        Command::List { state } => {
            let all = store.list()?;
            let shown: Vec<&ChangeRequest> = all.iter().filter(|c| state.is_none_or(|s| c.state == s)).collect();
            report.metric("changes", shown.len() as f64);
            for c in shown {
                report.item(c);
            }
            return Ok(Output::Report(report.finish()));
        }
        Command::Ical => return Ok(Output::Text(changes_to_icalendar(&store.list()?))),
    };
    report.item(&changed);
    Ok(Output::Report(report.finish()))
}
