//! The maintenance calendar: windows, their tasks, and when they happen (UTC).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use croner::Cron;
use serde::Deserialize;

use crate::{Error, Impact};

/// The twelve built-in tasks: (id, name in the original plan).
pub const BUILTIN_TASKS: &[(&str, &str)] = &[
    ("log-rotation", "Log Rotation"),
    ("cache-cleanup", "Cache Cleanup"),
    ("health-checks", "Health Checks"),
    ("metrics-collection", "Metrics Collection"),
    ("database-optimization", "Database Optimization"),
    ("security-scan", "Security Scan"),
    ("backup-verification", "Backup Verification"),
    ("performance-analysis", "Performance Analysis"),
    ("system-updates", "System Updates"),
    ("index-rebuild", "Index Rebuild"),
    ("full-security-audit", "Full Security Audit"),
    ("capacity-planning", "Capacity Planning"),
];

/// Maps a task name from a plan ("Log Rotation" or "log-rotation") to its built-in id.
pub fn builtin_task_id(name: &str) -> Option<&'static str> {
    let slug: String = name
        .trim()
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    BUILTIN_TASKS.iter().find(|(id, _)| *id == slug).map(|(id, _)| *id)
}

/// How often a window recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day.
    Daily,
    /// Every week on this day.
    Weekly(Weekday),
    /// Every month on the `nth` (1–4) such weekday, or the last one when `nth` is 0.
    Monthly {
        /// 1 = first, ..., 4 = fourth, 0 = last.
        nth: u8,
        /// The weekday.
        weekday: Weekday,
    },
}

impl Schedule {
    fn shortest_gap(self) -> TimeDelta {
        match self {
            Schedule::Daily => TimeDelta::days(1),
            Schedule::Weekly(_) => TimeDelta::days(7),
            Schedule::Monthly { .. } => TimeDelta::days(28),
        }
    }

    fn rank(self) -> u8 {
        match self {
            Schedule::Daily => 0,
            Schedule::Weekly(_) => 1,
            Schedule::Monthly { .. } => 2,
        }
    }
}

/// A task as planned in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    /// Built-in task id (`log-rotation`).
    pub id: &'static str,
    /// The name as written in the plan.
    pub name: String,
    /// The old script it replaces, when the plan names one.
    pub script: Option<String>,
    /// What it does to the service.
    pub impact: Impact,
    /// A failed critical task stops the rest of its window.
    pub critical: bool,
}

/// One recurring maintenance window.
#[derive(Clone)]
pub struct Window {
    /// `daily`, `weekly`, `monthly` (the plan key without `_maintenance`).
    pub name: String,
    /// How often.
    pub schedule: Schedule,
    /// Start time of day, UTC.
    pub time: NaiveTime,
    /// How long it lasts.
    pub duration: TimeDelta,
    /// Tasks in run order.
    pub tasks: Vec<PlannedTask>,
    cron: Cron,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("name", &self.name)
            .field("cron", &self.cron_pattern())
            .field("duration", &self.duration)
            .field("tasks", &self.tasks)
            .finish()
    }
}

impl Window {
    /// The largest impact of its tasks.
    pub fn impact(&self) -> Impact {
        self.tasks.iter().map(|t| t.impact).max().unwrap_or(Impact::None)
    }

    /// The cron pattern of the window's start (`0 2 * * SUN#1` for the first Sunday).
    pub fn cron_pattern(&self) -> String {
        let (m, h) = (self.time.format("%M"), self.time.format("%H"));
        let (m, h) =
            (m.to_string().trim_start_matches('0').to_owned(), h.to_string().trim_start_matches('0').to_owned());
        let (m, h) = (if m.is_empty() { "0".into() } else { m }, if h.is_empty() { "0".into() } else { h });
        match self.schedule {
            Schedule::Daily => format!("{m} {h} * * *"),
            Schedule::Weekly(d) => format!("{m} {h} * * {}", weekday_abbr(d)),
            Schedule::Monthly { nth: 0, weekday } => format!("{m} {h} * * {}#L", weekday_abbr(weekday)),
            Schedule::Monthly { nth, weekday } => format!("{m} {h} * * {}#{nth}", weekday_abbr(weekday)),
        }
    }

    /// The first start strictly after `after`.
    pub fn next_start(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        self.cron.find_next_occurrence(&after, false).expect("a validated window always has a next occurrence")
    }

    /// The next `n` starts strictly after `after`.
    pub fn next_starts(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        for _ in 0..n {
            t = self.next_start(t);
            out.push(t);
        }
        out
    }

    /// The latest start at or before `at`.
    pub fn previous_start(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&at, true).ok()
    }

    /// The start of the occurrence that contains `at`, if `at` is inside the window.
    pub fn occurrence_containing(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.cron.find_previous_occurrence(&at, true).ok()?;
        (at < start + self.duration).then_some(start)
    }

    /// Whether `at` is inside an occurrence of this window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.occurrence_containing(at).is_some()
    }

    fn rrule(&self) -> String {
        match self.schedule {
            Schedule::Daily => "FREQ=DAILY".into(),
            Schedule::Weekly(d) => format!("FREQ=WEEKLY;BYDAY={}", ical_day(d)),
            Schedule::Monthly { nth: 0, weekday } => format!("FREQ=MONTHLY;BYDAY=-1{}", ical_day(weekday)),
            Schedule::Monthly { nth, weekday } => format!("FREQ=MONTHLY;BYDAY={nth}{}", ical_day(weekday)),
        }
    }
}

