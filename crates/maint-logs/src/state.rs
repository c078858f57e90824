//! The state file: last rotation per log and the step a rotation was in, written
//! atomically so that a killed run can be finished by the next one. It lives in a directory
//! only the runner can write (its paths are acted on as root), beside the per-log locks.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::fsops::{is_link_error, open_nofollow};
use crate::rotate::parent;
use crate::{Config, Error, Result};

/// A rotation that started and may not have finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Pending {
    /// Rename mode: the log is (or is about to be) renamed to `staging`, which is
    /// compressed to `archive` and then removed.
    Rename {
        /// The renamed log.
        staging: PathBuf,
        /// The archive it becomes.
        archive: PathBuf,
    },
    /// Copytruncate: `archive` (renamed into place after this was written) holds the
    /// first `len` bytes of the log; they still have to be removed from the log
    /// (collapse-range, or tail copy and truncate). While the first `hash_len` bytes of the
    /// log hash to `hash`, that is not done yet.
    Copy {
        /// The archive.
        archive: PathBuf,
        /// Device and inode of the log when it was copied.
        dev: u64,
        /// Inode.
        ino: u64,
        /// Bytes archived from the start of the log.
        len: u64,
        /// How many bytes from the start `hash` covers: with collapse-range, the bytes
        /// collapsed (whole blocks; `hash_len..len` are overwritten with a blank line first),
        /// else the first archive's.
        hash_len: u64,
        /// xxh3 of those bytes.
        hash: u64,
        /// Whether the prefix is removed with collapse-range.
        collapse: bool,
    },
}

/// What the state file remembers about one log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FileState {
    /// When it was last rotated.
    pub last_rotated: Option<DateTime<Utc>>,
    /// A rotation in progress.
    pub pending: Option<Pending>,
}

/// The whole state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Per log path.
    pub files: BTreeMap<PathBuf, FileState>,
}

impl State {
    /// Loads the state; a missing file is an empty state. A corrupt file is renamed to
    /// `<name>.corrupt-<time>` and an empty state returned with a warning: rotation never
    /// halts on a bad state file.
    pub fn load(path: &Path) -> Result<(State, Option<String>)> {
        Self::load_with(path, true)
    }

    /// Loads the state; with `set_aside` false (a dry run) a corrupt file is only reported.
    /// A state file that is a symbolic link, not this user's, or writable by group or others
    /// is refused ([`Error::Unsafe`]): it could name any file to remove.
    pub fn load_with(path: &Path, set_aside: bool) -> Result<(State, Option<String>)> {
        let Some(bytes) = read_private(path)? else { return Ok((State::default(), None)) };
        match serde_json::from_slice::<State>(&bytes) {
            Ok(s) => Ok((s, None)),
            Err(e) if !set_aside => Ok((
                State::default(),
                Some(format!("state file {} is corrupt ({e}); dry run: left as it is", path.display())),
            )),
            Err(e) => {
                let aside = path.with_file_name(format!(
                    "{}.corrupt-{}",
                    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    Utc::now().format("%Y%m%d-%H%M%S%.3f")
                ));
                fs::rename(path, &aside).map_err(Error::io("set aside corrupt state", path))?;
                let warning = format!(
                    "state file {} was corrupt ({e}); set aside as {}, starting with an empty state",
                    path.display(),
                    aside.display()
                );
                Ok((State::default(), Some(warning)))
            }
        }
    }

    /// Writes the state atomically: a temporary file with a random name (created `O_EXCL`,
    /// mode 0600), fsync, rename, fsync of the directory.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = parent(path);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::io("encode state", path)(e.into()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(Error::io("create a temporary file in", dir))?;
        tmp.write_all(&json).map_err(Error::io("write", tmp.path()))?;
        tmp.as_file().sync_all().map_err(Error::io("fsync", tmp.path()))?;
        tmp.persist(path).map_err(|e| Error::io("rename", path)(e.error))?;
        sync_dir(path)
    }
}

/// Reads a file that must be this user's alone (not a link, owned by this user, writable by
/// nobody else); `None` when it does not exist.
fn read_private(path: &Path) -> Result<Option<Vec<u8>>> {
    let mut f = match open_nofollow(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_link_error(&e) => return Err(unsafe_path(path, "a symbolic link".to_owned())),
        Err(e) => return Err(Error::io("read state", path)(e)),
    };
    check_private(path, &f.metadata().map_err(Error::io("stat", path))?, false)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(Error::io("read state", path))?;
    Ok(Some(bytes))
}

