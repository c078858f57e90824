//! Streaming helpers: a reader that hashes (SHA-256) and counts what passes through, and
//! progress lines for long transfers.

use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

/// An `AsyncRead` that hashes (SHA-256) and counts what passes through it.
#[derive(Debug)]
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The hex SHA-256 of everything read so far.
    pub(crate) fn hex(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for HashingReader<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = &buf.filled()[before..];
            self.hasher.update(new);
            self.bytes += new.len() as u64;
        }
        r
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Logs progress of long transfers at most every 5 seconds (as tracing events: shown on a
/// terminal by the binaries, silent with `--json`): bytes, rate, and when the total is known
/// (from the manifest) the percentage and the time left.
#[derive(Debug)]
pub(crate) struct Progress {
    what: &'static str,
    key: String,
    total: Option<u64>,
    started: std::time::Instant,
    last: std::time::Instant,
}

impl Progress {
    pub(crate) fn new(what: &'static str, key: &str, total: Option<u64>) -> Self {
        let now = std::time::Instant::now();
        Progress { what, key: key.to_owned(), total, started: now, last: now }
    }

    pub(crate) fn tick(&mut self, bytes: u64) {
        if self.last.elapsed() < std::time::Duration::from_secs(5) {
            return;
        }
        self.last = std::time::Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mib = bytes as f64 / 1048576.0;
        let rate = mib / secs;
        match self.total.filter(|t| *t > 0) {
            Some(total) => {
                let left = (total.saturating_sub(bytes) as f64 / 1048576.0) / rate.max(0.001);
                tracing::info!(
                    "{} {}: {mib:.0} of {:.0} MiB ({:.0}%, {rate:.0} MiB/s, about {left:.0} s left)",
                    self.what,
                    self.key,
                    total as f64 / 1048576.0,
                    bytes as f64 * 100.0 / total as f64
                );
            }
            None => tracing::info!("{} {}: {mib:.0} MiB ({rate:.0} MiB/s)", self.what, self.key),
        }
    }
}
