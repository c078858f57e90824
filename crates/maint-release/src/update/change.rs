//! Step 2, the change request: checked before anything runs (its target version, state,
//! slot and window), moved to `in_progress` in its store once the pre-checks passed, and
//! to `completed`, `failed` or `rolled_back` at the end.

use std::time::Instant;

use chrono::Utc;
use maint_core::one_line;
use semver::Version;

use super::{Failure, Outcome, Run, Step, StepStatus, UpdateRequest, Updater};
use crate::{ChangeRequest, ChangeState, Error, parse_version};

impl Updater {
    /// Checks the request's change, if any; a dry run only warns when it would be refused.
    pub(super) fn check_change(&self, req: &UpdateRequest, to: &Version, run: &mut Run<'_>) -> Result<(), Failure> {
        let t = Instant::now();
        let Some(c) = &req.change else {
            run.record(Step::Change, StepStatus::Skipped, "no change request", t);
            return Ok(());
        };
        let check = Self::check_target(c, to)
            .and_then(|()| c.ensure_executable(req.calendar.as_ref(), req.now.unwrap_or_else(Utc::now)));
        match (check, run.ctx.dry_run) {
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
        Ok(())
    }

    /// Moves the stored change to `in_progress` (a real run with a store only): the window
    /// is checked again in the same transaction.
    pub(super) async fn start_change(
        &self,
        req: &UpdateRequest,
        to: &Version,
        run: &mut Run<'_>,
    ) -> Result<(), Failure> {
        let (Some(store), Some(c), false) = (&self.changes, &req.change, run.ctx.dry_run) else { return Ok(()) };
        let t = Instant::now();
        let (by, now) = (Self::change_actor(req), req.now.unwrap_or_else(Utc::now));
        let started = store
            .update(&c.id, &mut |c| {
                Self::check_target(c, to)?;
                c.start(&by, req.calendar.as_ref(), now)
            })
            .await;
        match started {
            Ok(c) => {
                run.record(Step::Change, StepStatus::Ok, format!("{}: now in_progress", c.id), t);
                run.started_change = Some(c.id);
                Ok(())
            }
            Err(e) => {
                run.record(Step::Change, StepStatus::Failed, one_line(&e), t);
                Err(Failure::before(e))
            }
        }
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

    fn change_actor(req: &UpdateRequest) -> String {
        req.actor.clone().filter(|a| !a.trim().is_empty()).unwrap_or_else(|| "maint-update".into())
    }

    /// Records how a started change ended; returns its id and final state. A failure to
    /// record it is a warning (the update itself is over).
    pub(super) async fn finish_change(
        &self,
        run: &mut Run<'_>,
        outcome: &Result<Outcome, Failure>,
        req: &UpdateRequest,
    ) -> Option<(String, ChangeState)> {
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
}
