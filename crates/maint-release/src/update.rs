use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use maint_core::{Calendar, Impact, Task, TaskContext, TaskReport, one_line};
use maint_notify::{Dispatcher, Notification, Severity};
use semver::Version;
use serde::Serialize;

use crate::{
    AuditLog, AuditRecord, BackupGate, ChangeRequest, ChangeStore, CheckResult, Deployer, Error, HealthChecks, Phase,
    SchemaMigrations, UpdateKind, VersionPolicy, check_update, describe_failures, image_tag, parse_version,
};

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

    async fn running_version(&self) -> Result<Version, Error> {
        let workload = &self.settings.workloads[0];
        let history = self.deployer.history(workload).await?;
        let current = history
            .iter()
            .rev()
            .find(|r| r.current)
            .or(history.last())
            .ok_or_else(|| Error::Deploy(format!("{workload} has no revision")))?;
        let tag = image_tag(&current.image)
            .ok_or_else(|| Error::Deploy(format!("{workload} runs {} which has no version tag", current.image)))?;
        parse_version("--from", tag)
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
        let report = &mut run.report;
        let items = report.items.iter().filter(|i| i["status"] == "failed").count();
        report.metric("steps_failed", items as f64);
        match outcome {
            Ok(Outcome::Updated(from, to)) => {
                self.notify(
                    report,
                    Severity::Info,
                    format!("AindusDB updated from {from} to {to}"),
                    "All steps passed.".into(),
                    req,
                )
                .await;
            }
            Ok(Outcome::Planned | Outcome::Nothing) => {}
            Err(Failure { error, rolled_back }) => {
                let msg = one_line(&error);
                report.fail(msg.clone());
                report.metric("rolled_back", if rolled_back == Some(true) { 1.0 } else { 0.0 });
                if !ctx.dry_run {
                    let (severity, title) = match rolled_back {
                        Some(true) => (Severity::Error, "AindusDB update failed and was rolled back"),
                        Some(false) => (Severity::Critical, "AindusDB update failed and the rollback failed too"),
                        None => (Severity::Error, "AindusDB update failed before the rollout"),
                    };
                    self.notify(report, severity, title.into(), msg, req).await;
                }
            }
        }
        let mut report = run.report.finish();
        if let (Some(audit), false, Some(to)) = (&self.audit, ctx.dry_run, &req.to) {
            let record = AuditRecord {
                started_at: report.started_at,
                finished_at: Utc::now(),
                actor: req.actor.clone().unwrap_or_else(|| "unknown".into()),
                from_version: run.from.as_ref().map(ToString::to_string),
                to_version: to.to_string(),
                change_id: req.change.as_ref().map(|c| c.id.clone()),
                change_window: req.change.as_ref().and_then(|c| c.window.clone()),
                status: report.status.as_str().to_owned(),
                error: report.error.clone(),
                steps: report.items.clone(),
            };
            match audit.record(&record).await {
                Ok(id) => {
                    report.metric("audit_id", id as f64);
                }
                Err(e) => {
                    // Kept as a warning: the update itself is over, and its report says what happened.
                    report.warnings.push(format!("cannot write the audit record: {}", one_line(&e)));
                    if report.status == maint_core::Status::Ok {
                        report.status = maint_core::Status::Warning;
                    }
                }
            }
        }
        if let Some((id, state)) = change_state {
            report.item(serde_json::json!({ "change": id, "state": state }));
        }
        report
    }

    fn change_actor(req: &UpdateRequest) -> String {
        req.actor.clone().filter(|a| !a.trim().is_empty()).unwrap_or_else(|| "maint-update".into())
    }

    /// Records how a started change ended; returns its id and final state. A failure to
    /// record it is a warning (the update itself is over).
    async fn finish_change(
        &self,
        run: &mut Run<'_>,
        outcome: &Result<Outcome, Failure>,
        req: &UpdateRequest,
    ) -> Option<(String, crate::ChangeState)> {
        let (Some(id), Some(store)) = (run.started_change.take(), &self.changes) else { return None };
        let by = Self::change_actor(req);
        let now = Utc::now();
        let recorded = match outcome {
            Ok(_) => store.update(&id, &mut |c| c.complete(&by, now)).await,
            Err(Failure { error, rolled_back }) => {
                let reason = one_line(error);
                let undone = *rolled_back == Some(true);
                let detail = format!("{} back on the previous revision", self.settings.workloads.join(", "));
                store
                    .update(&id, &mut |c| {
                        c.fail(&by, &reason, now)?;
                        if undone {
                            c.roll_back(&by, Some(&detail), now)?;
                        }
                        Ok(())
                    })
                    .await
            }
        };
        match recorded {
            Ok(c) => Some((c.id, c.state)),
            Err(e) => {
                run.report.warn(format!("cannot record the outcome of change {id}: {}", one_line(&e)));
                None
            }
        }
    }

    async fn notify(
        &self,
        report: &mut TaskReport,
        severity: Severity,
        title: String,
        body: String,
        req: &UpdateRequest,
    ) {
        let Some(d) = &self.notify else { return };
        let mut n = Notification::new(title, body, severity)
            .with_task(UPDATE_TASK_ID)
            .with_field("workloads", self.settings.workloads.join(", "));
        if let Some(to) = &req.to {
            n = n.with_field("to", to.to_string()).with_event_key(format!("{UPDATE_TASK_ID}:{to}"));
        }
        if let Some(c) = &req.change {
            n = n.with_field("change", c.id.clone());
        }
        d.notify_report(&n, report).await;
    }

    async fn steps(&self, req: &UpdateRequest, run: &mut Run<'_>) -> Result<Outcome, Failure> {
        let ctx = run.ctx;
        // 1. version policy
        let t = Instant::now();
        let to = req.to.clone().ok_or_else(|| Failure::before(Error::invalid("--to", "required")))?;
        let from = match &req.from {
            Some(v) => v.clone(),
            None => self.running_version().await.map_err(|e| {
                run.record(Step::Version, StepStatus::Failed, one_line(&e), t);
                Failure::before(e)
            })?,
        };
        run.from = Some(from.clone());
        let policy =
            VersionPolicy { allow_downgrade: req.force, change_request: req.change.as_ref().map(|c| c.id.clone()) };
        let decision = match check_update(&from, &to, &policy) {
            Ok(d) => d,
            Err(e) => {
                run.record(Step::Version, StepStatus::Failed, one_line(&e), t);
                return Err(Failure::before(e));
            }
        };
        run.report.metric("update_major", f64::from(u8::from(decision.kind == UpdateKind::Major)));
        if decision.kind == UpdateKind::None {
            run.record(Step::Version, StepStatus::Skipped, format!("already at {to}"), t);
            run.report.skip(format!("already at {to}: nothing to do"));
            return Ok(Outcome::Nothing);
        }
        let what = if decision.downgrade { "downgrade (forced)" } else { "update" };
        run.record(Step::Version, StepStatus::Ok, format!("{} {what} {from} -> {to}", decision.kind), t);

        // 2. change request
        let t = Instant::now();
        match &req.change {
            None => run.record(Step::Change, StepStatus::Skipped, "no change request", t),
            Some(c) => {
                // Only checked here: the stored change moves to in_progress once the
                // pre-checks have passed, so a failed pre-check leaves it scheduled.
                let check = self.check_change(c, &to, req);
                match (check, ctx.dry_run) {
                    (Ok(()), _) => {
                        run.record(Step::Change, StepStatus::Ok, format!("{} is scheduled and in its window", c.id), t);
                    }
                    (Err(e), true) => {
                        run.report.warn(format!("would be refused now: {}", one_line(&e)));
                        run.record(Step::Change, StepStatus::Planned, format!("{} checked again at run time", c.id), t);
                    }
                    (Err(e), false) => {
                        run.record(Step::Change, StepStatus::Failed, one_line(&e), t);
                        return Err(Failure::before(e));
                    }
                }
            }
        }

        // 3. pre-checks: free space, then the HTTP checks and the smoke suite
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
        let checks = self.run_checks(true, ctx.dry_run).await;
        if ctx.dry_run && self.suite.as_ref().is_some_and(|(_, pre)| *pre) {
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

        // Execution starts: the window is checked again in the transaction that moves the
        // stored change to in_progress.
        if let (Some(store), Some(c), false) = (&self.changes, &req.change, ctx.dry_run) {
            let t = Instant::now();
            let (by, now) = (Self::change_actor(req), req.now.unwrap_or_else(Utc::now));
            let started = store
                .update(&c.id, &mut |c| {
                    Self::check_target(c, &to)?;
                    c.start(&by, req.calendar.as_ref(), now)
                })
                .await;
            match started {
                Ok(c) => {
                    run.record(Step::Change, StepStatus::Ok, format!("{}: now in_progress", c.id), t);
                    run.started_change = Some(c.id);
                }
                Err(e) => {
                    run.record(Step::Change, StepStatus::Failed, one_line(&e), t);
                    return Err(Failure::before(e));
                }
            }
        }

        // 4. backup
        if let Some(backup) = &self.backup {
            let t = Instant::now();
            match backup.ensure_backup(ctx).await {
                Ok(detail) => {
                    let status = run.done();
                    run.record(Step::Backup, status, detail, t);
                }
                Err(e) => {
                    run.record(Step::Backup, StepStatus::Failed, one_line(&e), t);
                    return Err(Failure::before(e));
                }
            }
        }
        cancelled(ctx)?;

        // 5. expand migrations, before any new code runs
        self.migrate(Phase::Expand, run).await.map_err(Failure::before)?;
        cancelled(ctx)?;

        // 6. rollout
        let image = self.image_for(&to);
        let workloads = &self.settings.workloads;
        let t = Instant::now();
        if ctx.dry_run {
            run.record(
                Step::Rollout,
                StepStatus::Planned,
                format!(
                    "would set {image} on {} via {} and wait up to {:?}",
                    workloads.join(", "),
                    self.deployer.name(),
                    self.settings.rollout_timeout
                ),
                t,
            );
            if self.checks.is_some() || self.suite.is_some() {
                run.record(
                    Step::Smoke,
                    StepStatus::Planned,
                    "would run the smoke checks; undo on failure",
                    Instant::now(),
                );
            }
            self.migrate(Phase::Contract, run).await.map_err(Failure::before)?;
            return Ok(Outcome::Planned);
        }
        let rolled = async {
            self.deployer.set_image(workloads, &image).await?;
            self.deployer.wait_rollout(workloads, self.settings.rollout_timeout).await
        }
        .await;
        if let Err(e) = rolled {
            run.record(Step::Rollout, StepStatus::Failed, one_line(&e), t);
            return Err(self.rollback(run, e).await);
        }
        run.record(
            Step::Rollout,
            StepStatus::Ok,
            format!("{image} on {} complete and healthy", workloads.join(", ")),
            t,
        );

        // 7. smoke
        let t = Instant::now();
        if let Some(results) = self.run_checks(false, ctx.dry_run).await {
            if results.iter().any(|r| !r.ok) {
                let e = Error::Smoke(format!("smoke checks failed on {to}: {}", describe_failures(&results)));
                run.record(Step::Smoke, StepStatus::Failed, one_line(&e), t);
                return Err(self.rollback(run, e).await);
            }
            run.record(Step::Smoke, StepStatus::Ok, format!("{} check(s) passed", results.len()), t);
        }

        // 8. contract migrations: the new version is healthy everywhere. A failure here is
        // not rolled back: the new code runs on the expanded schema, and the contract
        // migrations can be retried.
        self.migrate(Phase::Contract, run).await.map_err(|e| Failure { error: e, rolled_back: None })?;
        Ok(Outcome::Updated(from, to))
    }

    fn check_change(&self, c: &ChangeRequest, to: &Version, req: &UpdateRequest) -> Result<(), Error> {
        Self::check_target(c, to)?;
        c.ensure_executable(req.calendar.as_ref(), req.now.unwrap_or_else(Utc::now))
    }

    fn check_target(c: &ChangeRequest, to: &Version) -> Result<(), Error> {
        if let Some(target) = &c.target_version {
            let target = parse_version(&format!("change {}.target_version", c.id), target)?;
            if target.cmp_precedence(to).is_ne() {
                return Err(Error::change(&c.id, format!("it covers version {target}, not {to}")));
            }
        }
        Ok(())
    }

    async fn migrate(&self, phase: Phase, run: &mut Run<'_>) -> Result<(), Error> {
        let step = if phase == Phase::Expand { Step::ExpandMigrations } else { Step::ContractMigrations };
        let Some(m) = &self.migrations else { return Ok(()) };
        let t = Instant::now();
        match m.migrate(phase, run.ctx).await {
            Ok(out) => {
                let detail = if run.ctx.dry_run {
                    if out.planned.is_empty() {
                        "nothing pending".to_owned()
                    } else {
                        format!("would apply {}", out.planned.join(", "))
                    }
                } else if out.applied.is_empty() {
                    "nothing pending".to_owned()
                } else {
                    let names: Vec<String> =
                        out.applied.iter().map(|a| format!("V{}__{}", a.version, a.name)).collect();
                    format!("applied {}", names.join(", "))
                };
                let key = format!("{phase}_migrations_applied");
                let prev = run.report.metrics.get(&key).copied().unwrap_or(0.0);
                run.report.metric(key, prev + out.applied.len() as f64);
                for missing in &out.missing_files {
                    run.report.warn(format!("applied migration {missing} has no file any more"));
                }
                let status = run.done();
                run.record(step, status, detail, t);
                Ok(())
            }
            Err(e) => {
                run.record(step, StepStatus::Failed, one_line(&e), t);
                Err(e)
            }
        }
    }

    async fn rollback(&self, run: &mut Run<'_>, error: Error) -> Failure {
        let t = Instant::now();
        let workloads = &self.settings.workloads;
        let undone = async {
            self.deployer.undo(workloads).await?;
            self.deployer.wait_rollout(workloads, self.settings.rollout_timeout).await
        }
        .await;
        match undone {
            Ok(()) => {
                run.record(
                    Step::Rollback,
                    StepStatus::Ok,
                    format!("{} back on the previous revision", workloads.join(", ")),
                    t,
                );
                Failure { error, rolled_back: Some(true) }
            }
            Err(e) => {
                run.record(Step::Rollback, StepStatus::Failed, format!("manual action needed: {}", one_line(&e)), t);
                run.report.warn(format!("rollback failed: {}", one_line(&e)));
                Failure { error, rolled_back: Some(false) }
            }
        }
    }
}

