#![doc = include_str!("../README.md")]

mod config;
mod dispatch;
mod email;
mod error;
mod http;
mod log;
mod notification;
mod notifier;
mod pagerduty;
mod ratelimit;
mod slack;
mod teams;
mod webhook;

pub use config::{Config, parse_target};
pub use dispatch::{Delivery, Dispatcher, Outcome, RetryPolicy, Target, record};
pub use email::{Email, EmailConfig, SmtpTls};
pub use error::Error;
pub use log::LogNotifier;
pub use notification::{Action, Notification, Severity};
#[cfg(test)]
pub(crate) use notifier::MockNotifier;
pub use notifier::Notifier;
pub use pagerduty::{PAGERDUTY_EVENTS_URL, PagerDuty};
pub use ratelimit::RateLimited;
pub use slack::Slack;
pub use teams::{TEAMS_MAX_BYTES, Teams};
pub use webhook::{VerifyError, WEBHOOK_TOLERANCE, Webhook, decode_secret, sign, verify};

/// A reqwest error as text without its URL (which holds the webhook's secret).
pub(crate) fn redact_reqwest(e: reqwest::Error) -> String {
    maint_core::one_line(&e.without_url())
}