fn unsafe_path(path: &Path, reason: String) -> Error {
    Error::Unsafe { path: path.to_owned(), reason }
}

/// Checks that `m` (of `path`, not followed) is a directory (`dir`) or a regular file owned
/// by this user and writable by nobody else.
fn check_private(path: &Path, m: &fs::Metadata, dir: bool) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    if dir && !m.is_dir() {
        return Err(unsafe_path(path, "not a directory (a symbolic link?)".to_owned()));
    }
    if !dir && !m.is_file() {
        return Err(unsafe_path(path, "not a regular file".to_owned()));
    }
    if m.uid() != me {
        return Err(unsafe_path(path, format!("owned by uid {}, not by this user ({me})", m.uid())));
    }
    if m.mode() & 0o022 != 0 {
        return Err(unsafe_path(
            path,
            format!("writable by group or others (mode {:o}; chmod go-w it)", m.mode() & 0o7777),
        ));
    }
    Ok(())
}

/// Reads and parses the state file as it is now (an error if it is corrupt).
fn read_now(path: &Path) -> Result<State> {
    match read_private(path)? {
        None => Ok(State::default()),
        Some(b) => serde_json::from_slice(&b).map_err(|e| Error::Verify {
            path: path.to_owned(),
            detail: format!("the state file became corrupt during the run: {e}"),
        }),
    }
}

/// The state file of a run, its directory and the lock files in it. Each change is read,
/// applied and written back under a lock, so that runs sharing the state file (cron and
/// `maint run`) never write back each other's stale copy.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    dir: PathBuf,
    local: tokio::sync::Mutex<()>,
}

/// How long a log's lock held by someone else is waited for before the log is skipped as
/// busy (see [`Store::try_lock_log`]).
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The lock of one log, held until dropped (flock, released with the descriptor).
#[derive(Debug)]
pub(crate) struct LogLock {
    _file: File,
}

/// What taking a log's lock found.
#[derive(Debug)]
pub(crate) enum Locked {
    Held(LogLock),
    /// Another run holds this lock file.
    Busy(PathBuf),
}

impl Store {
    pub(crate) fn new(cfg: &Config) -> Store {
        let path = cfg.state_path();
        let dir = parent(&path).to_owned();
        Store { path, dir, local: tokio::sync::Mutex::new(()) }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the state directory, creating it (mode 0700) when `create` and missing (see
    /// [`private_dir`]). Returns whether it exists.
    pub(crate) fn prepare(&self, create: bool) -> Result<bool> {
        private_dir(&self.dir, create, 0o700)
    }

    /// What the state file says about `log` now.
    pub(crate) async fn get(&self, log: &Path) -> Result<FileState> {
        let _local = self.local.lock().await;
        Ok(read_now(&self.path)?.files.remove(log).unwrap_or_default())
    }

    /// Changes what the state file says about `log`: read, change, write back, under the
    /// state lock.
    pub(crate) async fn update(&self, log: &Path, f: impl FnOnce(&mut FileState)) -> Result<()> {
        let _local = self.local.lock().await;
        let name = format!("{}.lock", self.file_name());
        let lock = self.lock_file(&name)?;
        rustix::fs::flock(&lock, FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock", self.dir.join(&name))(e.into()))?;
        let mut st = read_now(&self.path)?;
        f(st.files.entry(log.to_owned()).or_default());
        st.save(&self.path)
    }

    /// Takes the lock of `log`, waiting at most [`LOCK_GRACE`]: a process spawned anywhere
    /// in this process holds a duplicate of the lock's descriptor between its fork and its
    /// exec, so a lock released a moment ago can look held for that moment; another run
    /// holds it for its whole rotation. The lock file's name comes from the log's
    /// directory (device, inode) and file name, so two spellings of one path share it.
    pub(crate) async fn try_lock_log(&self, log: &Path) -> Result<Locked> {
        let name = log.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let key = match fs::metadata(parent(log)) {
            Ok(d) => format!("{}:{}/{name}", d.dev(), d.ino()),
            Err(_) => log.display().to_string(),
        };
        let lock_name = format!("{}.{:016x}.lock", self.file_name(), xxhash_rust::xxh3::xxh3_64(key.as_bytes()));
        let file = self.lock_file(&lock_name)?;
        let deadline = tokio::time::Instant::now() + LOCK_GRACE;
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Locked::Held(LogLock { _file: file })),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(Locked::Busy(self.dir.join(lock_name)));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => return Err(Error::io("lock", self.dir.join(lock_name))(e.into())),
            }
        }
    }