enum Outcome {
    Updated(Version, Version),
    Planned,
    Nothing,
}

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

/// The monthly "System Updates" task: an [`Updater`] with a fixed request.
#[derive(Debug, Clone)]
pub struct SystemUpdate {
    /// The orchestrator.
    pub updater: Updater,
    /// What to update to.
    pub request: UpdateRequest,
}

#[async_trait]
impl Task for SystemUpdate {
    fn name(&self) -> &str {
        UPDATE_TASK_ID
    }

    fn impact(&self) -> Impact {
        Impact::Downtime
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        self.updater.run(&self.request, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{TimeDelta, TimeZone};
    use maint_core::Status;
    use maint_notify::{Notifier, RetryPolicy, Target};
    use mockall::Sequence;
    use mockall::predicate::eq;

    use super::*;
    use crate::{
        ApprovalPolicy, CheckResult, MigrationOutcome, MockBackupGate, MockDeployer, MockHealthChecks,
        MockSchemaMigrations, NewChange, Revision, Risk,
    };

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<Notification>>);

    #[async_trait]
    impl Notifier for Recorder {
        fn name(&self) -> String {
            "recorder".into()
        }
        async fn send(&self, n: &Notification) -> Result<(), maint_notify::Error> {
            self.0.lock().unwrap().push(n.clone());
            Ok(())
        }
    }

    fn settings() -> UpdateSettings {
        UpdateSettings {
            workloads: vec!["api".into(), "worker".into()],
            image_repository: "registry.example/aindusdb".into(),
            rollout_timeout: Duration::from_secs(600),
        }
    }

    fn deployer_at(version: &str) -> MockDeployer {
        let mut d = MockDeployer::new();
        d.expect_name().return_const("mock".to_owned());
        let image = format!("registry.example/aindusdb:{version}");
        d.expect_history().with(eq("api")).returning(move |w| {
            Ok(vec![Revision {
                workload: w.to_owned(),
                number: 7,
                image: image.clone(),
                current: true,
                change_cause: None,
            }])
        });
        d
    }

    fn check(ok: bool) -> Vec<CheckResult> {
        vec![CheckResult {
            name: "/health/ready".into(),
            ok,
            status: Some(if ok { 200 } else { 503 }),
            error: (!ok).then(|| "HTTP 503 (expected 200)".to_owned()),
            attempts: 1,
        }]
    }

    fn applied(phase: Phase, names: &[&str]) -> MigrationOutcome {
        MigrationOutcome {
            phase,
            applied: names
                .iter()
                .enumerate()
                .map(|(i, n)| crate::AppliedStep {
                    version: (i + 1).to_string(),
                    name: (*n).to_owned(),
                    duration_ms: 1,
                })
                .collect(),
            ..MigrationOutcome::default()
        }
    }

    fn to(v: &str) -> UpdateRequest {
        UpdateRequest { to: Some(Version::parse(v).unwrap()), ..UpdateRequest::default() }
    }

    struct Harness {
        updater: Updater,
        sent: Arc<Recorder>,
    }

    fn harness(d: MockDeployer, m: MockSchemaMigrations, c: MockHealthChecks, b: Option<MockBackupGate>) -> Harness {
        let sent = Arc::new(Recorder::default());
        let dispatcher = Dispatcher::new(vec![Target::new(sent.clone())], RetryPolicy::default());
        let mut updater = Updater::new(Arc::new(d), settings())
            .unwrap()
            .with_migrations(Arc::new(m))
            .with_checks(Arc::new(c))
            .with_notify(dispatcher);
        if let Some(b) = b {
            updater = updater.with_backup(Arc::new(b));
        }
        Harness { updater, sent }
    }

    fn steps(r: &TaskReport) -> Vec<(String, String)> {
        r.items
            .iter()
            .map(|i| (i["step"].as_str().unwrap().to_owned(), i["status"].as_str().unwrap().to_owned()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[tokio::test]
    async fn happy_path_migrates_expand_before_the_rollout_and_contract_after() {
        let mut seq = Sequence::new();
        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        let mut b = MockBackupGate::new();
        c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
        b.expect_ensure_backup().times(1).in_sequence(&mut seq).returning(|_| Ok("recent verified backup k".into()));
        m.expect_migrate()
            .withf(|p, ctx| *p == Phase::Expand && !ctx.dry_run)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|p, _| Ok(applied(p, &["add_email"])));
        d.expect_set_image()
            .withf(|w, image| w == ["api", "worker"] && image == "registry.example/aindusdb:1.5.0")
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Ok(()));
        d.expect_wait_rollout().times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
        c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
        m.expect_migrate()
            .withf(|p, _| *p == Phase::Contract)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|p, _| Ok(applied(p, &["drop_legacy"])));
        d.expect_undo().never();
        let h = harness(d, m, c, Some(b));
        let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Ok, "{r:#?}");
        assert_eq!(
            steps(&r),
            pairs(&[
                ("version", "ok"),
                ("change", "skipped"),
                ("pre-checks", "ok"),
                ("backup", "ok"),
                ("expand-migrations", "ok"),
                ("rollout", "ok"),
                ("smoke", "ok"),
                ("contract-migrations", "ok"),
            ])
        );
        assert_eq!(r.items[0]["detail"], "minor update 1.4.0 -> 1.5.0");
        assert_eq!(r.metrics["expand_migrations_applied"], 1.0);
        assert_eq!(r.metrics["contract_migrations_applied"], 1.0);
        assert_eq!(r.metrics["notifications_delivered"], 1.0);
        let sent = h.sent.0.lock().unwrap();
        assert_eq!(sent[0].title, "AindusDB updated from 1.4.0 to 1.5.0");
        assert_eq!(sent[0].severity, Severity::Info);
    }

