//! The crate's [`Error`], its exit code, and the one-line reading of PostgreSQL errors.

use std::path::PathBuf;
use std::time::Duration;

use deadpool_postgres::tokio_postgres;
use maint_core::ExitCode;

/// Everything that can go wrong in maint-release.
///
/// Messages never contain a database URL or password: servers are named `host:port/db`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input value is wrong; `field` names it (`--to`, `migrations.dir`).
    #[error("{field}: {message}")]
    Invalid {
        /// Where the bad value is (a flag or a dotted configuration path).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The update would go to an older version and was not forced.
    #[error("refusing to downgrade from {from} to {to} (use --force to allow it)")]
    Downgrade {
        /// The running version.
        from: semver::Version,
        /// The requested version.
        to: semver::Version,
    },
    /// A major update needs an approved change request.
    #[error("{from} -> {to} is a major update (breaking: schema or API change): a change request is required")]
    ChangeRequired {
        /// The running version.
        from: semver::Version,
        /// The requested version.
        to: semver::Version,
    },
    /// A migration file is malformed (name, directive, duplicate version).
    #[error("migration {file}: {message}")]
    MigrationFile {
        /// The file name.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// An applied migration's file changed after it was applied.
    #[error(
        "migration V{version}__{name} was changed after it was applied (checksum {applied} in the history table, \
         {found} on disk): restore the file or write a new migration"
    )]
    ChecksumMismatch {
        /// The version.
        version: String,
        /// The name.
        name: String,
        /// SHA-256 recorded when it was applied.
        applied: String,
        /// SHA-256 of the file now.
        found: String,
    },
    /// Another runner held the migration lock for longer than we were willing to wait.
    #[error("another migration runner holds the lock{} (waited {waited:?})", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    LockBusy {
        /// The backend pid holding the lock, when it could be seen.
        holder: Option<i32>,
        /// How long we waited.
        waited: Duration,
    },
    /// No connection could be made.
    #[error("cannot connect to PostgreSQL at {target}")]
    Connect {
        /// `host:port/db`.
        target: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A statement of the runner itself failed.
    #[error("PostgreSQL: {operation} failed")]
    Query {
        /// What we were doing.
        operation: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A migration failed. A transactional one was rolled back; a non-transactional one
    /// may have left the statements before `statement` applied.
    #[error("migration V{version}__{name} failed{}", if *.transactional { " and was rolled back".to_owned() } else { format!(" at statement {statement} (non-transactional: earlier statements stay applied)") })]
    MigrationFailed {
        /// The version.
        version: String,
        /// The name.
        name: String,
        /// Whether it ran in a transaction.
        transactional: bool,
        /// 1-based number of the failing statement (non-transactional migrations).
        statement: usize,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A migration (or, without a transaction, one of its statements) could not get a
    /// table lock within `lock_timeout`, `attempts` times: a session holds a conflicting
    /// lock (a long reader in front of an `ALTER TABLE`). A transactional migration was
    /// rolled back.
    #[error(
        "migration V{version}__{name}: lock not available after {attempts} attempt(s) of lock_timeout {lock_timeout:?} \
         (another session holds a conflicting lock); {}",
        if *.transactional { "rolled back, nothing applied".to_owned() } else { format!("statement {statement} not applied (non-transactional: earlier statements stay applied)") }
    )]
    MigrationLockTimeout {
        /// The version.
        version: String,
        /// The name.
        name: String,
        /// Whether it ran in a transaction.
        transactional: bool,
        /// 1-based number of the statement that waited (non-transactional migrations).
        statement: usize,
        /// Attempts made.
        attempts: u32,
        /// The `lock_timeout` of each attempt.
        lock_timeout: Duration,
        /// The server's error of the last attempt.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The external migration command failed.
    #[error("external migration command `{command}` failed: {message}")]
    External {
        /// The program and its arguments.
        command: String,
        /// Exit status and the end of its stderr.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{} {}", operation, path.display())]
    Io {
        /// What we were doing (`cannot write`).
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A change-management rule refused the operation.
    #[error("change {id}: {message}")]
    Change {
        /// The change request id.
        id: String,
        /// Which rule refused it.
        message: String,
    },
    /// No change request has this id.
    #[error("change {0}: not found")]
    ChangeNotFound(String),
    /// A deployer operation failed.
    #[error("deploy: {0}")]
    Deploy(String),
    /// A backup could not be made or verified.
    #[error("backup: {0}")]
    Backup(String),
    /// A health or smoke check failed.
    #[error("smoke: {0}")]
    Smoke(String),
    /// The work was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }

    pub(crate) fn change(id: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Change { id: id.into(), message: message.into() }
    }

    /// Whether the error is bad input (exit code 2): nothing was done.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::Invalid { .. } | Error::MigrationFile { .. })
    }

    /// The process exit code: bad input is 2, the rest 1.
    pub fn exit_code(&self) -> ExitCode {
        if self.is_bad_input() { ExitCode::BadInput } else { ExitCode::Failed }
    }
}

pub(crate) fn query_err(operation: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let operation = operation.into();
    move |source| Error::Query { operation, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_problem() {
        let e = Error::ChecksumMismatch {
            version: "3".into(),
            name: "add_index".into(),
            applied: "aa".into(),
            found: "bb".into(),
        };
        let msg = maint_core::one_line(&e);
        assert!(msg.starts_with("migration V3__add_index was changed after it was applied"), "{msg}");
        assert_eq!(e.exit_code(), ExitCode::Failed);
        let busy = Error::LockBusy { holder: Some(42), waited: Duration::from_secs(1) };
        assert_eq!(busy.to_string(), "another migration runner holds the lock (pid 42) (waited 1s)");
        assert_eq!(Error::invalid("--to", "not a version").exit_code(), ExitCode::BadInput);
        assert_eq!(Error::invalid("--to", "x").to_string(), "--to: x");
    }
}
