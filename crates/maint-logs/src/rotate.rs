//! The executor: carries out the planner's decisions on one log file, step by step, each
//! step recorded in the state file first so that a killed run is finished by the next.
//!
//! A log is opened once, without following a symbolic link, and checked (regular file, one
//! link, the expected owner); everything after works on that descriptor. Paths read from the
//! state file are acted on only when they are the names this tool makes, in the log's
//! directory and the archive directory.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use maint_core::tokio_util::sync::CancellationToken;
use serde::Serialize;

use crate::compress::{Codec, Staged, compress_marked, compress_verified, hash_prefix};
use crate::fsops::{self, Id, Log, Opened, Owner, id_of, is_regular, present};
use crate::plan::{
    ArchiveInfo, ArchiveKey, Retention, dated_name, numbered_name, parse_archive, plan_cut, plan_retention, plan_shift,
};
use crate::state::{Pending, Store, sync_dir};
use crate::{Compression, Config, Error, Mode, Naming, Result, Truncate};

/// The largest tail (bytes written while the archive was being finished) carried in memory
/// across the truncate; a bigger tail gets an archive of its own first.
const TAIL_IN_MEMORY: u64 = 4 << 20;

/// What happened to one log file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileOutcome {
    /// The log.
    pub path: PathBuf,
    /// `rotated`, `skipped`, `deferred`, `failed` or `planned`.
    pub action: String,
    /// Why.
    pub reason: String,
    /// How the writer was handed over (`rename`, `collapse-range`, `truncate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    /// Archives produced (or, dry run, that would be).
    pub archives: Vec<PathBuf>,
    /// Object store keys uploaded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uploaded: Vec<String>,
    /// Archives deleted by retention (or that would be), with the reason.
    pub deleted: Vec<(PathBuf, String)>,
    /// Bytes read from the log.
    pub bytes_in: u64,
    /// Bytes written to archives.
    pub bytes_out: u64,
    /// Bytes deleted by retention.
    pub bytes_deleted: u64,
    /// Copytruncate without collapse-range: bytes held only in memory across the truncate.
    pub bytes_at_risk: u64,
    /// Things to tell the operator.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl FileOutcome {
    /// The log (or its staging file) is not touched: skipped, and said why.
    pub(crate) fn refuse(&mut self, path: &Path, why: &str) {
        self.action = "skipped".to_owned();
        self.reason = format!("refused: {why}");
        self.warnings.push(format!("{}: refused: {why}", path.display()));
    }
}

/// What every job of one run shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    /// The configured codec, with zstd workers spread over the files rotated at once.
    pub(crate) codec: Codec,
    pub(crate) store: Store,
    /// Who may own the logs.
    pub(crate) owner: Owner,
    pub(crate) cancel: CancellationToken,
    pub(crate) upload: Option<(Arc<dyn object_store::ObjectStore>, object_store::path::Path)>,
    /// Test hook: stop (as if killed) after the named step.
    pub(crate) crash_after: Option<String>,
    /// Test hook: cancel the run (as a SIGTERM arriving then) at the named step.
    pub(crate) cancel_at: Option<String>,
}

impl Shared {
    async fn update(&self, path: &Path, f: impl FnOnce(&mut crate::state::FileState)) -> Result<()> {
        self.store.update(path, f).await
    }

    /// Records a finished rotation: nothing pending, rotated now.
    async fn rotated(&self, path: &Path) -> Result<()> {
        let now = Utc::now();
        self.update(path, |f| {
            f.pending = None;
            f.last_rotated = Some(now);
        })
        .await
    }

