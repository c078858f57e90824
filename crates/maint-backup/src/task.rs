//! The reports behind the `maint-backup` commands (verify, restore test, prune) and the
//! weekly "Backup Verification" task of the scheduler.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use maint_core::{Impact, Task, TaskContext, TaskReport, one_line};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;

use crate::retention::check_days;
use crate::{
    Candidate, Error, Ledger, RestoreOptions, Retention, catalog, day_prefix, key_time, manifest_key, plan_retention,
    restore_test, verify_all,
};

/// Verifies the backups under `prefix` (or, with `rolling_days`, those not verified
/// successfully in that many days), records the results in the ledger, and reports: metrics
/// `backups_verified`, `backups_failed`, `bytes_verified`; failed when any backup fails.
pub async fn verify_report(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    rolling_days: Option<u32>,
    jobs: usize,
    dry: bool,
) -> Result<TaskReport, Error> {
    if let Some(days) = rolling_days {
        check_days(days, "rolling_days")?;
    }
    let mut report = TaskReport::begin("backup-verification", dry);
    // Read only: the results are recorded by `Ledger::update`, over the ledger as it is then.
    let (ledger, mut warning) = Ledger::load(store, false).await?;
    let all = catalog(store, prefix).await?;
    let entries: Vec<_> = match rolling_days {
        Some(days) => ledger.due(&all, Utc::now(), days).into_iter().cloned().collect(),
        None => all,
    };
    if (entries.is_empty() || dry)
        && let Some(w) = warning.take()
    {
        report.warn(w);
    }
    if entries.is_empty() {
        report.warn(format!("no backups under {prefix}"));
        report.metric("backups_verified", 0.0).metric("backups_failed", 0.0).metric("bytes_verified", 0.0);
        return Ok(report.finish());
    }
    if dry {
        for e in &entries {
            report.item(format!("would verify {}", e.key));
        }
        return Ok(report.finish());
    }
    let results = verify_all(store, &entries, jobs).await;
    let failed = results.iter().filter(|r| !r.ok).count();
    report.metric("backups_verified", (results.len() - failed) as f64);
    report.metric("backups_failed", failed as f64);
    report.metric("bytes_verified", results.iter().map(|r| r.bytes_read).sum::<u64>() as f64);
    for r in &results {
        report.item(if r.ok {
            format!("ok      {}", r.key)
        } else {
            format!("FAILED  {}: {}", r.key, r.problems.join("; "))
        });
    }
    let at = Utc::now();
    let recorded = Ledger::update(store, |ledger| {
        for r in &results {
            let entry = ledger.entries.entry(r.key.clone()).or_default();
            entry.verified_at = Some(at);
            entry.verified_ok = Some(r.ok);
        }
    })
    .await;
    record(&mut report, recorded, warning);
    if failed > 0 {
        report.fail(format!("{failed} of {} backup(s) failed verification", results.len()));
    }
    Ok(report.finish())
}

/// Reports how recording in the ledger went: its warning (or, when it had none, the one of
/// an earlier read), or why it failed.
fn record(report: &mut TaskReport, recorded: Result<Option<String>, Error>, earlier: Option<String>) {
    match recorded {
        Ok(warning) => {
            if let Some(w) = warning.or(earlier) {
                report.warn(w);
            }
        }
        Err(e) => {
            report.warn(format!("cannot save the ledger: {}", one_line(&e)));
        }
    }
}

/// Restore-tests a backup (default: the newest complete one), records the outcome in the
/// ledger, and reports: metrics `restore_seconds`, `tables_compared`, `tables_mismatched`.
pub async fn restore_report(
    store: &Arc<dyn ObjectStore>,
    key: Option<String>,
    opts: &RestoreOptions,
    dry: bool,
    cancel: &CancellationToken,
) -> Result<TaskReport, Error> {
    let mut report = TaskReport::begin("backup-restore-test", dry);
    let key = match key {
        Some(k) => k,
        None => catalog(store, "backups")
            .await?
            .into_iter()
            .filter(|e| e.object.is_some() && e.manifest.is_some())
            .max_by_key(|e| key_time(&e.key))
            .map(|e| e.key)
            .ok_or_else(|| Error::Invalid {
                field: "--key".into(),
                message: "no complete backup in the store".into(),
            })?,
    };
    if dry {
        report.item(format!("would restore {key} into a scratch database and compare fingerprints"));
        return Ok(report.finish());
    }
    let outcome = restore_test(store, &key, opts, cancel).await;
    let restored_at = Utc::now();
    match &outcome {
        Ok(o) => {
            report.metric("restore_seconds", o.seconds);
            report.metric("tables_compared", o.tables_compared as f64);
            report.metric("tables_mismatched", o.mismatches.len() as f64);
            for d in &o.leftovers_dropped {
                report.warn(format!("dropped {d}, left behind by a run that did not finish"));
            }
            for m in &o.mismatches {
                report.item(format!("MISMATCH {}: {}", m.table, m.reason));
            }
            if o.mismatches.is_empty() {
                report.item(format!("restored {key}: {} tables match the source", o.tables_compared));
            } else {
                report.fail(format!("{} table(s) differ from the source after restoring {key}", o.mismatches.len()));
            }
        }
        Err(e) => {
            report.fail(format!("restore of {key} failed: {}", one_line(e)));
        }
    }
    // The restore may have taken hours: the ledger is read now, not before it.
    let recorded = Ledger::update(store, |ledger| {
        let entry = ledger.entries.entry(key.clone()).or_default();
        entry.restored_at = Some(restored_at);
        entry.restore_ok = Some(outcome.as_ref().is_ok_and(|o| o.mismatches.is_empty()));
        if let Ok(o) = &outcome {
            entry.restore_seconds = Some(o.seconds);
        }
    })
    .await;
    record(&mut report, recorded, None);
    match outcome {
        Err(e) if e.is_bad_input() => Err(e),
        _ => Ok(report.finish()),
    }
}

