//! `maint`: the maintenance calendar of AindusDB Core.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use maint_core::chrono::{DateTime, SecondsFormat, Utc};
use maint_core::{Calendar, Error, one_line};

#[derive(Debug, Parser)]
#[command(name = "maint", version, about = "Maintenance of AindusDB Core (PostgreSQL, Redis, S3)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant ({e}), e.g. 2026-11-24T00:00:00Z"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("maint: {}", one_line(&e));
            e.exit_code().into()
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
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
