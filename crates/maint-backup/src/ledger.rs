use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::{BackupEntry, Error};

/// Where the ledger lives, next to the backups.
pub const LEDGER_KEY: &str = "backups/ledger.json";

/// What was verified and restore-tested when: one JSON object next to the backups, so a
/// rolling verification reads each backup once every N days instead of all of them daily.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// By backup key.
    pub entries: BTreeMap<String, LedgerEntry>,
}

/// The ledger's record of one backup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Last verification.
    pub verified_at: Option<DateTime<Utc>>,
    /// Its outcome.
    pub verified_ok: Option<bool>,
    /// Last restore test.
    pub restored_at: Option<DateTime<Utc>>,
    /// Its outcome.
    pub restore_ok: Option<bool>,
    /// How long the restore took (the RTO measured).
    pub restore_seconds: Option<f64>,
}

impl Ledger {
    /// Loads the ledger; a missing one is empty, a corrupt one is replaced by an empty one
    /// (returned as a warning), never a halt. With `set_aside` the corrupt object is copied
    /// to `ledger.json.corrupt-<time>` first; dry runs and read-only checks pass `false`.
    pub async fn load(store: &Arc<dyn ObjectStore>, set_aside: bool) -> Result<(Ledger, Option<String>), Error> {
        let path = Path::from(LEDGER_KEY);
        let bytes = match store.get(&path).await {
            Ok(g) => g.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok((Ledger::default(), None)),
            Err(e) => return Err(e.into()),
        };
        match serde_json::from_slice(&bytes) {
            Ok(l) => Ok((l, None)),
            Err(e) if !set_aside => Ok((Ledger::default(), Some(format!("the ledger is corrupt ({e})")))),
            Err(e) => {
                let aside = format!("{LEDGER_KEY}.corrupt-{}", Utc::now().format("%Y%m%dT%H%M%SZ"));
                store.put(&Path::from(aside.as_str()), PutPayload::from(bytes)).await?;
                Ok((Ledger::default(), Some(format!("the ledger was corrupt ({e}); set aside as {aside}"))))
            }
        }
    }

    /// Writes the ledger.
    pub async fn save(&self, store: &Arc<dyn ObjectStore>) -> Result<(), Error> {
        let body = serde_json::to_vec_pretty(self).map_err(|e| Error::invalid("ledger", e.to_string()))?;
        store.put(&Path::from(LEDGER_KEY), PutPayload::from(body)).await?;
        Ok(())
    }

    /// The backups whose last successful verification is older than `every_days` (or never).
    pub fn due<'a>(&self, entries: &'a [BackupEntry], now: DateTime<Utc>, every_days: u32) -> Vec<&'a BackupEntry> {
        let horizon = now - TimeDelta::days(i64::from(every_days));
        entries
            .iter()
            .filter(|e| match self.entries.get(&e.key) {
                Some(LedgerEntry { verified_at: Some(at), verified_ok: Some(true), .. }) => *at < horizon,
                _ => true,
            })
            .collect()
    }
}