/// Deletes the backups outside the retention policy ([`plan_retention`]: each database on
/// its own), the manifest before the dump so a backup is never half valid, and reports:
/// metrics `backups_deleted`, `backups_kept`. A policy that keeps nothing, or a minimum age
/// out of range, is bad input.
pub async fn prune_report(store: &Arc<dyn ObjectStore>, policy: &Retention, dry: bool) -> Result<TaskReport, Error> {
    policy.validate()?;
    let mut report = TaskReport::begin("backup-prune", dry);
    let (ledger, warning) = Ledger::load(store, !dry).await?;
    if let Some(w) = warning {
        report.warn(w);
    }
    let mut candidates = Vec::new();
    for e in &catalog(store, "backups").await? {
        match Candidate::from_entry(e, &ledger) {
            Some(c) => candidates.push(c),
            None => {
                report.warn(format!("{}: cannot tell its age; left alone", e.key));
            }
        }
    }
    let plan = plan_retention(&candidates, policy, Utc::now());
    let mut deleted = 0;
    for d in &plan {
        if d.keep {
            report.item(format!("keep    {} ({})", d.key, d.reason));
            continue;
        }
        if dry {
            report.item(format!("delete  {} ({})", d.key, d.reason));
            continue;
        }
        // Manifest first: from that instant the backup is invalid, never half valid.
        for path in [manifest_key(&d.key), d.key.clone()] {
            match store.delete(&Path::from(path.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    report.fail(format!("cannot delete {path}: {e}"));
                    return Ok(report.finish());
                }
            }
        }
        deleted += 1;
        report.item(format!("deleted {} ({})", d.key, d.reason));
    }
    report.metric("backups_deleted", f64::from(deleted));
    report.metric("backups_kept", plan.iter().filter(|d| d.keep).count() as f64);
    Ok(report.finish())
}

/// The weekly "Backup Verification" task: verify yesterday's backups, then (when
/// configured) restore-test the newest one.
#[derive(Debug, Clone)]
pub struct BackupVerification {
    /// The backup store.
    pub store: Arc<dyn ObjectStore>,
    /// Backups verified at once.
    pub jobs: usize,
    /// Rolling mode: verify what was not verified successfully in this many days, instead of yesterday's.
    pub rolling_days: Option<u32>,
    /// Restore-test the newest backup too.
    pub restore: Option<RestoreOptions>,
}

#[async_trait]
impl Task for BackupVerification {
    fn name(&self) -> &str {
        "backup-verification"
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let prefix = if self.rolling_days.is_some() {
            "backups".to_owned()
        } else {
            day_prefix(Utc::now().date_naive() - TimeDelta::days(1))
        };
        let mut report = match verify_report(&self.store, &prefix, self.rolling_days, self.jobs, ctx.dry_run).await {
            Ok(r) => r,
            Err(e) => {
                let mut r = TaskReport::begin(self.name(), ctx.dry_run);
                r.fail(one_line(&e));
                return r.finish();
            }
        };
        if let Some(opts) = &self.restore {
            match restore_report(&self.store, None, opts, ctx.dry_run, &ctx.cancel).await {
                Ok(r) => {
                    report.metrics.extend(r.metrics);
                    report.items.extend(r.items);
                    report.warnings.extend(r.warnings);
                    if r.status == maint_core::Status::Failed {
                        let e = r.error.unwrap_or_default();
                        report.error = Some(report.error.map_or(e.clone(), |prev| format!("{prev}; {e}")));
                        report.status = maint_core::Status::Failed;
                    }
                }
                Err(e) => {
                    report.fail(one_line(&e));
                }
            }
        }
        report.task = self.name().to_owned();
        report
    }
}
