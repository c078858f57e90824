use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use maint_core::{Impact, Task, TaskContext, TaskReport, one_line};
use serde_json::json;

use crate::Error;
use crate::backend::{CacheBackend, Key, KeyAction, MemoryInfo, Outcome, Probe};
use crate::config::{Config, Settings};
use crate::planner::{AdaptiveCount, BatchPlan, key_text, needs_ttl, plan, probe_for};
use crate::redis::{RedisBackend, redact};
use crate::rule::{Condition, Rule};

/// The task id used in the calendar and reports.
pub const TASK_ID: &str = "cache-cleanup";

/// Counters of one cleanup run (summed over nodes and rules).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Keys returned by `SCAN MATCH` (a key SCAN returns twice counts twice).
    pub keys_scanned: u64,
    /// Keys a rule's condition held for.
    pub keys_matched: u64,
    /// Keys unlinked.
    pub keys_deleted: u64,
    /// TTLs set.
    pub ttl_set: u64,
    /// Keys that changed between reading and acting (a refreshed session) and were kept.
    pub keys_kept: u64,
    /// Keys already gone when acting.
    pub keys_gone: u64,
    /// Keys of the wrong type for their rule.
    pub keys_wrong_type: u64,
    /// Keys without a readable field or size.
    pub keys_unreadable: u64,
    /// Keys whose idle time is not tracked.
    pub keys_untracked: u64,
    /// SCAN calls made.
    pub scan_calls: u64,
}

/// Where a run stopped, for a cancelled report.
#[derive(Debug, Clone)]
struct Position {
    node: String,
    rule: String,
    cursor: u64,
}

struct Run<'a> {
    settings: &'a Settings,
    ctx: &'a TaskContext,
    limiter: Option<DefaultDirectRateLimiter>,
    totals: Totals,
    report: TaskReport,
    listed: usize,
    unlisted: u64,
}

enum Stop {
    Cancelled(Position),
    Failed(Error),
}

