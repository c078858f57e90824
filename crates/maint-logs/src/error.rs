use std::path::PathBuf;

/// The error type of maint-logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is wrong; `field` names it (`keep`, `paths[0]`).
    #[error("{field}: {message}")]
    Invalid {
        /// Which setting, as a dotted path.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done (`open`, `rename`, `fsync`, ...).
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The compressed file does not decompress to the bytes that were read.
    #[error("verification of {} failed: {detail}", path.display())]
    Verify {
        /// The temporary compressed file.
        path: PathBuf,
        /// What differed.
        detail: String,
    },
    /// Telling the writer to reopen its file failed.
    #[error("notify writer: {0}")]
    Notify(String),
    /// Uploading an archive failed.
    #[error("upload {}", path.display())]
    Upload {
        /// The archive.
        path: PathBuf,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
    /// A file or directory is not safe to act on: a symbolic link, or one another user
    /// could have written (the state file, its directory).
    #[error("refusing {}: {reason}", path.display())]
    Unsafe {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The run was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }

    /// Whether the error is bad input (exit code 2) rather than a failed run.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
