use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use maint_core::TaskReport;
use serde::{Deserialize, Serialize};

use crate::{Error, Notification, Notifier, Severity};

/// One destination: a notifier and the lowest severity it wants.
#[derive(Debug, Clone)]
pub struct Target {
    /// Redacted name (`slack://hooks.slack.com`).
    pub name: String,
    /// Notifications below this severity are not sent here.
    pub min_severity: Severity,
    /// The backend (possibly wrapped, e.g. rate limited).
    pub notifier: Arc<dyn Notifier>,
}

impl Target {
    /// A target that takes every severity.
    pub fn new(notifier: Arc<dyn Notifier>) -> Self {
        Target { name: notifier.name(), min_severity: Severity::Info, notifier }
    }
}

/// How hard to try each target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per target, the first included.
    pub max_attempts: u32,
    /// First backoff.
    pub min_backoff: Duration,
    /// Largest backoff, and the largest `Retry-After` honoured.
    pub max_backoff: Duration,
    /// All attempts and waits for one target together.
    pub total_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            total_timeout: Duration::from_secs(60),
        }
    }
}

/// What happened at one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Accepted by the destination.
    Delivered,
    /// Not accepted; see `error`.
    Failed,
    /// Not sent: below the target's minimum severity.
    Filtered,
}

/// The result for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Redacted target name.
    pub target: String,
    /// What happened.
    pub outcome: Outcome,
    /// Attempts made (0 when filtered); `attempts - 1` retries.
    pub attempts: u32,
    /// Why it failed (never contains a secret).
    pub error: Option<String>,
}

/// Sends a notification to many targets at once, each with retry (exponential backoff with
/// jitter, honouring `Retry-After`) and an overall timeout. One failing target never stops
/// the others.
#[derive(Debug, Clone, Default)]
pub struct Dispatcher {
    targets: Vec<Target>,
    policy: RetryPolicy,
}

impl Dispatcher {
    /// A dispatcher over `targets`.
    pub fn new(targets: Vec<Target>, policy: RetryPolicy) -> Self {
        Dispatcher { targets, policy }
    }

    /// The targets.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Sends to every target concurrently; one [`Delivery`] per target, in target order.
    pub async fn send(&self, n: &Notification) -> Vec<Delivery> {
        let mut set = tokio::task::JoinSet::new();
        for (i, target) in self.targets.iter().enumerate() {
            let (target, n, policy) = (target.clone(), n.clone(), self.policy);
            set.spawn(async move { (i, deliver(&target, &n, policy).await) });
        }
        let mut out: Vec<(usize, Delivery)> = Vec::with_capacity(self.targets.len());
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(pair) => out.push(pair),
                Err(e) => tracing::error!("a notification task panicked: {e}"),
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, d)| d).collect()
    }

    /// Sends and records the outcome in a task report: failures become warnings, never a
    /// failed task. Adds the metrics `notifications_delivered` and `notifications_failed`.
    pub async fn notify_report(&self, n: &Notification, report: &mut TaskReport) -> Vec<Delivery> {
        let deliveries = self.send(n).await;
        record(&deliveries, report);
        deliveries
    }
}

/// Adds deliveries to a task report (warnings for failures, two metrics).
pub fn record(deliveries: &[Delivery], report: &mut TaskReport) {
    let count = |o| deliveries.iter().filter(|d| d.outcome == o).count() as f64;
    report.metric("notifications_delivered", count(Outcome::Delivered));
    report.metric("notifications_failed", count(Outcome::Failed));
    for d in deliveries.iter().filter(|d| d.outcome == Outcome::Failed) {
        report.warn(format!(
            "notification to {} failed after {} attempt(s): {}",
            d.target,
            d.attempts,
            d.error.as_deref().unwrap_or("unknown error")
        ));
    }
}

async fn deliver(target: &Target, n: &Notification, policy: RetryPolicy) -> Delivery {
    if n.severity < target.min_severity {
        return Delivery { target: target.name.clone(), outcome: Outcome::Filtered, attempts: 0, error: None };
    }
    let attempts = AtomicU32::new(0);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_backoff)
        .with_max_delay(policy.max_backoff)
        .with_max_times(policy.max_attempts.saturating_sub(1) as usize)
        .with_jitter();
    let attempt = || async {
        attempts.fetch_add(1, Ordering::Relaxed);
        target.notifier.send(n).await
    };
    let retrying = attempt
        .retry(backoff)
        .when(Error::is_retryable)
        .adjust(|e, next| next.map(|d| e.retry_after().map_or(d, |ra| ra.min(policy.max_backoff))))
        .notify(|e, wait| tracing::warn!(target = %target.name, "notification failed, retrying in {wait:?}: {e}"));
    let result = match tokio::time::timeout(policy.total_timeout, retrying).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(policy.total_timeout)),
    };
    let attempts = attempts.load(Ordering::Relaxed);
    match result {
        Ok(()) => Delivery { target: target.name.clone(), outcome: Outcome::Delivered, attempts, error: None },
        Err(e) => {
            tracing::warn!(target = %target.name, attempts, "notification not delivered: {e}");
            Delivery { target: target.name.clone(), outcome: Outcome::Failed, attempts, error: Some(e.to_string()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MockNotifier;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            min_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            total_timeout: Duration::from_secs(5),
        }
    }

    fn mock(name: &'static str, results: Vec<Result<(), Error>>) -> Arc<dyn Notifier> {
        let mut m = MockNotifier::new();
        m.expect_name().return_const(name.to_owned());
        let mut results = results.into_iter();
        let n = results.len();
        m.expect_send().times(n).returning(move |_| results.next().expect("no more results"));
        Arc::new(m)
    }

    #[tokio::test]
    async fn retries_retryable_errors_and_reports_attempts() {
        let flaky = mock("flaky", vec![Err(Error::retryable("HTTP 500")), Err(Error::retryable("HTTP 502")), Ok(())]);
        let broken = mock("broken", vec![Err(Error::permanent("HTTP 404: no_service"))]);
        let down = mock("down", (0..3).map(|_| Err(Error::retryable("HTTP 503"))).collect());
        let d = Dispatcher::new(vec![Target::new(flaky), Target::new(broken), Target::new(down)], fast());
        let n = Notification::new("backup failed", "", Severity::Error);
        let mut report = TaskReport::begin("backup-verification", false);
        let out = d.notify_report(&n, &mut report).await;
        assert_eq!(out[0], Delivery { target: "flaky".into(), outcome: Outcome::Delivered, attempts: 3, error: None });
        assert_eq!(out[1].outcome, Outcome::Failed);
        assert_eq!(out[1].attempts, 1, "a permanent error is not retried");
        assert_eq!(out[2].attempts, 3);
        assert_eq!(out[2].error.as_deref(), Some("HTTP 503"));
        let report = report.finish();
        assert_eq!(report.status, maint_core::Status::Warning, "a failed notification never fails the task");
        assert_eq!(report.metrics["notifications_delivered"], 1.0);
        assert_eq!(report.metrics["notifications_failed"], 2.0);
        assert!(report.warnings[0].contains("broken failed after 1 attempt(s): HTTP 404"), "{:?}", report.warnings);
    }

    #[tokio::test]
    async fn filters_by_severity_without_sending() {
        let quiet = mock("pager", vec![]);
        let target = Target { name: "pager".into(), min_severity: Severity::Critical, notifier: quiet };
        let out = Dispatcher::new(vec![target], fast()).send(&Notification::new("fyi", "", Severity::Warning)).await;
        assert_eq!(out[0].outcome, Outcome::Filtered);
        assert_eq!(out[0].attempts, 0);
    }
}