    #[tokio::test]
    async fn a_failed_rollout_is_undone_and_notified() {
        let mut seq = Sequence::new();
        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        c.expect_check().times(1).returning(|| check(true));
        m.expect_migrate().withf(|p, _| *p == Phase::Expand).times(1).returning(|p, _| Ok(applied(p, &[])));
        m.expect_migrate().withf(|p, _| *p == Phase::Contract).never();
        d.expect_set_image().times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
        d.expect_wait_rollout()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Err(Error::Deploy("api: progress deadline exceeded".into())));
        d.expect_undo().withf(|w| w == ["api", "worker"]).times(1).in_sequence(&mut seq).returning(|_| Ok(()));
        d.expect_wait_rollout().times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
        let h = harness(d, m, c, None);
        let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.error.as_deref(), Some("deploy: api: progress deadline exceeded"));
        let s = steps(&r);
        assert_eq!(&s[s.len() - 2..], pairs(&[("rollout", "failed"), ("rollback", "ok")]).as_slice());
        assert_eq!(r.metrics["rolled_back"], 1.0);
        let sent = h.sent.0.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].title, "AindusDB update failed and was rolled back");
        assert_eq!(sent[0].severity, Severity::Error);
        assert!(sent[0].body.contains("progress deadline"));
    }

    #[tokio::test]
    async fn a_failed_smoke_test_is_undone() {
        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        let mut seq = Sequence::new();
        c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
        c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(false));
        m.expect_migrate().withf(|p, _| *p == Phase::Expand).times(1).returning(|p, _| Ok(applied(p, &[])));
        m.expect_migrate().withf(|p, _| *p == Phase::Contract).never();
        d.expect_set_image().times(1).returning(|_, _| Ok(()));
        d.expect_wait_rollout().times(2).returning(|_, _| Ok(()));
        d.expect_undo().times(1).returning(|_| Ok(()));
        let h = harness(d, m, c, None);
        let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Failed);
        assert_eq!(
            r.error.as_deref(),
            Some("smoke: smoke checks failed on 1.5.0: /health/ready: HTTP 503 (expected 200)")
        );
        let s = steps(&r);
        assert_eq!(&s[s.len() - 3..], pairs(&[("rollout", "ok"), ("smoke", "failed"), ("rollback", "ok")]).as_slice());
        assert_eq!(h.sent.0.lock().unwrap()[0].title, "AindusDB update failed and was rolled back");
    }

    #[tokio::test]
    async fn a_failed_expand_migration_means_no_rollout() {
        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        c.expect_check().times(1).returning(|| check(true));
        m.expect_migrate().times(1).returning(|_, _| {
            Err(Error::ChecksumMismatch {
                version: "3".into(),
                name: "x".into(),
                applied: "a".into(),
                found: "b".into(),
            })
        });
        d.expect_set_image().never();
        d.expect_wait_rollout().never();
        d.expect_undo().never();
        let h = harness(d, m, c, None);
        let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Failed);
        assert_eq!(steps(&r).last().unwrap(), &("expand-migrations".to_owned(), "failed".to_owned()));
        assert_eq!(r.metrics["rolled_back"], 0.0);
        let sent = h.sent.0.lock().unwrap();
        assert_eq!(sent[0].title, "AindusDB update failed before the rollout");
    }

    #[tokio::test]
    async fn a_failed_rollback_is_critical() {
        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        c.expect_check().times(1).returning(|| check(true));
        m.expect_migrate().times(1).returning(|p, _| Ok(applied(p, &[])));
        d.expect_set_image().times(1).returning(|_, _| Ok(()));
        d.expect_wait_rollout().times(1).returning(|_, _| Err(Error::Deploy("stuck".into())));
        d.expect_undo().times(1).returning(|_| Err(Error::Deploy("api: no previous revision".into())));
        let h = harness(d, m, c, None);
        let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
        assert_eq!(steps(&r).last().unwrap(), &("rollback".to_owned(), "failed".to_owned()));
        assert!(r.warnings.iter().any(|w| w.contains("no previous revision")));
        assert_eq!(h.sent.0.lock().unwrap()[0].severity, Severity::Critical);
    }

    #[tokio::test]
    async fn failed_pre_checks_or_backup_change_nothing() {
        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        c.expect_check().times(1).returning(|| check(false));
        m.expect_migrate().never();
        d.expect_set_image().never();
        let h = harness(d, m, c, None);
        let r = h.updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
        assert!(r.error.as_deref().unwrap().starts_with("smoke: pre-checks failed, nothing was changed"));

        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        let mut b = MockBackupGate::new();
        c.expect_check().times(1).returning(|| check(true));
        b.expect_ensure_backup().times(1).returning(|_| Err(Error::Backup("pg_dump: not found".into())));
        m.expect_migrate().never();
        d.expect_set_image().never();
        let h = harness(d, m, c, Some(b));
        let r = h.updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
        assert_eq!(r.error.as_deref(), Some("backup: pg_dump: not found"));
    }

    #[tokio::test]
    async fn too_little_free_space_stops_before_anything_changes() {
        // the real free space of the filesystem holding the temp dir
        let tmp = std::env::temp_dir();
        let need = |bytes| vec![DiskCheck { path: tmp.clone(), min_free_bytes: bytes }];
        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        c.expect_check().never();
        m.expect_migrate().never();
        d.expect_set_image().never();
        let h = harness(d, m, c, None);
        let updater = h.updater.with_disk_checks(need(u64::MAX / 2));
        let r = updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Failed);
        assert_eq!(steps(&r).last().unwrap(), &("pre-checks".to_owned(), "failed".to_owned()));
        let e = r.error.unwrap();
        assert!(e.contains("not enough free space, nothing was changed") && e.contains("GiB required"), "{e}");
        let missing = vec![DiskCheck { path: "/nonexistent/volume".into(), min_free_bytes: 1 }];
        let h = harness(deployer_at("1.4.0"), MockSchemaMigrations::new(), MockHealthChecks::new(), None);
        let r = h.updater.with_disk_checks(missing).run(&to("1.4.1"), &TaskContext::new(true)).await;
        assert!(r.error.unwrap().contains("/nonexistent/volume: cannot read its free space"));
        // enough room: the step passes and says so (dry run: the rest is only planned)
        let mut m = MockSchemaMigrations::new();
        m.expect_migrate().returning(|p, _| Ok(applied(p, &[])));
        let h = harness(deployer_at("1.4.0"), m, MockHealthChecks::new(), None);
        let mut c = MockHealthChecks::new();
        c.expect_check().returning(|| check(true));
        let r = h
            .updater
            .with_checks(Arc::new(c))
            .with_disk_checks(need(1))
            .run(&to("1.4.1"), &TaskContext::new(true))
            .await;
        assert!(steps(&r).contains(&("pre-checks".to_owned(), "ok".to_owned())), "{r:?}");
    }

    #[tokio::test]
    async fn version_policy_refuses_downgrades_and_unapproved_major_updates_before_anything() {
        for (target, force, expected) in [
            ("1.3.0", false, "refusing to downgrade from 1.4.0 to 1.3.0"),
            ("2.0.0", false, "1.4.0 -> 2.0.0 is a major update"),
        ] {
            let mut d = deployer_at("1.4.0");
            let mut m = MockSchemaMigrations::new();
            let mut c = MockHealthChecks::new();
            c.expect_check().never();
            m.expect_migrate().never();
            d.expect_set_image().never();
            let h = harness(d, m, c, None);
            let req = UpdateRequest { force, ..to(target) };
            let r = h.updater.run(&req, &TaskContext::new(false)).await;
            assert_eq!(r.status, Status::Failed);
            assert!(r.error.as_deref().unwrap().starts_with(expected), "{:?}", r.error);
            assert_eq!(steps(&r), pairs(&[("version", "failed")]));
        }
        let mut d = deployer_at("1.4.0");
        d.expect_set_image().never();
        let h = harness(d, MockSchemaMigrations::new(), MockHealthChecks::new(), None);
        let r = h.updater.run(&to("1.4.0"), &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Skipped);
        assert!(h.sent.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_major_update_runs_only_with_its_change_request_inside_the_window() {
        let cal = Calendar::from_yaml(
            "monthly_maintenance:\n  day: \"First Sunday\"\n  time: \"02:00 UTC\"\n  duration: \"4 hours\"\n  tasks:\n    - {name: \"System Updates\", impact: \"downtime\"}\n",
        )
        .unwrap();
        let at = |d, h, mi| Utc.with_ymd_and_hms(2026, 12, d, h, mi, 0).unwrap();
        let mut cr = ChangeRequest::new(
            "CR-4",
            NewChange {
                title: "AindusDB 2.0".into(),
                risk: Risk::High,
                impact: Some(Impact::Downtime),
                rollback_plan: "undo".into(),
                requester: "bob".into(),
                approvers: vec!["alice".into(), "carol".into()],
                window: Some("monthly".into()),
                estimated_minutes: 90,
                target_version: Some("2.0.0".into()),
                ..NewChange::default()
            },
            &ApprovalPolicy::default(),
            at(1, 9, 0),
        )
        .unwrap();
        cr.approve("alice", None, at(1, 10, 0)).unwrap();
        cr.approve("carol", None, at(1, 10, 0)).unwrap();
        cr.schedule("ops", at(6, 2, 0), Some(&cal), at(1, 11, 0)).unwrap();

        // Outside the slot: refused before any check or change.
        let mut d = deployer_at("1.4.0");
        d.expect_set_image().never();
        let mut c = MockHealthChecks::new();
        c.expect_check().never();
        let h = harness(d, MockSchemaMigrations::new(), c, None);
        let req = UpdateRequest {
            change: Some(cr.clone()),
            calendar: Some(cal.clone()),
            now: Some(at(6, 4, 0)),
            ..to("2.0.0")
        };
        let r = h.updater.run(&req, &TaskContext::new(false)).await;
        assert!(r.error.as_deref().unwrap().contains("execution refused outside the approved slot"), "{:?}", r.error);
        assert_eq!(steps(&r), pairs(&[("version", "ok"), ("change", "failed")]));

        // Another version than the change covers: refused.
        let h = harness(deployer_at("1.4.0"), MockSchemaMigrations::new(), MockHealthChecks::new(), None);
        let req = UpdateRequest {
            change: Some(cr.clone()),
            calendar: Some(cal.clone()),
            now: Some(at(6, 2, 30)),
            ..to("3.0.0")
        };
        let r = h.updater.run(&req, &TaskContext::new(false)).await;
        assert!(r.error.as_deref().unwrap().contains("it covers version 2.0.0, not 3.0.0"), "{:?}", r.error);

        // Inside: runs.
        let mut d = deployer_at("1.4.0");
        d.expect_set_image().times(1).returning(|_, _| Ok(()));
        d.expect_wait_rollout().times(1).returning(|_, _| Ok(()));
        let mut m = MockSchemaMigrations::new();
        m.expect_migrate().times(2).returning(|p, _| Ok(applied(p, &[])));
        let mut c = MockHealthChecks::new();
        c.expect_check().times(2).returning(|| check(true));
        let h = harness(d, m, c, None);
        let req = UpdateRequest { change: Some(cr), calendar: Some(cal), now: Some(at(6, 2, 30)), ..to("2.0.0") };
        let r = h.updater.run(&req, &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Ok, "{r:#?}");
        assert_eq!(r.items[1]["detail"], "CR-4 is scheduled and in its window");
        assert_eq!(r.metrics["update_major"], 1.0);
        assert_eq!(h.sent.0.lock().unwrap()[0].fields["change"], "CR-4");
    }

    /// A change in a memory store, scheduled at 2026-11-25 14:00 for 60 minutes.
    async fn stored_change(store: &crate::MemoryChangeStore) -> (String, DateTime<Utc>) {
        let start = Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0).unwrap();
        let new = NewChange {
            title: "AindusDB 1.5.0".into(),
            requester: "bob".into(),
            approvers: vec!["alice".into()],
            estimated_minutes: 60,
            ..NewChange::default()
        };
        let c = store.create(new, &ApprovalPolicy::default(), start).await.unwrap();
        store
            .update(&c.id, &mut |c| {
                c.approve("alice", None, start)?;
                c.schedule("ops", start, None, start)
            })
            .await
            .unwrap();
        (c.id, start)
    }

    #[tokio::test]
    async fn the_orchestrator_records_the_life_of_the_change_in_its_store() {
        use crate::{ChangeState, MemoryChangeStore};
        // Outside the slot: refused, and the stored change stays scheduled.
        let store = Arc::new(MemoryChangeStore::new());
        let (id, start) = stored_change(&store).await;
        let mut d = deployer_at("1.4.0");
        d.expect_set_image().never();
        let h = harness(d, MockSchemaMigrations::new(), MockHealthChecks::new(), None);
        let updater = h.updater.with_changes(store.clone());
        let change = Some(store.load(&id).await.unwrap());
        let late = UpdateRequest { change: change.clone(), now: Some(start + TimeDelta::hours(2)), ..to("1.5.0") };
        let r = updater.run(&late, &TaskContext::new(false)).await;
        assert!(r.error.as_deref().unwrap().contains("execution refused outside the approved slot"), "{:?}", r.error);
        assert_eq!(store.load(&id).await.unwrap().state, ChangeState::Scheduled);

        // Inside, but a pre-check fails: nothing changed, the change included (still scheduled).
        let mut d = deployer_at("1.4.0");
        d.expect_set_image().never();
        let mut c = MockHealthChecks::new();
        c.expect_check().times(1).returning(|| check(false));
        let updater = harness(d, MockSchemaMigrations::new(), c, None).updater.with_changes(store.clone());
        let req = UpdateRequest { change: change.clone(), now: Some(start + TimeDelta::minutes(5)), ..to("1.5.0") };
        let r = updater.run(&req, &TaskContext::new(false)).await;
        assert!(r.error.as_deref().unwrap().contains("pre-checks failed, nothing was changed"), "{:?}", r.error);
        assert_eq!(store.load(&id).await.unwrap().state, ChangeState::Scheduled);

        // Inside: in_progress, then completed.
        let mut d = deployer_at("1.4.0");
        d.expect_set_image().times(1).returning(|_, _| Ok(()));
        d.expect_wait_rollout().times(1).returning(|_, _| Ok(()));
        let mut m = MockSchemaMigrations::new();
        m.expect_migrate().times(2).returning(|p, _| Ok(applied(p, &[])));
        let mut c = MockHealthChecks::new();
        c.expect_check().times(2).returning(|| check(true));
        let updater = harness(d, m, c, None).updater.with_changes(store.clone());
        let req = UpdateRequest {
            change: change.clone(),
            now: Some(start + TimeDelta::minutes(5)),
            actor: Some("ops-alice".into()),
            ..to("1.5.0")
        };
        let r = updater.run(&req, &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Ok, "{r:#?}");
        assert_eq!(r.items[1]["detail"], "CR-1 is scheduled and in its window");
        assert!(r.items.iter().any(|i| i["step"] == "change" && i["detail"] == "CR-1: now in_progress"), "{r:#?}");
        assert_eq!(r.items.last().unwrap(), &serde_json::json!({ "change": "CR-1", "state": "completed" }));
        let stored = store.load(&id).await.unwrap();
        let actions: Vec<(&str, &str, ChangeState)> =
            stored.history.iter().map(|e| (e.action.as_str(), e.by.as_str(), e.to)).collect();
        assert_eq!(
            &actions[3..],
            [("start", "ops-alice", ChangeState::InProgress), ("complete", "ops-alice", ChangeState::Completed)]
        );

        // A failed smoke test that is undone: failed, then rolled_back.
        let (id, start) = stored_change(&store).await;
        let mut d = deployer_at("1.4.0");
        let mut c = MockHealthChecks::new();
        let mut seq = Sequence::new();
        c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
        c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(false));
        let mut m = MockSchemaMigrations::new();
        m.expect_migrate().times(1).returning(|p, _| Ok(applied(p, &[])));
        d.expect_set_image().times(1).returning(|_, _| Ok(()));
        d.expect_wait_rollout().times(2).returning(|_, _| Ok(()));
        d.expect_undo().times(1).returning(|_| Ok(()));
        let updater = harness(d, m, c, None).updater.with_changes(store.clone());
        let req = UpdateRequest {
            change: Some(store.load(&id).await.unwrap()),
            now: Some(start + TimeDelta::minutes(5)),
            ..to("1.5.0")
        };
        let r = updater.run(&req, &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.items.last().unwrap()["state"], "rolled_back");
        let stored = store.load(&id).await.unwrap();
        let tail: Vec<(&str, ChangeState)> = stored.history.iter().map(|e| (e.action.as_str(), e.to)).collect();
        assert_eq!(
            &tail[3..],
            [("start", ChangeState::InProgress), ("fail", ChangeState::Failed), ("roll_back", ChangeState::RolledBack)]
        );
        assert!(stored.history[4].detail.as_deref().unwrap().starts_with("smoke: smoke checks failed on 1.5.0"));
    }

    #[tokio::test]
    async fn a_dry_run_plans_every_step_and_changes_nothing() {
        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        let mut b = MockBackupGate::new();
        c.expect_check().times(1).returning(|| check(true));
        b.expect_ensure_backup().withf(|ctx| ctx.dry_run).times(1).returning(|_| Ok("would create a backup".into()));
        m.expect_migrate().withf(|_, ctx| ctx.dry_run).times(2).returning(|p, _| {
            Ok(MigrationOutcome {
                phase: p,
                dry_run: true,
                planned: vec![format!("V1__{p}")],
                ..MigrationOutcome::default()
            })
        });
        d.expect_set_image().never();
        d.expect_wait_rollout().never();
        d.expect_undo().never();
        let h = harness(d, m, c, Some(b));
        let r = h.updater.run(&to("1.5.0"), &TaskContext::new(true)).await;
        assert_eq!(r.status, Status::Ok, "{r:#?}");
        assert!(r.dry_run);
        assert_eq!(
            steps(&r),
            pairs(&[
                ("version", "ok"),
                ("change", "skipped"),
                ("pre-checks", "ok"),
                ("backup", "planned"),
                ("expand-migrations", "planned"),
                ("rollout", "planned"),
                ("smoke", "planned"),
                ("contract-migrations", "planned"),
            ])
        );
        assert_eq!(r.items[4]["detail"], "would apply V1__expand");
        assert!(
            r.items[5]["detail"]
                .as_str()
                .unwrap()
                .starts_with("would set registry.example/aindusdb:1.5.0 on api, worker")
        );
        assert!(h.sent.0.lock().unwrap().is_empty(), "a dry run notifies nobody");
    }

    #[tokio::test]
    async fn an_audit_failure_is_a_warning_and_a_dry_run_is_not_audited() {
        let mut d = deployer_at("1.4.0");
        d.expect_set_image().times(1).returning(|_, _| Ok(()));
        d.expect_wait_rollout().times(1).returning(|_, _| Ok(()));
        let mut m = MockSchemaMigrations::new();
        m.expect_migrate().returning(|p, _| Ok(applied(p, &[])));
        let mut c = MockHealthChecks::new();
        c.expect_check().returning(|| check(true));
        let mut audit = crate::MockAuditLog::new();
        audit
            .expect_record()
            .withf(|r| r.to_version == "1.4.1" && r.from_version.as_deref() == Some("1.4.0") && r.status == "ok")
            .times(1)
            .returning(|_| Err(Error::Deploy("audit database down".into())));
        let audit: Arc<dyn AuditLog> = Arc::new(audit);
        let h = harness(d, m, c, None);
        let updater = h.updater.with_audit(audit);
        let r = updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Warning);
        assert!(r.warnings.iter().any(|w| w.contains("cannot write the audit record")), "{:?}", r.warnings);
        let planned = updater.run(&to("1.4.1"), &TaskContext::new(true)).await;
        assert_eq!(planned.status, Status::Ok, "record() was expected once: the dry run did not call it");
    }

    #[tokio::test]
    async fn the_smoke_suite_runs_after_the_checks_and_before_only_when_asked() {
        for before in [false, true] {
            let mut d = deployer_at("1.4.0");
            d.expect_set_image().times(1).returning(|_, _| Ok(()));
            d.expect_wait_rollout().times(2).returning(|_, _| Ok(()));
            d.expect_undo().times(1).returning(|_| Ok(()));
            let mut m = MockSchemaMigrations::new();
            m.expect_migrate().returning(|p, _| Ok(applied(p, &[])));
            let mut c = MockHealthChecks::new();
            c.expect_check().times(2).returning(|| check(true));
            let mut suite = MockHealthChecks::new();
            let mut seq = Sequence::new();
            if before {
                suite.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
            }
            suite.expect_check().times(1).in_sequence(&mut seq).returning(|| {
                vec![CheckResult {
                    name: "veritas-sum".into(),
                    ok: false,
                    status: Some(200),
                    error: Some("$.result: expected 5 (±0), got 5.5".into()),
                    attempts: 1,
                }]
            });
            let h = harness(d, m, c, None);
            let updater = h.updater.with_smoke(Arc::new(suite), before);
            let r = updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
            assert_eq!(
                r.error.as_deref(),
                Some("smoke: smoke checks failed on 1.4.1: veritas-sum: $.result: expected 5 (±0), got 5.5")
            );
            assert_eq!(r.items[2]["detail"], if before { "2 check(s) passed" } else { "1 check(s) passed" });
            assert_eq!(r.metrics["rolled_back"], 1.0);
        }
    }

    #[test]
    fn settings_are_checked() {
        let d: Arc<dyn Deployer> = Arc::new(MockDeployer::new());
        let err = Updater::new(d.clone(), UpdateSettings { workloads: vec![], ..settings() }).unwrap_err();
        assert_eq!(err.to_string(), "update.workloads: at least one workload is required");
        let err = Updater::new(d, UpdateSettings { image_repository: " ".into(), ..settings() }).unwrap_err();
        assert!(err.is_bad_input());
    }
}
