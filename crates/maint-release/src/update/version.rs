//! Step 1, the version policy: the running version (from the current revision's image
//! tag unless given), then downgrade and major-update rules ([`check_update`]).

use std::time::Instant;

use maint_core::one_line;
use semver::Version;

use super::{Failure, Run, Step, StepStatus, UpdateRequest, Updater};
use crate::{Error, UpdateKind, VersionPolicy, check_update, image_tag, parse_version};

impl Updater {
    /// The running version; `None` when it already is `to` (nothing to do: the report
    /// says so and the update stops there).
    pub(super) async fn check_version(
        &self,
        req: &UpdateRequest,
        to: &Version,
        run: &mut Run<'_>,
    ) -> Result<Option<Version>, Failure> {
        let t = Instant::now();
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
        let decision = match check_update(&from, to, &policy) {
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
            return Ok(None);
        }
        let what = if decision.downgrade { "downgrade (forced)" } else { "update" };
        run.record(Step::Version, StepStatus::Ok, format!("{} {what} {from} -> {to}", decision.kind), t);
        Ok(Some(from))
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
}
