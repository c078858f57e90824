//! The update orchestrator ([`Updater`]): [`Updater::run`] is the list of steps, each
//! step one function in its own file: the version policy (`version`), the change request
//! (`change`), the pre-checks and smoke checks (`checks`, with the free-space
//! [`DiskCheck`]), the backup gate (`backup`), the expand and contract migrations
//! (`migrate`), the rollout and its rollback (`rollout`), and the outcome's notification
//! and audit record (`outcome`).

mod backup;
mod change;
mod checks;
mod migrate;
mod outcome;
mod rollout;
mod version;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use maint_core::{Calendar, TaskContext, TaskReport};
use maint_notify::Dispatcher;
use semver::Version;
use serde::Serialize;

pub use checks::DiskCheck;

use crate::{AuditLog, BackupGate, ChangeRequest, ChangeStore, Deployer, Error, HealthChecks, Phase, SchemaMigrations};

/// The task id of an update in reports and the calendar.
pub const UPDATE_TASK_ID: &str = "system-updates";

/// What the orchestrator updates, and how long it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSettings {
    /// The workloads that get the new image (`api`, `worker`).
    pub workloads: Vec<String>,
    /// The image without its tag (`registry.example/aindusdb`).
    pub image_repository: String,
    /// How long a rollout (or an undo) may take.
    pub rollout_timeout: Duration,
}

/// One update to carry out.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    /// The target version.
    pub to: Option<Version>,
    /// The running version; read from the current revision's image tag when absent.
    pub from: Option<Version>,
    /// Allow a downgrade.
    pub force: bool,
    /// The change request covering it (required for a major update).
    pub change: Option<ChangeRequest>,
    /// The maintenance calendar (for the change's window).
    pub calendar: Option<Calendar>,
    /// "Now", for the window check (defaults to the real time).
    pub now: Option<DateTime<Utc>>,
    /// Who runs it, for the audit record.
    pub actor: Option<String>,
}

/// The steps of an update, in order. Each becomes one item of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Version policy: downgrade, major update.
    Version,
    /// The change request's state and window.
    Change,
    /// Health of the running service before anything changes.
    PreChecks,
    /// A recent verified backup, or a new one.
    Backup,
    /// Backward-compatible migrations, before the new image.
    ExpandMigrations,
    /// Set the image and wait until complete and healthy.
    Rollout,
    /// Health and smoke checks of the new version.
    Smoke,
    /// Migrations that only the new version allows, after it is healthy.
    ContractMigrations,
    /// Back to the previous revision after a failed rollout or smoke test.
    Rollback,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Done.
    Ok,
    /// Done in a dry run: only planned.
    Planned,
    /// Not applicable (nothing configured).
    Skipped,
    /// Failed; the update stops here.
    Failed,
}

/// One step in the report's items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    /// Which step.
    pub step: Step,
    /// How it ended.
    pub status: StepStatus,
    /// What happened, one line.
    pub detail: String,
    /// How long it took.
    pub duration_ms: u64,
}

/// The update orchestrator: version policy, change window, pre-checks, backup, expand
/// migrations BEFORE the rollout (old pods keep working on the new schema), rollout,
/// smoke checks, contract migrations after; undo on a failed rollout or smoke test;
/// a notification at the end. Every step is an item of the report; a dry run plans.
#[derive(Debug, Clone)]
pub struct Updater {
    deployer: Arc<dyn Deployer>,
    settings: UpdateSettings,
    migrations: Option<Arc<dyn SchemaMigrations>>,
    backup: Option<Arc<dyn BackupGate>>,
    checks: Option<Arc<dyn HealthChecks>>,
    /// The smoke suite, and whether it also runs as a pre-check.
    suite: Option<(Arc<dyn HealthChecks>, bool)>,
    notify: Option<Dispatcher>,
    audit: Option<Arc<dyn AuditLog>>,
    changes: Option<Arc<dyn ChangeStore>>,
    disk: Vec<DiskCheck>,
}

/// One run of the update: its report, and what the steps learn on the way.
struct Run<'a> {
    report: TaskReport,
    ctx: &'a TaskContext,
    from: Option<Version>,
    /// The change this run moved to `in_progress` (it ends `completed`, `failed` or `rolled_back`).
    started_change: Option<String>,
}

impl Run<'_> {
    fn record(&mut self, step: Step, status: StepStatus, detail: impl Into<String>, started: Instant) {
        let detail = detail.into();
        tracing::info!(step = ?step, status = ?status, "{detail}");
        self.report.item(StepRecord { step, status, detail, duration_ms: started.elapsed().as_millis() as u64 });
    }

    fn done(&self) -> StepStatus {
        if self.ctx.dry_run { StepStatus::Planned } else { StepStatus::Ok }
    }
}

/// How the steps ended when none failed.
enum Outcome {
    Updated(Version, Version),
    Planned,
    Nothing,
}

/// How the steps ended when one failed.
struct Failure {
    error: Error,
    /// `None`: nothing to roll back; `Some(ok)`: a rollback was attempted.
    rolled_back: Option<bool>,
}

impl Failure {
    fn before(error: Error) -> Self {
        Failure { error, rolled_back: None }
    }
}

fn cancelled(ctx: &TaskContext) -> Result<(), Failure> {
    if ctx.cancel.is_cancelled() { Err(Failure::before(Error::Cancelled)) } else { Ok(()) }
}

