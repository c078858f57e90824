use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the writer is handed over to a fresh file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rename the file, recreate it with the same owner and mode, tell the writer to reopen.
    #[default]
    Rename,
    /// Copy the file, then remove the copied prefix in place (for writers that cannot reopen).
    Copytruncate,
}

impl FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rename" => Ok(Mode::Rename),
            "copytruncate" => Ok(Mode::Copytruncate),
            _ => Err(Error::invalid("mode", format!("{s:?} is not rename or copytruncate"))),
        }
    }
}

/// Compression of archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (deflate), `.gz`.
    #[default]
    Gzip,
    /// Zstandard, `.zst`.
    Zstd,
    /// Archives are kept as they are.
    None,
}

impl Compression {
    /// The file extension including the dot, or `""`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::None => "",
        }
    }

    /// The valid levels and the default.
    pub fn levels(self) -> (i32, i32, i32) {
        match self {
            Compression::Gzip => (1, 9, 6),
            Compression::Zstd => (1, 19, 3),
            Compression::None => (0, 0, 0),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gzip" | "gz" => Ok(Compression::Gzip),
            "zstd" | "zst" => Ok(Compression::Zstd),
            "none" => Ok(Compression::None),
            _ => Err(Error::invalid("compress", format!("{s:?} is not gzip, zstd or none"))),
        }
    }
}

/// How archives are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// `app-20261124-021500-250.log.gz` (UTC, to the millisecond: names sort in rotation order).
    #[default]
    Date,
    /// `app.log.1.gz` is the newest; older ones are shifted up.
    Numbered,
}

/// How copytruncate removes the copied prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Truncate {
    /// Collapse-range where the filesystem supports it, else copy the tail and truncate.
    #[default]
    Auto,
    /// Always copy the tail and truncate (reports `bytes_at_risk`).
    Truncate,
}

/// The default state directory: the state file (`state.json`) and the per-log lock files.
/// It must be owned by the user running the rotation and writable by nobody else.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/aindusdb-maint/logs";

/// Configuration of a log rotation run. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Files to rotate: paths or globs (`/var/log/aindusdb/*.log`).
    pub paths: Vec<String>,
    /// Hand-off mode.
    pub mode: Mode,
    /// Compression of the archives.
    pub compress: Compression,
    /// Compression level (gzip 1-9, zstd 1-19); the algorithm's default when unset.
    pub level: Option<i32>,
    /// Archive naming.
    pub naming: Naming,
    /// Keep at most this many archives per log file.
    pub keep: Option<usize>,
    /// Delete archives older than this many days.
    pub max_age_days: Option<f64>,
    /// Keep at most this many bytes of archives per log file (newest first).
    pub max_total_bytes: Option<u64>,
    /// Rotate only files of at least this many bytes (with the interval).
    pub min_size: u64,
    /// Rotate files of at least this many bytes whatever the interval.
    pub max_size: Option<u64>,
    /// Rotate only when the last rotation of the file is at least this many seconds old.
    pub interval_secs: Option<u64>,
    /// A missing file is skipped (true) or an error (false).
    pub missing_ok: bool,
    /// An empty file is not rotated.
    pub not_if_empty: bool,
    /// Where archives go (created 0755 if missing); next to the log when unset. Refused
    /// when it is a symbolic link, not the runner's, or writable by group or others; and so
    /// are two logs of one file name from different directories archived into it.
    pub archive_dir: Option<PathBuf>,
    /// The directory of the state file and of the per-log lock files: created (mode 0700)
    /// when missing, refused unless it is a directory owned by the runner that nobody else can
    /// write. [`DEFAULT_STATE_DIR`] when unset. Runs that rotate the same logs (cron and
    /// `maint run`) must share it: its locks keep them from rotating one log at once.
    pub state_dir: Option<PathBuf>,
    /// The state file; `state.json` in `state_dir` when unset. When set, its directory is the
    /// state directory (same checks, the locks go beside it).
    pub state_file: Option<PathBuf>,
    /// The user who must own each log (a name or a uid); a log owned by anyone else is
    /// skipped and reported, as is a symbolic link or a file with more than one hard link.
    /// Unset: the owner of the log's directory or the user running the rotation.
    pub owner: Option<String>,
    /// Rename mode: the writer's pid file.
    pub pid_file: Option<PathBuf>,
    /// Rename mode: the signal sent to the pid (`HUP`, `USR1`, ...).
    pub signal: String,
    /// Rename mode: a shell command run after the rename (instead of or besides a signal).
    pub post_command: Option<String>,
    /// Rename mode: how long to wait for the writer to close the renamed file before
    /// compressing it; when it still holds it, compression waits for the next run.
    pub reopen_timeout_secs: f64,
    /// Copytruncate: how the copied prefix is removed.
    pub truncate: Truncate,
    /// Upload each archive to this object store URL (`s3://bucket/prefix`, `file:///dir`),
    /// as `<prefix>/<host name>/<archive name>`. Two logs of one file name from different
    /// directories are refused with it.
    pub archive_url: Option<String>,
    /// How many files are rotated at once.
    pub concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            paths: Vec::new(),
            mode: Mode::Rename,
            compress: Compression::Gzip,
            level: None,
            naming: Naming::Date,
            keep: None,
            max_age_days: None,
            max_total_bytes: None,
            min_size: 0,
            max_size: None,
            interval_secs: None,
            missing_ok: true,
            not_if_empty: true,
            archive_dir: None,
            state_dir: None,
            state_file: None,
            owner: None,
            pid_file: None,
            signal: "HUP".to_owned(),
            post_command: None,
            reopen_timeout_secs: 5.0,
            truncate: Truncate::Auto,
            archive_url: None,
            concurrency: 2,
        }
    }
}

