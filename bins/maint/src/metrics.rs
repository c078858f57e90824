//! The Prometheus textfile (node_exporter textfile collector convention) written after a run.
//! One file serves every window: a run replaces the series of its own window and tasks and
//! keeps the others' (so the daily run does not erase the weekly run's status).

use std::path::Path;

use maint_core::{RunReport, Status};
use maint_health::textfile::{Family, Kind, render};

const LAST_SUCCESS: &str = "maint_task_last_success_timestamp_seconds";
const DURATION: &str = "maint_task_duration_seconds";
const STATUS: &str = "maint_task_status";
const FINDINGS: &str = "maint_findings";
const WINDOW_STATUS: &str = "maint_window_status";
const WINDOW_LAST_RUN: &str = "maint_window_last_run_timestamp_seconds";
const WINDOW_LAST_SUCCESS: &str = "maint_window_last_success_timestamp_seconds";

/// Every family of the file: name, help (types are all gauges).
const FAMILIES: &[(&str, &str)] = &[
    (LAST_SUCCESS, "When the task last finished ok or with warnings (unix seconds)."),
    (DURATION, "How long the task took in its last run, seconds."),
    (STATUS, "Status of the task in its last run: 0 ok, 1 warning, 2 failed, 3 skipped."),
    (FINDINGS, "Findings of the task's last run (security scan, audit), by check and severity."),
    (WINDOW_STATUS, "Status of the window's last run: 0 ok, 1 warning, 2 failed, 3 skipped."),
    (WINDOW_LAST_RUN, "When the window's last run started (unix seconds)."),
    (WINDOW_LAST_SUCCESS, "When the window's last run that ended ok or with warnings started (unix seconds)."),
];

/// 0 ok, 1 warning, 2 failed, 3 skipped.
fn status_code(s: Status) -> f64 {
    match s {
        Status::Ok => 0.0,
        Status::Warning => 1.0,
        Status::Failed => 2.0,
        Status::Skipped => 3.0,
    }
}

type Sample = (String, Vec<(String, String)>, f64);

/// One sample line of a textfile this module wrote: `name{k="v",...} value`.
fn parse_sample(line: &str) -> Option<Sample> {
    if line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, mut rest)) = head.split_once('{') else {
        return Some((head.to_owned(), Vec::new(), value));
    };
    let mut labels = Vec::new();
    while let Some((key, after)) = rest.split_once("=\"") {
        let (mut v, mut chars) = (String::new(), after.char_indices());
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                (_, c) => v.push(c),
            }
        };
        labels.push((key.trim_start_matches(',').to_owned(), v));
        rest = &after[end + 1..];
    }
    Some((name.to_owned(), labels, value))
}

