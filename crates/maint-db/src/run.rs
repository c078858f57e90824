//! What every task does around its work (all six calendar tasks): validate the
//! configuration and prepare the pool, take the per-database run lock, stop on
//! cancellation.

use std::sync::Arc;

use maint_core::{TaskContext, TaskReport, one_line};

use crate::{Config, Db, DbBackend, Error, PgBackend, RUN_LOCK_KEY, RunLock, RunLockAttempt, Settings};

/// Validates the configuration and prepares a pool (no I/O yet). The URL is required.
pub(crate) fn connect(config: &Config) -> Result<(Settings, Arc<dyn DbBackend>), Error> {
    let settings = config.validate()?;
    let url = config
        .url
        .as_ref()
        .ok_or_else(|| Error::invalid("database_url", "required (--database-url or MAINT_DATABASE_URL)"))?;
    let db = Db::connect(url, &settings)?;
    Ok((settings, Arc::new(PgBackend::new(db))))
}

/// Takes the per-database run lock; when a run is in progress the report is skipped
/// (naming the holder), when the lock cannot be asked for it is failed, and `None` returned.
pub(crate) async fn take_run_lock(backend: &dyn DbBackend, report: &mut TaskReport) -> Option<RunLock> {
    match backend.lock_run().await {
        Ok(RunLockAttempt::Acquired(lock)) => Some(lock),
        Ok(RunLockAttempt::Busy { holder }) => {
            let by = holder.map(|p| format!(" held by pid {p}")).unwrap_or_default();
            report.skip(format!("a run is in progress on this database (advisory lock {RUN_LOCK_KEY}{by})"));
            None
        }
        Err(e) => {
            report.fail(one_line(&e));
            None
        }
    }
}

pub(crate) fn check(ctx: &TaskContext) -> Result<(), Error> {
    if ctx.cancel.is_cancelled() { Err(Error::Cancelled) } else { Ok(()) }
}
