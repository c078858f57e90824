//! Database Optimization (`database-optimization`, weekly): the task that runs retention,
//! `VACUUM`/`ANALYZE` per table and the cleanup of invalid `_ccnew`/`_ccold` indexes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use maint_core::tokio_util::sync::CancellationToken;
use maint_core::{Impact, Task, TaskContext, TaskReport, one_line};
use serde_json::json;
use tokio::task::JoinSet;

use crate::error::describe_blockers;
use crate::run::{check, connect, take_run_lock};
use crate::{
    Config, DbBackend, Error, RetentionScan, Settings, TableJob, TableOutcome, TablePlanOptions, TableWork, job_sql,
    plan_invalid_indexes, plan_tables, qualified, resolve_rule,
};

/// The calendar id of the task.
pub const TASK_ID: &str = "database-optimization";

/// The weekly "Database Optimization" task: retention (when enabled), then
/// `VACUUM`/`ANALYZE` per table with `SKIP_LOCKED` over `jobs` connections, then cleanup
/// of invalid `_ccnew`/`_ccold` indexes; one run per database at a time (advisory lock).
#[derive(Debug, Clone)]
pub struct DatabaseOptimization {
    settings: Settings,
    backend: Arc<dyn DbBackend>,
}

/// Per-run tallies that are not report metrics yet.
#[derive(Default)]
struct Tally {
    failures: Vec<String>,
}

impl DatabaseOptimization {
    /// Validates the configuration and prepares a pool (no I/O yet). The URL is required.
    pub fn new(config: &Config) -> Result<Self, Error> {
        let (settings, backend) = connect(config)?;
        Ok(Self::with_backend(settings, backend))
    }

