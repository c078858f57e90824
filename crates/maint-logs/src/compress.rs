//! Streaming compression to a temporary file, verification (overlapping it), fsync.
//! Memory stays bounded: one read buffer plus the encoder's window, whatever the file size.
//! The temporary file has a random name and is created `O_EXCL` beside the archive (never
//! through a link planted there); the source is read through a descriptor the caller opened.

use std::fs::{File, Metadata, Permissions};
use std::io::SeekFrom;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use async_compression::Level;
use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use async_compression::tokio::write::{GzipEncoder, ZstdEncoder};
use async_compression::zstd::CParameter;
use maint_core::tokio_util::sync::CancellationToken;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use xxhash_rust::xxh3::Xxh3;

use crate::state::sync_dir;
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

/// How many bytes of the archive are surely in the file, and whether the writer is done.
type Written = tokio::sync::watch::Sender<(u64, bool)>;

/// The archive file under the encoder, publishing how much of it is written, so that the
/// verification can decompress it again while it grows (on the other core) instead of
/// after. tokio's `File` hands each write to a blocking thread and returns at once; that
/// write is complete when the next `poll_write`, `poll_flush` or `poll_shutdown` returns.
struct Published {
    file: tokio::fs::File,
    tx: Written,
    confirmed: u64,
    in_flight: u64,
}

impl Published {
    fn confirm(&mut self, done: bool) {
        self.confirmed += std::mem::take(&mut self.in_flight);
        self.tx.send_replace((self.confirmed, done));
    }
}

impl AsyncWrite for Published {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.file).poll_write(cx, buf))?;
        this.confirm(false);
        this.in_flight = n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.file).poll_flush(cx))?;
        this.confirm(false);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.file).poll_shutdown(cx))?;
        this.confirm(true);
        Poll::Ready(Ok(()))
    }
}

fn encoder(codec: Codec, out: BufWriter<Published>) -> Box<dyn AsyncWrite + Unpin + Send> {
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

fn decoder<R: tokio::io::AsyncBufRead + Unpin + Send + 'static>(
    c: Compression,
    input: R,
) -> Box<dyn AsyncRead + Unpin + Send> {
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

/// A verified archive not yet in place: a temporary file `.<random>.<archive name>.tmp`
/// in the archive's directory, created `O_EXCL` (so never through a planted link).
/// Dropped without [`Staged::persist`], it is removed.
#[derive(Debug)]
pub struct Staged {
    /// What the compression did.
    pub packed: Packed,
    tmp: tempfile::NamedTempFile,
}

impl Staged {
    /// The temporary file.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Puts the archive in place: gives it the owner and permission bits of `like` (the
    /// log's; when it cannot be chowned, the owner's bits only), fsyncs it, renames it to
    /// `archive` and fsyncs the directory. Returns the open archive.
    pub fn persist(self, archive: &Path, like: Option<&Metadata>) -> Result<File> {
        let f = self.tmp.as_file();
        if let Some(m) = like {
            let mut mode = m.mode() & 0o777;
            let now = f.metadata().map_err(Error::io("stat", self.tmp.path()))?;
            if (now.uid(), now.gid()) != (m.uid(), m.gid())
                && std::os::unix::fs::fchown(f, Some(m.uid()), Some(m.gid())).is_err()
            {
                mode &= 0o700;
            }
            f.set_permissions(Permissions::from_mode(mode)).map_err(Error::io("chmod", self.tmp.path()))?;
        }
        f.sync_all().map_err(Error::io("fsync", self.tmp.path()))?;
        let file = self.tmp.persist(archive).map_err(|e| Error::io("rename", archive)(e.error))?;
        sync_dir(archive)?;
        Ok(file)
    }
}

/// Compresses bytes `offset..offset+limit` of the open `src` (to its end when `limit` is
/// `None`, including whatever is appended while reading) into a temporary file beside
/// `archive` and fsyncs it; meanwhile that file is read back and decompressed, and its
/// length and xxh3 are checked against what was read. `src_path` names the source in errors.
/// On any error the temporary file is removed.
pub async fn compress_verified(
    src: &File,
    src_path: &Path,
    offset: u64,
    limit: Option<u64>,
    archive: &Path,
    codec: Codec,
    cancel: &CancellationToken,
) -> Result<Staged> {
    compress_marked(src, src_path, offset, limit, None, archive, codec, cancel).await.map(|(s, _)| s)
}

/// [`compress_verified`], also returning the xxh3 of the bytes read before `mark` (an
/// offset in `offset..=offset+limit`), hashed on the way.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn compress_marked(
    src: &File,
    src_path: &Path,
    offset: u64,
    limit: Option<u64>,
    mark: Option<u64>,
    archive: &Path,
    codec: Codec,
    cancel: &CancellationToken,
) -> Result<(Staged, Option<u64>)> {
    let dir = crate::rotate::parent(archive);
    let name = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(".")
        .suffix(&format!(".{name}.tmp"))
        .tempfile_in(dir)
        .map_err(Error::io("create a temporary file in", dir))?;
    let mark = mark.map(|m| m.saturating_sub(offset));
    let (packed, marked) = compress_into(src, src_path, offset, limit, mark, &tmp, codec, cancel).await?;
    Ok((Staged { packed, tmp }, marked))
}