    fn file_name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    fn lock_file(&self, name: &str) -> Result<File> {
        let path = self.dir.join(name);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&path)
            .map_err(Error::io("open lock file", path))
    }
}

/// Checks a directory that files are written to, renamed in and deleted from as the runner
/// (the state directory, the archive directory): it must be a directory (not a link) owned by
/// this user and writable by nobody else (sticky bit or not: others could still plant files
/// there). When `create` and it is missing, it is created with `mode` (its missing parents
/// 0755). Returns whether it exists.
pub(crate) fn private_dir(dir: &Path, create: bool, mode: u32) -> Result<bool> {
    match fs::symlink_metadata(dir) {
        Ok(m) => check_private(dir, &m, true).map(|()| true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            if let Some(up) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(up)
                    .map_err(Error::io("create directory", up))?;
            }
            match fs::DirBuilder::new().mode(mode).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create directory", dir)(e)),
            }
            private_dir(dir, false, mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("stat directory", dir)(e)),
    }
}

/// fsyncs the directory holding `path`, so a rename or create in it is durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process spawned anywhere in this process holds a duplicate of every descriptor
    /// between its fork and its exec, the lock's too: a lock released a moment ago can look
    /// held for that moment (the flaky "another rotation of this log is running" under
    /// load). A lock held that briefly is waited for; one held longer is busy.
    #[tokio::test]
    async fn a_lock_held_for_a_moment_is_waited_for_and_a_held_one_is_busy() {
        let dir = std::env::temp_dir().join(format!("maint-logs-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let cfg = Config { state_file: Some(dir.join("state.json")), ..Config::default() };
        let store = Store::new(&cfg);
        let log = dir.join("app.log");
        let Locked::Held(lock) = store.try_lock_log(&log).await.unwrap() else { panic!("free lock busy") };
        // The duplicate a fork leaves: the same open file description, released 50 ms later.
        let dup = lock._file.try_clone().unwrap();
        drop(lock);
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            drop(dup);
        });
        assert!(matches!(store.try_lock_log(&log).await.unwrap(), Locked::Held(_)), "a moment's holder is waited for");
        release.join().unwrap();
        let Locked::Held(_held) = store.try_lock_log(&log).await.unwrap() else { panic!("free lock busy") };
        assert!(matches!(store.try_lock_log(&log).await.unwrap(), Locked::Busy(_)), "a real holder is busy");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn round_trip_and_corrupt_state_is_set_aside() {
        let dir = std::env::temp_dir().join(format!("maint-logs-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let (empty, w) = State::load(&path).unwrap();
        assert_eq!(empty, State::default());
        assert!(w.is_none());
        let mut s = State::default();
        s.files.insert(
            "/var/log/app.log".into(),
            FileState {
                last_rotated: Some(Utc::now()),
                pending: Some(Pending::Copy {
                    archive: "/a.gz".into(),
                    dev: 1,
                    ino: 2,
                    len: 4096,
                    hash_len: 4096,
                    hash: 7,
                    collapse: true,
                }),
            },
        );
        s.save(&path).unwrap();
        let names = || fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect::<Vec<_>>();
        assert_eq!(names(), ["state.json"], "no temporary file is left");
        assert_eq!(State::load(&path).unwrap().0, s);
        fs::write(&path, b"{\"files\": tru").unwrap();
        let (dry, dry_warning) = State::load_with(&path, false).unwrap();
        assert_eq!(dry, State::default());
        assert!(dry_warning.unwrap().contains("dry run"));
        assert_eq!(fs::read(&path).unwrap(), b"{\"files\": tru", "a dry run leaves the file as it is");
        let (loaded, warning) = State::load(&path).unwrap();
        assert_eq!(loaded, State::default());
        let warning = warning.unwrap();
        assert!(warning.contains("corrupt"), "{warning}");
        assert!(!path.exists());
        let aside: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("state.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
