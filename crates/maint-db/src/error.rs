//! Shared by every task: the one [`Error`] of maint-db, and [`Blocker`], a session
//! holding a lock we waited for.

use maint_core::ExitCode;
use serde::Serialize;

use deadpool_postgres::tokio_postgres;

/// A session holding a lock that conflicts with the one we asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    /// Backend pid of the holder.
    pub pid: i32,
    /// The lock mode it holds (`AccessExclusiveLock`).
    pub mode: String,
    /// Its state (`idle in transaction`, `active`).
    pub state: String,
    /// Its current or last query, cut to 200 characters.
    pub query: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let query = self.query.split_whitespace().collect::<Vec<_>>().join(" ");
        write!(f, "pid {} ({}, {}: {})", self.pid, self.mode, self.state, query)
    }
}

/// Lists blockers as `pid 1 (...), pid 2 (...)`, or says none were found.
pub(crate) fn describe_blockers(blockers: &[Blocker]) -> String {
    if blockers.is_empty() {
        "no blocking session found any more".to_owned()
    } else {
        blockers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// Everything that can go wrong in maint-db.
///
/// Messages never contain the database URL or password: servers are named `host:port/db`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is wrong; `field` names it (`retention.rules[0].table`).
    #[error("{field}: {message}")]
    Invalid {
        /// Where the bad value is, as a dotted path.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No connection could be made (unreachable server, wrong password, missing database).
    #[error("cannot connect to PostgreSQL at {target}")]
    Connect {
        /// `host:port/db`, without credentials.
        target: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A statement failed.
    #[error("PostgreSQL: {operation} failed")]
    Query {
        /// What we were doing (`VACUUM public.logs`).
        operation: String,
        /// The driver's error (with the server's message as its source).
        #[source]
        source: tokio_postgres::Error,
    },
    /// A statement could not get its lock within `lock_timeout`, even after retries.
    #[error("{operation}: lock not available after {attempts} attempts; blocked by {}", describe_blockers(.blockers))]
    LockTimeout {
        /// What we were doing.
        operation: String,
        /// How many times it was tried.
        attempts: u32,
        /// Who held conflicting locks when we gave up.
        blockers: Vec<Blocker>,
    },
    /// The work was cancelled before it finished.
    #[error("cancelled")]
    Cancelled,
    /// A worker task died (panicked) before reporting its work.
    #[error("rebuild worker failed: {message}")]
    Worker {
        /// The task's error.
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { field: field.into(), message: message.into() }
    }

    /// The process exit code: bad input is 2, the rest 1.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Invalid { .. } => ExitCode::BadInput,
            _ => ExitCode::Failed,
        }
    }

    /// The SQLSTATE of a server error, if this is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Query { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeout_names_the_blockers_on_one_line() {
        let err = Error::LockTimeout {
            operation: "DELETE FROM public.logs".into(),
            attempts: 3,
            blockers: vec![Blocker {
                pid: 42,
                mode: "AccessExclusiveLock".into(),
                state: "idle in transaction".into(),
                query: "LOCK TABLE logs\n  IN ACCESS EXCLUSIVE MODE".into(),
            }],
        };
        assert_eq!(
            maint_core::one_line(&err),
            "DELETE FROM public.logs: lock not available after 3 attempts; blocked by pid 42 \
             (AccessExclusiveLock, idle in transaction: LOCK TABLE logs IN ACCESS EXCLUSIVE MODE)"
        );
        assert_eq!(err.exit_code(), ExitCode::Failed);
        assert_eq!(Error::invalid("jobs", "must be at least 1").exit_code(), ExitCode::BadInput);
    }
}
