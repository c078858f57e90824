//! Filesystem and process operations the executor needs, each small and safe
//! (rustix wraps the system calls; no `unsafe` in this crate).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{FallocateFlags, OFlags};

use crate::rotate::parent;
use crate::{Error, Result};

/// A file's identity: device and inode.
pub(crate) type Id = (u64, u64);

pub(crate) fn id_of(m: &fs::Metadata) -> Id {
    (m.dev(), m.ino())
}

/// Whether anything (a file, a link, even a dangling one) is at `path`; never follows a link.
pub(crate) fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether a regular file (not a link to one) is at `path`.
pub(crate) fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Opens `path` without following a symbolic link in its last component (`ELOOP` instead)
/// and without blocking on a FIFO.
pub(crate) fn open_nofollow(path: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32)
        .open(path)
}

/// Whether an open failed because the path is a symbolic link (`O_NOFOLLOW`).
pub(crate) fn is_link_error(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// Who may own the logs rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// This uid only (the `owner` setting).
    Uid(u32),
    /// The owner of the log's directory, or the user running the rotation.
    DirOrRunner,
}

impl Owner {
    /// The policy of the `owner` setting: a user name (from `/etc/passwd`) or a uid.
    pub(crate) fn from_setting(owner: Option<&str>) -> Result<Owner> {
        let Some(name) = owner.map(str::trim) else { return Ok(Owner::DirOrRunner) };
        if let Ok(uid) = name.parse::<u32>() {
            return Ok(Owner::Uid(uid));
        }
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        passwd
            .lines()
            .find_map(|l| {
                let mut f = l.split(':');
                (f.next() == Some(name)).then(|| f.nth(1).and_then(|u| u.parse().ok())).flatten()
            })
            .map(Owner::Uid)
            .ok_or_else(|| Error::invalid("owner", format!("no user {name:?} in /etc/passwd (give a uid)")))
    }
}

/// A log opened without following a symbolic link, and checked.
#[derive(Debug)]
pub(crate) struct Log {
    pub(crate) file: File,
    /// Its `fstat` when opened (identity, mode, owner; the size of that moment).
    pub(crate) meta: fs::Metadata,
}

/// What opening a log found.
#[derive(Debug)]
pub(crate) enum Opened {
    Missing,
    /// Not rotated, for this reason (a link, not ours, ...).
    Refused(String),
    Log(Log),
}

/// Opens a log for reading (and writing, for copytruncate) without following a symbolic
/// link, and refuses it unless it is a regular file with a single link owned by `owner`:
/// everything after works on this descriptor, never on the path again.
pub(crate) fn open_log(path: &Path, write: bool, owner: Owner) -> Result<Opened> {
    let file = match open_nofollow(path, write) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Opened::Missing),
        Err(e) if is_link_error(&e) => return Ok(Opened::Refused("a symbolic link (not followed)".to_owned())),
        Err(e) => return Err(Error::io("open", path)(e)),
    };
    let meta = file.metadata().map_err(Error::io("stat", path))?;
    Ok(match refusal(path, &meta, owner) {
        Some(why) => Opened::Refused(why),
        None => Opened::Log(Log { file, meta }),
    })
}

fn refusal(path: &Path, m: &fs::Metadata, owner: Owner) -> Option<String> {
    if !m.is_file() {
        return Some("not a regular file".to_owned());
    }
    if m.nlink() > 1 {
        return Some(format!("has {} hard links (the other may be a file elsewhere)", m.nlink()));
    }
    let uid = m.uid();
    match owner {
        Owner::Uid(want) => (uid != want).then(|| format!("owned by uid {uid}, not by the configured owner {want}")),
        Owner::DirOrRunner => {
            let me = rustix::process::geteuid().as_raw();
            let dir = fs::metadata(parent(path)).map(|d| d.uid()).ok();
            (uid != me && Some(uid) != dir).then(|| {
                let dir = dir.map_or("unknown".to_owned(), |d| d.to_string());
                format!("owned by uid {uid}, neither the directory's owner ({dir}) nor this user ({me}); set owner to accept it")
            })
        }
    }
}

/// Checks that `dir` exists (creating it) and is writable, and whether files in it can
/// have a prefix removed with `fallocate(FALLOC_FL_COLLAPSE_RANGE)` (ext4, XFS yes;
/// tmpfs, btrfs, NFS no). The probe is an unnamed temporary file (`O_TMPFILE`, or a random
/// name created `O_EXCL` and removed at once): nothing planted in `dir` is opened.
pub(crate) fn probe_dir(dir: &Path) -> Result<bool> {
    fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    let mut f = tempfile::tempfile_in(dir).map_err(Error::io("create a file in", dir))?;
    let blk = f.metadata().map(|m| m.blksize()).unwrap_or(4096).max(512);
    let ok = f.write_all(&vec![b'x'; (blk * 2) as usize]).is_ok()
        && rustix::fs::fallocate(&f, FallocateFlags::COLLAPSE_RANGE, 0, blk).is_ok()
        && f.metadata().map(|m| m.len() == blk).unwrap_or(false);
    Ok(ok)
}

/// How far back from its end a log is searched for the end of its last whole line.
const LINE_MAX: u64 = 1 << 20;

/// The end (just after the newline) of the last whole line in bytes `lo..hi` of the open
/// log, looking back at most [`LINE_MAX`] bytes from `hi`; `None` when there is none there.
pub(crate) fn last_line_end(f: &File, path: &Path, lo: u64, hi: u64) -> Result<Option<u64>> {
    let floor = lo.max(hi.saturating_sub(LINE_MAX));
    let mut buf = vec![0u8; 64 << 10];
    let mut end = hi;
    while end > floor {
        let start = floor.max(end.saturating_sub(buf.len() as u64));
        let chunk = &mut buf[..(end - start) as usize];
        f.read_exact_at(chunk, start).map_err(Error::io("read", path))?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64 + 1));
        }
        end = start;
    }
    Ok(None)
}

