//! Index Rebuild (`index-rebuild`, monthly): the task that cleans `_ccnew`/`_ccold`
//! leftovers, scans and measures bloat, and rebuilds bloated indexes with
//! `REINDEX INDEX CONCURRENTLY` in parallel across tables.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use maint_core::tokio_util::sync::CancellationToken;
use maint_core::{Impact, Task, TaskContext, TaskReport, one_line};
use serde_json::json;
use tokio::task::JoinSet;

use crate::error::describe_blockers;
use crate::optimize::task::cleanup_invalid_indexes;
use crate::run::{check, connect, take_run_lock};
use crate::{
    BloatEntry, BloatEstimate, Config, DbBackend, Error, ReindexJob, Settings, bloat_candidates, build_memory,
    plan_reindex, qualified, rebuild_reason, reindex_sql,
};

/// The calendar id of the monthly index rebuild.
pub const INDEX_REBUILD_ID: &str = "index-rebuild";

/// Estimates bloat from the catalog, measures the top `bloat.measure_top` candidates
/// exactly when `pgstattuple` is there (creating it only when `bloat.create_extension`),
/// and reports both. Returns every estimate, with the measurements taken.
pub(crate) async fn bloat_scan(
    backend: &dyn DbBackend,
    settings: &Settings,
    ctx: &TaskContext,
    report: &mut TaskReport,
) -> Result<Vec<BloatEntry>, Error> {
    let estimates = backend.bloat_estimates().await?;
    let total: i64 = estimates.iter().map(|e| e.bloat_bytes).sum();
    report.metric("bloat_bytes_estimated", total as f64);
    let create = settings.bloat.create_extension && !ctx.dry_run;
    let available = match backend.pgstattuple(create).await {
        Ok(a) => a,
        Err(e) => {
            report.warn(format!("pgstattuple could not be created, estimates only: {}", one_line(&e)));
            false
        }
    };
    if !available {
        report.item(json!({"step": "bloat", "pgstattuple": false,
            "note": "pgstattuple is not installed: catalog estimates only (install it, or set bloat.create_extension = true)"}));
    }
    let candidates = bloat_candidates(&estimates, settings.bloat.measure_top);
    let mut entries: Vec<BloatEntry> =
        estimates.into_iter().map(|estimate| BloatEntry { estimate, measured: None }).collect();
    let mut measured = 0u32;
    for c in &candidates {
        check(ctx)?;
        let name = c.qualified();
        let m = if available {
            match backend.measure(c).await {
                Ok(m) => Some(m),
                Err(e @ Error::LockTimeout { .. }) => {
                    report.warn(format!("bloat of {name} not measured: {}", one_line(&e)));
                    None
                }
                Err(e) => {
                    report.warn(format!("bloat of {name} not measured: {}", one_line(&e)));
                    None
                }
            }
        } else {
            None
        };
        let mut item = json!({"step": "bloat", "kind": c.kind, "relation": name,
            "table": qualified(&c.schema, &c.table), "bytes_estimate": c.bytes,
            "bloat_bytes_estimate": c.bloat_bytes});
        if let Some(m) = &m {
            measured += 1;
            item["bytes_measured"] = m.bytes.into();
            item["bloat_bytes_measured"] = m.bloat_bytes.into();
            if let Some(d) = m.leaf_density {
                item["leaf_density"] = d.into();
            }
        }
        report.item(item);
        if let Some(entry) = entries.iter_mut().find(|e| e.estimate.oid == c.oid && e.estimate.kind == c.kind) {
            entry.measured = m;
        }
    }
    report.metric("relations_measured", f64::from(measured));
    Ok(entries)
}

