//! The end of an update: the report's status and the notification of the outcome, and
//! the audit record of a real run.

use chrono::Utc;
use maint_core::{TaskReport, one_line};
use maint_notify::{Notification, Severity};
use semver::Version;

use super::{Failure, Outcome, UPDATE_TASK_ID, UpdateRequest, Updater};
use crate::AuditRecord;

impl Updater {
    /// Marks a failure in the report, and notifies the outcome (a dry run notifies nobody).
    pub(super) async fn conclude(
        &self,
        report: &mut TaskReport,
        outcome: Result<Outcome, Failure>,
        req: &UpdateRequest,
        dry_run: bool,
    ) {
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
                if !dry_run {
                    let (severity, title) = match rolled_back {
                        Some(true) => (Severity::Error, "AindusDB update failed and was rolled back"),
                        Some(false) => (Severity::Critical, "AindusDB update failed and the rollback failed too"),
                        None => (Severity::Error, "AindusDB update failed before the rollout"),
                    };
                    self.notify(report, severity, title.into(), msg, req).await;
                }
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

    /// Writes the audit record of a real run (finished `report`, running version `from`);
    /// a failure to write it is a warning.
    pub(super) async fn audit(
        &self,
        report: &mut TaskReport,
        from: Option<&Version>,
        req: &UpdateRequest,
        dry_run: bool,
    ) {
        let (Some(audit), false, Some(to)) = (&self.audit, dry_run, &req.to) else { return };
        let record = AuditRecord {
            started_at: report.started_at,
            finished_at: Utc::now(),
            actor: req.actor.clone().unwrap_or_else(|| "unknown".into()),
            from_version: from.map(ToString::to_string),
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
}
