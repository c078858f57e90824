use std::time::Duration;

use async_trait::async_trait;
use maint_core::Secret;
use serde_json::{Value, json};

use crate::{Error, Notification, Notifier, http};

/// Slack incoming webhook: `text` (the fallback shown in notifications) plus Block Kit blocks.
/// Slack allows about one message per second per webhook; [`crate::Config`] puts a
/// [`crate::RateLimited`] wrapper of 1/s around this backend by default.
#[derive(Debug)]
pub struct Slack {
    url: Secret,
    name: String,
    client: reqwest::Client,
}

impl Slack {
    /// A webhook (`https://hooks.slack.com/services/...`); `name` is what reports show.
    pub fn new(url: Secret, name: impl Into<String>, timeout: Duration) -> Self {
        Slack { url, name: name.into(), client: http::client(timeout) }
    }

    /// The JSON body sent for a notification.
    pub fn payload(n: &Notification) -> Value {
        let emoji = match n.severity {
            crate::Severity::Info => ":information_source:",
            crate::Severity::Warning => ":warning:",
            crate::Severity::Error => ":x:",
            crate::Severity::Critical => ":rotating_light:",
        };
        let resolved = if n.action == crate::Action::Resolve { "RESOLVED: " } else { "" };
        let mut blocks = vec![json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(&format!("{resolved}{}", n.title), 150), "emoji": true}
        })];
        if !n.body.is_empty() {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&n.body, 3000)}}));
        }
        let fields: Vec<Value> = n
            .fields
            .iter()
            .take(10)
            .map(|(k, v)| json!({"type": "mrkdwn", "text": truncate(&format!("*{k}*\n{v}"), 2000)}))
            .collect();
        if !fields.is_empty() {
            blocks.push(json!({"type": "section", "fields": fields}));
        }
        let mut context = format!("{emoji} {}", n.severity);
        if let Some(task) = &n.task {
            context.push_str(&format!(" · task `{task}`"));
        }
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
        json!({"text": truncate(&n.plain_text(), 3000), "blocks": blocks})
    }
}

pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[async_trait]
impl Notifier for Slack {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn send(&self, n: &Notification) -> Result<(), Error> {
        let body = serde_json::to_vec(&Self::payload(n)).map_err(|e| Error::permanent(e.to_string()))?;
        http::post_json(&self.client, self.url.expose(), &[], body).await
    }
}