#[allow(clippy::too_many_arguments)]
async fn compress_into(
    src: &File,
    src_path: &Path,
    offset: u64,
    limit: Option<u64>,
    mark: Option<u64>,
    tmp: &tempfile::NamedTempFile,
    codec: Codec,
    cancel: &CancellationToken,
) -> Result<(Packed, Option<u64>)> {
    let path = tmp.path();
    let mut input = tokio::fs::File::from_std(src.try_clone().map_err(Error::io("open", src_path))?);
    input.seek(SeekFrom::Start(offset)).await.map_err(Error::io("seek", src_path))?;
    let out = tokio::fs::File::from_std(tmp.as_file().try_clone().map_err(Error::io("open", path))?);
    // A descriptor of its own (its own offset) for the verification, checked to be the same file.
    let back = tokio::fs::File::from_std(tmp.reopen().map_err(Error::io("open", path))?);
    let (tx, rx) = tokio::sync::watch::channel((0, false));
    let verifier = tokio::spawn(verify_growing(back, path.to_owned(), codec.compression, rx, cancel.clone()));
    let written = write_archive(&mut input, src_path, out, tx, path, codec, (limit, mark), cancel).await;
    let (total, hash, marked) = match written {
        Ok(v) => v,
        Err(e) => {
            verifier.abort();
            return Err(e);
        }
    };
    let f = tokio::fs::File::from_std(tmp.as_file().try_clone().map_err(Error::io("open", path))?);
    f.sync_all().await.map_err(Error::io("fsync", path))?;
    let bytes_out = f.metadata().await.map_err(Error::io("stat", path))?.len();
    drop(f);
    let verified = verifier.await.map_err(|e| Error::Verify { path: path.to_owned(), detail: e.to_string() })??;
    check(path, verified, (bytes_out, total, hash))?;
    Ok((Packed { bytes_in: total, bytes_out, hash }, marked))
}