/// Overwrites bytes `from..to` of the open log (archived already) with one blank line: spaces
/// and a newline. A writer appending meanwhile writes past them. The descriptor must not be
/// `O_APPEND` (a positioned write would append).
pub(crate) fn blank(f: &File, path: &Path, from: u64, to: u64) -> Result<()> {
    let Some(last) = to.checked_sub(from + 1) else { return Ok(()) };
    // never past the end (a log truncated meanwhile would get a hole of NULs)
    let size = f.metadata().map_err(Error::io("stat", path))?.len();
    if size < to {
        let detail = format!("the log shrank to {size} bytes, under the {to} archived");
        return Err(Error::Verify { path: path.to_owned(), detail });
    }
    let mut line = vec![b' '; last as usize + 1];
    line[last as usize] = b'\n';
    f.write_all_at(&line, from).map_err(Error::io("write", path))
}

/// Removes the first `len` bytes of the open log (collapse-range); `len` must be a multiple
/// of the filesystem block size and less than the file size.
pub(crate) fn collapse(f: &File, path: &Path, len: u64) -> Result<()> {
    rustix::fs::fallocate(f, FallocateFlags::COLLAPSE_RANGE, 0, len)
        .map_err(|e| Error::io("collapse-range", path)(e.into()))?;
    f.sync_all().map_err(Error::io("fsync", path))
}

/// Appends `bytes` to the open log (`O_APPEND` set on the descriptor: after whatever the
/// writer added meanwhile) and fsyncs it.
pub(crate) fn append(mut f: &File, path: &Path, bytes: &[u8]) -> Result<()> {
    let flags = rustix::fs::fcntl_getfl(f).map_err(|e| Error::io("fcntl", path)(e.into()))?;
    rustix::fs::fcntl_setfl(f, flags | OFlags::APPEND).map_err(|e| Error::io("fcntl", path)(e.into()))?;
    f.write_all(bytes).map_err(Error::io("write", path))?;
    f.sync_all().map_err(Error::io("fsync", path))
}

/// Whether process `pid` has one of `files` open (through `/proc/PID/fd`).
fn holds(pid: u32, files: &[Id]) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| fs::metadata(fd.path()).is_ok_and(|m| files.contains(&id_of(&m))))
}

/// The pids (other than ours) that hold the file `id` open, found through `/proc/*/fd`.
/// Processes whose descriptors we may not read are not seen.
pub(crate) fn holders(id: Id) -> Vec<u32> {
    let me = std::process::id();
    let Ok(procs) = fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|&pid| pid != me && holds(pid, &[id]))
        .collect()
}

/// Waits until nobody holds the file `id` open, up to `timeout`. Returns the holders left.
pub(crate) async fn wait_closed(id: Id, timeout: Duration) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let h = holders(id);
        if h.is_empty() || start.elapsed() >= timeout {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `sig` to the pid written in `pid_file`, only if that process has one of `files`
/// open (the log it writes): never a pid <= 1 (`kill(-1)` is every process, `kill(0)` our
/// own group, 1 is init), never a process that is not the log's writer.
pub(crate) fn signal_pid_file(pid_file: &Path, sig: rustix::process::Signal, files: &[Id]) -> Result<u32> {
    let text = fs::read_to_string(pid_file)
        .map_err(|e| Error::Notify(format!("read pid file {}: {e}", pid_file.display())))?;
    let refuse = |why: String| Error::Notify(format!("pid file {} {why}: not signalled", pid_file.display()));
    // The content is not repeated: the file may be anything.
    let pid: i32 = text.trim().parse().map_err(|_| refuse("does not hold a pid".to_owned()))?;
    if pid <= 1 {
        return Err(refuse(format!("holds {pid}, which would reach init, a process group or every process")));
    }
    if !holds(pid as u32, files) {
        return Err(refuse(format!("holds {pid}, a process that does not have the log open")));
    }
    let p = rustix::process::Pid::from_raw(pid).ok_or_else(|| refuse(format!("holds {pid}")))?;
    rustix::process::kill_process(p, sig).map_err(|e| Error::Notify(format!("signal pid {pid}: {e}")))?;
    Ok(pid as u32)
}

/// Runs `sh -c cmd`; a non-zero exit is an error.
pub(crate) async fn run_post_command(cmd: &str) -> Result<()> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Notify(format!("run post command {cmd:?}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Notify(format!("post command {cmd:?} exited with {}: {}", out.status, err.trim())));
    }
    Ok(())
}

/// Creates an empty `path` with the mode and owner of `like` (metadata of the renamed log),
/// unless something (the writer) already created it. Returns whether it created it.
pub(crate) fn recreate_like(path: &Path, like: &fs::Metadata) -> Result<bool> {
    let mode = like.permissions().mode() & 0o7777;
    let f = match OpenOptions::new().write(true).create_new(true).mode(mode).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(Error::io("create", path)(e)),
    };
    // the umask may have narrowed the mode
    f.set_permissions(fs::Permissions::from_mode(mode)).map_err(Error::io("chmod", path))?;
    let m = f.metadata().map_err(Error::io("stat", path))?;
    if (m.uid(), m.gid()) != (like.uid(), like.gid()) {
        std::os::unix::fs::fchown(&f, Some(like.uid()), Some(like.gid())).map_err(Error::io("chown", path))?;
    }
    f.sync_all().map_err(Error::io("fsync", path))?;
    Ok(true)
}
