//! The crate's errors: bad input (exit 2) apart from failures (exit 1), each one line.

/// Errors of maint-backup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input (a URL, a date, a flag); `field` names it. Exit code 2.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field or flag.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The object store failed.
    #[error("object store")]
    Store(#[from] object_store::Error),
    /// PostgreSQL failed.
    #[error("PostgreSQL")]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be made to PostgreSQL (unreachable, no answer within
    /// `connect_timeout`, refused certificate, authentication); names `host:port/db`.
    #[error(transparent)]
    Connect(maint_db::Error),
    /// A client tool (`pg_dump`, `pg_restore`) failed; `message` is its stderr, cut short.
    #[error("{tool} failed: {message}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// What it said.
        message: String,
    },
    /// No installed client tool is new enough for the server; found before anything was
    /// written. `message` names the server's version and the package to install.
    #[error("{tool}: {message}")]
    NoClient {
        /// The tool.
        tool: &'static str,
        /// The server's version, the newest client found, the package to install.
        message: String,
    },
    /// Row-level security applies to the connected role on `table` (`schema.table`): it is
    /// neither superuser, nor BYPASSRLS, nor the owner of a table without FORCE ROW LEVEL
    /// SECURITY, so it cannot read every row. Found before anything is written.
    #[error(
        "{table}: row-level security applies to this role, which cannot read every row; it needs BYPASSRLS \
         (or to be the table's owner, when the table does not FORCE ROW LEVEL SECURITY)"
    )]
    RowSecurity {
        /// `schema.table`.
        table: String,
    },
    /// Local I/O failed.
    #[error("I/O")]
    Io(#[from] std::io::Error),
    /// A backup with this key is already there: uploads never overwrite.
    #[error("backup {0} already exists")]
    Exists(String),
    /// The work was cancelled; whatever was started has been cleaned up.
    #[error("cancelled")]
    Cancelled,
}

use deadpool_postgres::tokio_postgres;

/// A connection string that cannot be used is bad input, anything else a failure to connect.
impl From<maint_db::Error> for Error {
    fn from(e: maint_db::Error) -> Self {
        match e {
            maint_db::Error::Invalid { field, message } => Error::Invalid { field, message },
            e => Error::Connect(e),
        }
    }
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }

    /// Whether this is the caller's bad input (exit code 2) rather than a failure (1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }
}