    fn step(&self, name: &str) -> Result<()> {
        self.mark(name);
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    /// A point the test hooks can stop at, that is not a cancellation point.
    fn mark(&self, name: &str) {
        if self.crash_after.as_deref() == Some(name) {
            // Fault injection for tests: the process ends here, as under kill -9.
            std::process::abort();
        }
        if self.cancel_at.as_deref() == Some(name) {
            self.cancel.cancel();
        }
    }

    pub(crate) fn archive_dir(&self, log: &Path) -> PathBuf {
        match &self.cfg.archive_dir {
            Some(d) => d.clone(),
            None => parent(log).to_owned(),
        }
    }

    /// Whether a pending entry read from the state file names only what this tool makes for
    /// `log`: its staging file beside it, an archive of it in the archive directory.
    fn is_ours(&self, log: &Path, p: &Pending) -> bool {
        let name = file_name(log);
        let dir = self.archive_dir(log);
        let archive_ok = |a: &Path| parent(a) == dir && parse_archive(&name, &file_name(a)).is_some();
        match p {
            Pending::Rename { staging, archive } => *staging == staging_of(log) && archive_ok(archive),
            Pending::Copy { archive, .. } => archive_ok(archive),
        }
    }
}

pub(crate) fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn staging_of(log: &Path) -> PathBuf {
    log.with_file_name(format!(".{}.rotating", file_name(log)))
}

/// The dated archive of the log `name` rotated at `at`, in `dir`: the name of the first
/// millisecond from `at` on that is free (nothing at it, not even a dangling link). Names of
/// one log thus sort in rotation order, several rotations in one millisecond included.
pub(crate) fn next_dated(dir: &Path, name: &str, at: DateTime<Utc>, c: Compression) -> PathBuf {
    let mut t = at;
    loop {
        let p = dir.join(dated_name(name, t, c));
        if !present(&p) {
            return p;
        }
        t += TimeDelta::milliseconds(1);
    }
}

/// Picks the next archive name (shifting numbered archives up first). A name with anything
/// at it, even a dangling link, is not free.
fn next_archive(shared: &Shared, log: &Path) -> Result<PathBuf> {
    let dir = shared.archive_dir(log);
    let name = file_name(log);
    let c = shared.cfg.compress;
    match shared.cfg.naming {
        Naming::Date => Ok(next_dated(&dir, &name, Utc::now(), c)),
        Naming::Numbered => {
            let mut existing: Vec<(u32, PathBuf)> = Vec::new();
            for e in fs::read_dir(&dir).map_err(Error::io("list", &dir))?.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if let Some(ArchiveKey::Numbered(k)) = parse_archive(&name, &n) {
                    existing.push((k, e.path()));
                }
            }
            let nums: Vec<u32> = existing.iter().map(|(k, _)| *k).collect();
            for (from, to) in plan_shift(&nums) {
                for (k, p) in existing.iter().filter(|(k, _)| *k == from) {
                    let ext = file_name(p)[format!("{name}.{k}").len()..].to_owned();
                    let dest = dir.join(format!("{name}.{to}{ext}"));
                    fs::rename(p, &dest).map_err(Error::io("rename", p))?;
                }
            }
            sync_dir(&dir.join("x"))?;
            Ok(dir.join(numbered_name(&name, 1, c)))
        }
    }
}

/// Lists the archives of `log` in its archive directory.
pub(crate) fn list_archives(shared: &Shared, log: &Path) -> Result<Vec<ArchiveInfo>> {
    list_archives_in(&shared.archive_dir(log), &file_name(log))
}

/// Lists the archives of the log named `name` in `dir` (regular files only: a link is never
/// an archive).
pub(crate) fn list_archives_in(dir: &Path, name: &str) -> Result<Vec<ArchiveInfo>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with('.') || parse_archive(name, &n).is_none() {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        if !m.is_file() {
            continue;
        }
        let mtime = m.modified().map(chrono::DateTime::<Utc>::from).unwrap_or_else(|_| Utc::now());
        out.push(ArchiveInfo { path: e.path(), mtime, size: m.len() });
    }
    Ok(out)
}

/// Whether `n` is one of our temporary files for an archive of the log named `name`:
/// `.<random>.<archive>.tmp` (or `.<archive>.tmp`, from before the names were random).
fn is_our_tmp(name: &str, n: &str) -> bool {
    let Some(inner) = n.strip_prefix('.').and_then(|s| s.strip_suffix(".tmp")) else { return false };
    parse_archive(name, inner).is_some()
        || inner.split_once('.').is_some_and(|(_, archive)| parse_archive(name, archive).is_some())
}

