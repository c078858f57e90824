//! Streaming compression to a temporary file, fsync, verification, and the final rename.
//! Memory stays bounded: one read buffer plus the encoder's window, whatever the file size.

use std::io::{Read, SeekFrom};
use std::path::Path;

use async_compression::Level;
use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use async_compression::tokio::write::{GzipEncoder, ZstdEncoder};
use async_compression::zstd::CParameter;
use maint_core::tokio_util::sync::CancellationToken;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use xxhash_rust::xxh3::Xxh3;

use crate::{Compression, Error, Result};

const BUF: usize = 256 * 1024;

/// What one compression did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    /// Bytes read from the log.
    pub bytes_in: u64,
    /// Bytes of the compressed file.
    pub bytes_out: u64,
    /// xxh3-64 of the bytes read.
    pub hash: u64,
}

/// How an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// The format.
    pub compression: Compression,
    /// Its level (see [`Compression::levels`]).
    pub level: i32,
    /// zstd only: worker threads besides the caller (0: compress on the calling thread).
    /// gzip has no multi-threaded encoder; it ignores this.
    pub workers: u32,
}

impl Codec {
    /// A single-threaded codec.
    pub fn new(compression: Compression, level: i32) -> Self {
        Codec { compression, level, workers: 0 }
    }

    /// zstd workers so that `files` compressions at once use the machine's cores and no more:
    /// one file alone on two cores gets two workers, two files get none each.
    pub fn spread_over(self, files: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_file = cores / files.max(1);
        Codec { workers: if per_file > 1 { per_file as u32 } else { 0 }, ..self }
    }
}

fn encoder(codec: Codec, out: BufWriter<tokio::fs::File>) -> Box<dyn AsyncWrite + Unpin + Send> {
    let level = Level::Precise(codec.level);
    match codec.compression {
        Compression::Gzip => Box::new(GzipEncoder::with_quality(out, level)),
        // Jobs of 4 MiB (zstd's default is 4 windows, 8 MiB or more) keep the buffered input of
        // the workers, and so the peak memory, small whatever the level.
        Compression::Zstd if codec.workers > 0 => Box::new(ZstdEncoder::with_quality_and_params(
            out,
            level,
            &[CParameter::nb_workers(codec.workers), CParameter::job_size(4 << 20)],
        )),
        Compression::Zstd => Box::new(ZstdEncoder::with_quality(out, level)),
        Compression::None => Box::new(out),
    }
}

fn decoder(c: Compression, input: BufReader<tokio::fs::File>) -> Box<dyn AsyncRead + Unpin + Send> {
    match c {
        Compression::Gzip => {
            let mut d = GzipDecoder::new(input);
            d.multiple_members(true);
            Box::new(d)
        }
        Compression::Zstd => {
            let mut d = ZstdDecoder::new(input);
            d.multiple_members(true);
            Box::new(d)
        }
        Compression::None => Box::new(input),
    }
}

/// Compresses bytes `offset..offset+limit` of `src` (to its end when `limit` is `None`,
/// including whatever is appended while reading) into `tmp`, fsyncs `tmp`, then decompresses
/// it and checks length and xxh3 against what was read. `tmp` is removed on any error.
pub async fn compress_verified(
    src: &Path,
    offset: u64,
    limit: Option<u64>,
    tmp: &Path,
    codec: Codec,
    cancel: &CancellationToken,
) -> Result<Packed> {
    let r = compress_inner(src, offset, limit, tmp, codec, cancel).await;
    if r.is_err() {
        let _ = tokio::fs::remove_file(tmp).await;
    }
    r
}

async fn compress_inner(
    src: &Path,
    offset: u64,
    limit: Option<u64>,
    tmp: &Path,
    codec: Codec,
    cancel: &CancellationToken,
) -> Result<Packed> {
    let mut input = tokio::fs::File::open(src).await.map_err(Error::io("open", src))?;
    input.seek(SeekFrom::Start(offset)).await.map_err(Error::io("seek", src))?;
    let out = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .await
        .map_err(Error::io("create", tmp))?;
    let mut w = encoder(codec, BufWriter::with_capacity(BUF, out));
    let mut buf = vec![0u8; BUF];
    let mut hasher = Xxh3::new();
    let mut total = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let want = match limit {
            Some(l) => (l - total).min(BUF as u64) as usize,
            None => BUF,
        };
        if want == 0 {
            break;
        }
        let n = input.read(&mut buf[..want]).await.map_err(Error::io("read", src))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n]).await.map_err(Error::io("write", tmp))?;
        total += n as u64;
    }
    if let Some(l) = limit
        && total != l
    {
        return Err(Error::Verify { path: src.to_owned(), detail: format!("log shrank: read {total} of {l} bytes") });
    }
    w.shutdown().await.map_err(Error::io("write", tmp))?;
    drop(w);
    // fsync through a fresh descriptor: it flushes the inode, whichever fd wrote it.
    let f = tokio::fs::File::open(tmp).await.map_err(Error::io("open", tmp))?;
    f.sync_all().await.map_err(Error::io("fsync", tmp))?;
    let bytes_out = f.metadata().await.map_err(Error::io("stat", tmp))?.len();
    drop(f);
    let hash = hasher.digest();
    verify(tmp, codec.compression, total, hash, cancel).await?;
    Ok(Packed { bytes_in: total, bytes_out, hash })
}

/// Decompresses `path` and checks that it gives `len` bytes hashing to `hash`.
pub async fn verify(path: &Path, c: Compression, len: u64, hash: u64, cancel: &CancellationToken) -> Result<()> {
    let input = tokio::fs::File::open(path).await.map_err(Error::io("open", path))?;
    let mut r = decoder(c, BufReader::with_capacity(BUF, input));
    let mut buf = vec![0u8; BUF];
    let mut hasher = Xxh3::new();
    let mut total = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let n = r.read(&mut buf).await.map_err(|e| Error::Verify { path: path.to_owned(), detail: e.to_string() })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    if total != len {
        return Err(Error::Verify { path: path.to_owned(), detail: format!("{total} bytes, expected {len}") });
    }
    if hasher.digest() != hash {
        return Err(Error::Verify { path: path.to_owned(), detail: "checksum differs".to_owned() });
    }
    Ok(())
}

/// xxh3 of the first `len` bytes of a file, or `None` when it is shorter.
pub(crate) fn hash_prefix(path: &Path, len: u64) -> std::io::Result<Option<u64>> {
    let f = std::fs::File::open(path)?;
    let mut r = f.take(len);
    let mut buf = vec![0u8; BUF];
    let mut hasher = Xxh3::new();
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total == len).then(|| hasher.digest()))
}
