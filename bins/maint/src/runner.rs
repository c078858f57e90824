//! Runs a window's tasks in order: per-task timeout, critical tasks, window enforcement.

use std::time::Duration;

use maint_core::chrono::{DateTime, Utc};
use maint_core::tokio_util::sync::CancellationToken;
use maint_core::{Impact, PlannedTask, RunReport, Status, TaskContext, TaskReport, Window};

use crate::registry::Slot;

/// How long a timed-out task gets to stop cleanly after it was cancelled.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// How to run.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    /// The clock (injected in tests).
    pub(crate) now: DateTime<Utc>,
    /// Run `downtime` tasks outside their window.
    pub(crate) force: bool,
    /// Plan only.
    pub(crate) dry_run: bool,
    /// Longest time one task may take.
    pub(crate) task_timeout: Duration,
}

fn skipped(task: &str, dry_run: bool, reason: String) -> TaskReport {
    let mut r = TaskReport::begin(task, dry_run);
    r.skip(reason);
    r.finish()
}

/// Runs the tasks of `window` in plan order. A failed task does not stop the others unless
/// it is critical; `downtime` tasks only run inside the window (or with `force`).
pub(crate) async fn run_window(
    window: &Window,
    slots: Vec<(PlannedTask, Slot)>,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> RunReport {
    let inside = window.contains(opts.now);
    let mut reports = Vec::with_capacity(slots.len());
    let mut stop: Option<String> = None;
    for (planned, slot) in slots {
        if let Some(why) = &stop {
            reports.push(skipped(planned.id, opts.dry_run, why.clone()));
            continue;
        }
        if cancel.is_cancelled() {
            reports.push(skipped(planned.id, opts.dry_run, "the run was cancelled before this task".into()));
            continue;
        }
        if planned.impact == Impact::Downtime && !inside && !opts.force {
            let next = window.next_start(opts.now).format("%Y-%m-%d %H:%M UTC");
            reports.push(skipped(
                planned.id,
                opts.dry_run,
                format!(
                    "needs downtime: runs only inside the {} window (next {next}); --force to run now",
                    window.name
                ),
            ));
            continue;
        }
        let report = match slot {
            Slot::Unavailable(reason) => skipped(planned.id, opts.dry_run, reason),
            Slot::Ready(task) => {
                let ctx = TaskContext { dry_run: opts.dry_run, cancel: cancel.child_token() };
                let run = task.run(&ctx);
                tokio::pin!(run);
                let mut r = match tokio::time::timeout(opts.task_timeout, &mut run).await {
                    Ok(r) => r,
                    Err(_) => {
                        // Ask the task to stop and give it time to clean up (abort uploads,
                        // drop scratch databases) instead of dropping it mid-step.
                        ctx.cancel.cancel();
                        let mut r = match tokio::time::timeout(STOP_GRACE, &mut run).await {
                            Ok(r) => r,
                            Err(_) => TaskReport::begin(planned.id, opts.dry_run),
                        };
                        r.fail(format!("timed out after {:?}", opts.task_timeout));
                        r.finish()
                    }
                };
                r.task = planned.id.to_owned();
                r
            }
        };
        if planned.critical && report.status == Status::Failed {
            stop = Some(format!("skipped: the critical task {} failed", planned.id));
        }
        reports.push(report);
    }
    RunReport::new(window.name.clone(), opts.dry_run, reports)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use maint_core::chrono::TimeZone;
    use maint_core::{Calendar, Task};

    use super::*;

    #[derive(Debug)]
    struct Fake {
        id: &'static str,
        outcome: Status,
        sleep: Duration,
        runs: Arc<AtomicUsize>,
    }

    #[async_trait::async_trait]
    impl Task for Fake {
        fn name(&self) -> &str {
            self.id
        }
        fn impact(&self) -> Impact {
            Impact::None
        }
        async fn run(&self, ctx: &TaskContext) -> TaskReport {
            self.runs.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                () = tokio::time::sleep(self.sleep) => {}
                () = ctx.cancel.cancelled() => {}
            }
            let mut r = TaskReport::begin(self.id, ctx.dry_run);
            if self.outcome == Status::Failed {
                r.fail("boom");
            }
            r.finish()
        }
    }

    fn plan() -> Calendar {
        let text = "monthly_maintenance:\n  day: \"First Sunday\"\n  time: \"02:00 UTC\"\n  duration: \"4 hours\"\n  tasks:\n    - {name: \"System Updates\", impact: \"downtime\", critical: true}\n    - {name: \"Index Rebuild\", impact: \"read_only\"}\n    - {name: \"Capacity Planning\", impact: \"none\"}\n";
        Calendar::from_yaml(text).unwrap()
    }

    fn slots(cal: &Calendar, outcomes: &[Status], runs: &Arc<AtomicUsize>) -> Vec<(PlannedTask, Slot)> {
        cal.window("monthly")
            .unwrap()
            .tasks
            .iter()
            .zip(outcomes)
            .map(|(t, o)| {
                let fake = Fake { id: t.id, outcome: *o, sleep: Duration::ZERO, runs: runs.clone() };
                (t.clone(), Slot::Ready(Arc::new(fake)))
            })
            .collect()
    }

    fn opts(now: DateTime<Utc>, force: bool) -> RunOptions {
        RunOptions { now, force, dry_run: false, task_timeout: Duration::from_secs(5) }
    }

    #[tokio::test]
    async fn downtime_tasks_wait_for_their_window_unless_forced() {
        let cal = plan();
        let w = cal.window("monthly").unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let tuesday = Utc.with_ymd_and_hms(2026, 11, 24, 2, 30, 0).unwrap();
        let r =
            run_window(w, slots(&cal, &[Status::Ok; 3], &runs), &opts(tuesday, false), &CancellationToken::new()).await;
        assert_eq!(r.tasks[0].status, Status::Skipped);
        assert!(r.tasks[0].warnings[0].contains("next 2026-12-06 02:00 UTC"), "{:?}", r.tasks[0].warnings);
        assert_eq!((r.tasks[1].status, r.tasks[2].status), (Status::Ok, Status::Ok));
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        let first_sunday = Utc.with_ymd_and_hms(2026, 12, 6, 2, 30, 0).unwrap();
        let r =
            run_window(w, slots(&cal, &[Status::Ok; 3], &runs), &opts(first_sunday, false), &CancellationToken::new())
                .await;
        assert!(r.tasks.iter().all(|t| t.status == Status::Ok));
        let r =
            run_window(w, slots(&cal, &[Status::Ok; 3], &runs), &opts(tuesday, true), &CancellationToken::new()).await;
        assert_eq!(r.tasks[0].status, Status::Ok, "--force");
    }

    #[tokio::test]
    async fn a_failed_critical_task_stops_the_rest_a_normal_one_does_not() {
        let cal = plan();
        let w = cal.window("monthly").unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let inside = Utc.with_ymd_and_hms(2026, 12, 6, 2, 30, 0).unwrap();
        let r = run_window(
            w,
            slots(&cal, &[Status::Failed, Status::Ok, Status::Ok], &runs),
            &opts(inside, false),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(r.status, Status::Failed);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(r.tasks[1].warnings[0].contains("critical task system-updates failed"));

        let runs = Arc::new(AtomicUsize::new(0));
        let r = run_window(
            w,
            slots(&cal, &[Status::Ok, Status::Failed, Status::Ok], &runs),
            &opts(inside, false),
            &CancellationToken::new(),
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3, "a non-critical failure does not stop the others");
        assert_eq!(r.tasks[2].status, Status::Ok);
        assert_eq!(r.status, Status::Failed);
    }

    #[tokio::test]
    async fn a_task_past_its_timeout_fails_and_the_next_runs() {
        let cal = plan();
        let w = cal.window("monthly").unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut s = slots(&cal, &[Status::Ok; 3], &runs);
        s[1].1 = Slot::Ready(Arc::new(Fake {
            id: "index-rebuild",
            outcome: Status::Ok,
            sleep: Duration::from_secs(60),
            runs: runs.clone(),
        }));
        s[2].1 = Slot::Unavailable("capacity-planning has no implementation in this version yet".into());
        let inside = Utc.with_ymd_and_hms(2026, 12, 6, 2, 30, 0).unwrap();
        let mut o = opts(inside, false);
        o.task_timeout = Duration::from_millis(50);
        let r = run_window(w, s, &o, &CancellationToken::new()).await;
        assert_eq!(r.tasks[1].error.as_deref(), Some("timed out after 50ms"));
        assert_eq!(r.tasks[2].status, Status::Skipped);
        assert!(r.tasks[2].warnings[0].contains("no implementation"));
    }
}
