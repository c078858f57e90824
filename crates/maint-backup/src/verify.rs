//! Verification: one streaming read per backup (stored and dump sizes and SHA-256, the
//! `PGDMP` header, the manifest's key), `jobs` backups at a time.

use std::pin::Pin;
use std::sync::Arc;

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio_util::io::StreamReader;

use crate::hashing::{HashingReader, Progress, hex};
use crate::{BackupEntry, Compression, Error, Manifest, manifest_key};

/// The verification of one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// The dump's key.
    pub key: String,
    /// Whether everything matched.
    pub ok: bool,
    /// What did not (empty when ok).
    pub problems: Vec<String>,
    /// Stored bytes read.
    pub bytes_read: u64,
}

/// A reader over an object's bytes, with a decoder for its compression.
pub(crate) fn decoder<'a, R: AsyncRead + Unpin + Send + 'a>(
    compression: Compression,
    inner: R,
) -> Pin<Box<dyn AsyncRead + Send + 'a>> {
    match compression {
        Compression::None => Box::pin(inner),
        Compression::Gzip => {
            let mut d = GzipDecoder::new(BufReader::new(inner));
            d.multiple_members(true);
            Box::pin(d)
        }
        Compression::Zstd => Box::pin(ZstdDecoder::new(BufReader::new(inner))),
    }
}

/// Opens an object as a byte stream reader.
pub(crate) async fn open_object(
    store: &Arc<dyn ObjectStore>,
    key: &str,
) -> Result<impl AsyncRead + Unpin + Send + 'static, Error> {
    let get = store.get(&Path::from(key)).await?;
    Ok(StreamReader::new(get.into_stream().map_err(std::io::Error::other)))
}

/// Loads and checks a backup's manifest.
pub(crate) async fn load_manifest(store: &Arc<dyn ObjectStore>, key: &str) -> Result<Result<Manifest, String>, Error> {
    let bytes = match store.get(&Path::from(manifest_key(key))).await {
        Ok(g) => g.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(Err("no manifest: the backup is incomplete".into())),
        Err(e) => return Err(e.into()),
    };
    Ok(Manifest::parse(&bytes).and_then(|m| {
        if m.key == key { Ok(m) } else { Err(format!("the manifest belongs to another backup ({})", m.key)) }
    }))
}

/// Reads a backup once, stream-wise (no temp file, bounded memory): size and SHA-256 of
/// the stored bytes, decompression, size and SHA-256 of the dump, the `PGDMP` header;
/// compares all with the manifest.
pub async fn verify_one(store: &Arc<dyn ObjectStore>, entry: &BackupEntry) -> VerifyResult {
    let mut result = VerifyResult { key: entry.key.clone(), ok: false, problems: Vec::new(), bytes_read: 0 };
    if entry.object.is_none() {
        result.problems.push("the dump object is missing".into());
    }
    let manifest = match load_manifest(store, &entry.key).await {
        Ok(Ok(m)) => Some(m),
        Ok(Err(problem)) => {
            result.problems.push(problem);
            None
        }
        Err(e) => {
            result.problems.push(format!("cannot read the manifest: {}", maint_core::one_line(&e)));
            None
        }
    };
    let (Some(m), Some(_)) = (manifest, &entry.object) else { return result };
    if Compression::from_key(&entry.key) != Some(m.compression) {
        result
            .problems
            .push(format!("the key's extension does not match the manifest's compression ({})", m.compression));
    }
    match read_through(store, &entry.key, m.compression, m.dump_bytes).await {
        Ok((stored_bytes, stored_sha, dump_bytes, dump_sha, header)) => {
            result.bytes_read = stored_bytes;
            if stored_bytes != m.stored_bytes {
                result
                    .problems
                    .push(format!("stored size is {stored_bytes} bytes, the manifest says {}", m.stored_bytes));
            }
            if stored_sha != m.stored_sha256 {
                result.problems.push("SHA-256 of the stored bytes does not match the manifest".into());
            }
            if dump_bytes != m.dump_bytes {
                result.problems.push(format!("dump size is {dump_bytes} bytes, the manifest says {}", m.dump_bytes));
            }
            if dump_sha != m.dump_sha256 {
                result.problems.push("SHA-256 of the dump does not match the manifest".into());
            }
            if !header {
                result.problems.push("not a pg_dump custom-format archive (no PGDMP header)".into());
            }
        }
        Err((read, e)) => {
            result.bytes_read = read;
            result.problems.push(format!("cannot read as {}: {e}", m.compression));
        }
    }
    result.ok = result.problems.is_empty();
    result
}

type Sums = (u64, String, u64, String, bool);

async fn read_through(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    compression: Compression,
    dump_bytes: u64,
) -> Result<Sums, (u64, String)> {
    let object = open_object(store, key).await.map_err(|e| (0, maint_core::one_line(&e)))?;
    let mut stored = HashingReader::new(object);
    let (dump_bytes, dump_sha, header) = {
        let mut reader = decoder(compression, &mut stored);
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut head: Vec<u8> = Vec::with_capacity(5);
        let mut buf = vec![0u8; 1 << 20];
        let mut progress = Progress::new("verifying", key, Some(dump_bytes));
        loop {
            progress.tick(total);
            let n = match reader.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => return Err((0, e.to_string())),
            };
            if n == 0 {
                break;
            }
            if head.len() < 5 {
                head.extend(buf[..n].iter().take(5 - head.len()));
            }
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        (total, hex(&hasher.finalize()), head == b"PGDMP")
    };
    // A decoder may stop at the end of its stream: read the rest so trailing bytes count.
    let mut rest = Vec::new();
    if let Err(e) = stored.read_to_end(&mut rest).await {
        return Err((stored.bytes(), e.to_string()));
    }
    Ok((stored.bytes(), stored.hex(), dump_bytes, dump_sha, header))
}

/// Verifies backups, `jobs` at a time.
pub async fn verify_all(store: &Arc<dyn ObjectStore>, entries: &[BackupEntry], jobs: usize) -> Vec<VerifyResult> {
    let sem = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let (store, entry, sem) = (store.clone(), entry.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            (i, verify_one(&store, &entry).await)
        });
    }
    let mut out = Vec::with_capacity(entries.len());
    while let Some(r) = set.join_next().await {
        if let Ok(pair) = r {
            out.push(pair);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
