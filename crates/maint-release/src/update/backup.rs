//! Step 4, the backup gate: a recent verified backup, or a new one, before anything
//! changes ([`BackupGate`](crate::BackupGate)).

use std::time::Instant;

use maint_core::one_line;

use super::{Failure, Run, Step, StepStatus, Updater};

impl Updater {
    /// Ensures a backup when a gate is configured; its failure stops the update.
    pub(super) async fn backup(&self, run: &mut Run<'_>) -> Result<(), Failure> {
        let Some(backup) = &self.backup else { return Ok(()) };
        let t = Instant::now();
        match backup.ensure_backup(run.ctx).await {
            Ok(detail) => {
                let status = run.done();
                run.record(Step::Backup, status, detail, t);
                Ok(())
            }
            Err(e) => {
                run.record(Step::Backup, StepStatus::Failed, one_line(&e), t);
                Err(Failure::before(e))
            }
        }
    }
}