    /// A task over any backend (tests use a mock).
    pub fn with_backend(settings: Settings, backend: Arc<dyn DbBackend>) -> Self {
        DatabaseOptimization { settings, backend }
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn steps(&self, ctx: &TaskContext, report: &mut TaskReport, tally: &mut Tally) -> Result<(), Error> {
        let steps = self.settings.steps;
        if steps.retention {
            self.retention(ctx, report).await?;
        }
        if steps.vacuum || steps.analyze {
            check(ctx)?;
            self.tables(ctx, report, tally).await?;
        }
        if steps.invalid_indexes {
            check(ctx)?;
            self.invalid_indexes(ctx, report, tally).await?;
        }
        Ok(())
    }

    async fn retention(&self, ctx: &TaskContext, report: &mut TaskReport) -> Result<(), Error> {
        let s = &self.settings;
        // Every rule is checked before anything is deleted.
        let mut resolved = Vec::new();
        for (i, rule) in s.rules.iter().enumerate() {
            let target = self.backend.rule_target(rule).await?;
            resolved.extend(resolve_rule(i, rule, target)?);
        }
        let mut total = 0u64;
        for rule in &resolved {
            let table = qualified(&rule.table.schema, &rule.table.name);
            let column = &rule.rule.column;
            if ctx.dry_run {
                let n = self.backend.count_expired(rule).await?;
                report.item(json!({"step": "retention", "table": table, "column": column,
                    "cutoff": rule.cutoff, "would_delete": n}));
                continue;
            }
            let scan = self.backend.retention_scan(rule, s.batch_size).await?;
            let (mut deleted, mut batches, mut page) = (0u64, 0u64, 0u32);
            let mut longest = std::time::Duration::ZERO;
            let outcome = loop {
                if ctx.cancel.is_cancelled() {
                    break Err(Error::Cancelled);
                }
                let started = std::time::Instant::now();
                let (batch, last) = match scan {
                    RetentionScan::Rows => {
                        let batch = self.backend.delete_batch(rule, s.batch_size).await;
                        let last = batch.as_ref().is_ok_and(|n| *n < s.batch_size);
                        (batch, last)
                    }
                    RetentionScan::Pages { pages, total } => {
                        let to = page.saturating_add(pages);
                        let batch = self.backend.delete_pages(rule, page, to).await;
                        page = to;
                        (batch, to >= total)
                    }
                };
                longest = longest.max(started.elapsed());
                match batch {
                    Ok(n) => {
                        deleted += n;
                        batches += u64::from(n > 0);
                        if last {
                            break Ok(());
                        }
                        // A statement that deleted nothing wrote nothing: no pause needed.
                        if n > 0 {
                            tokio::select! {
                                () = tokio::time::sleep(s.pause) => {}
                                () = ctx.cancel.cancelled() => {}
                            }
                        }
                    }
                    Err(e @ Error::LockTimeout { .. }) => {
                        report.warn(format!("retention of {table} stopped after {deleted} rows: {}", one_line(&e)));
                        break Ok(());
                    }
                    Err(e) => break Err(e),
                }
            };
            total += deleted;
            report.metric("rows_deleted", total as f64);
            report.item(json!({"step": "retention", "table": table, "column": column,
                "cutoff": rule.cutoff, "deleted": deleted, "batches": batches, "scan": scan,
                "longest_batch_ms": longest.as_millis() as u64}));
            outcome?;
        }
        Ok(())
    }

    async fn tables(&self, ctx: &TaskContext, report: &mut TaskReport, tally: &mut Tally) -> Result<(), Error> {
        let s = &self.settings;
        let opts =
            TablePlanOptions { steps: s.steps, order: s.order, freeze: s.freeze, wraparound_age: s.wraparound_age };
        let jobs = plan_tables(self.backend.tables().await?, &opts);
        report.metric("tables_planned", jobs.len() as f64);
        if ctx.dry_run {
            for job in &jobs {
                report.item(json!({"step": "table", "table": qualified(&job.table.schema, &job.table.name),
                    "sql": job_sql(job), "reason": job.reason, "dead_tuples": job.table.dead_tuples,
                    "xid_age": job.table.xid_age, "bytes_estimate": job.table.bytes}));
            }
            return Ok(());
        }
        let results = run_jobs(Arc::clone(&self.backend), jobs, s.jobs, ctx.cancel.clone()).await;
        let (mut vacuumed, mut analyzed, mut skipped) = (0u32, 0u32, 0u32);
        let mut cancelled = false;
        for (job, outcome) in results {
            let table = qualified(&job.table.schema, &job.table.name);
            let sql = job_sql(&job);
            let item = match outcome {
                Some(Ok(TableOutcome::Done)) => {
                    match job.work {
                        TableWork::Vacuum { analyze, .. } => {
                            vacuumed += 1;
                            analyzed += u32::from(analyze);
                        }
                        TableWork::Analyze => analyzed += 1,
                    }
                    json!({"outcome": "done"})
                }
                Some(Ok(TableOutcome::Skipped { blockers })) => {
                    skipped += 1;
                    report.warn(format!("{sql}: skipped, locked by {}", describe_blockers(&blockers)));
                    json!({"outcome": "skipped", "blockers": blockers})
                }
                Some(Ok(TableOutcome::Unconfirmed)) => {
                    report.warn(format!(
                        "{sql}: not confirmed by pg_stat_all_tables (no privilege, or a lock was held briefly)"
                    ));
                    json!({"outcome": "unconfirmed"})
                }
                Some(Ok(TableOutcome::Vanished)) => json!({"outcome": "vanished"}),
                Some(Err(e)) => {
                    let msg = one_line(&e);
                    tally.failures.push(msg.clone());
                    report.warn(msg.clone());
                    json!({"outcome": "failed", "error": msg})
                }
                None => {
                    cancelled = true;
                    json!({"outcome": "not_started"})
                }
            };
            let mut item = item;
            item["step"] = "table".into();
            item["table"] = table.into();
            item["sql"] = sql.into();
            report.item(item);
        }
        report.metric("tables_vacuumed", f64::from(vacuumed));
        report.metric("tables_analyzed", f64::from(analyzed));
        report.metric("tables_skipped", f64::from(skipped));
        if cancelled { Err(Error::Cancelled) } else { Ok(()) }
    }

    async fn invalid_indexes(
        &self,
        ctx: &TaskContext,
        report: &mut TaskReport,
        tally: &mut Tally,
    ) -> Result<(), Error> {
        let dropped = cleanup_invalid_indexes(self.backend.as_ref(), ctx, report, &mut tally.failures, true).await?;
        report.metric("invalid_indexes_dropped", f64::from(dropped));
        Ok(())
    }
}

/// Drops the `_ccnew`/`_ccold` leftovers of a failed `REINDEX CONCURRENTLY`, reports the
/// other invalid indexes (never touched) and returns how many were dropped. With
/// `report_others` false the other invalid indexes are not reported again.
pub(crate) async fn cleanup_invalid_indexes(
    backend: &dyn DbBackend,
    ctx: &TaskContext,
    report: &mut TaskReport,
    failures: &mut Vec<String>,
    report_others: bool,
) -> Result<u32, Error> {
    let plan = plan_invalid_indexes(backend.invalid_indexes().await?);
    if report_others {
        report.metric("invalid_indexes_other", plan.report.len() as f64);
        for ix in &plan.report {
            let name = qualified(&ix.schema, &ix.name);
            report.warn(format!(
                "index {name} on {} is invalid and not a REINDEX CONCURRENTLY leftover: left alone (drop or rebuild it)",
                crate::quote_ident(&ix.table)
            ));
            report.item(json!({"step": "invalid_index", "index": name, "table": ix.table, "action": "report"}));
        }
    }
    for ix in &plan.busy {
        let name = qualified(&ix.schema, &ix.name);
        report.warn(format!("index {name}: an index build is running on its table; not dropped this time"));
        report.item(json!({"step": "invalid_index", "index": name, "table": ix.table, "action": "wait"}));
    }
    let mut dropped = 0u32;
    for ix in &plan.drop {
        let name = qualified(&ix.schema, &ix.name);
        if ctx.dry_run {
            report.item(json!({"step": "invalid_index", "index": name, "table": ix.table,
                "bytes_estimate": ix.bytes, "action": "would_drop"}));
            continue;
        }
        check(ctx)?;
        match backend.drop_index(ix).await {
            Ok(()) => {
                dropped += 1;
                report.item(json!({"step": "invalid_index", "index": name, "table": ix.table,
                    "bytes_estimate": ix.bytes, "action": "dropped"}));
            }
            Err(e @ Error::LockTimeout { .. }) => {
                report.warn(format!("invalid index {name} not dropped: {}", one_line(&e)));
            }
            Err(e) => {
                let msg = one_line(&e);
                failures.push(msg.clone());
                report.warn(msg);
            }
        }
    }
    Ok(dropped)
}

type JobResult = (TableJob, Option<Result<TableOutcome, Error>>);

/// Runs the jobs in plan order over `workers` concurrent sessions; results come back in
/// plan order, `None` for jobs not started because of cancellation.
async fn run_jobs(
    backend: Arc<dyn DbBackend>,
    jobs: Vec<TableJob>,
    workers: usize,
    cancel: CancellationToken,
) -> Vec<JobResult> {
    let total = jobs.len();
    let queue = Arc::new(Mutex::new(jobs.into_iter().enumerate().collect::<VecDeque<_>>()));
    let mut set = JoinSet::new();
    for _ in 0..workers.clamp(1, total.max(1)) {
        let (queue, backend, cancel) = (Arc::clone(&queue), Arc::clone(&backend), cancel.clone());
        set.spawn(async move {
            let mut done = Vec::new();
            while !cancel.is_cancelled() {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((i, job)) = next else { break };
                let outcome = backend.maintain(&job).await;
                done.push((i, job, Some(outcome)));
            }
            done
        });
    }
    let mut all = Vec::with_capacity(total);
    while let Some(joined) = set.join_next().await {
        if let Ok(done) = joined {
            all.extend(done);
        }
    }
    let rest: Vec<_> = queue.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
    all.extend(rest.into_iter().map(|(i, job)| (i, job, None)));
    all.sort_by_key(|(i, _, _)| *i);
    all.into_iter().map(|(_, job, outcome)| (job, outcome)).collect()
}

#[async_trait]
impl Task for DatabaseOptimization {
    fn name(&self) -> &str {
        TASK_ID
    }

