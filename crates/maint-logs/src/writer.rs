//! A rotating file writer for Rust services, usable as a `tracing_subscriber` `MakeWriter`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use maint_core::tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::MakeWriter;

use crate::plan::{Retention, plan_retention};
use crate::rotate::{list_archives_in, next_dated};
use crate::{Compression, Error, Result};

/// Builds a [`RotatingWriter`].
#[derive(Debug, Clone)]
pub struct RotatingWriterBuilder {
    path: PathBuf,
    max_bytes: Option<u64>,
    interval: Option<Duration>,
    compress: Compression,
    level: Option<i32>,
    retention: Retention,
}

impl RotatingWriterBuilder {
    /// Rotate before a write would take the file past this size.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Rotate when the file has been open this long.
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = Some(d);
        self
    }

    /// Compression of the archives (gzip by default).
    pub fn compression(mut self, c: Compression, level: Option<i32>) -> Self {
        self.compress = c;
        self.level = level;
        self
    }

    /// Retention of the archives, applied after each compression.
    pub fn retention(mut self, r: Retention) -> Self {
        self.retention = r;
        self
    }

    /// Opens (appends to) the log and starts the background compression thread. Files
    /// rotated but not compressed by a previous process are compressed first.
    pub fn build(self) -> Result<RotatingWriter> {
        let cfg = crate::Config {
            paths: vec![self.path.display().to_string()],
            compress: self.compress,
            level: self.level,
            ..crate::Config::default()
        };
        cfg.validate()?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::invalid("path", format!("{} has no file name", self.path.display())))?;
        let dir = crate::rotate::parent(&self.path).to_owned();
        fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        let file = open_append(&self.path)?;
        let size = file.metadata().map_err(Error::io("stat", &self.path))?.len();
        let (tx, rx) = channel::<PathBuf>();
        let job = Job {
            dir: dir.clone(),
            name: name.clone(),
            compress: self.compress,
            level: cfg.effective_level(),
            retention: self.retention,
        };
        // leftovers of a previous process
        for e in fs::read_dir(&dir).map_err(Error::io("list", &dir))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!(".{name}.")) && n.ends_with(".rotating") {
                let _ = tx.send(e.path());
            }
        }
        let handle = std::thread::Builder::new()
            .name("maint-logs-compress".to_owned())
            .spawn(move || job.run(&rx))
            .map_err(Error::io("spawn compression thread", &dir))?;
        Ok(RotatingWriter {
            inner: Arc::new(Inner {
                path: self.path,
                dir,
                name,
                max_bytes: self.max_bytes,
                interval: self.interval,
                current: Mutex::new(Current { file, size, opened: Instant::now(), seq: 0 }),
                tx: Mutex::new(Some(tx)),
                handle: Mutex::new(Some(handle)),
            }),
        })
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new().create(true).append(true).open(path).map_err(Error::io("open", path))
}

#[derive(Debug)]
struct Current {
    file: File,
    size: u64,
    opened: Instant,
    seq: u64,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    dir: PathBuf,
    name: String,
    max_bytes: Option<u64>,
    interval: Option<Duration>,
    current: Mutex<Current>,
    tx: Mutex<Option<Sender<PathBuf>>>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

/// A log file that rotates itself by size and time, compresses rotated files on a
/// background thread (verified, like the rotation task) and applies retention.
///
/// Each `write` call is written whole to one file (tracing's fmt layer writes one event
/// per call), and rotation happens between writes under a lock, so no line is split or
/// lost. Rotated files are renamed to `.<name>.<n>.rotating` first: if the process dies
/// before they are compressed, the next [`RotatingWriterBuilder::build`] compresses them.
#[derive(Debug, Clone)]
pub struct RotatingWriter {
    inner: Arc<Inner>,
}

impl RotatingWriter {
    /// A builder for a writer appending to `path`.
    pub fn builder(path: impl Into<PathBuf>) -> RotatingWriterBuilder {
        RotatingWriterBuilder {
            path: path.into(),
            max_bytes: None,
            interval: None,
            compress: Compression::Gzip,
            level: None,
            retention: Retention::default(),
        }
    }

    /// Rotates now (if the file is not empty).
    pub fn rotate(&self) -> io::Result<()> {
        let mut cur = self.lock();
        self.inner.rotate_locked(&mut cur)
    }

    /// Stops accepting rotations and waits for the background compression to finish.
    /// Writes after this still go to the live file; it just no longer rotates.
    pub fn shutdown(&self) {
        self.inner.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let handle = self.inner.handle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Current> {
        self.inner.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn rotate_locked(&self, cur: &mut Current) -> io::Result<()> {
        if cur.size == 0 {
            cur.opened = Instant::now();
            return Ok(());
        }
        let tx = self.tx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let Some(tx) = tx else { return Ok(()) };
        cur.file.flush()?;
        cur.seq += 1;
        let staging = self.dir.join(format!(".{}.{}-{}.rotating", self.name, Utc::now().timestamp_millis(), cur.seq));
        fs::rename(&self.path, &staging)?;
        cur.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        cur.size = 0;
        cur.opened = Instant::now();
        let _ = tx.send(staging);
        Ok(())
    }
}

/// The writer handed out per event by [`RotatingWriter`]'s `MakeWriter`.
#[derive(Debug)]
pub struct WriterGuard<'a> {
    writer: &'a RotatingWriter,
}

impl Write for WriterGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = &self.writer.inner;
        let mut cur = self.writer.lock();
        let by_size = inner.max_bytes.is_some_and(|m| cur.size > 0 && cur.size + buf.len() as u64 > m);
        let by_time = inner.interval.is_some_and(|i| cur.opened.elapsed() >= i);
        if by_size || by_time {
            inner.rotate_locked(&mut cur)?;
        }
        cur.file.write_all(buf)?;
        cur.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.lock().file.flush()
    }
}

impl<'a> MakeWriter<'a> for RotatingWriter {
    type Writer = WriterGuard<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        WriterGuard { writer: self }
    }
}

struct Job {
    dir: PathBuf,
    name: String,
    compress: Compression,
    level: i32,
    retention: Retention,
}

impl Job {
    fn run(self, rx: &Receiver<PathBuf>) {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        let cancel = CancellationToken::new();
        while let Ok(staging) = rx.recv() {
            if let Err(e) = rt.block_on(self.compress_one(&staging, &cancel)) {
                // Nothing is lost: the staging file stays and is retried at the next start.
                tracing::error!(error = %maint_core::one_line(&e), file = %staging.display(), "log compression failed");
            }
        }
    }

    async fn compress_one(&self, staging: &Path, cancel: &CancellationToken) -> Result<()> {
        let src = crate::fsops::open_nofollow(staging, false).map_err(Error::io("open", staging))?;
        let meta = src.metadata().map_err(Error::io("stat", staging))?;
        let mtime = meta.modified().map(chrono::DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
        let archive = next_dated(&self.dir, &self.name, mtime, self.compress);
        let codec = crate::Codec::new(self.compress, self.level);
        let staged = crate::compress_verified(&src, staging, 0, None, &archive, codec, cancel).await?;
        staged.persist(&archive, Some(&meta))?;
        fs::remove_file(staging).map_err(Error::io("remove", staging))?;
        if self.retention != Retention::default() {
            let archives = list_archives_in(&self.dir, &self.name)?;
            for (p, _) in plan_retention(&archives, &[archive.as_path()], self.retention, Utc::now()) {
                let _ = fs::remove_file(p);
            }
        }
        Ok(())
    }
}
