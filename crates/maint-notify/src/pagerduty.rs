use std::time::Duration;

use async_trait::async_trait;
use maint_core::Secret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Action, Error, Notification, Notifier, Severity, http};

/// The Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty Events API v2: `trigger` and `resolve` with a `dedup_key` derived from the
/// notification's event key, so a resolve closes the alert its trigger opened.
#[derive(Debug)]
pub struct PagerDuty {
    routing_key: Secret,
    endpoint: String,
    name: String,
    client: reqwest::Client,
}

impl PagerDuty {
    /// `endpoint` is normally [`PAGERDUTY_EVENTS_URL`].
    pub fn new(routing_key: Secret, endpoint: impl Into<String>, name: impl Into<String>, timeout: Duration) -> Self {
        PagerDuty { routing_key, endpoint: endpoint.into(), name: name.into(), client: http::client(timeout) }
    }

    /// `maint-` and the SHA-256 of the event key (stable, at most 255 characters).
    pub fn dedup_key(event_key: &str) -> String {
        let digest = Sha256::digest(event_key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("maint-{}", &hex[..40])
    }

    fn payload(&self, n: &Notification) -> Value {
        let dedup_key = Self::dedup_key(&n.event_key);
        match n.action {
            Action::Resolve => json!({
                "routing_key": self.routing_key.expose(),
                "event_action": "resolve",
                "dedup_key": dedup_key,
            }),
            Action::Trigger => {
                let severity = match n.severity {
                    Severity::Info => "info",
                    Severity::Warning => "warning",
                    Severity::Error => "error",
                    Severity::Critical => "critical",
                };
                let mut details = serde_json::Map::new();
                details.insert("body".into(), n.body.clone().into());
                for (k, v) in &n.fields {
                    details.insert(k.clone(), v.clone().into());
                }
                json!({
                    "routing_key": self.routing_key.expose(),
                    "event_action": "trigger",
                    "dedup_key": dedup_key,
                    "payload": {
                        "summary": crate::slack::truncate(&n.title, 1024),
                        "source": "aindusdb-maint",
                        "severity": severity,
                        "component": n.task.clone().unwrap_or_else(|| "maintenance".into()),
                        "custom_details": details,
                    }
                })
            }
        }
    }
}

#[async_trait]
impl Notifier for PagerDuty {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn send(&self, n: &Notification) -> Result<(), Error> {
        let body = serde_json::to_vec(&self.payload(n)).map_err(|e| Error::permanent(e.to_string()))?;
        http::post_json(&self.client, &self.endpoint, &[], body).await
    }
}