impl Run<'_> {
    /// Waits until `n` more operations fit in the rate limit.
    async fn take(&self, n: usize) {
        let Some(limiter) = &self.limiter else { return };
        let burst = self.settings.max_ops_per_sec.max(1) as usize;
        let mut left = n;
        while left > 0 {
            let step = left.min(burst);
            let step_nz = NonZeroU32::new(u32::try_from(step).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
            // Cannot fail: step never exceeds the burst size.
            let _ = limiter.until_n_ready(step_nz).await;
            left -= step;
        }
    }

    /// After a SCAN call slower than the budget, pause as long (at most 200 ms), so other
    /// clients get the server even when COUNT has not adapted yet.
    async fn pace(&self, elapsed: Duration) {
        if elapsed > self.settings.latency_budget {
            tokio::time::sleep(elapsed.min(Duration::from_millis(200))).await;
        }
    }

    fn list(&mut self, item: serde_json::Value) {
        if self.listed < self.settings.max_items {
            self.listed += 1;
            self.report.item(item);
        } else {
            self.unlisted += 1;
        }
    }

    async fn rule_on_node(&mut self, backend: &dyn CacheBackend, rule: &Rule) -> Result<(), Stop> {
        let node = backend.node();
        let probe = probe_for(rule);
        let (start, min, max) = self.settings.scan_count;
        let mut count = AdaptiveCount::new(start, min, max, self.settings.latency_budget);
        let mut cursor = 0u64;
        // Decided but not yet applied: applied together with the next batch's reads.
        let mut pending: Option<BatchPlan> = None;
        loop {
            if self.ctx.cancel.is_cancelled() {
                self.step(backend, &node, rule, &probe, None, &mut pending).await.map_err(Stop::Failed)?;
                return Err(Stop::Cancelled(Position { node, rule: rule.name.clone(), cursor }));
            }
            self.take(1).await;
            let t = Instant::now();
            let (next, keys) = backend.scan(cursor, &rule.pattern, count.count()).await.map_err(Stop::Failed)?;
            let elapsed = t.elapsed();
            count.observe(elapsed);
            self.pace(elapsed).await;
            self.totals.scan_calls += 1;
            self.totals.keys_scanned += keys.len() as u64;
            for chunk in keys.chunks(self.settings.batch_size) {
                if self.ctx.cancel.is_cancelled() {
                    self.step(backend, &node, rule, &probe, None, &mut pending).await.map_err(Stop::Failed)?;
                    return Err(Stop::Cancelled(Position { node, rule: rule.name.clone(), cursor }));
                }
                self.step(backend, &node, rule, &probe, Some(chunk), &mut pending).await.map_err(Stop::Failed)?;
            }
            cursor = next;
            if cursor == 0 {
                self.step(backend, &node, rule, &probe, None, &mut pending).await.map_err(Stop::Failed)?;
                return Ok(());
            }
        }
    }

    /// One batch: reads `keys` (if any) while applying the previous batch's plan, on two
    /// connections at once, then plans `keys`. Pipelines are not paced: Redis reads a
    /// client's pipeline in 16 KiB chunks and serves other clients between chunks.
    async fn step(
        &mut self,
        backend: &dyn CacheBackend,
        node: &str,
        rule: &Rule,
        probe: &Probe,
        keys: Option<&[Key]>,
        pending: &mut Option<BatchPlan>,
    ) -> Result<(), Error> {
        let to_apply = pending.take();
        let actions: Vec<KeyAction> = match (&to_apply, self.ctx.dry_run) {
            (Some(p), false) => p.decisions.iter().filter_map(|d| d.action.clone()).collect(),
            _ => Vec::new(),
        };
        self.take(keys.map_or(0, <[Key]>::len) + actions.len()).await;
        let read = async {
            match keys {
                Some(keys) if !keys.is_empty() => backend.inspect(keys, probe, needs_ttl(rule)).await,
                _ => Ok(Vec::new()),
            }
        };
        let write = async { if actions.is_empty() { Ok(Vec::new()) } else { backend.apply(&actions).await } };
        let (observations, outcomes) = tokio::join!(read, write);
        if let Some(p) = to_apply {
            self.record(node, rule, &p, &outcomes?);
        }
        let observations = observations?;
        if keys.is_some() {
            let p = plan(rule, &observations, Utc::now());
            self.totals.keys_matched += p.decisions.len() as u64;
            self.totals.keys_wrong_type += p.wrong_type;
            self.totals.keys_unreadable += p.unreadable;
            self.totals.keys_untracked += p.untracked;
            *pending = Some(p);
        }
        Ok(())
    }

    fn record(&mut self, node: &str, rule: &Rule, p: &BatchPlan, outcomes: &[Outcome]) {
        let mut outcome_of = outcomes.iter();
        for d in &p.decisions {
            let outcome = if d.action.is_some() { outcome_of.next().copied() } else { None };
            match outcome {
                Some(Outcome::Deleted) => self.totals.keys_deleted += 1,
                Some(Outcome::TtlSet) => self.totals.ttl_set += 1,
                Some(Outcome::Kept) => self.totals.keys_kept += 1,
                Some(Outcome::Gone) => self.totals.keys_gone += 1,
                None => {}
            }
            if self.listed >= self.settings.max_items {
                self.unlisted += 1;
                continue;
            }
            let mut item = json!({
                "node": node, "rule": rule.name, "key": key_text(&d.key),
                "action": rule.action.to_string(), "reason": d.reason,
            });
            if let Some(o) = outcome {
                item["outcome"] = json!(o);
            }
            self.list(item);
        }
    }
}

