//! Index Integrity (`index-integrity`): the task that runs `amcheck`'s `bt_index_check`
//! over btree indexes, and the finding for a corrupt one.

use std::sync::Arc;

use async_trait::async_trait;
use maint_core::{Impact, Task, TaskContext, TaskReport, one_line};
use serde_json::json;

use crate::error::describe_blockers;
use crate::findings::report_findings;
use crate::run::{connect, take_run_lock};
use crate::{BtreeIndex, Config, DbBackend, Error, Finding, IndexCheck, Settings, Severity, qualified};

/// The task name of the index integrity check.
pub const INDEX_INTEGRITY_ID: &str = "index-integrity";

/// The finding for an index amcheck found corrupt: critical, with what to do.
pub fn corrupt_index_finding(index: &BtreeIndex, sqlstate: &str, message: &str) -> Finding {
    let name = qualified(&index.schema, &index.name);
    Finding::new(
        "index_corrupt",
        Severity::Critical,
        name.clone(),
        format!("bt_index_check: {message} (SQLSTATE {sqlstate})"),
        format!(
            "queries using it may return wrong rows: find the cause (storage, a glibc/ICU collation change, \
             a bug), then REINDEX INDEX CONCURRENTLY {name}; check its table with verify_heapam"
        ),
    )
}

/// Verifies btree indexes with `amcheck`'s `bt_index_check` (an `AccessShareLock` on the
/// index and its table: reads and writes go on), one at a time, each under
/// `lock_timeout` (with retries) and `statement_timeout`. Each corrupt index is a
/// critical finding and fails the run (exit code 1). `amcheck` is used when installed,
/// or created when `amcheck.create_extension` (never in a dry run); without it the run
/// is a warning that says so. One run per database at a time (the advisory lock).
#[derive(Debug, Clone)]
pub struct IndexIntegrity {
    settings: Settings,
    backend: Arc<dyn DbBackend>,
}

impl IndexIntegrity {
    /// Validates the configuration and prepares a pool (no I/O yet). The URL is required.
    pub fn new(config: &Config) -> Result<Self, Error> {
        let (settings, backend) = connect(config)?;
        Ok(Self::with_backend(settings, backend))
    }

    /// A task over any backend (tests use a mock).
    pub fn with_backend(settings: Settings, backend: Arc<dyn DbBackend>) -> Self {
        IndexIntegrity { settings, backend }
    }

    async fn steps(&self, ctx: &TaskContext, report: &mut TaskReport) -> Result<(), Error> {
        let cfg = &self.settings.amcheck;
        let indexes = self.backend.btree_indexes(cfg.include_catalogs).await?;
        report.metric("indexes_planned", indexes.len() as f64);
        let available = self.backend.amcheck(cfg.create_extension && !ctx.dry_run).await?;
        if !available {
            let note = "amcheck is not installed: no index was checked (CREATE EXTENSION amcheck, \
                        or set amcheck.create_extension = true)";
            report.item(json!({"step": "amcheck", "amcheck": false, "note": note}));
            if !ctx.dry_run {
                report.warn(note);
                return Ok(());
            }
        }
        if ctx.dry_run {
            for ix in &indexes {
                report.item(json!({"step": "amcheck", "index": qualified(&ix.schema, &ix.name),
                    "table": qualified(&ix.schema, &ix.table), "bytes": ix.bytes, "outcome": "would_check"}));
            }
            return Ok(());
        }
        let (mut checked, mut findings, mut failures) = (0u32, Vec::new(), Vec::new());
        let mut not_started = 0u32;
        for ix in &indexes {
            let name = qualified(&ix.schema, &ix.name);
            let mut item = json!({"step": "amcheck", "index": name, "table": qualified(&ix.schema, &ix.table),
                "bytes": ix.bytes});
            if ctx.cancel.is_cancelled() {
                not_started += 1;
                continue;
            }
            match self.backend.check_index(ix, cfg.heapallindexed).await {
                // Healthy indexes are counted, not listed (a database has hundreds).
                Ok(IndexCheck::Ok) => {
                    checked += 1;
                    continue;
                }
                Ok(IndexCheck::Corrupt { sqlstate, message }) => {
                    checked += 1;
                    item["outcome"] = "corrupt".into();
                    item["sqlstate"] = sqlstate.as_str().into();
                    item["message"] = message.as_str().into();
                    findings.push(corrupt_index_finding(ix, &sqlstate, &message));
                }
                Ok(IndexCheck::Vanished) => item["outcome"] = "vanished".into(),
                Err(Error::LockTimeout { blockers, .. }) => {
                    report.warn(format!("bt_index_check {name}: skipped, locked by {}", describe_blockers(&blockers)));
                    item["outcome"] = "skipped".into();
                    item["blockers"] = json!(blockers);
                }
                Err(e) => {
                    let msg = one_line(&e);
                    report.warn(msg.clone());
                    failures.push(msg.clone());
                    item["outcome"] = "failed".into();
                    item["error"] = msg.into();
                }
            }
            report.item(item);
        }
        report.metric("indexes_checked", f64::from(checked));
        report.metric("indexes_corrupt", findings.len() as f64);
        report_findings(report, &findings);
        if not_started > 0 {
            report.metric("indexes_not_started", f64::from(not_started));
            return Err(Error::Cancelled);
        }
        if !findings.is_empty() {
            let names: Vec<&str> = findings.iter().map(|f| f.subject.as_str()).collect();
            report.fail(format!("{} corrupt index(es): {}", names.len(), names.join(", ")));
        } else if let Some(first) = failures.first() {
            report.fail(format!("{} check(s) failed; first: {first}", failures.len()));
        }
        Ok(())
    }
}

