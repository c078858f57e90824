//! The `[backup]` section ([`Config`]), the store and the compression: `open_store` opens
//! `s3://`, `file://` (private) and `memory://` stores; [`Compression`] is how a dump is
//! stored (zstd by default).

use std::fmt;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use serde::{Deserialize, Serialize};

use maint_core::{Secret, Size};

use crate::local::PrivateFs;
use crate::retention::check_days;
use crate::{CreateOptions, Error, RestoreOptions, Retention};

/// Backups verified at once when `jobs` is not set.
pub const DEFAULT_VERIFY_JOBS: usize = 4;

/// The `[backup]` section of `maint.toml`, one schema for `maint` and `maint-backup` (each
/// reads what it needs; `MAINT_*` variables and flags override it in each binary).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `s3://bucket/prefix` or `file:///path` (see [`open_store`]).
    pub store: Option<String>,
    /// The database `maint-backup create` dumps.
    pub database_url: Option<Secret>,
    /// Where restore tests create their scratch database (omit to skip restore tests).
    pub admin_url: Option<Secret>,
    /// How dumps are stored (default zstd).
    pub compression: Option<Compression>,
    /// The directory of the `pg_dump`/`pg_restore` to run, whatever the server's version
    /// (default: picked by the server's major under [`CLIENT_ROOT`](crate::CLIENT_ROOT)).
    pub client_dir: Option<PathBuf>,
    /// Backups verified at once (default [`DEFAULT_VERIFY_JOBS`]).
    pub jobs: Option<usize>,
    /// Rolling verification: backups not verified successfully in the last N days
    /// (instead of yesterday's backups).
    pub rolling_days: Option<u32>,
    /// What `prune` keeps.
    pub retention: Option<Retention>,
    /// `pg_restore --jobs` of restore tests (default [`DEFAULT_RESTORE_JOBS`](crate::DEFAULT_RESTORE_JOBS)).
    pub restore_jobs: Option<usize>,
    /// `maintenance_work_mem` of restore tests (`1GB`; default: see
    /// [`maintenance_work_mem`](crate::maintenance_work_mem)).
    pub maintenance_work_mem: Option<Size>,
    /// `max_parallel_maintenance_workers` of restore tests (default 0).
    pub max_parallel_maintenance_workers: Option<u32>,
}

impl Config {
    /// Checks the values; an error names the field as written in `maint.toml`
    /// (`backup.restore_jobs`).
    pub fn validate(&self) -> Result<(), Error> {
        if self.store.as_deref().is_some_and(str::is_empty) {
            return Err(Error::invalid("backup.store", "empty (omit it, or give s3://bucket/prefix or file:///path)"));
        }
        for (field, jobs) in [("backup.jobs", self.jobs), ("backup.restore_jobs", self.restore_jobs)] {
            if jobs == Some(0) {
                return Err(Error::invalid(field, "must be at least 1"));
            }
        }
        if let Some(days) = self.rolling_days {
            check_days(days, "backup.rolling_days")?;
        }
        if let Some(size) = self.maintenance_work_mem.filter(|s| s.bytes() < 1 << 20) {
            return Err(Error::invalid("backup.maintenance_work_mem", format!("{size} is less than 1MB")));
        }
        if let Some(policy) = &self.retention {
            policy.validate().map_err(|e| match e {
                Error::Invalid { field, message } if field == "retention" => {
                    Error::invalid("backup.retention", message)
                }
                Error::Invalid { field, message } => Error::invalid(format!("backup.retention.{field}"), message),
                other => other,
            })?;
        }
        Ok(())
    }

    /// Backups verified at once.
    pub fn verify_jobs(&self) -> usize {
        self.jobs.unwrap_or(DEFAULT_VERIFY_JOBS)
    }

    /// What `create` needs, when a `database_url` is set.
    pub fn create_options(&self) -> Option<CreateOptions> {
        let mut opts = CreateOptions::new(self.database_url.clone()?);
        opts.compression = self.compression.unwrap_or_default();
        opts.pg_dump = self.client_dir.as_ref().map(|d| d.join("pg_dump"));
        Some(opts)
    }

    /// What a restore test needs, when an `admin_url` is set.
    pub fn restore_options(&self) -> Option<RestoreOptions> {
        let mut opts = RestoreOptions::new(self.admin_url.clone()?);
        opts.pg_restore = self.client_dir.as_ref().map(|d| d.join("pg_restore"));
        opts.jobs = self.restore_jobs.unwrap_or(opts.jobs);
        // A number without a unit is bytes to `pg_size_bytes`.
        opts.maintenance_work_mem = self.maintenance_work_mem.map(|s| s.bytes().to_string());
        opts.max_parallel_maintenance_workers = self.max_parallel_maintenance_workers.unwrap_or(0);
        Some(opts)
    }
}

/// How a dump is compressed in the store (`pg_dump` itself runs with `--compress=0`, see
/// [`DumpLayout`](crate::DumpLayout): the dump is compressed once, here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `.dump`: stored as `pg_dump` wrote it.
    None,
    /// `.dump.gz`: gzip level 6, one thread.
    Gzip,
    /// `.dump.zst`: zstd level 2 on up to 4 threads, the default (see `docs/backup.md` for
    /// the measurements behind it).
    #[default]
    Zstd,
}

