use std::path::PathBuf;

/// The shared error type of maint-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is wrong; `field` names it (`daily_maintenance.time`).
    #[error("{field}: {message}")]
    Invalid {
        /// Where the bad value is, as a dotted path.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be parsed (syntax, not meaning).
    #[error("cannot parse {what}")]
    Parse {
        /// The file or text that failed.
        what: String,
        /// The parser's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An input file (configuration, plan) could not be read: bad input.
    #[error("cannot read {}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// What the tool keeps or writes (lock, state, output) could not be created, written or
    /// locked: the world failed (a full disk, permissions), not the input.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done: `open`, `write`, `lock`.
        action: &'static str,
        /// The file, directory or resource.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The work was cancelled before it finished.
    #[error("cancelled")]
    Cancelled,
    /// A file or directory is not safe to use: others could replace or plant what the tool
    /// keeps there (a symlink, a directory others can write, another user's file).
    #[error("refusing {}: {reason}", path.display())]
    Unsafe {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }

    /// For `map_err`: an [`Error::Io`] doing `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }

    /// The process exit code this error maps to: bad input is 2, the rest 1.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Invalid { .. } | Error::Parse { .. } | Error::Read { .. } => ExitCode::BadInput,
            Error::Io { .. } | Error::Cancelled | Error::Unsafe { .. } => ExitCode::Failed,
        }
    }
}

/// The exit codes every aindusdb-maint binary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: the task finished with status `ok` or `warning` (or was skipped).
    Ok = 0,
    /// 1: the task ran and failed.
    Failed = 1,
    /// 2: bad input (usage, configuration, URL); nothing was done.
    BadInput = 2,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// Formats an error and its chain of causes as one line: `a: b: c`.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_causes_and_flattens_newlines() {
        let err = Error::Read {
            path: "/etc/x.toml".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such\nfile"),
        };
        assert_eq!(one_line(&err), "cannot read /etc/x.toml: no such file");
        assert_eq!(err.exit_code(), ExitCode::BadInput);
        assert_eq!(Error::Cancelled.exit_code(), ExitCode::Failed);
        let full = std::io::Error::from_raw_os_error(28);
        let err = Error::io("write", "/run/maint/state.json")(full);
        assert!(one_line(&err).starts_with("cannot write /run/maint/state.json: No space left on device"), "{err}");
        assert_eq!(err.exit_code(), ExitCode::Failed, "a full disk is not bad input");
    }
}