impl Updater {
    /// An orchestrator over a deployer; add the rest with the `with_*` methods.
    pub fn new(deployer: Arc<dyn Deployer>, settings: UpdateSettings) -> Result<Self, Error> {
        if settings.workloads.is_empty() {
            return Err(Error::invalid("update.workloads", "at least one workload is required"));
        }
        if settings.image_repository.trim().is_empty() {
            return Err(Error::invalid("update.image", "required (the image without its tag)"));
        }
        Ok(Updater {
            deployer,
            settings,
            migrations: None,
            backup: None,
            checks: None,
            suite: None,
            notify: None,
            audit: None,
            changes: None,
            disk: Vec::new(),
        })
    }

    /// Free-space pre-checks: the update stops before changing anything when one fails.
    pub fn with_disk_checks(mut self, checks: Vec<DiskCheck>) -> Self {
        self.disk = checks;
        self
    }

    /// Runs migrations (expand before, contract after the rollout).
    pub fn with_migrations(mut self, m: Arc<dyn SchemaMigrations>) -> Self {
        self.migrations = Some(m);
        self
    }

    /// Requires a backup before anything changes.
    pub fn with_backup(mut self, b: Arc<dyn BackupGate>) -> Self {
        self.backup = Some(b);
        self
    }

    /// Health checks, run before (pre-checks) and after the rollout (smoke).
    pub fn with_checks(mut self, c: Arc<dyn HealthChecks>) -> Self {
        self.checks = Some(c);
        self
    }

    /// The smoke suite (a [`SmokeChecks`](crate::SmokeChecks)): run after the rollout,
    /// after the checks, and before the update too when `before` is set.
    pub fn with_smoke(mut self, suite: Arc<dyn HealthChecks>, before: bool) -> Self {
        self.suite = Some((suite, before));
        self
    }

    /// Notifies the outcome.
    pub fn with_notify(mut self, d: Dispatcher) -> Self {
        self.notify = Some(d);
        self
    }

    /// Records every real (not dry) run in an audit log.
    pub fn with_audit(mut self, a: Arc<dyn AuditLog>) -> Self {
        self.audit = Some(a);
        self
    }

    /// Records the change's life in `store`: a real run moves the request's change to
    /// `in_progress` when execution starts (refused outside its slot and window, checked in
    /// the same transaction), then to `completed`, `failed`, or `failed` then `rolled_back`
    /// when the undo after a failure succeeded. Without a store the change is only checked.
    pub fn with_changes(mut self, store: Arc<dyn ChangeStore>) -> Self {
        self.changes = Some(store);
        self
    }

    /// The image for a version (`repo:1.5.0`).
    pub fn image_for(&self, v: &Version) -> String {
        format!("{}:{v}", self.settings.image_repository.trim_end_matches(':'))
    }

    /// Runs the update. Never returns an error: failure is a report with status `failed`.
    pub async fn run(&self, req: &UpdateRequest, ctx: &TaskContext) -> TaskReport {
        let mut run = Run {
            report: TaskReport::begin(UPDATE_TASK_ID, ctx.dry_run),
            ctx,
            from: req.from.clone(),
            started_change: None,
        };
        run.report.metric("rolled_back", 0.0);
        let outcome = self.steps(req, &mut run).await;
        let change_state = self.finish_change(&mut run, &outcome, req).await;
        let failed = run.report.items.iter().filter(|i| i["status"] == "failed").count();
        run.report.metric("steps_failed", failed as f64);
        self.conclude(&mut run.report, outcome, req, ctx.dry_run).await;
        let mut report = run.report.finish();
        self.audit(&mut report, run.from.as_ref(), req, ctx.dry_run).await;
        if let Some((id, state)) = change_state {
            report.item(serde_json::json!({ "change": id, "state": state }));
        }
        report
    }

    /// The steps, in order; the first failure ends them.
    async fn steps(&self, req: &UpdateRequest, run: &mut Run<'_>) -> Result<Outcome, Failure> {
        let ctx = run.ctx;
        let to = req.to.clone().ok_or_else(|| Failure::before(Error::invalid("--to", "required")))?;
        // 1. version policy
        let Some(from) = self.check_version(req, &to, run).await? else { return Ok(Outcome::Nothing) };
        // 2. change request: only checked here; the stored change moves to in_progress once
        // the pre-checks have passed, so a failed pre-check leaves it scheduled.
        self.check_change(req, &to, run)?;
        // 3. pre-checks: free space, then the HTTP checks and the smoke suite
        self.pre_checks(run).await?;
        // Execution starts: the window is checked again in the transaction that moves the
        // stored change to in_progress.
        self.start_change(req, &to, run).await?;
        // 4. backup
        self.backup(run).await?;
        cancelled(ctx)?;
        // 5. expand migrations, before any new code runs
        self.migrate(Phase::Expand, run).await.map_err(Failure::before)?;
        cancelled(ctx)?;
        if ctx.dry_run {
            // 6. and 7. only planned, 8. planned by the migrations
            self.plan_rollout(&to, run);
            self.migrate(Phase::Contract, run).await.map_err(Failure::before)?;
            return Ok(Outcome::Planned);
        }
        // 6. rollout (undone when it fails)
        self.rollout(&to, run).await?;
        // 7. smoke (the rollout undone when it fails)
        self.smoke(&to, run).await?;
        // 8. contract migrations: the new version is healthy everywhere. A failure here is
        // not rolled back: the new code runs on the expanded schema, and the contract
        // migrations can be retried.
        self.migrate(Phase::Contract, run).await.map_err(Failure::before)?;
        Ok(Outcome::Updated(from, to))
    }
}

#[cfg(test)]
mod tests;