/// The maintenance plan: validated windows, ordered daily, weekly, monthly.
#[derive(Debug, Clone)]
pub struct Calendar {
    windows: Vec<Window>,
    warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    day: Option<String>,
    time: String,
    duration: String,
    tasks: Vec<RawTask>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: String,
    script: Option<String>,
    impact: String,
    #[serde(default)]
    critical: bool,
}

impl Calendar {
    /// Loads a plan from a `.yaml`/`.yml` or `.toml` file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        let what = path.display().to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Self::from_yaml_named(&text, &what),
            Some("toml") => Self::from_toml_named(&text, &what),
            _ => Err(Error::invalid(what, "unknown plan format (expected .yaml, .yml or .toml)")),
        }
    }

    /// Parses a plan in the original YAML shape.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        Self::from_yaml_named(text, "plan")
    }

    /// Parses a plan in TOML (same shape as the YAML: one table per window).
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        Self::from_toml_named(text, "plan")
    }

    fn from_yaml_named(text: &str, what: &str) -> Result<Self, Error> {
        let raw: BTreeMap<String, RawWindow> =
            serde_norway::from_str(text).map_err(|e| Error::Parse { what: what.to_owned(), source: Box::new(e) })?;
        Self::from_raw(raw)
    }

    fn from_toml_named(text: &str, what: &str) -> Result<Self, Error> {
        Self::from_raw(crate::parse_toml(text, Path::new(what))?)
    }

    fn from_raw(raw: BTreeMap<String, RawWindow>) -> Result<Self, Error> {
        if raw.is_empty() {
            return Err(Error::invalid("plan", "no maintenance windows"));
        }
        let mut windows = raw.into_iter().map(|(key, w)| build_window(&key, w)).collect::<Result<Vec<_>, _>>()?;
        windows.sort_by(|a, b| (a.schedule.rank(), &a.name).cmp(&(b.schedule.rank(), &b.name)));
        let warnings = check_overlaps(&windows)?;
        Ok(Calendar { windows, warnings })
    }

    /// The windows, daily first.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// A window by name (`daily`).
    pub fn window(&self, name: &str) -> Option<&Window> {
        self.windows.iter().find(|w| w.name == name)
    }

    /// Overlaps that are allowed but worth knowing (a window running inside another's downtime).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The windows that contain `at`.
    pub fn active_at(&self, at: DateTime<Utc>) -> Vec<&Window> {
        self.windows.iter().filter(|w| w.contains(at)).collect()
    }

    /// The windows as an iCalendar (RFC 5545) document: one recurring event per window,
    /// starting at its first occurrence after `from`.
    pub fn to_icalendar(&self, from: DateTime<Utc>) -> String {
        use icalendar::{Component, EventLike};
        let mut cal = icalendar::Calendar::new();
        cal.name("AindusDB maintenance");
        for w in &self.windows {
            let start = w.next_start(from);
            let mut description = String::new();
            for t in &w.tasks {
                let _ = writeln!(description, "{} ({})", t.name, t.impact);
            }
            let event = icalendar::Event::new()
                .uid(&format!("{}-maintenance@aindusdb-maint", w.name))
                .summary(&format!("AindusDB {} maintenance (impact: {})", w.name, w.impact()))
                .description(description.trim_end())
                .starts(start)
                .ends(start + w.duration)
                .add_property("RRULE", w.rrule())
                .done();
            cal.push(event);
        }
        cal.done().to_string()
    }
}

fn build_window(key: &str, raw: RawWindow) -> Result<Window, Error> {
    let name = key.strip_suffix("_maintenance").unwrap_or(key).to_owned();
    let field = |f: &str| format!("{key}.{f}");
    let schedule = match raw.day.as_deref() {
        None => Schedule::Daily,
        Some(day) => parse_day(day).map_err(|m| Error::invalid(field("day"), m))?,
    };
    let time = parse_time(&raw.time).map_err(|m| Error::invalid(field("time"), m))?;
    let duration = parse_duration(&raw.duration).map_err(|m| Error::invalid(field("duration"), m))?;
    if duration >= schedule.shortest_gap() {
        return Err(Error::invalid(
            field("duration"),
            format!("{:?} is not shorter than the time between two occurrences", raw.duration),
        ));
    }
    if raw.tasks.is_empty() {
        return Err(Error::invalid(field("tasks"), "no tasks"));
    }
    let mut tasks: Vec<PlannedTask> = Vec::new();
    for (i, t) in raw.tasks.into_iter().enumerate() {
        let tfield = |f: &str| format!("{key}.tasks[{i}].{f}");
        let id = builtin_task_id(&t.name).ok_or_else(|| {
            let known: Vec<&str> = BUILTIN_TASKS.iter().map(|(_, n)| *n).collect();
            Error::invalid(tfield("name"), format!("unknown task {:?} (known: {})", t.name, known.join(", ")))
        })?;
        if tasks.iter().any(|p| p.id == id) {
            return Err(Error::invalid(tfield("name"), format!("task {:?} is listed twice", t.name)));
        }
        let impact = Impact::from_str(&t.impact).map_err(|m| Error::invalid(tfield("impact"), m))?;
        tasks.push(PlannedTask { id, name: t.name, script: t.script, impact, critical: t.critical });
    }
    let mut window =
        Window { name, schedule, time, duration, tasks, cron: Cron::from_str("0 0 * * *").expect("static pattern") };
    window.cron = Cron::from_str(&window.cron_pattern())
        .map_err(|e| Error::invalid(field("day"), format!("cannot schedule: {e}")))?;
    Ok(window)
}

