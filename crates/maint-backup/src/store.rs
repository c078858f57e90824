//! Keys in the store (`backups/YYYY/MM/DD/<db>-<time>.dump[.gz|.zst]`) and the catalog that
//! pairs each dump with its manifest.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};

use crate::{Compression, Error};

const MANIFEST_SUFFIX: &str = ".manifest.json";

/// `backups/YYYY/MM/DD/<db>-<YYYYMMDDTHHMMSSmmmZ>.dump[.gz|.zst]`, the old scripts' layout.
pub fn backup_key(database: &str, at: DateTime<Utc>, compression: Compression) -> String {
    format!(
        "{}/{database}-{}.dump{}",
        day_prefix(at.date_naive()),
        at.format("%Y%m%dT%H%M%S%3fZ"),
        compression.extension()
    )
}

/// When a backup was taken, from its key (`...-20261124T020304123Z.dump.gz`).
pub fn key_time(key: &str) -> Option<DateTime<Utc>> {
    key_parts(key).map(|(_, at)| at)
}

/// The database a backup is of, from its key (`.../aindus-db-20261124T020304123Z.dump.gz`
/// is of `aindus-db`).
pub fn key_database(key: &str) -> Option<&str> {
    key_parts(key).map(|(db, _)| db)
}

fn key_parts(key: &str) -> Option<(&str, DateTime<Utc>)> {
    let name = key.rsplit('/').next()?;
    let stem = name.split(".dump").next()?;
    let (database, stamp) = stem.rsplit_once('-').unwrap_or(("", stem));
    let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%3fZ").ok()?.and_utc();
    Some((database, at))
}

/// `backups/YYYY/MM/DD`.
pub fn day_prefix(day: NaiveDate) -> String {
    format!("backups/{}", day.format("%Y/%m/%d"))
}

/// The manifest key of a backup key.
pub fn manifest_key(key: &str) -> String {
    format!("{key}{MANIFEST_SUFFIX}")
}

/// A backup found in the store: its dump, its manifest, or both.
#[derive(Debug, Clone)]
pub struct BackupEntry {
    /// The dump's key.
    pub key: String,
    /// The dump object, if present.
    pub object: Option<ObjectMeta>,
    /// The manifest object, if present.
    pub manifest: Option<ObjectMeta>,
}

/// Lists the backups under a prefix (`backups/2026/11/23`, or `backups` for all), pairing
/// each dump with its manifest. Other objects are ignored.
pub async fn catalog(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<BackupEntry>, Error> {
    let prefix = Path::from(prefix.trim_matches('/'));
    let objects: Vec<ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
    let mut by_key: BTreeMap<String, BackupEntry> = BTreeMap::new();
    for meta in objects {
        let loc = meta.location.to_string();
        if let Some(key) = loc.strip_suffix(MANIFEST_SUFFIX) {
            by_key
                .entry(key.to_owned())
                .or_insert_with(|| BackupEntry { key: key.to_owned(), object: None, manifest: None })
                .manifest = Some(meta);
        } else if Compression::from_key(&loc).is_some() {
            by_key
                .entry(loc.clone())
                .or_insert_with(|| BackupEntry { key: loc, object: None, manifest: None })
                .object = Some(meta);
        }
    }
    Ok(by_key.into_values().collect())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn keys_carry_their_time() {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 2, 3, 4).unwrap() + chrono::TimeDelta::milliseconds(56);
        let key = backup_key("aindus-db", at, Compression::Zstd);
        assert_eq!(key, "backups/2026/11/24/aindus-db-20261124T020304056Z.dump.zst");
        assert_eq!(key_time(&key), Some(at));
        assert_eq!(key_database(&key), Some("aindus-db"));
        assert_eq!(key_database("backups/x/notes.txt"), None);
        assert_eq!(manifest_key(&key), format!("{key}.manifest.json"));
        assert_eq!(key_time("backups/x/notes.txt"), None);
    }
}