/// Streams the log through the encoder into the archive, up to `limit` bytes; returns the
/// bytes read, their xxh3, and the xxh3 of the first `mark` of them.
#[allow(clippy::too_many_arguments)]
async fn write_archive(
    input: &mut tokio::fs::File,
    src: &Path,
    out: tokio::fs::File,
    tx: Written,
    tmp: &Path,
    codec: Codec,
    (limit, mark): (Option<u64>, Option<u64>),
    cancel: &CancellationToken,
) -> Result<(u64, u64, Option<u64>)> {
    let published = Published { file: out, tx, confirmed: 0, in_flight: 0 };
    let mut w = encoder(codec, BufWriter::with_capacity(BUF, published));
    let mut buf = vec![0u8; BUF];
    let mut hasher = Xxh3::new();
    let mut total = 0u64;
    let mut marked = None;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if mark == Some(total) {
            marked = Some(hasher.digest());
        }
        // a read never crosses the mark
        let want = match (limit, mark.filter(|&m| m > total)) {
            (Some(l), Some(m)) => (l.min(m) - total).min(BUF as u64) as usize,
            (Some(l), None) | (None, Some(l)) => (l - total).min(BUF as u64) as usize,
            (None, None) => BUF,
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
    if mark.is_some() && marked.is_none() {
        return Err(Error::Verify { path: src.to_owned(), detail: format!("read {total} bytes, short of {mark:?}") });
    }
    Ok((total, hasher.digest(), marked))
}

/// Compares what the verification read and decompressed with what was written.
fn check(tmp: &Path, (read, len, hash): (u64, u64, u64), (bytes_out, total, expected): (u64, u64, u64)) -> Result<()> {
    let fail = |detail: String| Err(Error::Verify { path: tmp.to_owned(), detail });
    if read != bytes_out {
        return fail(format!("read {read} of the archive's {bytes_out} bytes"));
    }
    if len != total {
        return fail(format!("{len} bytes, expected {total}"));
    }
    if hash != expected {
        return fail("checksum differs".to_owned());
    }
    Ok(())
}

/// Decompresses the archive while it is being written: reads the file up to what the writer
/// has published (a separate descriptor: the bytes are read back from the file, as after
/// the fsync), feeds them to the decoder, and hashes its output. Returns the archive bytes
/// read, the decompressed length and its xxh3.
async fn verify_growing(
    mut file: tokio::fs::File,
    path: PathBuf,
    c: Compression,
    mut rx: tokio::sync::watch::Receiver<(u64, bool)>,
    cancel: CancellationToken,
) -> Result<(u64, u64, u64)> {
    let (mut pipe_w, pipe_r) = tokio::io::duplex(BUF);
    let feed = async move {
        let mut buf = vec![0u8; BUF];
        let mut pos = 0u64;
        loop {
            let (avail, done) = *rx.borrow_and_update();
            if pos < avail {
                let want = ((avail - pos) as usize).min(BUF);
                file.read_exact(&mut buf[..want]).await?;
                pipe_w.write_all(&buf[..want]).await?;
                pos += want as u64;
            } else if done {
                pipe_w.shutdown().await?;
                return Ok(pos);
            } else if rx.changed().await.is_err() {
                return Err(std::io::Error::other("the writer stopped"));
            }
        }
    };
    let decoded_path = path.clone();
    let decode = async move {
        let path = decoded_path;
        let mut r = decoder(c, BufReader::with_capacity(BUF, pipe_r));
        let mut buf = vec![0u8; BUF];
        let (mut hasher, mut total) = (Xxh3::new(), 0u64);
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let n = r.read(&mut buf).await.map_err(|e| Error::Verify { path: path.clone(), detail: e.to_string() })?;
            if n == 0 {
                return Ok((total, hasher.digest()));
            }
            hasher.update(&buf[..n]);
            total += n as u64;
        }
    };
    let (fed, decoded) = tokio::join!(feed, decode);
    let (total, hash) = decoded?;
    let read = fed.map_err(|e| Error::Verify { path: path.clone(), detail: e.to_string() })?;
    Ok((read, total, hash))
}

/// Decompresses `path` and checks that it gives `len` bytes hashing to `hash` (the same
/// check as during compression, on a finished file).
pub async fn verify(path: &Path, c: Compression, len: u64, hash: u64, cancel: &CancellationToken) -> Result<()> {
    let file = tokio::fs::File::open(path).await.map_err(Error::io("open", path))?;
    let size = file.metadata().await.map_err(Error::io("stat", path))?.len();
    let (_done, rx) = tokio::sync::watch::channel((size, true));
    let verified = verify_growing(file, path.to_owned(), c, rx, cancel.clone()).await?;
    check(path, verified, (size, len, hash))
}