/// Runs the rebuilds over `workers` sessions: different tables in parallel, the indexes
/// of one table one after the other (in plan order). Returns one outcome per job, in plan
/// order; `None` for a job not started because of cancellation. A worker that dies (panic)
/// fails the jobs it had taken.
async fn rebuild_in_parallel<F, Fut>(
    jobs: &[ReindexJob],
    workers: usize,
    cancel: CancellationToken,
    rebuild: F,
) -> Vec<Option<Result<i64, Error>>>
where
    F: Fn(BloatEstimate) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<i64, Error>> + Send,
{
    let mut groups: Vec<Vec<(usize, BloatEstimate)>> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if g[0].1.table_oid == job.index.table_oid => g.push((i, job.index.clone())),
            _ => groups.push(vec![(i, job.index.clone())]),
        }
    }
    // The groups still to do, and which jobs a worker has taken.
    let queue = Arc::new(Mutex::new((groups.into_iter().collect::<VecDeque<_>>(), vec![false; jobs.len()])));
    let workers = workers.clamp(1, jobs.len().max(1));
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let (queue, rebuild, cancel) = (Arc::clone(&queue), rebuild.clone(), cancel.clone());
        set.spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = {
                    let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                    let next = q.0.pop_front();
                    for (i, _) in next.iter().flatten() {
                        q.1[*i] = true;
                    }
                    next
                };
                let Some(group) = next else { break };
                for (i, index) in group {
                    let outcome = if cancel.is_cancelled() { None } else { Some(rebuild(index).await) };
                    done.push((i, outcome));
                }
            }
            done
        });
    }
    let mut out: Vec<Option<Result<i64, Error>>> = (0..jobs.len()).map(|_| None).collect();
    let mut reported = vec![false; jobs.len()];
    let mut died = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(done) => {
                for (i, outcome) in done {
                    reported[i] = true;
                    out[i] = outcome;
                }
            }
            Err(e) => died.push(one_line(&e)),
        }
    }
    if !died.is_empty() {
        // Jobs taken by a worker that never reported back belong to the one(s) that died.
        let claimed = queue.lock().unwrap_or_else(|e| e.into_inner()).1.clone();
        for i in 0..jobs.len() {
            if claimed[i] && !reported[i] {
                out[i] = Some(Err(Error::Worker { message: died.join("; ") }));
            }
        }
    }
    // PostgreSQL 14+ lets concurrent builds of plain indexes ignore each other; those of
    // expression or partial indexes wait for each other's snapshots: the deadlock detector
    // may cancel one (40P01), or one waits for the other session's snapshot until its lock
    // timeout (then no outside blocker is named, as our own sessions are left out). Such a
    // rebuild gets one more try, alone.
    for (i, job) in jobs.iter().enumerate() {
        if retry_alone(&out[i], workers) && !cancel.is_cancelled() {
            out[i] = Some(rebuild(job.index.clone()).await);
        }
    }
    out
}

/// Whether a rebuild run next to others (`workers` sessions) gets one more try, alone:
/// cancelled by the deadlock detector, or timed out with nobody else to blame.
fn retry_alone(outcome: &Option<Result<i64, Error>>, workers: usize) -> bool {
    match outcome {
        Some(Err(e)) if e.sqlstate() == Some(DEADLOCK_DETECTED) => true,
        Some(Err(Error::LockTimeout { blockers, .. })) => workers > 1 && blockers.is_empty(),
        _ => false,
    }
}

/// SQLSTATE of "deadlock detected".
const DEADLOCK_DETECTED: &str = "40P01";

/// The monthly "Index Rebuild": cleans `_ccnew`/`_ccold` leftovers, estimates and measures
/// index bloat, rebuilds the indexes over the `[reindex]` thresholds with
/// `REINDEX INDEX CONCURRENTLY` over `jobs` sessions (different tables in parallel, one
/// table's indexes one after the other), then cleans leftovers again. Invalid
/// indexes that are not leftovers are reported and never touched. One run per database
/// at a time (the same advisory lock as `database-optimization`).
#[derive(Debug, Clone)]
pub struct IndexRebuild {
    settings: Settings,
    backend: Arc<dyn DbBackend>,
}

