//! `maint`: the maintenance calendar of AindusDB Core, run for real.

mod checklist;
mod completions;
mod config;
mod daemon;
mod lock;
mod metrics;
mod registry;
mod runner;
mod security;
mod updates;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser, Subcommand};
use maint_core::chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use maint_core::tokio_util::sync::CancellationToken;
use maint_core::{Calendar, Error, RunReport, Status, TaskReport, one_line};
use maint_notify::{Notification, Severity};

use crate::config::MaintConfig;
use crate::registry::Slot;
use crate::runner::{RunOptions, run_window};

#[derive(Debug, Parser)]
#[command(name = "maint", version, about = "Maintenance of AindusDB Core (PostgreSQL, Redis, S3)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a window's tasks now (downtime tasks only inside their window, unless --force).
    Run {
        /// daily, weekly or monthly (a window of the plan).
        window: String,
        /// maint.toml (see deploy/maint.toml).
        #[arg(long, env = "MAINT_CONFIG")]
        config: Option<PathBuf>,
        /// Run downtime tasks outside their window.
        #[arg(long, conflicts_with = "only_in_window")]
        force: bool,
        /// Do nothing unless now is inside the window (for schedulers that cannot express
        /// it, like a CronJob firing every Sunday for the first-Sunday window).
        #[arg(long)]
        only_in_window: bool,
        /// Plan and report, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the RunReport as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The pre- or post-maintenance checklist: automated items checked, manual ones listed
    /// (never passed). Exit 1 when an automated item fails.
    Checklist {
        /// pre or post.
        which: String,
        /// maint.toml.
        #[arg(long, env = "MAINT_CONFIG")]
        config: Option<PathBuf>,
        /// The newest verified backup must be younger than this.
        #[arg(long, default_value_t = 26)]
        max_backup_age_hours: i64,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run each window at its start until SIGTERM (which lets the current task finish its
    /// step and skips the rest).
    Daemon {
        /// maint.toml.
        #[arg(long, env = "MAINT_CONFIG")]
        config: Option<PathBuf>,
        /// What to do with a window that closed before it ran (the daemon was down); a start
        /// that passed while another window ran still runs, late, inside its window.
        #[arg(long, value_enum, default_value = "run-once")]
        missed: daemon::MissedPolicy,
        /// How late a missed window may still run, minutes.
        #[arg(long, default_value_t = 60)]
        grace_minutes: i64,
    },
    /// Check maint.toml and print the effective configuration (secrets masked).
    ConfigCheck {
        /// maint.toml.
        #[arg(long, env = "MAINT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run one task now.
    Task {
        /// The task id or plan name (database-optimization, "Backup Verification", ...).
        name: String,
        /// maint.toml.
        #[arg(long, env = "MAINT_CONFIG")]
        config: Option<PathBuf>,
        /// Plan and report, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the TaskReport as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show the maintenance windows: next occurrences (UTC), tasks and impacts.
    Calendar {
        /// The maintenance plan (YAML or TOML).
        #[arg(long, env = "MAINT_CALENDAR", default_value = "deploy/maintenance.yaml")]
        config: PathBuf,
        /// How many upcoming occurrences to list per window.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=1000))]
        count: u16,
        /// Count from this instant (RFC 3339) instead of now.
        #[arg(long, value_parser = parse_instant)]
        from: Option<DateTime<Utc>>,
        /// Print one JSON object.
        #[arg(long, conflicts_with = "ical")]
        json: bool,
        /// Print the windows as an iCalendar document.
        #[arg(long)]
        ical: bool,
    },
    /// Print the shell completion script (bash, zsh, fish).
    ///
    /// `maint completions bash > /usr/share/bash-completion/completions/maint`; zsh: a file
    /// `_maint` in $fpath; fish: `~/.config/fish/completions/maint.fish`.
    Completions {
        /// bash, zsh or fish (elvish and powershell too).
        shell: clap_complete::Shell,
    },
    /// Write the man pages (maint.1, maint-SUBCOMMAND.1) into a directory.
    ///
    /// `maint man /usr/local/share/man/man1`, then `man maint-run`.
    Man {
        /// Where to write them (created if missing).
        dir: PathBuf,
    },
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant ({e}), e.g. 2026-11-24T00:00:00Z"))
}

fn main() -> ExitCode {
    let cli = match maint_core::cli::parse_args::<Cli>("maint") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let quiet = matches!(
        cli.command,
        Command::Run { json: true, .. } | Command::Task { json: true, .. } | Command::Checklist { json: true, .. }
    );
    if !quiet {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("maint: {}", one_line(&e));
            e.exit_code().into()
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(Error::io("start", "the tokio runtime"))
}

fn cancel_on_signals() -> CancellationToken {
    let token = maint_core::cli::cancel_on_signals();
    let t = token.clone();
    tokio::spawn(async move {
        t.cancelled().await;
        tracing::warn!("stopping: the current task finishes its step, the rest is skipped");
    });
    token
}

async fn run_task(name: &str, cfg: &MaintConfig, dry_run: bool) -> Result<TaskReport, Error> {
    let id =
        maint_core::builtin_task_id(name).ok_or_else(|| Error::invalid("task", format!("unknown task {name:?}")))?;
    let report = match registry::build(id, cfg)? {
        Slot::Ready(task) => {
            let ctx = maint_core::TaskContext { dry_run, cancel: cancel_on_signals() };
            let mut r = task.run(&ctx).await;
            r.task = id.to_owned();
            r
        }
        Slot::Unavailable(reason) => {
            let mut r = TaskReport::begin(id, dry_run);
            r.skip(reason);
            r.finish()
        }
    };
    Ok(report)
}

/// Sends a notification to every target; a failed delivery is logged, never fatal.
async fn send_notification(dispatcher: &maint_notify::Dispatcher, n: &Notification) {
    let deliveries = dispatcher.send(n).await;
    if let Some(bad) = deliveries.iter().find(|d| d.outcome == maint_notify::Outcome::Failed) {
        tracing::warn!("notification {:?} to {} failed: {}", n.title, bad.target, bad.error.as_deref().unwrap_or(""));
    }
}

async fn run_window_command(
    window: &str,
    cfg: &MaintConfig,
    force: bool,
    only_in_window: bool,
    dry_run: bool,
    cancel: &CancellationToken,
) -> Result<RunReport, Error> {
    let cal = Calendar::from_path(&cfg.calendar)?;
    let w = cal.window(window).ok_or_else(|| {
        let names: Vec<&str> = cal.windows().iter().map(|w| w.name.as_str()).collect();
        Error::invalid("window", format!("{window:?} is not in the plan (windows: {})", names.join(", ")))
    })?;
    let now = Utc::now();
    if only_in_window && !w.contains(now) {
        let mut r = TaskReport::begin("window", dry_run);
        r.skip(format!("not inside the {window} window now; next {}", w.next_start(now).format("%Y-%m-%d %H:%M UTC")));
        return Ok(RunReport::new(window, dry_run, vec![r.finish()]));
    }
    let dispatcher = cfg.notify.build().map_err(|e| Error::invalid("notify", one_line(&e)))?;
    let slots =
        w.tasks.iter().map(|t| Ok((t.clone(), registry::build(t.id, cfg)?))).collect::<Result<Vec<_>, Error>>()?;
    let _lock = match lock::acquire(cfg.database.url.as_ref(), &cfg.lock_file).await? {
        Ok(lock) => lock,
        Err(holder) => {
            let mut r = TaskReport::begin(daemon::RUN_LOCK_TASK, dry_run);
            r.skip(holder);
            return Ok(RunReport::new(window, dry_run, vec![r.finish()]));
        }
    };
    let opts = RunOptions { now, force, dry_run, task_timeout: Duration::from_secs(cfg.task_timeout_secs) };
    let mut report = run_window(w, slots, &opts, cancel).await;
    if !dry_run {
        let severity = match report.status {
            Status::Failed => Severity::Error,
            Status::Warning => Severity::Warning,
            _ => Severity::Info,
        };
        let mut n =
            Notification::new(format!("maint {window}: {}", report.status.as_str()), report.render_table(), severity)
                .with_event_key(format!("maint-run:{window}"));
        for t in &report.tasks {
            n = n.with_field(t.task.clone(), t.status.as_str());
        }
        if report.status != Status::Failed && report.status != Status::Warning {
            n = n.resolve();
        }
        send_notification(&dispatcher, &n).await;
        if let Some(path) = &cfg.metrics_textfile
            && let Err(e) = metrics::write(path, &report)
        {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }
    report.duration_ms = (Utc::now() - report.started_at).num_milliseconds().max(0) as u64;
    Ok(report)
}

/// The daemon's world: the real clock, `maint run`, the state file and the notifier.
struct DaemonHost<'a> {
    cfg: &'a MaintConfig,
    state_path: PathBuf,
    dispatcher: maint_notify::Dispatcher,
    /// The daemon's own signal token: one listener for its whole life, not one per run.
    stop: CancellationToken,
}

impl daemon::Host for DaemonHost<'_> {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    fn calendar(&self) -> Result<Calendar, Error> {
        Calendar::from_path(&self.cfg.calendar)
    }

    async fn run(&self, window: &str) -> Result<RunReport, Error> {
        run_window_command(window, self.cfg, false, false, false, &self.stop).await
    }

    fn save(&self, state: &daemon::DaemonState) -> Result<(), Error> {
        state.save(&self.state_path)
    }

    async fn missed(&self, occurrence: &daemon::Occurrence, detail: &str) {
        let n = Notification::new(
            format!("maint {}: missed", occurrence.window),
            format!("missed window {detail}: not run"),
            Severity::Warning,
        )
        .with_event_key(format!("maint-run:{}", occurrence.window));
        send_notification(&self.dispatcher, &n).await;
    }
}

/// Runs the daemon loop until SIGTERM or SIGINT; errors inside the loop are logged and
/// retried, only a bad configuration at start ends it with an error.
async fn run_daemon(cfg: &MaintConfig, missed: daemon::MissedPolicy, grace: TimeDelta) -> Result<(), Error> {
    let stop = cancel_on_signals();
    lock::private_dir(&cfg.lock_file)?;
    let dispatcher = cfg.notify.build().map_err(|e| Error::invalid("notify", one_line(&e)))?;
    let state_path = daemon::DaemonState::path(&cfg.lock_file);
    let mut state = daemon::DaemonState::load(&state_path);
    let host = DaemonHost { cfg, state_path, dispatcher, stop: stop.clone() };
    daemon::run_loop(&host, &mut state, missed, grace, &stop).await;
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Run { window, config, force, only_in_window, dry_run, json } => {
            let cfg = MaintConfig::load(config.as_deref())?;
            let report = runtime()?.block_on(async {
                run_window_command(&window, &cfg, force, only_in_window, dry_run, &cancel_on_signals()).await
            })?;
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print!("{}", report.render_table());
            }
            Ok(report.status.exit_code().into())
        }
        Command::Checklist { which, config, max_backup_age_hours, json } => {
            let cfg = MaintConfig::load(config.as_deref())?;
            let report = runtime()?.block_on(checklist::run(&which, &cfg, max_backup_age_hours))?;
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                for i in &report.items {
                    println!(
                        "[{:^14}] {}: {}",
                        i["state"].as_str().unwrap_or(""),
                        i["item"].as_str().unwrap_or(""),
                        i["detail"].as_str().unwrap_or("")
                    );
                }
                println!("{}: {}", report.task, report.status.as_str());
            }
            Ok(report.status.exit_code().into())
        }
        Command::Daemon { config, missed, grace_minutes } => {
            let grace = TimeDelta::try_minutes(grace_minutes.max(0))
                .ok_or_else(|| Error::invalid("--grace-minutes", format!("{grace_minutes} is too large")))?;
            let cfg = MaintConfig::load(config.as_deref())?;
            // A plan that does not load is refused at start (exit 2); later, a turn retries.
            Calendar::from_path(&cfg.calendar)?;
            runtime()?.block_on(run_daemon(&cfg, missed, grace))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let script = completions::completions(shell, Cli::command());
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .map_err(Error::io("write", "standard output"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            completions::man_pages(Cli::command(), &dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ConfigCheck { config } => {
            let cfg = MaintConfig::load(config.as_deref())?;
            let cal = Calendar::from_path(&cfg.calendar)?;
            // Every task is built once: a configuration error exits 2 before anything is
            // printed. The output is a summary, not a dump: URLs, commands and paths can
            // carry credentials.
            let mut lines = Vec::new();
            for w in cal.windows() {
                let mut tasks = Vec::new();
                for t in &w.tasks {
                    tasks.push(match registry::build(t.id, &cfg)? {
                        Slot::Ready(_) => format!("{} ready", t.id),
                        Slot::Unavailable(why) => format!("{} skipped ({why})", t.id),
                    });
                }
                lines.push(format!("{}: {}", w.name, tasks.join("; ")));
            }
            for line in lines {
                println!("{line}");
            }
            let set = |b: bool| if b { "set (***)" } else { "not set" };
            println!("database.url: {}", set(cfg.database.url.is_some()));
            println!("backup.store: {}", set(cfg.backup.store.is_some()));
            println!("notify.targets: {} target(s)", cfg.notify.targets.len());
            println!("config: ok ({} windows in {})", cal.windows().len(), cfg.calendar.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Task { name, config, dry_run, json } => {
            let cfg = MaintConfig::load(config.as_deref())?;
            let report = runtime()?.block_on(run_task(&name, &cfg, dry_run))?;
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                print!("{}", RunReport::new(report.task.clone(), dry_run, vec![report.clone()]).render_table());
            }
            Ok(report.status.exit_code().into())
        }
        Command::Calendar { config, count, from, json, ical } => {
            let cal = Calendar::from_path(&config)?;
            let from = from.unwrap_or_else(Utc::now);
            if ical {
                print!("{}", cal.to_icalendar(from));
            } else if json {
                println!("{}", calendar_json(&cal, from, count.into()));
            } else {
                print!("{}", calendar_text(&cal, from, count.into()));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn calendar_json(cal: &Calendar, from: DateTime<Utc>, count: usize) -> serde_json::Value {
    let windows: Vec<_> = cal
        .windows()
        .iter()
        .map(|w| {
            serde_json::json!({
                "window": w.name,
                "cron": w.cron_pattern(),
                "duration_minutes": w.duration.num_minutes(),
                "impact": w.impact(),
                "next": w.next_starts(from, count).into_iter().map(iso).collect::<Vec<_>>(),
                "tasks": w.tasks.iter().map(|t| serde_json::json!({
                    "id": t.id, "name": t.name, "impact": t.impact, "critical": t.critical,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "from": iso(from), "windows": windows, "warnings": cal.warnings() })
}

fn calendar_text(cal: &Calendar, from: DateTime<Utc>, count: usize) -> String {
    let mut out = String::new();
    for w in cal.windows() {
        let next: Vec<String> = w.next_starts(from, count).into_iter().map(iso).collect();
        out += &format!(
            "{} ({}, {} min, impact {}): next {}\n",
            w.name,
            w.cron_pattern(),
            w.duration.num_minutes(),
            w.impact(),
            next.join(", ")
        );
        for t in &w.tasks {
            let critical = if t.critical { ", critical" } else { "" };
            out += &format!("  - {} [{}] impact {}{critical}\n", t.name, t.id, t.impact);
        }
    }
    for warning in cal.warnings() {
        out += &format!("warning: {warning}\n");
    }
    out
}
