//! Step 6, the rollout: set the new image on every workload and wait until complete and
//! healthy (only planned in a dry run), and the rollback to the previous revision after a
//! failed rollout or smoke test.

use std::time::Instant;

use maint_core::one_line;
use semver::Version;

use super::{Failure, Run, Step, StepStatus, Updater};
use crate::Error;

impl Updater {
    /// Sets the image of `to` and waits; a failure is undone.
    pub(super) async fn rollout(&self, to: &Version, run: &mut Run<'_>) -> Result<(), Failure> {
        let image = self.image_for(to);
        let workloads = &self.settings.workloads;
        let t = Instant::now();
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
        Ok(())
    }

    /// A dry run's rollout and smoke steps: what they would do.
    pub(super) fn plan_rollout(&self, to: &Version, run: &mut Run<'_>) {
        let t = Instant::now();
        run.record(
            Step::Rollout,
            StepStatus::Planned,
            format!(
                "would set {} on {} via {} and wait up to {:?}",
                self.image_for(to),
                self.settings.workloads.join(", "),
                self.deployer.name(),
                self.settings.rollout_timeout
            ),
            t,
        );
        if self.checks.is_some() || self.suite.is_some() {
            run.record(Step::Smoke, StepStatus::Planned, "would run the smoke checks; undo on failure", Instant::now());
        }
    }

    /// Back to the previous revision after `error`; the failure says whether it worked.
    pub(super) async fn rollback(&self, run: &mut Run<'_>, error: Error) -> Failure {
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