/// xxh3 of the first `len` bytes of the open file (read at their offsets: the descriptor's
/// own offset is left alone), or `None` when it is shorter.
pub(crate) fn hash_prefix(f: &File, len: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0u8; BUF];
    let mut hasher = Xxh3::new();
    let mut total = 0u64;
    while total < len {
        let want = (len - total).min(BUF as u64) as usize;
        let n = f.read_at(&mut buf[..want], total)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total == len).then(|| hasher.digest()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overlapped verification really decompresses what is in the file: bytes that are
    /// not gzip fail it, a correct archive passes with the right length and hash.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_growing_verification_reads_the_file_back() {
        let dir = std::env::temp_dir().join(format!("maint-logs-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.gz");
        std::fs::write(&garbage, b"this is not gzip at all").unwrap();
        let (tx, rx) = tokio::sync::watch::channel((23, true));
        let file = tokio::fs::File::open(&garbage).await.unwrap();
        let err = verify_growing(file, garbage, Compression::Gzip, rx, CancellationToken::new()).await.unwrap_err();
        assert!(matches!(err, Error::Verify { .. }), "{err:?}");
        drop(tx);

        let src = dir.join("app.log");
        let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&src, &text).unwrap();
        let archive = dir.join("app-20261124-021500.log.gz");
        let file = std::fs::File::open(&src).unwrap();
        let codec = Codec::new(Compression::Gzip, 6);
        let staged = compress_verified(&file, &src, 0, None, &archive, codec, &CancellationToken::new()).await.unwrap();
        let (packed, tmp) = (staged.packed, staged.path().to_owned());
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with('.') && name.ends_with(".app-20261124-021500.log.gz.tmp"), "{name}");
        assert_eq!(packed.bytes_in, text.len() as u64);
        assert_eq!(packed.hash, xxhash_rust::xxh3::xxh3_64(text.as_bytes()));
        assert_eq!(packed.bytes_out, std::fs::metadata(&tmp).unwrap().len());
        // The same check on the finished file: the right length and hash pass, others do not.
        let cancel = CancellationToken::new();
        verify(&tmp, Compression::Gzip, packed.bytes_in, packed.hash, &cancel).await.unwrap();
        let err = verify(&tmp, Compression::Gzip, packed.bytes_in, packed.hash ^ 1, &cancel).await.unwrap_err();
        assert!(err.to_string().contains("checksum differs"), "{err}");
        let err = verify(&tmp, Compression::Gzip, packed.bytes_in + 1, packed.hash, &cancel).await.unwrap_err();
        assert!(err.to_string().contains("bytes, expected"), "{err}");
        // The writer stopping before it is done (an error on its side) ends the verification.
        let (tx, rx) = tokio::sync::watch::channel((0, false));
        drop(tx);
        let back = tokio::fs::File::open(&tmp).await.unwrap();
        let err = verify_growing(back, tmp.clone(), Compression::Gzip, rx, CancellationToken::new()).await.unwrap_err();
        assert!(matches!(err, Error::Verify { .. }), "{err:?}");
        // In place: the mode and owner given, and the temporary name gone; dropped unpersisted,
        // a staged archive leaves nothing behind.
        std::fs::set_permissions(&src, Permissions::from_mode(0o640)).unwrap();
        let like = std::fs::metadata(&src).unwrap();
        staged.persist(&archive, Some(&like)).unwrap();
        assert!(!tmp.exists());
        assert_eq!(std::fs::metadata(&archive).unwrap().mode() & 0o777, 0o640);
        verify(&archive, Compression::Gzip, packed.bytes_in, packed.hash, &cancel).await.unwrap();
        let dropped =
            compress_verified(&file, &src, 0, None, &archive, codec, &CancellationToken::new()).await.unwrap();
        let gone = dropped.path().to_owned();
        drop(dropped);
        assert!(!gone.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