/// Removes our temporary files for `log` left by a killed run (the per-log lock keeps a
/// running rotation's own out of reach).
fn remove_stray_tmps(shared: &Shared, log: &Path) {
    let dir = shared.archive_dir(log);
    let name = file_name(log);
    let Ok(entries) = fs::read_dir(&dir) else { return };
    for e in entries.flatten() {
        if is_our_tmp(&name, &e.file_name().to_string_lossy()) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Puts a verified archive in place with the log's mode and owner, and uploads it (from the
/// open file, never by its path again).
async fn finish_archive(
    shared: &Shared,
    out: &mut FileOutcome,
    staged: Staged,
    archive: &Path,
    like: &fs::Metadata,
) -> Result<()> {
    let file = staged.persist(archive, Some(like))?;
    out.archives.push(archive.to_owned());
    if let Some((store, prefix)) = &shared.upload {
        match crate::upload::upload(store, prefix, archive, file).await {
            Ok(key) => out.uploaded.push(key),
            Err(e) => out.warnings.push(format!("{} (kept locally)", maint_core::one_line(&e))),
        }
    }
    Ok(())
}

/// Whether to go on after finishing what was pending.
enum Next {
    Go,
    /// Deferred or refused (the outcome says which).
    Stop,
}

/// Rotates one log (finishing an interrupted rotation first). `rotate` false: only finish
/// what is pending and apply retention.
pub(crate) async fn process(shared: &Shared, log: &Path, rotate: bool, out: &mut FileOutcome) -> Result<()> {
    remove_stray_tmps(shared, log);
    let mut pending = shared.store.get(log).await?.pending;
    if let Some(p) = pending.as_ref().filter(|p| !shared.is_ours(log, p)) {
        out.warnings.push(format!(
            "{}: the state file's pending entry ({}) names files outside the log's and the archive \
             directory, or names this tool does not make: rejected, nothing done with them",
            log.display(),
            describe(p)
        ));
        shared.update(log, |f| f.pending = None).await?;
        pending = None;
    }
    let pending = match pending {
        Some(p) => Some(p),
        // A staging file without state (the state file was lost): finish it all the same.
        None if present(&staging_of(log)) => {
            Some(Pending::Rename { staging: staging_of(log), archive: next_archive(shared, log)? })
        }
        None => None,
    };
    if let Some(p) = pending {
        out.warnings.push(format!("{}: finishing an interrupted rotation", log.display()));
        match recover(shared, log, p, out).await? {
            Next::Stop => {
                if out.action.is_empty() {
                    out.action = "deferred".to_owned();
                }
                return Ok(());
            }
            Next::Go if out.action.is_empty() => out.action = "recovered".to_owned(),
            Next::Go => {}
        }
    }
    if !rotate {
        return Ok(());
    }
    match fsops::open_log(log, shared.cfg.mode == Mode::Copytruncate, shared.owner)? {
        Opened::Missing => {}
        Opened::Refused(why) => out.refuse(log, &why),
        Opened::Log(l) if l.meta.len() == 0 => {}
        Opened::Log(l) => match shared.cfg.mode {
            Mode::Rename => rotate_rename(shared, log, l, out).await?,
            Mode::Copytruncate => rotate_copy(shared, log, l, out).await?,
        },
    }
    Ok(())
}

fn describe(p: &Pending) -> String {
    match p {
        Pending::Rename { staging, archive } => {
            format!("staging {}, archive {}", staging.display(), archive.display())
        }
        Pending::Copy { archive, .. } => format!("archive {}", archive.display()),
    }
}

async fn recover(shared: &Shared, log: &Path, p: Pending, out: &mut FileOutcome) -> Result<Next> {
    match p {
        Pending::Rename { staging, archive } => {
            if present(&staging) {
                if is_regular(&archive) {
                    fs::remove_file(&staging).map_err(Error::io("remove", &staging))?;
                    sync_dir(&staging)?;
                } else {
                    let l = match fsops::open_log(&staging, false, shared.owner)? {
                        Opened::Log(l) => l,
                        Opened::Missing => return clear(shared, log).await,
                        Opened::Refused(why) => {
                            out.refuse(log, &format!("{}: {why}", staging.display()));
                            return Ok(Next::Stop);
                        }
                    };
                    if !present(log) {
                        fsops::recreate_like(log, &l.meta)?;
                        sync_dir(log)?;
                    }
                    notify(shared, log, id_of(&l.meta), out).await;
                    out.method = Some("rename");
                    if !finish_rename(shared, log, &staging, &l, &archive, out).await? {
                        return Ok(Next::Stop);
                    }
                    out.action = "rotated".to_owned();
                    return Ok(Next::Go);
                }
            }
            clear(shared, log).await
        }
        Pending::Copy { archive, dev, ino, len, hash_len, hash, collapse } => {
            let l = match fsops::open_log(log, true, shared.owner)? {
                Opened::Log(l) => Some(l),
                Opened::Missing => None,
                Opened::Refused(why) => {
                    out.refuse(log, &why);
                    return Ok(Next::Stop);
                }
            };
            let still_there = l.filter(|l| {
                id_of(&l.meta) == (dev, ino)
                    && is_regular(&archive)
                    && hash_prefix(&l.file, hash_len).ok().flatten() == Some(hash)
            });
            if let Some(l) = still_there {
                if collapse {
                    // `hash_len` is what is collapsed; `hash_len..len` are blanked first
                    cut_prefix(shared, &l, log, hash_len, len)?;
                    out.method = Some("collapse-range");
                } else {
                    out.method = Some("truncate");
                    if !finish_truncate(shared, log, &l, len, out).await? {
                        return Ok(Next::Stop);
                    }
                }
            }
            clear(shared, log).await
        }
    }
}

async fn clear(shared: &Shared, log: &Path) -> Result<Next> {
    shared.update(log, |f| f.pending = None).await?;
    Ok(Next::Go)
}

/// Tells the writer to reopen its log: the signal to the pid in the pid file (only if that
/// process has the renamed file `held` or the new log open), and/or the post command.
async fn notify(shared: &Shared, log: &Path, held: Id, out: &mut FileOutcome) {
    let cfg = &shared.cfg;
    if let Some(pid_file) = &cfg.pid_file {
        let mut files = vec![held];
        // a rerun: the writer may hold the new log already
        if let Ok(m) = fs::symlink_metadata(log)
            && m.is_file()
        {
            files.push(id_of(&m));
        }
        let sig = crate::config::parse_signal(&cfg.signal);
        if let Err(e) = sig.and_then(|s| fsops::signal_pid_file(pid_file, s, &files)) {
            out.warnings.push(maint_core::one_line(&e));
        }
    }
    if let Some(cmd) = &cfg.post_command
        && let Err(e) = fsops::run_post_command(cmd).await
    {
        out.warnings.push(maint_core::one_line(&e));
    }
}

async fn rotate_rename(shared: &Shared, log: &Path, l: Log, out: &mut FileOutcome) -> Result<()> {
    let archive = next_archive(shared, log)?;
    let staging = staging_of(log);
    shared
        .update(log, |f| f.pending = Some(Pending::Rename { staging: staging.clone(), archive: archive.clone() }))
        .await?;
    shared.step("state-written")?;
    fs::rename(log, &staging).map_err(Error::io("rename", log))?;
    sync_dir(log)?;
    shared.step("renamed")?;
    if !fs::symlink_metadata(&staging).is_ok_and(|m| id_of(&m) == id_of(&l.meta)) {
        // Replaced between the check and the rename: what was renamed is not the log checked.
        shared.update(log, |f| f.pending = None).await?;
        out.refuse(log, &format!("replaced while it was rotated; what replaced it is left as {}", staging.display()));
        return Ok(());
    }
    fsops::recreate_like(log, &l.meta)?;
    sync_dir(log)?;
    shared.step("recreated")?;
    notify(shared, log, id_of(&l.meta), out).await;
    out.method = Some("rename");
    if finish_rename(shared, log, &staging, &l, &archive, out).await? {
        out.action = "rotated".to_owned();
    } else {
        out.action = "deferred".to_owned();
    }
    Ok(())
}

/// Waits for the writer to let go of the renamed file, compresses it, removes it.
/// Returns false when the writer still holds it (compression waits for the next run).
async fn finish_rename(
    shared: &Shared,
    log: &Path,
    staging: &Path,
    l: &Log,
    archive: &Path,
    out: &mut FileOutcome,
) -> Result<bool> {
    let holders = fsops::wait_closed(id_of(&l.meta), shared.cfg.reopen_timeout()).await;
    if !holders.is_empty() {
        out.warnings.push(format!(
            "{}: pid {:?} still writes to {} after {}s; it is compressed on the next run",
            log.display(),
            holders,
            staging.display(),
            shared.cfg.reopen_timeout_secs
        ));
        return Ok(false);
    }
    shared.step("writer-closed")?;
    let staged = compress_verified(&l.file, staging, 0, None, archive, shared.codec, &shared.cancel).await?;
    shared.step("compressed")?;
    out.bytes_in += staged.packed.bytes_in;
    out.bytes_out += staged.packed.bytes_out;
    finish_archive(shared, out, staged, archive, &l.meta).await?;
    shared.step("archived")?;
    fs::remove_file(staging).map_err(Error::io("remove", staging))?;
    sync_dir(staging)?;
    shared.step("source-removed")?;
    shared.rotated(log).await?;
    Ok(true)
}

async fn rotate_copy(shared: &Shared, log: &Path, l: Log, out: &mut FileOutcome) -> Result<()> {
    let cfg = &shared.cfg;
    let (size, blk) = (l.meta.len(), std::os::unix::fs::MetadataExt::blksize(&l.meta).max(512));
    // Archives end at the last whole line: a half-written one stays in the log.
    let line_end = fsops::last_line_end(&l.file, log, 0, size)?;
    let collapse_ok = cfg.truncate == Truncate::Auto && fsops::probe_dir(parent(log)).unwrap_or(false);
    let archive = next_archive(shared, log)?;
    match plan_cut(size, blk, line_end).filter(|_| collapse_ok) {
        Some(cut) => {
            out.method = Some("collapse-range");
            archive_prefix(shared, log, &l, &archive, cut.archived, Some(cut.collapsed), out).await?;
            // On failure the state keeps the pending cut: the next run redoes it.
            cut_prefix(shared, &l, log, cut.collapsed, cut.archived)?;
            shared.step("source-removed")?;
        }
        None => {
            out.method = Some("truncate");
            // Up to the size seen now: a writer faster than the compressor must not keep this
            // pass from ending; what it adds meanwhile is the tail, handled below.
            let len = archive_prefix(shared, log, &l, &archive, line_end.unwrap_or(size), None, out).await?;
            if !finish_truncate(shared, log, &l, len, out).await? {
                return Ok(());
            }
            shared.step("source-removed")?;
        }
    }
    shared.rotated(log).await?;
    out.action = "rotated".to_owned();
    Ok(())
}

/// Copy mode with collapse-range, once bytes `0..archived` are archived: removes the first
/// `collapsed` (whole blocks), after overwriting `collapsed..archived` (short of a block) with
/// a blank line, so that the log then starts at a line boundary: a reader never finds a half
/// line or a NUL at its start, and a half-written last line (past `archived`) stays. Whether
/// it is done shows in the first `collapsed` bytes, which it changes only by removing them;
/// done again after a crash, the blanking finds bytes archived already.
fn cut_prefix(shared: &Shared, l: &Log, log: &Path, collapsed: u64, archived: u64) -> Result<()> {
    fsops::blank(&l.file, log, collapsed, archived)?;
    shared.mark("blanked");
    fsops::collapse(&l.file, log, collapsed)
}

/// Copy mode's first half: compresses the log's first `limit` bytes into `archive`, records
/// the pending copy (so a crash at any later step resumes it), and puts the archive in
/// place. `collapse`: the bytes collapse-range will remove (the state then keeps their hash,
/// which tells a later run whether they still are at the start of the log). Returns `limit`.
async fn archive_prefix(
    shared: &Shared,
    log: &Path,
    l: &Log,
    archive: &Path,
    limit: u64,
    collapse: Option<u64>,
    out: &mut FileOutcome,
) -> Result<u64> {
    let (staged, marked) =
        compress_marked(&l.file, log, 0, Some(limit), collapse, archive, shared.codec, &shared.cancel).await?;
    shared.step("compressed")?;
    let (dev, ino) = id_of(&l.meta);
    let (hash_len, hash) = match (collapse, marked) {
        (Some(cut), Some(h)) => (cut, h),
        _ => (limit, staged.packed.hash),
    };
    shared
        .update(log, |f| {
            f.pending = Some(Pending::Copy {
                archive: archive.to_path_buf(),
                dev,
                ino,
                len: limit,
                hash_len,
                hash,
                collapse: collapse.is_some(),
            });
        })
        .await?;
    shared.step("state-written")?;
    out.bytes_in += staged.packed.bytes_in;
    out.bytes_out += staged.packed.bytes_out;
    finish_archive(shared, out, staged, archive, &l.meta).await?;
    shared.step("archived")?;
    Ok(limit)
}

/// Copytruncate without collapse-range, after bytes `0..archived` are safely archived:
/// archive any large tail written meanwhile, read the small rest into memory, truncate
/// right after the read, and append the rest back. Lines written between that last read
/// and the truncate (microseconds) are the exposure no user-space tool can close.
///
/// From the truncate to the append-back there is no cancellation point: a cancel (SIGTERM,
/// a task timeout) takes effect once the rest is back in the log.
///
/// Returns false when the writer outpaces the archiving: the log is then not truncated,
/// and the state keeps how much of it is archived, so the next run goes on from there.
async fn finish_truncate(
    shared: &Shared,
    log: &Path,
    l: &Log,
    mut archived: u64,
    out: &mut FileOutcome,
) -> Result<bool> {
    let mut f = &l.file;
    for _ in 0..8 {
        let size = f.metadata().map_err(Error::io("stat", log))?.len();
        if size.saturating_sub(archived) <= TAIL_IN_MEMORY {
            break;
        }
        let archive = next_archive(shared, log)?;
        if shared.cfg.naming == Naming::Numbered {
            // the shift moved this run's archives up by one
            let name = file_name(log);
            for a in &mut out.archives {
                let n = file_name(a);
                if let Some(ArchiveKey::Numbered(k)) = parse_archive(&name, &n) {
                    let ext = n[format!("{name}.{k}").len()..].to_owned();
                    *a = a.with_file_name(format!("{name}.{}{ext}", k + 1));
                }
            }
        }
        // through the last whole line (a half-written one goes back into the log with the rest)
        let end = fsops::last_line_end(f, log, archived, size)?.unwrap_or(size);
        let tail = end - archived;
        let staged =
            compress_verified(&l.file, log, archived, Some(tail), &archive, shared.codec, &shared.cancel).await?;
        out.bytes_in += staged.packed.bytes_in;
        out.bytes_out += staged.packed.bytes_out;
        finish_archive(shared, out, staged, &archive, &l.meta).await?;
        archived += tail;
        // The state keeps the first archive's prefix hash; only `len` grows.
        shared
            .update(log, |fs| {
                if let Some(Pending::Copy { len, .. }) = &mut fs.pending {
                    *len = archived;
                }
            })
            .await?;
    }
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(archived)).map_err(Error::io("seek", log))?;
    let cap = 4 * TAIL_IN_MEMORY;
    loop {
        let room = cap.saturating_sub(tail.len() as u64);
        (&mut f).take(room).read_to_end(&mut tail).map_err(Error::io("read", log))?;
        // Read again if the writer added more since; the window left is fstat -> ftruncate.
        let size = f.metadata().map_err(Error::io("stat", log))?.len();
        if size <= archived + tail.len() as u64 {
            break;
        }
        if tail.len() as u64 >= cap {
            out.warnings.push(format!(
                "{}: the writer adds faster than it can be archived; {archived} bytes are archived, \
                 the log is truncated on a later run",
                log.display()
            ));
            out.action = "deferred".to_owned();
            return Ok(false);
        }
    }
    shared.mark("tail-read");
    f.set_len(0).map_err(Error::io("truncate", log))?;
    out.bytes_at_risk += tail.len() as u64;
    if !tail.is_empty() {
        fsops::append(f, log, &tail)?;
    }
    shared.step("truncated")?;
    Ok(true)
}

/// Applies retention to the archives of `log`, never deleting `protect`.
pub(crate) fn retention(shared: &Shared, log: &Path, dry_run: bool, out: &mut FileOutcome) -> Result<()> {
    let limits = Retention::from_config(&shared.cfg);
    if limits == Retention::default() {
        return Ok(());
    }
    let archives = list_archives(shared, log)?;
    let protect: Vec<&Path> = out.archives.iter().map(PathBuf::as_path).collect();
    for (path, reason) in plan_retention(&archives, &protect, limits, Utc::now()) {
        let size = archives.iter().find(|a| a.path == path).map_or(0, |a| a.size);
        if !dry_run {
            fs::remove_file(&path).map_err(Error::io("remove", &path))?;
        }
        out.bytes_deleted += size;
        out.deleted.push((path, reason));
    }
    Ok(())
}