fn label<'a>(labels: &'a [(String, String)], key: &str) -> Option<&'a str> {
    labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Renders the metrics of a run, merged with the series of earlier runs (`previous`, the
/// file's content) that this run does not replace.
pub(crate) fn render_run(report: &RunReport, previous: &str) -> String {
    let mut families: Vec<Family> =
        FAMILIES.iter().map(|(name, help)| Family::new(*name, Kind::Gauge, *help)).collect();
    let ran = |task: &str| report.tasks.iter().any(|t| t.task == task);
    let succeeded = |task: &str| {
        report.tasks.iter().any(|t| t.task == task && matches!(t.status, Status::Ok | Status::Warning) && !t.dry_run)
    };
    for (name, labels, value) in previous.lines().filter_map(parse_sample) {
        let keep = match (label(&labels, "task"), label(&labels, "window")) {
            (Some(task), _) if name == LAST_SUCCESS => !succeeded(task),
            (Some(task), _) => !ran(task),
            (None, Some(window)) if name == WINDOW_LAST_SUCCESS => {
                window != report.window || !matches!(report.status, Status::Ok | Status::Warning)
            }
            (None, Some(window)) => window != report.window,
            _ => false,
        };
        if let Some(f) = families.iter_mut().find(|f| f.name == name).filter(|_| keep) {
            f.samples.push((labels, value));
        }
    }
    let mut add = |name: &str, labels: &[(&str, &str)], value: f64| {
        if let Some(f) = families.iter_mut().find(|f| f.name == name) {
            f.sample(labels, value);
        }
    };
    for t in &report.tasks {
        if succeeded(&t.task) {
            let end = t.started_at.timestamp_millis() as f64 / 1000.0 + t.duration_ms as f64 / 1000.0;
            add(LAST_SUCCESS, &[("task", &t.task)], end);
        }
        add(DURATION, &[("task", &t.task)], t.duration_ms as f64 / 1000.0);
        add(STATUS, &[("task", &t.task), ("window", &report.window)], status_code(t.status));
        let mut counts: Vec<((&str, &str), f64)> = Vec::new();
        for item in &t.items {
            if let (Some(check), Some(severity)) = (item["check"].as_str(), item["severity"].as_str()) {
                match counts.iter_mut().find(|(k, _)| *k == (check, severity)) {
                    Some((_, n)) => *n += 1.0,
                    None => counts.push(((check, severity), 1.0)),
                }
            }
        }
        for ((check, severity), n) in counts {
            add(FINDINGS, &[("task", &t.task), ("check", check), ("severity", severity)], n);
        }
    }
    let started = report.started_at.timestamp_millis() as f64 / 1000.0;
    let window = [("window", report.window.as_str())];
    add(WINDOW_STATUS, &window, status_code(report.status));
    add(WINDOW_LAST_RUN, &window, started);
    if matches!(report.status, Status::Ok | Status::Warning) {
        add(WINDOW_LAST_SUCCESS, &window, started);
    }
    for f in &mut families {
        f.samples.sort_by(|a, b| a.0.cmp(&b.0));
    }
    render(&families)
}

/// Writes the textfile atomically (temp file in the same directory, then rename), as the
/// textfile collector requires.
pub(crate) fn write(path: &Path, report: &RunReport) -> std::io::Result<()> {
    let previous = std::fs::read_to_string(path).unwrap_or_default();
    let text = render_run(report, &previous);
    maint_core::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use maint_core::TaskReport;

    use super::*;

    fn scrape(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }

    fn value(scrape: &prometheus_parse::Scrape, name: &str, key: &str, val: &str) -> Option<f64> {
        scrape.samples.iter().find(|s| s.metric == name && s.labels.get(key) == Some(val)).map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
    }

    #[test]
    fn parses_back_and_keeps_earlier_successes() {
        let ok = TaskReport::begin("log-rotation", false).finish();
        let mut failed = TaskReport::begin("cache-cleanup", false);
        failed.fail("redis down");
        let report = RunReport::new("daily", false, vec![ok, failed.finish()]);
        let previous = format!("{LAST_SUCCESS}{{task=\"cache-cleanup\"}} 1700000000.000\n");
        let s = scrape(&render_run(&report, &previous));
        assert_eq!(value(&s, LAST_SUCCESS, "task", "cache-cleanup"), Some(1_700_000_000.0), "a failure keeps it");
        assert!(value(&s, LAST_SUCCESS, "task", "log-rotation").unwrap() > 1_700_000_000.0);
        assert_eq!(value(&s, STATUS, "task", "cache-cleanup"), Some(2.0));
        assert_eq!(value(&s, STATUS, "task", "log-rotation"), Some(0.0));
        assert!(value(&s, DURATION, "task", "log-rotation").is_some());
        assert_eq!(value(&s, WINDOW_STATUS, "window", "daily"), Some(2.0));
        assert!(value(&s, WINDOW_LAST_RUN, "window", "daily").is_some());
        assert_eq!(value(&s, WINDOW_LAST_SUCCESS, "window", "daily"), None, "the run failed");
    }

    #[test]
    fn a_run_keeps_the_other_windows_series_and_counts_findings() {
        let mut scan = TaskReport::begin("security-scan", false);
        scan.item(serde_json::json!({"check": "tls-certificate", "severity": "high", "detail": "x"}));
        scan.item(serde_json::json!({"check": "tls-certificate", "severity": "high", "detail": "y"}));
        scan.item(serde_json::json!({"check": "postgresql", "ok": true}));
        let weekly = render_run(&RunReport::new("weekly", false, vec![scan.finish()]), "");
        let daily = RunReport::new("daily", false, vec![TaskReport::begin("log-rotation", false).finish()]);
        let both = render_run(&daily, &weekly);
        let s = scrape(&both);
        assert_eq!(value(&s, FINDINGS, "check", "tls-certificate"), Some(2.0), "{both}");
        assert_eq!(value(&s, STATUS, "task", "security-scan"), Some(0.0), "{both}");
        assert!(value(&s, WINDOW_LAST_SUCCESS, "window", "weekly").is_some(), "{both}");
        assert!(value(&s, WINDOW_LAST_SUCCESS, "window", "daily").is_some(), "{both}");
        assert_eq!(both.matches("# HELP ").count(), 7, "{both}");
        // Written again by the same runs, the file is the same: nothing doubles.
        assert_eq!(render_run(&daily, &both), both);
        // Odd label values survive the round trip.
        let odd = RunReport::new("a \"b\"\\c", false, vec![TaskReport::begin("t\n1", false).finish()]);
        let text = render_run(&odd, "");
        assert_eq!(render_run(&daily, &text).matches("t\\n1").count(), 3, "{text}");
    }
}