fn parse_day(day: &str) -> Result<Schedule, String> {
    let lower = day.trim().to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let weekday = |w: &str| {
        Weekday::from_str(w).map_err(|_| format!("unknown day {day:?} (expected e.g. \"Sunday\" or \"First Sunday\")"))
    };
    match words.as_slice() {
        ["daily"] | ["every", "day"] => Ok(Schedule::Daily),
        [d] => Ok(Schedule::Weekly(weekday(d)?)),
        [nth, d] => {
            let nth = match *nth {
                "first" | "1st" => 1,
                "second" | "2nd" => 2,
                "third" | "3rd" => 3,
                "fourth" | "4th" => 4,
                "last" => 0,
                _ => {
                    return Err(format!(
                        "unknown day {day:?} (expected First, Second, Third, Fourth or Last before the weekday)"
                    ));
                }
            };
            Ok(Schedule::Monthly { nth, weekday: weekday(d)? })
        }
        _ => Err(format!("unknown day {day:?} (expected e.g. \"Sunday\" or \"First Sunday\")")),
    }
}

fn parse_time(s: &str) -> Result<NaiveTime, String> {
    let t = s.trim();
    let clock = t.strip_suffix("UTC").or_else(|| t.strip_suffix('Z')).map(str::trim).unwrap_or(t);
    if clock.contains(char::is_alphabetic) || clock.contains('+') {
        return Err(format!("{s:?}: only UTC times are supported (\"HH:MM UTC\")"));
    }
    NaiveTime::parse_from_str(clock, "%H:%M")
        .map_err(|_| format!("{s:?} is not a time of day (expected \"HH:MM UTC\", 00:00 to 23:59)"))
}

/// A window's duration, in the grammar of every duration ([`crate::parse_duration`]:
/// `15 minutes`, `1 hour`, `4h`), never zero.
fn parse_duration(s: &str) -> Result<TimeDelta, String> {
    let d = crate::parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} is empty"));
    }
    TimeDelta::from_std(d).map_err(|_| format!("{s:?} is too large"))
}

/// Reference period for overlap checks: two years cover every weekday/month-position pairing.
fn overlap_horizon() -> (DateTime<Utc>, DateTime<Utc>) {
    let from = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().expect("valid date");
    (from, from + TimeDelta::days(731))
}

fn check_overlaps(windows: &[Window]) -> Result<Vec<String>, Error> {
    let mut warnings = Vec::new();
    for (i, a) in windows.iter().enumerate() {
        for b in &windows[i + 1..] {
            let (ad, bd) = (a.impact() == Impact::Downtime, b.impact() == Impact::Downtime);
            if !ad && !bd {
                continue;
            }
            if let Some(at) = first_overlap(a, b) {
                let msg = format!(
                    "windows {:?} and {:?} overlap (first on {})",
                    a.name,
                    b.name,
                    at.format("%Y-%m-%d %H:%M UTC")
                );
                if ad && bd {
                    return Err(Error::invalid(
                        format!("{}_maintenance", b.name),
                        format!("{msg} and both need downtime"),
                    ));
                }
                warnings.push(format!("{msg}; tasks of the first run inside the second's downtime"));
            }
        }
    }
    Ok(warnings)
}

fn first_overlap(a: &Window, b: &Window) -> Option<DateTime<Utc>> {
    // Iterate the rarer window; for each occurrence, find the latest start of the other
    // before its end and see whether that occurrence is still running.
    let (rare, other) = if a.schedule.rank() >= b.schedule.rank() { (a, b) } else { (b, a) };
    let (from, to) = overlap_horizon();
    let mut t = from;
    while t < to {
        let start = rare.next_start(t);
        let end = start + rare.duration;
        if let Ok(o) = other.cron.find_previous_occurrence(&end, false)
            && o + other.duration > start
        {
            return Some(start.max(o));
        }
        t = start;
    }
    None
}

fn weekday_abbr(d: Weekday) -> &'static str {
    ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"][d.num_days_from_monday() as usize]
}

fn ical_day(d: Weekday) -> &'static str {
    ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][d.num_days_from_monday() as usize]
}

#[cfg(test)]
mod tests;
