use std::time::Duration;

/// Errors of maint-notify. Messages never contain a secret (webhook URL, routing key,
/// password): targets are named by kind and host only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A target URL could not be understood; `target` is its redacted name.
    #[error("target {target}: {message}")]
    InvalidTarget {
        /// The target, redacted (`slack://hooks.slack.com`, or its position).
        target: String,
        /// What is wrong.
        message: String,
    },
    /// The destination refused or failed; `retryable` says whether trying again may help.
    #[error("{reason}")]
    Send {
        /// Status and a short excerpt of the answer, or the transport error.
        reason: String,
        /// 5xx, 429, timeouts and connection errors are retryable; other 4xx are not.
        retryable: bool,
        /// What the destination asked us to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The whole delivery (all attempts) took longer than allowed.
    #[error("gave up after {0:?}")]
    Timeout(Duration),
}

impl Error {
    pub(crate) fn permanent(reason: impl Into<String>) -> Self {
        Error::Send { reason: reason.into(), retryable: false, retry_after: None }
    }

    pub(crate) fn retryable(reason: impl Into<String>) -> Self {
        Error::Send { reason: reason.into(), retryable: true, retry_after: None }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Send { retryable: true, .. })
    }

    /// The wait the destination asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Send { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
