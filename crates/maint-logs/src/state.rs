//! The state file: last rotation per log and the step a rotation was in, written
//! atomically so that a killed run can be finished by the next one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

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
    /// first `len` bytes of the log, whose hash is `hash`; they still have to be removed
    /// from the log (collapse-range, or tail copy and truncate).
    Copy {
        /// The archive.
        archive: PathBuf,
        /// Device and inode of the log when it was copied.
        dev: u64,
        /// Inode.
        ino: u64,
        /// Bytes archived from the start of the log.
        len: u64,
        /// How many bytes from the start `hash` covers (the first archive's).
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
    pub fn load_with(path: &Path, set_aside: bool) -> Result<(State, Option<String>)> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((State::default(), None)),
            Err(e) => return Err(Error::io("read state", path)(e)),
        };
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

    /// Writes the state atomically: temp file, fsync, rename, fsync of the directory.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = tmp_name(path);
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::io("encode state", path)(e.into()))?;
        let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        f.write_all(&json).map_err(Error::io("write", &tmp))?;
        f.sync_all().map_err(Error::io("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(Error::io("rename", &tmp))?;
        sync_dir(path)
    }
}

fn tmp_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
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
        assert!(!dir.join(".state.json.tmp").exists());
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
