//! Steps 3 and 7, the checks: before anything changes, free space ([`DiskCheck`]), the
//! health checks and, when asked, the smoke suite (pre-checks); after the rollout, the
//! health checks and the smoke suite (smoke), whose failure undoes the rollout.

use std::time::Instant;

use maint_core::one_line;
use semver::Version;

use super::{Failure, Run, Step, StepStatus, Updater};
use crate::{CheckResult, Error, describe_failures};

/// A pre-check: at least `min_free_bytes` available (to unprivileged users, as `df` shows)
/// on the filesystem holding `path` (the engine's image store, the database volume, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCheck {
    /// A path on the filesystem to check.
    pub path: std::path::PathBuf,
    /// The least free space that lets the update go on.
    pub min_free_bytes: u64,
}

impl DiskCheck {
    /// `None` when there is enough room, else what is wrong.
    pub fn shortfall(&self) -> Option<String> {
        match rustix::fs::statvfs(&self.path) {
            Ok(st) => {
                let free = st.f_bavail.saturating_mul(st.f_frsize);
                (free < self.min_free_bytes).then(|| {
                    format!(
                        "{}: {:.1} GiB free, {:.1} GiB required",
                        self.path.display(),
                        free as f64 / GIB,
                        self.min_free_bytes as f64 / GIB
                    )
                })
            }
            Err(e) => Some(format!("{}: cannot read its free space: {e}", self.path.display())),
        }
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl Updater {
    /// Free space, then the checks (and the smoke suite when it runs before): a failure
    /// stops the update before anything changed.
    pub(super) async fn pre_checks(&self, run: &mut Run<'_>) -> Result<(), Failure> {
        let t = Instant::now();
        let short: Vec<String> = self.disk.iter().filter_map(DiskCheck::shortfall).collect();
        if !short.is_empty() {
            let e = Error::invalid(
                "update.disk",
                format!("not enough free space, nothing was changed: {}", short.join("; ")),
            );
            run.record(Step::PreChecks, StepStatus::Failed, one_line(&e), t);
            return Err(Failure::before(e));
        }
        let checks = self.run_checks(true, run.ctx.dry_run).await;
        if run.ctx.dry_run && self.suite.as_ref().is_some_and(|(_, pre)| *pre) {
            run.report
                .warn("dry run: the smoke suite was not run (its steps write); it runs before and after the rollout");
        }
        if checks.is_none() && !self.disk.is_empty() {
            run.record(Step::PreChecks, StepStatus::Ok, format!("{} disk check(s) passed", self.disk.len()), t);
        }
        if let Some(results) = checks {
            if results.iter().any(|r| !r.ok) {
                let e =
                    Error::Smoke(format!("pre-checks failed, nothing was changed: {}", describe_failures(&results)));
                run.record(Step::PreChecks, StepStatus::Failed, one_line(&e), t);
                return Err(Failure::before(e));
            }
            run.record(Step::PreChecks, StepStatus::Ok, format!("{} check(s) passed", results.len()), t);
        }
        Ok(())
    }

    /// The checks and the smoke suite on the new version `to`; a failure undoes the rollout.
    pub(super) async fn smoke(&self, to: &Version, run: &mut Run<'_>) -> Result<(), Failure> {
        let t = Instant::now();
        if let Some(results) = self.run_checks(false, run.ctx.dry_run).await {
            if results.iter().any(|r| !r.ok) {
                let e = Error::Smoke(format!("smoke checks failed on {to}: {}", describe_failures(&results)));
                run.record(Step::Smoke, StepStatus::Failed, one_line(&e), t);
                return Err(self.rollback(run, e).await);
            }
            run.record(Step::Smoke, StepStatus::Ok, format!("{} check(s) passed", results.len()), t);
        }
        Ok(())
    }

    /// The checks, then the smoke suite unless `before` excludes it; `None` when there is
    /// nothing to run. A dry run never runs the suite: its steps write (create an index,
    /// upsert, delete).
    async fn run_checks(&self, before: bool, dry_run: bool) -> Option<Vec<CheckResult>> {
        let suite = self.suite.as_ref().filter(|(_, pre)| (!before || *pre) && !dry_run).map(|(s, _)| s);
        if self.checks.is_none() && suite.is_none() {
            return None;
        }
        let mut results = match &self.checks {
            Some(c) => c.check().await,
            None => Vec::new(),
        };
        if let Some(s) = suite {
            results.extend(s.check().await);
        }
        Some(results)
    }
}
