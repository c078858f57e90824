use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{Error, Notification};

/// A destination for notifications. Object safe: stored as `Arc<dyn Notifier>`.
/// Retry, rate limiting and timeouts are wrappers ([`crate::Dispatcher`],
/// [`crate::RateLimited`]), not repeated in each backend.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync + Debug + 'static {
    /// A name safe to print: kind and host, never a token (`slack://hooks.slack.com`).
    fn name(&self) -> String;
    /// One attempt to deliver.
    async fn send(&self, notification: &Notification) -> Result<(), Error>;
}

#[async_trait]
impl<N: Notifier + ?Sized> Notifier for Arc<N> {
    fn name(&self) -> String {
        (**self).name()
    }
    async fn send(&self, notification: &Notification) -> Result<(), Error> {
        (**self).send(notification).await
    }
}
