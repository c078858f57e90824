//! The store and the compression: `open_store` opens `s3://`, `file://` (private) and
//! `memory://` stores; [`Compression`] is how a dump is stored (zstd by default).

use std::fmt;
use std::os::unix::fs::DirBuilderExt;
use std::str::FromStr;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::local::PrivateFs;

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
