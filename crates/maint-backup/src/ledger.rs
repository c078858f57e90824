//! The ledger (`backups/ledger.json`): when each backup was last verified and
//! restore-tested, updated with conditional writes so concurrent runs never lose results.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::retention::days_before;
use crate::{BackupEntry, Error};

/// Where the ledger lives, next to the backups.
pub const LEDGER_KEY: &str = "backups/ledger.json";

/// How many times [`Ledger::update`] re-reads and re-applies when another run wrote first.
const UPDATE_ATTEMPTS: usize = 10;

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
        let (ledger, _, warning) = Ledger::read(store, set_aside).await?;
        Ok((ledger, warning))
    }

    /// [`Ledger::load`], with the version read (none when there is no ledger yet).
    async fn read(
        store: &Arc<dyn ObjectStore>,
        set_aside: bool,
    ) -> Result<(Ledger, Option<UpdateVersion>, Option<String>), Error> {
        let path = Path::from(LEDGER_KEY);
        let got = match store.get(&path).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok((Ledger::default(), None, None)),
            Err(e) => return Err(e.into()),
        };
        let version = Some(UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() });
        let bytes = got.bytes().await?;
        match serde_json::from_slice(&bytes) {
            Ok(l) => Ok((l, version, None)),
            Err(e) if !set_aside => Ok((Ledger::default(), version, Some(format!("the ledger is corrupt ({e})")))),
            Err(e) => {
                let aside = format!("{LEDGER_KEY}.corrupt-{}", Utc::now().format("%Y%m%dT%H%M%SZ"));
                store.put(&Path::from(aside.as_str()), PutPayload::from(bytes)).await?;
                let warning = format!("the ledger was corrupt ({e}); set aside as {aside}");
                Ok((Ledger::default(), version, Some(warning)))
            }
        }
    }

    fn payload(&self) -> Result<PutPayload, Error> {
        let body = serde_json::to_vec_pretty(self).map_err(|e| Error::invalid("ledger", e.to_string()))?;
        Ok(PutPayload::from(body))
    }

    /// Writes the ledger as it is, over whatever another run wrote since it was read:
    /// runs that record results use [`Ledger::update`].
    pub async fn save(&self, store: &Arc<dyn ObjectStore>) -> Result<(), Error> {
        store.put(&Path::from(LEDGER_KEY), self.payload()?).await?;
        Ok(())
    }

    /// Records results without losing what other runs wrote meanwhile: reads the ledger,
    /// applies `apply`, and writes it back only if it is still the version read (`If-Match`
    /// on its ETag; create-only when there was none). When another run wrote in between, it
    /// reads again and applies `apply` again (up to 10 times). A corrupt ledger is set aside
    /// and replaced; the returned warning says so. On a store without conditional updates
    /// (`file://`) the write follows the read at once, unconditionally.
    pub async fn update(
        store: &Arc<dyn ObjectStore>,
        mut apply: impl FnMut(&mut Ledger) + Send,
    ) -> Result<Option<String>, Error> {
        let path = Path::from(LEDGER_KEY);
        let mut warning = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut ledger, version, w) = Ledger::read(store, true).await?;
            warning = warning.or(w);
            apply(&mut ledger);
            let body = ledger.payload()?;
            let mode = version.map_or(PutMode::Create, PutMode::Update);
            match store.put_opts(&path, body.clone(), PutOptions::from(mode)).await {
                Ok(_) => return Ok(warning),
                Err(object_store::Error::NotImplemented { .. }) => {
                    store.put(&path, body).await?;
                    return Ok(warning);
                }
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. })
                    if attempt < UPDATE_ATTEMPTS =>
                {
                    tracing::debug!(attempt, "the ledger changed since it was read; reading it again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The backups whose last successful verification is older than `every_days` (or never).
    pub fn due<'a>(&self, entries: &'a [BackupEntry], now: DateTime<Utc>, every_days: u32) -> Vec<&'a BackupEntry> {
        // An interval reaching before the earliest date: nothing verified is due again.
        let horizon = days_before(now, every_days).unwrap_or(DateTime::<Utc>::MIN_UTC);
        entries
            .iter()
            .filter(|e| match self.entries.get(&e.key) {
                Some(LedgerEntry { verified_at: Some(at), verified_ok: Some(true), .. }) => *at < horizon,
                _ => true,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn a_huge_interval_is_never_due_again_instead_of_panicking() {
        let mut ledger = Ledger::default();
        let now = Utc::now();
        let entry = |key: &str| BackupEntry { key: key.into(), object: None, manifest: None };
        ledger.entries.insert(
            "old".into(),
            LedgerEntry {
                verified_at: Some(now - TimeDelta::days(400)),
                verified_ok: Some(true),
                ..LedgerEntry::default()
            },
        );
        let entries = [entry("old"), entry("never")];
        let due: Vec<&str> = ledger.due(&entries, now, u32::MAX).iter().map(|e| e.key.as_str()).collect();
        assert_eq!(due, ["never"]);
    }
}