/// Memory after the run: waits (up to 2 s) for background frees of unlinked keys.
async fn settled_memory(backend: &dyn CacheBackend) -> Result<MemoryInfo, Error> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let m = backend.memory().await?;
        if m.lazyfree_pending_objects == 0 || Instant::now() > deadline {
            return Ok(m);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the cleanup on every node (a standalone server or each cluster master) and reports.
/// Never fails: errors and cancellation end in a report with status `failed` that says how
/// far the run got.
pub async fn run_cleanup(backends: &[Arc<dyn CacheBackend>], settings: &Settings, ctx: &TaskContext) -> TaskReport {
    let limiter = NonZeroU32::new(settings.max_ops_per_sec).map(|n| RateLimiter::direct(Quota::per_second(n)));
    let mut run = Run {
        settings,
        ctx,
        limiter,
        totals: Totals::default(),
        report: TaskReport::begin(TASK_ID, ctx.dry_run),
        listed: 0,
        unlisted: 0,
    };
    // Rules reading hash fields touch the keys they read; idle rules go first so that
    // touch cannot reset an idle time another rule is about to judge.
    let mut rules: Vec<&Rule> = settings.rules.iter().collect();
    rules.sort_by_key(|r| !matches!(r.condition, Condition::IdleWithoutTtl { .. }));

    let (mut before, mut after) = (MemoryInfo::default(), MemoryInfo::default());
    let mut stop = None;
    for backend in backends {
        let backend = backend.as_ref();
        let node = backend.node();
        let mem_before = match backend.memory().await {
            Ok(m) => m,
            Err(e) => {
                stop = Some(Stop::Failed(e));
                break;
            }
        };
        let lfu = match backend.eviction_policy().await {
            Ok(p) => p.filter(|p| p.contains("lfu")),
            Err(e) => {
                stop = Some(Stop::Failed(e));
                break;
            }
        };
        for rule in &rules {
            if let (Condition::IdleWithoutTtl { .. }, Some(policy)) = (&rule.condition, &lfu) {
                run.report.warn(format!(
                    "rule {}: skipped on {node}: maxmemory-policy is {policy}, so Redis tracks access frequency, \
                     not idle time (OBJECT IDLETIME is unavailable); not guessing",
                    rule.name
                ));
                continue;
            }
            if let Err(s) = run.rule_on_node(backend, rule).await {
                stop = Some(s);
                break;
            }
        }
        // Memory is read after a stop too, so a cancelled report still shows what was freed.
        let mem_after = if !ctx.dry_run && settings.memory_purge && stop.is_none() {
            if mem_before.allocator.starts_with("jemalloc") {
                if let Err(e) = backend.purge_memory().await {
                    run.report.warn(format!("MEMORY PURGE on {node}: {}", one_line(&e)));
                }
            } else {
                run.report.warn(format!(
                    "MEMORY PURGE skipped on {node}: allocator is {:?}, not jemalloc",
                    mem_before.allocator
                ));
            }
            settled_memory(backend).await
        } else if !ctx.dry_run {
            settled_memory(backend).await
        } else {
            backend.memory().await
        };
        let mem_after = match mem_after {
            Ok(m) => m,
            Err(e) => {
                stop.get_or_insert(Stop::Failed(e));
                break;
            }
        };
        run.report.item(json!({"node": node, "memory_before": mem_before, "memory_after": mem_after}));
        before.used_memory += mem_before.used_memory;
        after.used_memory += mem_after.used_memory;
        before.fragmentation_ratio = before.fragmentation_ratio.max(mem_before.fragmentation_ratio);
        after.fragmentation_ratio = after.fragmentation_ratio.max(mem_after.fragmentation_ratio);
        after.lazyfree_pending_objects += mem_after.lazyfree_pending_objects;
        if stop.is_some() {
            break;
        }
    }

    let t = &run.totals;
    let metrics = [
        ("keys_scanned", t.keys_scanned as f64),
        ("keys_matched", t.keys_matched as f64),
        ("keys_deleted", t.keys_deleted as f64),
        ("ttl_set", t.ttl_set as f64),
        ("keys_kept_changed", t.keys_kept as f64),
        ("keys_already_gone", t.keys_gone as f64),
        ("keys_wrong_type", t.keys_wrong_type as f64),
        ("keys_unreadable", t.keys_unreadable as f64),
        ("keys_idle_untracked", t.keys_untracked as f64),
        ("scan_calls", t.scan_calls as f64),
        ("nodes", backends.len() as f64),
        ("memory_before_bytes", before.used_memory as f64),
        ("memory_after_bytes", after.used_memory as f64),
        ("fragmentation_ratio_before", before.fragmentation_ratio),
        ("fragmentation_ratio_after", after.fragmentation_ratio),
        ("lazyfree_pending_objects_after", after.lazyfree_pending_objects as f64),
    ];
    for (name, value) in metrics {
        run.report.metric(name, value);
    }
    if run.unlisted > 0 {
        let n = run.unlisted;
        run.report.warn(format!("{n} more keys not listed (max_items = {})", settings.max_items));
    }
    if t.keys_unreadable > 0 {
        let n = t.keys_unreadable;
        run.report.warn(format!("{n} keys matched a pattern but had no readable time or size; left alone"));
    }
    if t.keys_untracked > 0 {
        let n = t.keys_untracked;
        run.report.warn(format!("{n} keys have no idle time (LFU policy or OBJECT not permitted); left alone"));
    }
    match stop {
        Some(Stop::Cancelled(p)) => {
            let t = &run.totals;
            run.report.fail(format!(
                "cancelled on {} during rule {} at SCAN cursor {}, after {} keys scanned, {} matched, {} deleted, {} TTLs set",
                p.node, p.rule, p.cursor, t.keys_scanned, t.keys_matched, t.keys_deleted, t.ttl_set
            ));
        }
        Some(Stop::Failed(e)) => {
            run.report.fail(redact(&one_line(&e), &settings.redis_url));
        }
        None => {}
    }
    run.report.finish()
}

/// The `cache-cleanup` task: connects to Redis (every master in cluster mode), runs the
/// rules and reports. Impact `none`: it never blocks the server.
#[derive(Debug, Clone)]
pub struct CacheCleanup {
    settings: Settings,
    backends: Option<Vec<Arc<dyn CacheBackend>>>,
}

impl CacheCleanup {
    /// Validates `config` (bad input is an [`Error::Invalid`] naming the field); connects
    /// when run.
    pub fn new(config: &Config) -> Result<Self, Error> {
        Ok(CacheCleanup { settings: config.validate()?, backends: None })
    }

    /// Runs on the given nodes instead of connecting (tests, embedding services).
    pub fn with_backends(config: &Config, backends: Vec<Arc<dyn CacheBackend>>) -> Result<Self, Error> {
        Ok(CacheCleanup { settings: config.validate()?, backends: Some(backends) })
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

#[async_trait]
impl Task for CacheCleanup {
    fn name(&self) -> &str {
        TASK_ID
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let backends = match &self.backends {
            Some(b) => b.clone(),
            None => match RedisBackend::connect_all_with_ca(
                &self.settings.redis_url,
                self.settings.mode,
                self.settings.ca_file.as_deref(),
            )
            .await
            {
                Ok(b) => b,
                Err(e) => {
                    let mut report = TaskReport::begin(TASK_ID, ctx.dry_run);
                    for name in ["keys_scanned", "keys_matched", "keys_deleted", "ttl_set"] {
                        report.metric(name, 0.0);
                    }
                    report.fail(redact(&one_line(&e), &self.settings.redis_url));
                    return report.finish();
                }
            },
        };
        run_cleanup(&backends, &self.settings, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Change, MockCacheBackend, Observation, Recheck};
    use crate::config::RuleConfig;
    use mockall::predicate::eq;

    fn config(rules: &[Rule]) -> Config {
        Config { rules: rules.iter().map(RuleConfig::from).collect(), ..Config::default() }
    }

    fn session(key: &str, age_secs: i64) -> Observation {
        Observation {
            key: key.into(),
            kind: "hash".into(),
            ttl_ms: -1,
            field: Some((Utc::now().timestamp() - age_secs).to_string().into_bytes()),
            ..Default::default()
        }
    }

    fn base_mock() -> MockCacheBackend {
        let mut m = MockCacheBackend::new();
        m.expect_node().return_const("test:6379/0".to_owned());
        m.expect_memory().returning(|| {
            Ok(MemoryInfo {
                used_memory: 1000,
                fragmentation_ratio: 1.1,
                allocator: "libc".into(),
                ..Default::default()
            })
        });
        m.expect_eviction_policy().returning(|| Ok(Some("noeviction".into())));
        m
    }

    #[tokio::test]
    async fn scans_until_cursor_zero_and_acts_on_the_plan() {
        let mut m = base_mock();
        m.expect_scan()
            .with(eq(0), eq("session:*"), eq(200))
            .times(1)
            .returning(|_, _, _| Ok((7, vec![b"session:old".to_vec(), b"session:new".to_vec()])));
        m.expect_scan()
            .with(eq(7), eq("session:*"), mockall::predicate::always())
            .times(1)
            .returning(|_, _, _| Ok((0, vec![b"session:refreshed".to_vec()])));
        m.expect_inspect().withf(|_, p, ttl| *p == Probe::Field("last_access".into()) && !ttl).times(2).returning(
            |keys, _, _| {
                Ok(keys
                    .iter()
                    .map(|k| session(std::str::from_utf8(k).unwrap(), if k == b"session:new" { 60 } else { 90_000 }))
                    .collect())
            },
        );
        m.expect_apply()
            .withf(|a: &[KeyAction]| {
                a.len() == 1
                    && a[0].change == Change::Unlink
                    && matches!(&a[0].recheck, Recheck::FieldUnchanged { field, .. } if field == "last_access")
            })
            .times(2)
            .returning(|a| Ok(if a[0].key == b"session:old" { vec![Outcome::Deleted] } else { vec![Outcome::Kept] }));
        let task = CacheCleanup::with_backends(&config(&[Rule::sessions()]), vec![Arc::new(m)]).unwrap();
        let report = task.run(&TaskContext::new(false)).await;
        assert_eq!(report.status, maint_core::Status::Ok, "{report:?}");
        let metric = |n: &str| report.metrics[n];
        assert_eq!(
            (metric("keys_scanned"), metric("keys_matched"), metric("keys_deleted"), metric("keys_kept_changed")),
            (3.0, 2.0, 1.0, 1.0)
        );
        assert_eq!(metric("memory_before_bytes"), 1000.0);
        assert_eq!(report.items[0]["key"], "session:old");
        assert_eq!(report.items[0]["outcome"], "deleted");
        assert_eq!(report.items[1]["outcome"], "kept");
    }

    #[tokio::test]
    async fn dry_run_plans_without_apply() {
        let mut m = base_mock();
        m.expect_scan().times(1).returning(|_, _, _| Ok((0, vec![b"session:old".to_vec()])));
        m.expect_inspect().times(1).returning(|_, _, _| Ok(vec![session("session:old", 100_000)]));
        m.expect_apply().never();
        m.expect_purge_memory().never();
        let mut cfg = config(&[Rule::sessions()]);
        cfg.memory_purge = true;
        let task = CacheCleanup::with_backends(&cfg, vec![Arc::new(m)]).unwrap();
        let report = task.run(&TaskContext::new(true)).await;
        assert!(report.dry_run);
        assert_eq!(report.metrics["keys_matched"], 1.0);
        assert_eq!(report.metrics["keys_deleted"], 0.0);
        assert_eq!(report.items[0]["reason"].as_str().unwrap().split(' ').next(), Some("last_access"));
        assert!(report.items[0].get("outcome").is_none());
    }

    #[tokio::test]
    async fn cancellation_stops_before_the_next_batch_and_says_where() {
        let ctx = TaskContext::new(false);
        let cancel = ctx.cancel.clone();
        let mut m = base_mock();
        m.expect_scan().times(1).returning(move |_, _, _| {
            cancel.cancel();
            Ok((42, vec![b"session:a".to_vec()]))
        });
        m.expect_inspect().never();
        let task = CacheCleanup::with_backends(&config(&[Rule::sessions()]), vec![Arc::new(m)]).unwrap();
        let report = task.run(&ctx).await;
        assert_eq!(report.status, maint_core::Status::Failed);
        let err = report.error.unwrap();
        assert!(err.contains("cancelled on test:6379/0 during rule sessions at SCAN cursor 0"), "{err}");
        assert_eq!(report.metrics["keys_scanned"], 1.0);
        assert_eq!(report.metrics["memory_after_bytes"], 1000.0, "memory is still read after a stop");
    }

    #[tokio::test]
    async fn idle_rules_are_skipped_under_lfu_and_purge_needs_jemalloc() {
        let mut m = MockCacheBackend::new();
        m.expect_node().return_const("n:1/0".to_owned());
        m.expect_memory().returning(|| Ok(MemoryInfo { allocator: "libc".into(), ..Default::default() }));
        m.expect_eviction_policy().returning(|| Ok(Some("allkeys-lfu".into())));
        m.expect_scan().never();
        m.expect_purge_memory().never();
        let rule = Rule {
            name: "idle".into(),
            pattern: "*".into(),
            condition: Condition::IdleWithoutTtl { idle_longer_than: Duration::from_secs(60) },
            action: crate::Action::Delete,
        };
        let mut cfg = config(&[rule]);
        cfg.memory_purge = true;
        let report = CacheCleanup::with_backends(&cfg, vec![Arc::new(m)]).unwrap().run(&TaskContext::new(false)).await;
        assert_eq!(report.status, maint_core::Status::Warning);
        assert!(report.warnings[0].contains("allkeys-lfu"), "{:?}", report.warnings);
        assert!(report.warnings[1].contains("not jemalloc"), "{:?}", report.warnings);
    }

    #[tokio::test]
    async fn a_failing_backend_fails_the_report_with_progress() {
        let mut m = base_mock();
        m.expect_scan().returning(|_, _, _| {
            Err(Error::Reply { node: "test:6379/0".into(), operation: "SCAN", detail: "boom".into() })
        });
        let report = CacheCleanup::with_backends(&config(&[Rule::sessions()]), vec![Arc::new(m)])
            .unwrap()
            .run(&TaskContext::new(false))
            .await;
        assert_eq!(report.status, maint_core::Status::Failed);
        assert_eq!(report.error.as_deref(), Some("Redis at test:6379/0: unexpected reply to SCAN: boom"));
        assert_eq!(report.metrics["keys_scanned"], 0.0);
    }
}
