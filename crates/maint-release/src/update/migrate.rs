//! Steps 5 and 8, the migrations: expand before the rollout, contract after the smoke
//! checks ([`SchemaMigrations`](crate::SchemaMigrations)).

use std::time::Instant;

use maint_core::one_line;

use super::{Run, Step, StepStatus, Updater};
use crate::{Error, Phase};

impl Updater {
    /// Runs the migrations of one phase, when migrations are configured.
    pub(super) async fn migrate(&self, phase: Phase, run: &mut Run<'_>) -> Result<(), Error> {
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
}