impl IndexRebuild {
    /// Validates the configuration and prepares a pool (no I/O yet). The URL is required.
    pub fn new(config: &Config) -> Result<Self, Error> {
        let (settings, backend) = connect(config)?;
        Ok(Self::with_backend(settings, backend))
    }

    /// A task over any backend (tests use a mock).
    pub fn with_backend(settings: Settings, backend: Arc<dyn DbBackend>) -> Self {
        IndexRebuild { settings, backend }
    }

    /// Vector indexes (HNSW, IVFFlat): recall before, the rebuilds [`rebuild_reason`] asks
    /// for with `maintenance_work_mem` sized from the build's estimate (capped, with a
    /// warning before starting when the estimate is over the cap), the build recorded and
    /// recall after. Returns (planned, attempted, rebuilt).
    async fn vector_rebuilds(
        &self,
        ctx: &TaskContext,
        report: &mut TaskReport,
        failures: &mut Vec<String>,
    ) -> Result<(u32, bool, u32), Error> {
        let (v, schema, backend) = (&self.settings.vector, &self.settings.capacity.schema, self.backend.as_ref());
        if !v.rebuild {
            return Ok((0, false, 0));
        }
        let inventory = backend.index_inventory(schema).await?;
        report.metric("vector_indexes", inventory.iter().filter(|i| i.is_vector()).count() as f64);
        let current = backend.maintenance_work_mem().await?;
        let (mut planned, mut attempted, mut rebuilt) = (0u32, false, 0u32);
        for ix in inventory.iter().filter(|i| i.is_vector() && i.valid) {
            check(ctx)?;
            let name = ix.qualified();
            let before = if v.recall {
                backend
                    .measure_recall(ix, v)
                    .await
                    .map_err(|e| report.warn(format!("recall of {name} not measured: {}", one_line(&e))))
                    .ok()
            } else {
                None
            };
            let Some(reason) = rebuild_reason(ix, before.as_ref(), v) else { continue };
            planned += 1;
            let estimate = ix.build_memory_estimate();
            let (memory, over) = build_memory(estimate, current, v.maintenance_work_mem_cap);
            let sql = format!("REINDEX INDEX CONCURRENTLY {name}");
            let mut item = json!({"step": "vector_rebuild", "index": name, "table": ix.qualified_table(),
                "method": ix.method, "sql": sql, "reason": reason, "memory_estimate_bytes": estimate,
                "maintenance_work_mem_bytes": memory, "parallel_workers": v.parallel_workers,
                "bytes_before": ix.bytes, "recall_before": before.as_ref().map(|m| m.recall)});
            if over {
                report.warn(format!(
                    "{name}: the build wants about {} MiB of maintenance_work_mem, over \
                     vector.maintenance_work_mem_cap ({} MiB): pgvector builds far slower once the graph does not fit",
                    estimate.unwrap_or_default() >> 20,
                    v.maintenance_work_mem_cap >> 20
                ));
            }
            if ctx.dry_run {
                item["outcome"] = "would_rebuild".into();
                report.item(item);
                continue;
            }
            attempted = true;
            tracing::info!(index = %name, reason = %reason, maintenance_work_mem = memory, "rebuilding");
            let started = std::time::Instant::now();
            match backend.rebuild_index(ix, memory, v.parallel_workers, v.progress_interval).await {
                Ok(after) => {
                    rebuilt += 1;
                    let seconds = started.elapsed().as_secs_f64();
                    item["outcome"] = "done".into();
                    item["bytes_after"] = after.into();
                    item["seconds"] = seconds.into();
                    if let Err(e) = backend.record_index_build(schema, ix, seconds).await {
                        report.warn(format!("build of {name} not recorded: {}", one_line(&e)));
                    }
                    if before.is_some() {
                        match backend.measure_recall(ix, v).await {
                            Ok(m) => {
                                item["recall_after"] = m.recall.into();
                                if let Err(e) = backend.record_recall(schema, &m).await {
                                    report.warn(format!("recall of {name} not recorded: {}", one_line(&e)));
                                }
                            }
                            Err(e) => {
                                report
                                    .warn(format!("recall of {name} after the rebuild not measured: {}", one_line(&e)));
                            }
                        }
                    }
                }
                Err(Error::LockTimeout { blockers, .. }) => {
                    report.warn(format!("{sql}: skipped, locked by {}", describe_blockers(&blockers)));
                    item["outcome"] = "skipped".into();
                    item["blockers"] = json!(blockers);
                }
                Err(e) => {
                    let msg = one_line(&e);
                    failures.push(msg.clone());
                    report.warn(msg.clone());
                    item["outcome"] = "failed".into();
                    item["error"] = msg.into();
                }
            }
            report.item(item);
        }
        Ok((planned, attempted, rebuilt))
    }

