//! The manifest stored next to each dump: sizes, hashes, fingerprints and the dump's
//! layout ([`DumpLayout`]; manifests written before the field existed still parse).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Compression, TableFingerprint};

/// The manifest format this version writes and reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

/// How the dump inside a stored object was written. Verification and the restore test read
/// both the same way (`pg_restore` reads either); the field tells what a backup is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpLayout {
    /// `pg_dump --format=custom` with its own default compression (gzip per table), then
    /// [`Manifest::compression`] on top: backups made before `layout` existed (manifests
    /// without the field).
    #[default]
    PgDumpCompressed,
    /// `pg_dump --format=custom --compress=0`, compressed once, by
    /// [`Manifest::compression`] (multi-threaded zstd by default).
    PgDumpZ0,
}

/// What a backup claims to be; stored as JSON next to the dump (`<key>.manifest.json`).
/// A backup without a complete manifest is never considered valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT_VERSION`].
    pub format_version: u32,
    /// The key of the dump this manifest describes (catches swapped manifests).
    pub key: String,
    /// Source database name.
    pub database: String,
    /// Source server version (`15.18`).
    pub server_version: String,
    /// Compression of the stored bytes.
    pub compression: Compression,
    /// How the dump was written (absent in manifests written before: `pg_dump_compressed`).
    #[serde(default)]
    pub layout: DumpLayout,
    /// When the snapshot was taken.
    pub started_at: DateTime<Utc>,
    /// When the upload finished.
    pub finished_at: DateTime<Utc>,
    /// Size of the stored object.
    pub stored_bytes: u64,
    /// SHA-256 of the stored object (hex).
    pub stored_sha256: String,
    /// Size of the uncompressed `pg_dump` output.
    pub dump_bytes: u64,
    /// SHA-256 of the uncompressed `pg_dump` output (hex).
    pub dump_sha256: String,
    /// Per-table row counts and digests, taken in the dump's snapshot.
    pub tables: Vec<TableFingerprint>,
}

impl Manifest {
    /// Parses and checks the format version and required fields.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid: {e}"))?;
        if m.format_version != MANIFEST_FORMAT_VERSION {
            return Err(format!(
                "manifest format {} is not supported (expected {MANIFEST_FORMAT_VERSION})",
                m.format_version
            ));
        }
        if m.stored_sha256.len() != 64 || m.dump_sha256.len() != 64 {
            return Err("manifest has no complete hashes".into());
        }
        Ok(m)
    }
}