impl Config {
    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.paths.is_empty() {
            return Err(Error::invalid("paths", "no log file given (use --path GLOB)"));
        }
        for (i, p) in self.paths.iter().enumerate() {
            if p.trim().is_empty() {
                return Err(Error::invalid(format!("paths[{i}]"), "empty path"));
            }
            glob::Pattern::new(p).map_err(|e| Error::invalid(format!("paths[{i}]"), format!("{p:?}: {e}")))?;
        }
        if let Some(level) = self.level {
            let (lo, hi, _) = self.compress.levels();
            if self.compress == Compression::None {
                return Err(Error::invalid("level", "a level needs --compress gzip or zstd"));
            }
            if !(lo..=hi).contains(&level) {
                return Err(Error::invalid("level", format!("{level} is outside {lo}..={hi} for {:?}", self.compress)));
            }
        }
        if self.keep == Some(0) {
            return Err(Error::invalid("keep", "0 would delete every archive; leave it unset to keep all"));
        }
        if let Some(d) = self.max_age_days
            && !(d.is_finite() && d > 0.0)
        {
            return Err(Error::invalid("max_age_days", format!("{d} is not a positive number of days")));
        }
        if self.max_total_bytes == Some(0) {
            return Err(Error::invalid("max_total_bytes", "0 would delete every archive"));
        }
        if self.concurrency == 0 {
            return Err(Error::invalid("concurrency", "must be at least 1"));
        }
        if !(self.reopen_timeout_secs.is_finite() && (0.0..=3600.0).contains(&self.reopen_timeout_secs)) {
            return Err(Error::invalid("reopen_timeout_secs", "must be a number of seconds from 0 to 3600"));
        }
        parse_signal(&self.signal)?;
        if let Some(dir) = &self.archive_dir
            && dir.exists()
            && !dir.is_dir()
        {
            return Err(Error::invalid("archive_dir", format!("{} is not a directory", dir.display())));
        }
        if let Some(dir) = &self.state_dir
            && dir.exists()
            && !dir.is_dir()
        {
            return Err(Error::invalid("state_dir", format!("{} is not a directory", dir.display())));
        }
        if self.state_file.as_deref().is_some_and(Path::is_dir) {
            return Err(Error::invalid("state_file", "is a directory (give a file, or use state_dir)"));
        }
        crate::fsops::Owner::from_setting(self.owner.as_deref())?;
        if let Some(url) = &self.archive_url {
            crate::upload::parse_url(url)?;
        }
        let literal = self.paths.iter().filter(|p| !crate::task::has_glob(p));
        crate::task::check_clash(self, literal.map(Path::new))?;
        if self.post_command.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(Error::invalid("post_command", "empty command"));
        }
        Ok(())
    }

    /// The effective compression level.
    pub fn effective_level(&self) -> i32 {
        self.level.unwrap_or(self.compress.levels().2)
    }

    /// The state file: `state_file`, else `state.json` in the state directory.
    pub(crate) fn state_path(&self) -> PathBuf {
        match &self.state_file {
            Some(p) => p.clone(),
            None => self.state_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)).join("state.json"),
        }
    }

    pub(crate) fn reopen_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.reopen_timeout_secs)
    }
}

/// Parses a signal name (`HUP`, `SIGHUP`, `usr1`) or number.
pub fn parse_signal(name: &str) -> Result<rustix::process::Signal> {
    use rustix::process::Signal;
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let sig = match bare {
        "HUP" => Signal::HUP,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "INT" => Signal::INT,
        "TERM" => Signal::TERM,
        "QUIT" => Signal::QUIT,
        "WINCH" => Signal::WINCH,
        "CONT" => Signal::CONT,
        _ => bare
            .parse::<i32>()
            .ok()
            .and_then(Signal::from_named_raw)
            .ok_or_else(|| Error::invalid("signal", format!("{name:?} is not a signal name (HUP, USR1, ...)")))?,
    };
    Ok(sig)
}