#[async_trait]
impl Task for IndexIntegrity {
    fn name(&self) -> &str {
        INDEX_INTEGRITY_ID
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(INDEX_INTEGRITY_ID, ctx.dry_run);
        let Some(lock) = take_run_lock(self.backend.as_ref(), &mut report).await else { return report.finish() };
        for name in ["indexes_checked", "indexes_corrupt"] {
            report.metric(name, 0.0);
        }
        let outcome = self.steps(ctx, &mut report).await;
        lock.release().await;
        if let Err(e) = outcome {
            report.fail(one_line(&e));
        }
        report.finish()
    }
}

#[cfg(test)]
mod tests {
    use maint_core::Status;

    use super::*;
    use crate::backend::MockDbBackend;
    use crate::{Blocker, RunLock, RunLockAttempt};

    fn ix(name: &str) -> BtreeIndex {
        BtreeIndex {
            oid: name.len() as u32,
            schema: "public".into(),
            name: name.into(),
            table: "t".into(),
            table_oid: 7,
            bytes: 8192,
        }
    }

    fn locked(mock: &mut MockDbBackend) {
        mock.expect_lock_run().times(1).returning(|| Ok(RunLockAttempt::Acquired(RunLock::detached())));
    }

    #[tokio::test]
    async fn a_corrupt_index_is_a_critical_finding_and_fails_the_run() {
        let mut mock = MockDbBackend::new();
        locked(&mut mock);
        mock.expect_btree_indexes()
            .withf(|catalogs| *catalogs)
            .times(1)
            .returning(|_| Ok(vec![ix("fine"), ix("bad"), ix("busy"), ix("gone")]));
        mock.expect_amcheck().withf(|create| !*create).times(1).returning(|_| Ok(true));
        mock.expect_check_index().withf(|_, heap| !*heap).times(4).returning(|i, _| {
            Ok(match i.name.as_str() {
                "fine" => IndexCheck::Ok,
                "bad" => IndexCheck::Corrupt {
                    sqlstate: "XX002".into(),
                    message: "item order invariant violated for index \"bad\"".into(),
                },
                "busy" => {
                    return Err(Error::LockTimeout {
                        operation: "bt_index_check".into(),
                        attempts: 3,
                        blockers: vec![Blocker {
                            pid: 8,
                            mode: "AccessExclusiveLock".into(),
                            state: "idle in transaction".into(),
                            query: "LOCK t".into(),
                        }],
                    });
                }
                _ => IndexCheck::Vanished,
            })
        });
        let task = IndexIntegrity::with_backend(Settings::default(), Arc::new(mock));
        assert_eq!((task.name(), task.impact()), (INDEX_INTEGRITY_ID, Impact::None));
        let report = task.run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Failed, "{report:#?}");
        assert_eq!(report.error.as_deref(), Some("1 corrupt index(es): \"public\".\"bad\""));
        assert_eq!((report.metrics["indexes_checked"], report.metrics["indexes_corrupt"]), (2.0, 1.0));
        assert_eq!(report.metrics["findings_critical"], 1.0);
        let finding = report.items.iter().find(|i| i["step"] == "finding").expect("a finding");
        assert_eq!(
            (finding["check"].as_str(), finding["severity"].as_str()),
            (Some("index_corrupt"), Some("critical"))
        );
        assert!(finding["action"].as_str().unwrap().contains("REINDEX INDEX CONCURRENTLY \"public\".\"bad\""));
        let outcome = |name: &str| {
            report.items.iter().find(|i| i["index"] == format!("\"public\".\"{name}\"")).map(|i| i["outcome"].clone())
        };
        assert_eq!(outcome("fine"), None, "healthy indexes are only counted");
        assert_eq!(outcome("busy"), Some("skipped".into()));
        assert_eq!(outcome("gone"), Some("vanished".into()));
        assert!(report.warnings.iter().any(|w| w.contains("locked by pid 8")), "{:?}", report.warnings);
    }

    #[tokio::test]
    async fn without_amcheck_nothing_is_checked_and_the_report_says_why() {
        let mut mock = MockDbBackend::new();
        locked(&mut mock);
        mock.expect_btree_indexes().times(1).returning(|_| Ok(vec![ix("a")]));
        mock.expect_amcheck().times(1).returning(|_| Ok(false));
        mock.expect_check_index().never();
        let report =
            IndexIntegrity::with_backend(Settings::default(), Arc::new(mock)).run(&TaskContext::new(false)).await;
        assert_eq!(report.status, Status::Warning, "{report:#?}");
        assert!(report.warnings[0].contains("amcheck is not installed"));
        assert_eq!(report.metrics["indexes_checked"], 0.0);
    }

    #[tokio::test]
    async fn a_dry_run_lists_the_indexes_and_never_creates_the_extension() {
        let mut settings = Settings::default();
        settings.amcheck.create_extension = true;
        settings.amcheck.include_catalogs = false;
        let mut mock = MockDbBackend::new();
        locked(&mut mock);
        mock.expect_btree_indexes().withf(|catalogs| !*catalogs).times(1).returning(|_| Ok(vec![ix("a")]));
        mock.expect_amcheck().withf(|create| !*create).times(1).returning(|_| Ok(true));
        mock.expect_check_index().never();
        let report = IndexIntegrity::with_backend(settings, Arc::new(mock)).run(&TaskContext::new(true)).await;
        assert_eq!(report.status, Status::Ok, "{report:#?}");
        assert_eq!(report.items[0]["outcome"], "would_check");
    }
}