    fn impact(&self) -> Impact {
        Impact::ReadOnly
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(TASK_ID, ctx.dry_run);
        let Some(lock) = take_run_lock(self.backend.as_ref(), &mut report).await else { return report.finish() };
        for name in ["tables_vacuumed", "tables_analyzed", "rows_deleted", "invalid_indexes_dropped"] {
            report.metric(name, 0.0);
        }
        let mut tally = Tally::default();
        let outcome = match self.backend.database_size().await {
            Ok(before) => {
                report.metric("db_bytes_before", before as f64);
                let outcome = self.steps(ctx, &mut report, &mut tally).await;
                match self.backend.database_size().await {
                    Ok(after) => {
                        report.metric("db_bytes_after", after as f64);
                    }
                    Err(e) => {
                        report.warn(format!("size after the run: {}", one_line(&e)));
                    }
                }
                outcome
            }
            Err(e) => Err(e),
        };
        lock.release().await;
        match outcome {
            Err(e) => {
                report.fail(one_line(&e));
            }
            Ok(()) if !tally.failures.is_empty() => {
                let n = tally.failures.len();
                report.fail(format!("{n} statement(s) failed; first: {}", tally.failures[0]));
            }
            Ok(()) => {}
        }
        report.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use maint_core::Status;
    use mockall::Sequence;

    use super::*;
    use crate::backend::MockDbBackend;
    use crate::{
        Blocker, InvalidIndex, RetentionRule, RetentionTable, RuleTarget, RunLock, RunLockAttempt, Steps, TableStats,
    };

    fn table(name: &str, dead: i64) -> TableStats {
        TableStats {
            oid: 1,
            schema: "public".into(),
            name: name.into(),
            bytes: 8192,
            dead_tuples: dead,
            xid_age: 10,
            vacuum_count: 0,
            analyze_count: 0,
        }
    }

    fn index(name: &str) -> InvalidIndex {
        InvalidIndex {
            schema: "public".into(),
            name: name.into(),
            table: "logs".into(),
            table_oid: 9,
            bytes: 8192,
            build_in_progress: false,
        }
    }

    fn locked(mock: &mut MockDbBackend) {
        mock.expect_lock_run().times(1).returning(|| Ok(RunLockAttempt::Acquired(RunLock::detached())));
    }

    fn sizes(mock: &mut MockDbBackend, before: i64, after: i64) {
        let mut seq = Sequence::new();
        mock.expect_database_size().times(1).in_sequence(&mut seq).returning(move || Ok(before));
        mock.expect_database_size().times(1).in_sequence(&mut seq).returning(move || Ok(after));
    }

    fn task(settings: Settings, mock: MockDbBackend) -> DatabaseOptimization {
        DatabaseOptimization::with_backend(settings, Arc::new(mock))
    }

    #[tokio::test]
    async fn a_second_run_is_skipped_without_touching_the_database() {
        let mut mock = MockDbBackend::new();
        mock.expect_lock_run().times(1).returning(|| Ok(RunLockAttempt::Busy { holder: Some(77) }));
        let t = task(Settings::default(), mock);
        assert_eq!((t.name(), t.impact()), (TASK_ID, Impact::ReadOnly));
        let report = t.run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Skipped);
        assert!(report.warnings[0].contains("a run is in progress") && report.warnings[0].contains("pid 77"));
    }