    async fn steps(&self, ctx: &TaskContext, report: &mut TaskReport, failures: &mut Vec<String>) -> Result<(), Error> {
        let backend = self.backend.as_ref();
        let mut dropped = cleanup_invalid_indexes(backend, ctx, report, failures, true).await?;
        report.metric("invalid_indexes_dropped", f64::from(dropped));
        let entries = bloat_scan(backend, &self.settings, ctx, report).await?;
        let jobs = plan_reindex(&entries, &self.settings.reindex);
        report.metric("indexes_planned", jobs.len() as f64);
        let outcomes = if ctx.dry_run {
            Vec::new()
        } else {
            let backend = Arc::clone(&self.backend);
            let rebuild = move |ix: BloatEstimate| {
                let backend = Arc::clone(&backend);
                async move { backend.reindex(&ix).await }
            };
            rebuild_in_parallel(&jobs, self.settings.jobs, ctx.cancel.clone(), rebuild).await
        };
        let mut rebuilt = 0u32;
        let attempted = outcomes.iter().any(Option::is_some);
        for (i, job) in jobs.iter().enumerate() {
            let ix = &job.index;
            let mut item = json!({"step": "reindex", "index": ix.qualified(), "table": qualified(&ix.schema, &ix.table),
                "sql": reindex_sql(ix), "basis": job.basis, "bloat_bytes": job.bloat_bytes,
                "leaf_density": job.leaf_density, "bytes_before": ix.bytes});
            match outcomes.get(i) {
                None => item["outcome"] = "would_rebuild".into(),
                Some(None) => item["outcome"] = "not_started".into(),
                Some(Some(Ok(after))) => {
                    rebuilt += 1;
                    item["outcome"] = "done".into();
                    item["bytes_after"] = (*after).into();
                }
                Some(Some(Err(Error::LockTimeout { blockers, .. }))) => {
                    report.warn(format!("{}: skipped, locked by {}", reindex_sql(ix), describe_blockers(blockers)));
                    item["outcome"] = "skipped".into();
                    item["blockers"] = json!(blockers);
                }
                Some(Some(Err(e))) => {
                    let msg = one_line(e);
                    failures.push(msg.clone());
                    report.warn(msg.clone());
                    item["outcome"] = "failed".into();
                    item["error"] = msg.into();
                }
            }
            report.item(item);
        }
        let (vector_planned, vector_attempted, vector_rebuilt) = self.vector_rebuilds(ctx, report, failures).await?;
        report.metric("indexes_planned", (jobs.len() as u32 + vector_planned).into());
        report.metric("indexes_rebuilt", f64::from(rebuilt + vector_rebuilt));
        // A rebuild that failed or timed out leaves an invalid _ccnew index behind.
        if attempted || vector_attempted {
            dropped += cleanup_invalid_indexes(backend, ctx, report, failures, false).await?;
            report.metric("invalid_indexes_dropped", f64::from(dropped));
        }
        check(ctx)
    }
}

