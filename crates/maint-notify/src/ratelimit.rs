use std::num::NonZeroU32;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::{Error, Notification, Notifier};

/// Wraps a notifier so it sends at most `per_second` messages per second (each attempt
/// counts, retries included); callers wait their turn instead of being refused.
#[derive(Debug)]
pub struct RateLimited<N> {
    inner: N,
    limiter: DefaultDirectRateLimiter,
}

impl<N: Notifier> RateLimited<N> {
    /// `per_second` messages per second, no burst.
    pub fn new(inner: N, per_second: NonZeroU32) -> Self {
        RateLimited { inner, limiter: RateLimiter::direct(Quota::per_second(per_second).allow_burst(NonZeroU32::MIN)) }
    }
}

#[async_trait]
impl<N: Notifier> Notifier for RateLimited<N> {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn send(&self, n: &Notification) -> Result<(), Error> {
        self.limiter.until_ready().await;
        self.inner.send(n).await
    }
}
