use maint_core::ExitCode;

/// Everything that can go wrong in maint-cache.
///
/// Messages never contain the Redis URL or password: nodes are named `host:port/db`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is wrong; `field` names it (`rules[0].older_than`).
    #[error("{field}: {message}")]
    Invalid {
        /// Where the bad value is, as a dotted path.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No connection could be made (unreachable server, wrong password, TLS).
    #[error("cannot connect to Redis at {node}")]
    Connect {
        /// `host:port/db`, without credentials.
        node: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A command failed.
    #[error("Redis at {node}: {operation} failed")]
    Command {
        /// `host:port/db`, without credentials.
        node: String,
        /// What we were doing (`SCAN`, `EVALSHA cleanup`).
        operation: &'static str,
        /// The client's error.
        #[source]
        source: deadpool_redis::redis::RedisError,
    },
    /// A reply did not have the expected shape.
    #[error("Redis at {node}: unexpected reply to {operation}: {detail}")]
    Reply {
        /// `host:port/db`, without credentials.
        node: String,
        /// The command.
        operation: &'static str,
        /// What was wrong.
        detail: String,
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
}