#[async_trait]
impl Task for IndexRebuild {
    fn name(&self) -> &str {
        INDEX_REBUILD_ID
    }

    fn impact(&self) -> Impact {
        Impact::ReadOnly
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(INDEX_REBUILD_ID, ctx.dry_run);
        let Some(lock) = take_run_lock(self.backend.as_ref(), &mut report).await else { return report.finish() };
        for name in ["indexes_rebuilt", "invalid_indexes_dropped"] {
            report.metric(name, 0.0);
        }
        let mut failures = Vec::new();
        let outcome = self.steps(ctx, &mut report, &mut failures).await;
        lock.release().await;
        match outcome {
            Err(e) => {
                report.fail(one_line(&e));
            }
            Ok(()) if !failures.is_empty() => {
                report.fail(format!("{} statement(s) failed; first: {}", failures.len(), failures[0]));
            }
            Ok(()) => {}
        }
        report.finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use maint_core::Status;

    use super::*;
    use crate::backend::MockDbBackend;
    use crate::{BloatEstimate, BloatMeasurement, InvalidIndex, RelKind, RunLock, RunLockAttempt};

    pub(crate) fn estimate(name: &str, kind: RelKind, bytes: i64, bloat: i64) -> BloatEstimate {
        BloatEstimate {
            kind,
            oid: name.len() as u32,
            schema: "public".into(),
            name: name.into(),
            table: "t".into(),
            table_oid: 7,
            bytes,
            bloat_bytes: bloat,
            reindexable: kind == RelKind::Index,
        }
    }

    fn invalid(name: &str) -> InvalidIndex {
        InvalidIndex {
            schema: "public".into(),
            name: name.into(),
            table: "t".into(),
            table_oid: 7,
            bytes: 8192,
            build_in_progress: false,
        }
    }

    pub(crate) const MB: i64 = 1 << 20;

    /// A database without vector indexes: the inventory is empty.
    fn no_vector_indexes(mock: &mut MockDbBackend) {
        mock.expect_index_inventory().returning(|_| Ok(Vec::new()));
        mock.expect_maintenance_work_mem().returning(|| Ok(64 * MB));
    }

    #[tokio::test]
    async fn rebuilds_the_measured_bloated_index_and_cleans_leftovers_before_and_after() {
        let mut mock = MockDbBackend::new();
        no_vector_indexes(&mut mock);
        mock.expect_lock_run().times(1).returning(|| Ok(RunLockAttempt::Acquired(RunLock::detached())));
        let mut seq = mockall::Sequence::new();
        mock.expect_invalid_indexes()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|| Ok(vec![invalid("t_a_ccnew"), invalid("half built")]));
        mock.expect_invalid_indexes().times(1).in_sequence(&mut seq).returning(|| Ok(vec![invalid("t_b_ccnew")]));
        mock.expect_drop_index().times(2).returning(|_| Ok(()));
        mock.expect_bloat_estimates().times(1).returning(|| {
            Ok(vec![
                estimate("t", RelKind::Table, 100 * MB, 50 * MB),
                estimate("bloated", RelKind::Index, 100 * MB, 60 * MB),
                estimate("dense_really", RelKind::Index, 100 * MB, 55 * MB),
                estimate("clean", RelKind::Index, 10 * MB, 0),
            ])
        });
        mock.expect_pgstattuple().withf(|create| !*create).times(1).returning(|_| Ok(true));
        mock.expect_measure().times(3).returning(|e| {
            Ok(match e.name.as_str() {
                "bloated" => BloatMeasurement { bytes: 100 * MB, bloat_bytes: 50 * MB, leaf_density: Some(40.0) },
                "dense_really" => BloatMeasurement { bytes: 100 * MB, bloat_bytes: MB, leaf_density: Some(89.0) },
                _ => BloatMeasurement { bytes: 100 * MB, bloat_bytes: 40 * MB, leaf_density: None },
            })
        });
        mock.expect_reindex().withf(|i| i.name == "bloated").times(1).returning(|_| Ok(50 * MB));
        let task = IndexRebuild::with_backend(Settings::default(), Arc::new(mock));
        let report = task.run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Warning, "{report:#?}"); // the invalid "half built" index
        assert_eq!(report.metrics["indexes_rebuilt"], 1.0);
        assert_eq!(report.metrics["invalid_indexes_dropped"], 2.0);
        assert_eq!(report.metrics["relations_measured"], 3.0);
        let done: Vec<_> = report.items.iter().filter(|i| i["step"] == "reindex").collect();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0]["index"], "\"public\".\"bloated\"");
        assert_eq!((done[0]["outcome"].as_str(), done[0]["basis"].as_str()), (Some("done"), Some("measured")));
        assert!(report.warnings.iter().any(|w| w.contains("half built") && w.contains("left alone")));
    }

    #[tokio::test]
    async fn a_dry_run_rebuilds_nothing_and_never_creates_the_extension() {
        let mut settings = Settings::default();
        settings.bloat.create_extension = true;
        let mut mock = MockDbBackend::new();
        no_vector_indexes(&mut mock);
        mock.expect_lock_run().times(1).returning(|| Ok(RunLockAttempt::Acquired(RunLock::detached())));
        mock.expect_invalid_indexes().times(1).returning(|| Ok(vec![invalid("t_a_ccnew")]));
        mock.expect_bloat_estimates()
            .times(1)
            .returning(|| Ok(vec![estimate("bloated", RelKind::Index, 100 * MB, 60 * MB)]));
        mock.expect_pgstattuple().withf(|create| !*create).times(1).returning(|_| Ok(false));
        let task = IndexRebuild::with_backend(settings, Arc::new(mock));
        let report = task.run(&TaskContext::new(true)).await;
        assert_eq!(report.status, Status::Ok, "{report:#?}");
        let planned = report.items.iter().find(|i| i["step"] == "reindex").expect("planned");
        assert_eq!(
            (planned["outcome"].as_str(), planned["basis"].as_str()),
            (Some("would_rebuild"), Some("estimated"))
        );
        assert!(report.items.iter().any(|i| i["action"] == "would_drop"));
        assert!(report.items.iter().any(|i| i["pgstattuple"] == false));
        assert_eq!(report.metrics["indexes_rebuilt"], 0.0);
    }

    #[tokio::test]
    async fn a_locked_rebuild_is_skipped_with_its_blocker_and_a_failed_one_fails_the_run() {
        let settings = Settings {
            reindex: crate::ReindexConfig { min_bloat_bytes: MB, ..Default::default() },
            ..Settings::default()
        };
        let mut mock = MockDbBackend::new();
        no_vector_indexes(&mut mock);
        mock.expect_lock_run().times(1).returning(|| Ok(RunLockAttempt::Acquired(RunLock::detached())));
        mock.expect_invalid_indexes().times(2).returning(|| Ok(vec![]));
        mock.expect_bloat_estimates().times(1).returning(|| {
            Ok(vec![
                estimate("locked", RelKind::Index, 10 * MB, 6 * MB),
                estimate("broken", RelKind::Index, 10 * MB, 5 * MB),
            ])
        });
        mock.expect_pgstattuple().times(1).returning(|_| Ok(false));
        mock.expect_reindex().times(2).returning(|i| {
            if i.name == "locked" {
                Err(Error::LockTimeout {
                    operation: "REINDEX".into(),
                    attempts: 3,
                    blockers: vec![crate::Blocker {
                        pid: 42,
                        mode: "ShareLock".into(),
                        state: "idle in transaction".into(),
                        query: "LOCK t".into(),
                    }],
                })
            } else {
                Err(Error::invalid("x", "boom"))
            }
        });
        let report = IndexRebuild::with_backend(settings, Arc::new(mock)).run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Failed, "{report:#?}");
        assert!(report.error.as_deref().unwrap().contains("boom"));
        let locked = report.items.iter().find(|i| i["index"] == "\"public\".\"locked\"").unwrap();
        assert_eq!((locked["outcome"].as_str(), locked["blockers"][0]["pid"].as_i64()), (Some("skipped"), Some(42)));
        assert!(report.warnings.iter().any(|w| w.contains("locked by pid 42")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rebuilds_run_in_parallel_across_tables_and_one_at_a_time_per_table() {
        use std::sync::Mutex;
        let job = |name: &str, table_oid: u32| {
            let mut index = estimate(name, RelKind::Index, 100 * MB, 60 * MB);
            index.table_oid = table_oid;
            ReindexJob { index, bloat_bytes: 60 * MB, leaf_density: None, basis: "estimated" }
        };
        // Grouped by table, as plan_reindex returns them.
        let jobs = [job("a_one", 7), job("a_two", 7), job("b_idx", 8)];
        // Tables in flight; each rebuild waits (up to 2 s) for a second one to be in flight.
        let in_flight = Arc::new(Mutex::new((Vec::<u32>::new(), 0usize)));
        let (tx, rx) = tokio::sync::watch::channel(0usize);
        let tx = Arc::new(tx);
        let state = Arc::clone(&in_flight);
        let rebuild = move |ix: BloatEstimate| {
            let (state, tx, mut rx) = (Arc::clone(&state), Arc::clone(&tx), rx.clone());
            async move {
                let same_table = {
                    let mut s = state.lock().unwrap();
                    s.0.push(ix.table_oid);
                    s.1 = s.1.max(s.0.len());
                    tx.send_replace(s.0.len());
                    s.0.iter().filter(|t| **t == ix.table_oid).count()
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|n| *n >= 2)).await;
                let mut s = state.lock().unwrap();
                let pos = s.0.iter().position(|t| *t == ix.table_oid).unwrap();
                s.0.remove(pos);
                tx.send_replace(s.0.len());
                if same_table > 1 { Err(Error::invalid("test", "two rebuilds of one table at once")) } else { Ok(MB) }
            }
        };
        let out = rebuild_in_parallel(&jobs, 2, CancellationToken::new(), rebuild.clone()).await;
        assert!(out.iter().all(|o| matches!(o, Some(Ok(_)))), "{out:?}");
        assert_eq!(in_flight.lock().unwrap().1, 2, "the two tables were rebuilt at the same time");

        // Cancelled before the start: nothing is started.
        let cancel = CancellationToken::new();
        cancel.cancel();
        let out = rebuild_in_parallel(&jobs, 2, cancel, rebuild).await;
        assert!(out.iter().all(Option::is_none), "{out:?}");
    }

    /// A mock for a rebuild of the indexes `a` (table 7) and `b` (table 8), over 2 sessions.
    fn two_table_rebuild(reindex: impl Fn(&BloatEstimate) -> Result<i64, Error> + Send + 'static) -> IndexRebuild {
        let mut mock = MockDbBackend::new();
        no_vector_indexes(&mut mock);
        mock.expect_lock_run().times(1).returning(|| Ok(RunLockAttempt::Acquired(RunLock::detached())));
        mock.expect_invalid_indexes().times(2).returning(|| Ok(vec![]));
        mock.expect_bloat_estimates().times(1).returning(|| {
            let mut b = estimate("b", RelKind::Index, 100 * MB, 60 * MB);
            b.table_oid = 8;
            Ok(vec![estimate("a", RelKind::Index, 100 * MB, 60 * MB), b])
        });
        mock.expect_pgstattuple().times(1).returning(|_| Ok(false));
        mock.expect_reindex().returning(reindex);
        let settings = Settings { jobs: 2, ..Settings::default() };
        IndexRebuild::with_backend(settings, Arc::new(mock))
    }

    #[tokio::test]
    async fn a_parallel_rebuild_timed_out_with_no_outside_blocker_is_retried_alone() {
        let calls = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&calls);
        let task = two_table_rebuild(move |ix| {
            let mut calls = seen.lock().unwrap();
            calls.push(ix.name.clone());
            // The first rebuild of `a` waited for the other session's snapshot.
            if ix.name == "a" && calls.iter().filter(|n| *n == "a").count() == 1 {
                Err(Error::LockTimeout { operation: "REINDEX".into(), attempts: 3, blockers: vec![] })
            } else {
                Ok(MB)
            }
        });
        let report = task.run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Ok, "{report:#?}");
        assert_eq!(report.metrics["indexes_rebuilt"], 2.0);
        let mut calls = calls.lock().unwrap().clone();
        assert_eq!(calls.pop().as_deref(), Some("a"), "the retry comes after the parallel phase");
        calls.sort();
        assert_eq!(calls, ["a", "b"]);
    }

    #[test]
    fn only_a_parallel_timeout_with_no_blocker_or_a_deadlock_is_retried() {
        let timeout = |blockers: Vec<crate::Blocker>| {
            Some(Err(Error::LockTimeout { operation: "REINDEX".into(), attempts: 3, blockers }))
        };
        assert!(retry_alone(&timeout(vec![]), 2));
        assert!(!retry_alone(&timeout(vec![]), 1), "alone already");
        let app = crate::Blocker { pid: 42, mode: "snapshot".into(), state: "active".into(), query: "SELECT".into() };
        assert!(!retry_alone(&timeout(vec![app]), 2), "an outside session holds it up");
        assert!(!retry_alone(&Some(Err(Error::invalid("x", "boom"))), 2));
        assert!(!retry_alone(&Some(Ok(MB)), 2));
        assert!(!retry_alone(&None, 2));
    }

    #[tokio::test]
    async fn a_worker_that_dies_fails_its_rebuilds_and_the_run() {
        let task = two_table_rebuild(|ix| if ix.name == "a" { panic!("worker exploded") } else { Ok(MB) });
        let report = task.run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Failed, "{report:#?}");
        let error = report.error.as_deref().unwrap();
        assert!(error.contains("rebuild worker failed") && error.contains("worker exploded"), "{error}");
        let a = report.items.iter().find(|i| i["index"] == "\"public\".\"a\"").unwrap();
        assert_eq!(a["outcome"], "failed");

        // Without the mock (whose lock a panic poisons): the other worker's rebuild stands.
        let job = |name: &str, table_oid: u32| {
            let mut index = estimate(name, RelKind::Index, 100 * MB, 60 * MB);
            index.table_oid = table_oid;
            ReindexJob { index, bloat_bytes: 60 * MB, leaf_density: None, basis: "estimated" }
        };
        let rebuild = |ix: BloatEstimate| async move {
            if ix.name == "a" {
                panic!("worker exploded");
            }
            Ok(MB)
        };
        let out = rebuild_in_parallel(&[job("a", 7), job("b", 8)], 2, CancellationToken::new(), rebuild).await;
        assert!(matches!(&out[0], Some(Err(e @ Error::Worker { .. })) if e.to_string().contains("worker exploded")));
        assert!(matches!(out[1], Some(Ok(MB))), "{out:?}");
    }

    #[tokio::test]
    async fn a_busy_run_lock_skips_the_rebuild() {
        let mut mock = MockDbBackend::new();
        no_vector_indexes(&mut mock);
        mock.expect_lock_run().times(1).returning(|| Ok(RunLockAttempt::Busy { holder: Some(9) }));
        let report =
            IndexRebuild::with_backend(Settings::default(), Arc::new(mock)).run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Skipped);
        assert!(report.warnings[0].contains("held by pid 9"));
    }
}