    #[tokio::test]
    async fn tables_in_plan_order_with_skips_reported_and_leftover_indexes_dropped() {
        let mut mock = MockDbBackend::new();
        locked(&mut mock);
        sizes(&mut mock, 1000, 800);
        mock.expect_tables().times(1).returning(|| Ok(vec![table("a", 1), table("b", 50), table("c", 5)]));
        mock.expect_maintain().times(3).returning(|job| {
            Ok(if job.table.name == "c" {
                TableOutcome::Skipped {
                    blockers: vec![Blocker {
                        pid: 5,
                        mode: "AccessExclusiveLock".into(),
                        state: "idle in transaction".into(),
                        query: "LOCK c".into(),
                    }],
                }
            } else {
                TableOutcome::Done
            })
        });
        mock.expect_invalid_indexes().times(1).returning(|| Ok(vec![index("logs_pkey_ccnew"), index("half_built")]));
        mock.expect_drop_index().withf(|ix| ix.name == "logs_pkey_ccnew").times(1).returning(|_| Ok(()));
        let report = task(Settings { jobs: 2, ..Settings::default() }, mock).run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Warning, "{report:?}");
        let m = |k: &str| report.metrics[k];
        assert_eq!((m("tables_vacuumed"), m("tables_analyzed"), m("tables_skipped")), (2.0, 2.0, 1.0));
        assert_eq!((m("db_bytes_before"), m("db_bytes_after"), m("invalid_indexes_dropped")), (1000.0, 800.0, 1.0));
        let tables: Vec<&str> =
            report.items.iter().filter(|i| i["step"] == "table").map(|i| i["table"].as_str().unwrap()).collect();
        assert_eq!(tables, [r#""public"."b""#, r#""public"."c""#, r#""public"."a""#]);
        assert!(report.warnings.iter().any(|w| w.contains("skipped, locked by pid 5")), "{:?}", report.warnings);
        assert!(report.warnings.iter().any(|w| w.contains(r#""public"."half_built""#) && w.contains("left alone")));
    }

    fn retention_only(batch_size: u64) -> Settings {
        Settings {
            steps: Steps { analyze: false, vacuum: false, invalid_indexes: false, retention: true },
            batch_size,
            pause: Duration::ZERO,
            rules: vec![RetentionRule {
                schema: "public".into(),
                table: "logs".into(),
                column: "created_at".into(),
                older_than: Duration::from_secs(86_400),
                timezone: "UTC".into(),
            }],
            ..Settings::default()
        }
    }

    fn found() -> RuleTarget {
        RuleTarget {
            oid: Some(3),
            tables: vec![RetentionTable { oid: 3, schema: "public".into(), name: "logs".into() }],
            column_type: Some("timestamp with time zone".into()),
            cutoff_tz: "2026-01-01 00:00:00+00".into(),
            cutoff_local: Some("2026-01-01 00:00:00".into()),
        }
    }

    #[tokio::test]
    async fn retention_deletes_in_batches_until_a_short_one() {
        let mut mock = MockDbBackend::new();
        locked(&mut mock);
        sizes(&mut mock, 10, 10);
        mock.expect_rule_target().times(1).returning(|_| Ok(found()));
        mock.expect_retention_scan().times(1).returning(|_, _| Ok(RetentionScan::Rows));
        let mut seq = Sequence::new();
        for n in [3, 3, 1] {
            mock.expect_delete_batch()
                .withf(|r, limit| *limit == 3 && r.cutoff == "2026-01-01 00:00:00+00")
                .times(1)
                .in_sequence(&mut seq)
                .returning(move |_, _| Ok(n));
        }
        let report = task(retention_only(3), mock).run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Ok, "{report:?}");
        assert_eq!(report.metrics["rows_deleted"], 7.0);
        assert_eq!(report.items[0]["batches"], 3);
    }

    #[tokio::test]
    async fn a_missing_retention_table_fails_before_anything_is_deleted() {
        let mut mock = MockDbBackend::new();
        locked(&mut mock);
        sizes(&mut mock, 10, 10);
        mock.expect_rule_target().times(1).returning(|_| Ok(RuleTarget { oid: None, column_type: None, ..found() }));
        mock.expect_delete_batch().never();
        let report = task(retention_only(3), mock).run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Failed);
        assert_eq!(report.error.as_deref(), Some(r#"retention.rules[0].table: table "public"."logs" does not exist"#));
    }

    #[tokio::test]
    async fn dry_run_plans_without_changing_anything() {
        let mut mock = MockDbBackend::new();
        locked(&mut mock);
        sizes(&mut mock, 10, 10);
        mock.expect_rule_target().times(1).returning(|_| Ok(found()));
        mock.expect_count_expired().times(1).returning(|_| Ok(42));
        mock.expect_tables().times(1).returning(|| Ok(vec![table("a", 1)]));
        mock.expect_maintain().never();
        mock.expect_delete_batch().never();
        mock.expect_invalid_indexes().times(1).returning(|| Ok(vec![index("x_ccold")]));
        mock.expect_drop_index().never();
        let settings = Settings { steps: Steps { retention: true, ..Steps::default() }, ..retention_only(3) };
        let report = task(settings, mock).run(&TaskContext::new(true)).await;
        assert_eq!(report.status, Status::Ok, "{report:?}");
        let actions: Vec<String> = report.items.iter().map(|i| i.to_string()).collect();
        assert!(actions[0].contains(r#""would_delete":42"#), "{actions:?}");
        assert!(actions[1].contains(r#""sql":"VACUUM (ANALYZE, SKIP_LOCKED) \"public\".\"a\"""#), "{actions:?}");
        assert!(actions[2].contains(r#""action":"would_drop""#), "{actions:?}");
        assert_eq!(report.metrics["tables_vacuumed"], 0.0);
    }

    #[tokio::test]
    async fn cancellation_stops_between_tables_and_reports_how_far_it_got() {
        let ctx = TaskContext::new(false);
        let cancel = ctx.cancel.clone();
        let mut mock = MockDbBackend::new();
        locked(&mut mock);
        sizes(&mut mock, 10, 10);
        mock.expect_tables().times(1).returning(|| Ok(vec![table("a", 3), table("b", 2), table("c", 1)]));
        mock.expect_maintain().times(1).returning(move |_| {
            cancel.cancel();
            Ok(TableOutcome::Done)
        });
        let settings = Settings { jobs: 1, ..Settings::default() };
        let report = task(settings, mock).run(&ctx).await;
        assert_eq!(report.status, Status::Failed);
        assert_eq!(report.error.as_deref(), Some("cancelled"));
        let outcomes: Vec<&str> = report.items.iter().map(|i| i["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes, ["done", "not_started", "not_started"]);
        assert_eq!(report.metrics["tables_vacuumed"], 1.0);
    }

    #[tokio::test]
    async fn a_failed_statement_fails_the_run_but_the_other_tables_are_done() {
        let mut mock = MockDbBackend::new();
        locked(&mut mock);
        sizes(&mut mock, 10, 10);
        mock.expect_tables().times(1).returning(|| Ok(vec![table("a", 1), table("b", 2)]));
        mock.expect_maintain().times(2).returning(|job| {
            if job.table.name == "b" { Err(Error::invalid("boom", "statement failed")) } else { Ok(TableOutcome::Done) }
        });
        let settings = Settings { steps: Steps { invalid_indexes: false, ..Steps::default() }, ..Settings::default() };
        let report = task(settings, mock).run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Failed);
        assert_eq!(report.metrics["tables_vacuumed"], 1.0);
        assert!(report.error.as_deref().unwrap().contains("boom: statement failed"), "{report:?}");
    }
}
