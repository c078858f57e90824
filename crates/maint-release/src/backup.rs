//! The backup gate of an update: a restorable backup before anything changes
//! ([`BackupGate`], and [`StoreBackupGate`] on maint-backup's store).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use maint_backup::object_store::ObjectStore;
use maint_backup::{BackupEntry, CreateOptions, catalog, create, day_prefix, key_time, verify_one};
use maint_core::{TaskContext, one_line};

use crate::Error;

/// Makes sure a restorable backup exists before the update touches anything. Object safe,
/// so the orchestrator's tests can replace it.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait BackupGate: Send + Sync + Debug + 'static {
    /// Returns a one-line description of the backup the update may fall back on (its key),
    /// creating one when none is recent enough. With `ctx.dry_run`, creates nothing.
    async fn ensure_backup(&self, ctx: &TaskContext) -> Result<String, Error>;
}

/// [`BackupGate`] with maint-backup: the newest complete backup under `backups/` counts
/// when it is younger than `max_age` and passes a full streaming verification
/// (`verify_one`); otherwise a new one is created with `pg_dump` and verified.
#[derive(Debug, Clone)]
pub struct StoreBackupGate {
    store: Arc<dyn ObjectStore>,
    create: CreateOptions,
    max_age: Duration,
}

impl StoreBackupGate {
    /// A gate over a store (see `maint_backup::open_store`).
    pub fn new(store: Arc<dyn ObjectStore>, create: CreateOptions, max_age: Duration) -> Self {
        StoreBackupGate { store, create, max_age }
    }

    async fn newest(&self, prefix: &str) -> Result<Option<BackupEntry>, Error> {
        let entries = catalog(&self.store, prefix).await.map_err(|e| Error::Backup(one_line(&e)))?;
        Ok(entries
            .into_iter()
            .filter(|e| e.object.is_some() && e.manifest.is_some())
            .filter_map(|e| key_time(&e.key).map(|t| (t, e)))
            .max_by_key(|(t, _)| *t)
            .map(|(_, e)| e))
    }
}

#[async_trait]
impl BackupGate for StoreBackupGate {
    async fn ensure_backup(&self, ctx: &TaskContext) -> Result<String, Error> {
        let max_age = chrono::TimeDelta::from_std(self.max_age).unwrap_or(chrono::TimeDelta::MAX);
        let mut reason = "no complete backup".to_owned();
        if let Some(entry) = self.newest("backups").await? {
            let age = key_time(&entry.key).map(|t| Utc::now() - t);
            if age.is_some_and(|a| a <= max_age) {
                let v = verify_one(&self.store, &entry).await;
                if v.ok {
                    return Ok(format!("recent verified backup {}", entry.key));
                }
                reason = format!("newest backup {} failed verification: {}", entry.key, v.problems.join("; "));
            } else {
                reason = format!("newest backup {} is older than {:?}", entry.key, self.max_age);
            }
        }
        if ctx.dry_run {
            return Ok(format!("would create a backup ({reason})"));
        }
        let manifest = create(&self.store, &self.create, &ctx.cancel).await.map_err(|e| Error::Backup(one_line(&e)))?;
        let prefix = day_prefix(manifest.started_at.date_naive());
        let entry = catalog(&self.store, &prefix)
            .await
            .map_err(|e| Error::Backup(one_line(&e)))?
            .into_iter()
            .find(|e| e.key == manifest.key)
            .ok_or_else(|| Error::Backup(format!("the new backup {} is not in the store", manifest.key)))?;
        let v = verify_one(&self.store, &entry).await;
        if !v.ok {
            return Err(Error::Backup(format!(
                "new backup {} failed verification: {}",
                entry.key,
                v.problems.join("; ")
            )));
        }
        Ok(format!("created and verified backup {} ({reason})", entry.key))
    }
}
