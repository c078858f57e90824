use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ExitCode;

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not run (outside its window, disabled, nothing to do by rule).
    Skipped,
    /// Done, nothing to report.
    Ok,
    /// Done, with warnings an operator should read.
    Warning,
    /// Not done.
    Failed,
}

impl Status {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Skipped => "skipped",
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "failed",
        }
    }

    /// 0 for ok, warning and skipped; 1 for failed.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Status::Failed => ExitCode::Failed,
            _ => ExitCode::Ok,
        }
    }
}

/// The report of one task: the JSON object every binary prints with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// Task id.
    pub task: String,
    /// How it ended.
    pub status: Status,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// Whether it only planned.
    pub dry_run: bool,
    /// Named figures (keys deleted, bytes freed, ...).
    pub metrics: BTreeMap<String, f64>,
    /// What it did or would do, one entry per action.
    pub items: Vec<serde_json::Value>,
    /// Things an operator should read.
    pub warnings: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl TaskReport {
    /// A report for a task starting now, with status `ok`.
    pub fn begin(task: impl Into<String>, dry_run: bool) -> Self {
        TaskReport {
            task: task.into(),
            status: Status::Ok,
            started_at: Utc::now(),
            duration_ms: 0,
            dry_run,
            metrics: BTreeMap::new(),
            items: Vec::new(),
            warnings: Vec::new(),
            error: None,
        }
    }

    /// Sets a metric.
    pub fn metric(&mut self, name: impl Into<String>, value: f64) -> &mut Self {
        self.metrics.insert(name.into(), value);
        self
    }

    /// Adds an item (anything serializable; a string or an object).
    pub fn item(&mut self, item: impl Serialize) -> &mut Self {
        self.items.push(serde_json::to_value(item).unwrap_or_else(|e| e.to_string().into()));
        self
    }

    /// Adds a warning.
    pub fn warn(&mut self, warning: impl Into<String>) -> &mut Self {
        self.warnings.push(warning.into());
        self
    }

    /// Marks the task failed with a reason.
    pub fn fail(&mut self, error: impl Into<String>) -> &mut Self {
        self.status = Status::Failed;
        self.error = Some(error.into());
        self
    }

    /// Marks the task skipped with a reason (kept as a warning).
    pub fn skip(&mut self, reason: impl Into<String>) -> &mut Self {
        self.status = Status::Skipped;
        self.warnings.push(reason.into());
        self
    }

    /// Sets the duration and turns `ok` into `warning` when there are warnings.
    pub fn finish(mut self) -> Self {
        let elapsed = Utc::now() - self.started_at;
        self.duration_ms = elapsed.num_milliseconds().max(0) as u64;
        if self.status == Status::Ok && !self.warnings.is_empty() {
            self.status = Status::Warning;
        }
        self
    }
}

/// The report of a run of several tasks (a window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The window (`daily`), or the name of the run.
    pub window: String,
    /// The worst task status (skipped counts as ok), or skipped when every task was skipped.
    pub status: Status,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// Whether it only planned.
    pub dry_run: bool,
    /// One report per task, in run order.
    pub tasks: Vec<TaskReport>,
}

impl RunReport {
    /// Builds a run report from task reports; `started_at` is the first task's start.
    pub fn new(window: impl Into<String>, dry_run: bool, tasks: Vec<TaskReport>) -> Self {
        let started_at = tasks.first().map_or_else(Utc::now, |t| t.started_at);
        let status = if !tasks.is_empty() && tasks.iter().all(|t| t.status == Status::Skipped) {
            Status::Skipped
        } else {
            tasks
                .iter()
                .map(|t| if t.status == Status::Skipped { Status::Ok } else { t.status })
                .max()
                .unwrap_or(Status::Ok)
        };
        let duration_ms = (Utc::now() - started_at).num_milliseconds().max(0) as u64;
        RunReport { window: window.into(), status, started_at, duration_ms, dry_run, tasks }
    }

    /// A plain-text table for a terminal: one row per task.
    pub fn render_table(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .tasks
            .iter()
            .map(|t| {
                let detail = match (&t.error, t.warnings.first()) {
                    (Some(e), _) => e.clone(),
                    (None, Some(w)) if t.warnings.len() > 1 => {
                        format!("{w} (+{} more)", t.warnings.len() - 1)
                    }
                    (None, Some(w)) => w.clone(),
                    (None, None) => t.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
                };
                [t.task.clone(), t.status.as_str().to_owned(), format!("{:.1}s", t.duration_ms as f64 / 1000.0), detail]
            })
            .collect();
        let header = ["TASK", "STATUS", "TIME", "DETAIL"].map(str::to_owned);
        let mut width = [0usize; 3];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let _ = writeln!(
                out,
                "{:w0$}  {:w1$}  {:>w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2]
            );
        }
        let dry = if self.dry_run { " (dry run)" } else { "" };
        let _ =
            writeln!(out, "{}: {}{dry} in {:.1}s", self.window, self.status.as_str(), self.duration_ms as f64 / 1000.0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_and_has_the_contract_fields() {
        let mut r = TaskReport::begin("cache-cleanup", true);
        r.metric("keys_deleted", 12.0).item(serde_json::json!({"key": "session:1"})).warn("slow");
        let r = r.finish();
        assert_eq!(r.status, Status::Warning);
        let json = serde_json::to_value(&r).unwrap();
        for field in ["task", "status", "started_at", "duration_ms", "dry_run", "metrics", "items", "warnings", "error"]
        {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["status"], "warning");
        assert_eq!(json["error"], serde_json::Value::Null);
        let back: TaskReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn run_status_is_the_worst_and_table_lists_every_task() {
        let ok = TaskReport::begin("a", false).finish();
        let mut failed = TaskReport::begin("b-long-name", false);
        failed.fail("connection refused");
        let mut skipped = TaskReport::begin("c", false);
        skipped.skip("outside window");
        let run = RunReport::new("weekly", false, vec![ok, failed.finish(), skipped.finish()]);
        assert_eq!(run.status, Status::Failed);
        assert_eq!(run.status.exit_code(), ExitCode::Failed);
        let table = run.render_table();
        assert!(table.contains("b-long-name  failed"), "{table}");
        assert!(table.contains("connection refused"));
        assert!(table.contains("outside window"));
        assert_eq!(table.lines().count(), 5);
        let only_skipped = RunReport::new("x", false, vec![TaskReport::begin("c", false).skip("n/a").clone().finish()]);
        assert_eq!(only_skipped.status, Status::Skipped, "nothing ran: not ok");
        assert_eq!(only_skipped.status.exit_code(), ExitCode::Ok);
    }
}
