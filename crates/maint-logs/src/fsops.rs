//! Filesystem and process operations the executor needs, each small and safe
//! (rustix wraps the system calls; no `unsafe` in this crate).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::FallocateFlags;

use crate::{Error, Result};

/// Checks that `dir` exists (creating it) and is writable, and whether files in it can
/// have a prefix removed with `fallocate(FALLOC_FL_COLLAPSE_RANGE)` (ext4, XFS yes;
/// tmpfs, btrfs, NFS no). The probe file is removed again.
pub(crate) fn probe_dir(dir: &Path) -> Result<bool> {
    fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    let probe = dir.join(format!(".maint-logs-probe-{}.tmp", std::process::id()));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(Error::io("create", &probe))?;
    let blk = f.metadata().map(|m| m.blksize()).unwrap_or(4096).max(512);
    let ok = f.write_all(&vec![b'x'; (blk * 2) as usize]).is_ok()
        && rustix::fs::fallocate(&f, FallocateFlags::COLLAPSE_RANGE, 0, blk).is_ok()
        && f.metadata().map(|m| m.len() == blk).unwrap_or(false);
    drop(f);
    fs::remove_file(&probe).map_err(Error::io("remove", &probe))?;
    Ok(ok)
}

/// Removes the first `len` bytes of the file (collapse-range); `len` must be a multiple of
/// the filesystem block size and less than the file size.
pub(crate) fn collapse(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new().write(true).open(path).map_err(Error::io("open", path))?;
    rustix::fs::fallocate(&f, FallocateFlags::COLLAPSE_RANGE, 0, len)
        .map_err(|e| Error::io("collapse-range", path)(e.into()))?;
    f.sync_all().map_err(Error::io("fsync", path))
}

/// The pids (other than ours) that hold `path` open, found through `/proc/*/fd`.
/// Processes whose descriptors we may not read are not seen.
pub(crate) fn holders(path: &Path) -> Vec<u32> {
    let Ok(meta) = fs::metadata(path) else { return Vec::new() };
    let (dev, ino) = (meta.dev(), meta.ino());
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(m) = fs::metadata(fd.path())
                && m.dev() == dev
                && m.ino() == ino
            {
                out.push(pid);
                break;
            }
        }
    }
    out
}

/// Waits until nobody holds `path` open, up to `timeout`. Returns the holders left.
pub(crate) async fn wait_closed(path: &Path, timeout: Duration) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let h = holders(path);
        if h.is_empty() || start.elapsed() >= timeout {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `sig` to the pid written in `pid_file`.
pub(crate) fn signal_pid_file(pid_file: &Path, sig: rustix::process::Signal) -> Result<u32> {
    let text = fs::read_to_string(pid_file)
        .map_err(|e| Error::Notify(format!("read pid file {}: {e}", pid_file.display())))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| Error::Notify(format!("pid file {} holds {:?}, not a pid", pid_file.display(), text.trim())))?;
    let p = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| Error::Notify(format!("pid file {} holds pid {pid}", pid_file.display())))?;
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

/// Opens `path` for reading, returning `(dev, ino, len, blksize)`.
pub(crate) fn identity(path: &Path) -> Result<(u64, u64, u64, u64)> {
    let m = File::open(path).and_then(|f| f.metadata()).map_err(Error::io("stat", path))?;
    Ok((m.dev(), m.ino(), m.len(), m.blksize().max(512)))
}