impl Compression {
    /// The file extension after `.dump`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    /// The compression a key's extension implies.
    pub fn from_key(key: &str) -> Option<Self> {
        if key.ends_with(".dump.gz") {
            Some(Compression::Gzip)
        } else if key.ends_with(".dump.zst") {
            Some(Compression::Zstd)
        } else if key.ends_with(".dump") {
            Some(Compression::None)
        } else {
            None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "zstd" | "zst" => Ok(Compression::Zstd),
            _ => Err(format!("unknown compression {s:?} (expected gzip, zstd or none)")),
        }
    }
}

/// Opens a store from a URL: `s3://bucket/prefix` (credentials, region, endpoint and
/// allow-http from the usual `AWS_*` environment variables), `file:///path` (created 0700
/// if missing; everything written under it is private: directories 0700, files 0600) or
/// `memory://`. Keys are relative to the prefix.
pub fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>, Error> {
    let bad = |m: String| Error::invalid("store", format!("{url:?}: {m}"));
    let parsed = url::Url::parse(url)
        .map_err(|e| bad(format!("not a URL ({e}); expected s3://bucket/prefix or file:///path")))?;
    let prefix = parsed.path().trim_matches('/').to_owned();
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "s3" => {
            let bucket = parsed.host_str().filter(|b| b.len() >= 3).ok_or_else(|| bad("no bucket name".into()))?;
            let s3 = AmazonS3Builder::from_env().with_bucket_name(bucket).build().map_err(|e| bad(e.to_string()))?;
            if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix.as_str())) }
        }
        "file" => {
            let path = parsed.to_file_path().map_err(|_| bad("not a local path".into()))?;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(|e| bad(format!("cannot create {}: {e}", path.display())))?;
            Arc::new(PrivateFs::new(path).map_err(|e| bad(e.to_string()))?)
        }
        "memory" => Arc::new(InMemory::new()),
        other => return Err(bad(format!("unknown scheme {other:?} (expected s3, file or memory)"))),
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        backup: Config,
    }

    fn parse(text: &str) -> Result<Config, String> {
        let file: File = maint_core::parse_toml(text, Path::new("maint.toml")).map_err(|e| e.to_string())?;
        file.backup.validate().map_err(|e| e.to_string())?;
        Ok(file.backup)
    }

    /// One `[backup]` text serves `maint` (store, verification, restore tests) and
    /// `maint-backup` (create, restore-test, prune); the shipped `deploy/maint.toml` parses.
    #[test]
    fn one_backup_section_serves_both_binaries() {
        let cfg = parse(
            "[backup]\nstore = \"s3://b/prod\"\ndatabase_url = \"postgresql://backup:pw@db/aindusdb\"\n\
             admin_url = \"postgresql://restore:pw@scratch/postgres\"\ncompression = \"gzip\"\n\
             client_dir = \"/usr/lib/postgresql/17/bin\"\njobs = 2\nrolling_days = 7\nrestore_jobs = 2\n\
             maintenance_work_mem = \"512MB\"\nmax_parallel_maintenance_workers = 1\n\
             [backup.retention]\nkeep_daily = 3\n",
        )
        .unwrap();
        assert_eq!((cfg.store.as_deref(), cfg.verify_jobs(), cfg.rolling_days), (Some("s3://b/prod"), 2, Some(7)));
        assert_eq!(cfg.retention.unwrap().keep_daily, 3);
        let create = cfg.create_options().unwrap();
        assert_eq!(create.database_url.expose(), "postgresql://backup:pw@db/aindusdb");
        assert_eq!(create.compression, Compression::Gzip);
        assert_eq!(create.pg_dump.unwrap(), Path::new("/usr/lib/postgresql/17/bin/pg_dump"));
        let restore = cfg.restore_options().unwrap();
        assert_eq!(restore.admin_url.expose(), "postgresql://restore:pw@scratch/postgres");
        assert_eq!(restore.pg_restore.unwrap(), Path::new("/usr/lib/postgresql/17/bin/pg_restore"));
        assert_eq!(restore.jobs, 2);
        assert_eq!(restore.maintenance_work_mem.as_deref(), Some("536870912"));
        assert_eq!(restore.max_parallel_maintenance_workers, 1);

        let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/maint.toml")).unwrap();
        let cfg = parse(&shipped).unwrap();
        assert_eq!((cfg.verify_jobs(), cfg.rolling_days), (4, Some(7)));
        let empty = parse("").unwrap();
        assert!(empty.create_options().is_none() && empty.restore_options().is_none());
        assert_eq!(empty.verify_jobs(), DEFAULT_VERIFY_JOBS);

        for (text, error) in [
            ("[backup]\nstroe = \"s3://x\"\n", "unknown field `stroe`"),
            ("[backup]\nrestore_jobs = 0\n", "backup.restore_jobs: must be at least 1"),
            ("[backup]\njobs = 0\n", "backup.jobs: must be at least 1"),
            ("[backup]\nmaintenance_work_mem = \"512kB\"\n", "backup.maintenance_work_mem: 524288B is less than 1MB"),
            ("[backup]\nmaintenance_work_mem = \"lots\"\n", "backup.maintenance_work_mem"),
            ("[backup]\nstore = \"\"\n", "backup.store: empty"),
            ("[backup.retention]\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n", "backup.retention: "),
            ("[backup.retention]\nmin_age_days = 4000000000\n", "backup.retention.min_age_days: "),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(error), "{text}: {e}");
        }
    }
}
