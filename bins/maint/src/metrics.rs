//! The Prometheus textfile (node_exporter textfile collector convention) written after a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use maint_core::{RunReport, Status};

const LAST_SUCCESS: &str = "maint_task_last_success_timestamp_seconds";

/// 0 ok, 1 warning, 2 failed, 3 skipped.
fn status_code(s: Status) -> u8 {
    match s {
        Status::Ok => 0,
        Status::Warning => 1,
        Status::Failed => 2,
        Status::Skipped => 3,
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Last-success timestamps already in the file (so tasks that did not succeed now keep theirs).
fn previous_successes(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(LAST_SUCCESS)?.strip_prefix("{task=\"")?;
            let (task, value) = rest.split_once("\"}")?;
            Some((task.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Renders the metrics of a run, merging the last-success times of earlier runs.
pub(crate) fn render(report: &RunReport, previous: &str) -> String {
    let mut last = previous_successes(previous);
    for t in &report.tasks {
        if matches!(t.status, Status::Ok | Status::Warning) && !t.dry_run {
            let end = t.started_at.timestamp_millis() as f64 / 1000.0 + t.duration_ms as f64 / 1000.0;
            last.insert(t.task.clone(), end);
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "# HELP {LAST_SUCCESS} When the task last finished ok or with warnings (unix seconds).");
    let _ = writeln!(out, "# TYPE {LAST_SUCCESS} gauge");
    for (task, ts) in &last {
        let _ = writeln!(out, "{LAST_SUCCESS}{{task=\"{}\"}} {ts:.3}", escape(task));
    }
    let _ = writeln!(out, "# HELP maint_task_duration_seconds How long the task took in the last run.");
    let _ = writeln!(out, "# TYPE maint_task_duration_seconds gauge");
    for t in &report.tasks {
        let _ = writeln!(
            out,
            "maint_task_duration_seconds{{task=\"{}\"}} {:.3}",
            escape(&t.task),
            t.duration_ms as f64 / 1000.0
        );
    }
    let _ = writeln!(
        out,
        "# HELP maint_task_status Status of the task in the last run: 0 ok, 1 warning, 2 failed, 3 skipped."
    );
    let _ = writeln!(out, "# TYPE maint_task_status gauge");
    for t in &report.tasks {
        let _ = writeln!(
            out,
            "maint_task_status{{task=\"{}\",window=\"{}\"}} {}",
            escape(&t.task),
            escape(&report.window),
            status_code(t.status)
        );
    }
    out
}

/// Writes the textfile atomically (temp file in the same directory, then rename), as the
/// textfile collector requires.
pub(crate) fn write(path: &Path, report: &RunReport) -> std::io::Result<()> {
    let previous = std::fs::read_to_string(path).unwrap_or_default();
    let text = render(report, &previous);
    maint_core::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use maint_core::TaskReport;

    use super::*;

    #[test]
    fn parses_back_and_keeps_earlier_successes() {
        let ok = TaskReport::begin("log-rotation", false).finish();
        let mut failed = TaskReport::begin("cache-cleanup", false);
        failed.fail("redis down");
        let report = RunReport::new("daily", false, vec![ok, failed.finish()]);
        let previous = format!("{LAST_SUCCESS}{{task=\"cache-cleanup\"}} 1700000000.000\n");
        let text = render(&report, &previous);
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let value = |name: &str, task: &str| {
            scrape.samples.iter().find(|s| s.metric == name && s.labels.get("task") == Some(task)).map(|s| {
                match s.value {
                    prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                }
            })
        };
        assert_eq!(value(LAST_SUCCESS, "cache-cleanup"), Some(1_700_000_000.0), "a failure keeps the last success");
        assert!(value(LAST_SUCCESS, "log-rotation").unwrap() > 1_700_000_000.0);
        assert_eq!(value("maint_task_status", "cache-cleanup"), Some(2.0));
        assert_eq!(value("maint_task_status", "log-rotation"), Some(0.0));
        assert!(value("maint_task_duration_seconds", "log-rotation").is_some());
    }
}
