use std::time::Duration;

use async_trait::async_trait;
use maint_core::Secret;
use serde_json::{Value, json};

use crate::{Error, Notification, Notifier, http};

/// Largest payload a Teams Workflows webhook accepts.
pub const TEAMS_MAX_BYTES: usize = 28 * 1024;

/// Microsoft Teams through a Power Automate "Workflows" webhook (the Office 365 connector
/// URLs are retired): an Adaptive Card inside a `message` attachment, cut to 28 KB.
#[derive(Debug)]
pub struct Teams {
    url: Secret,
    name: String,
    client: reqwest::Client,
}

impl Teams {
    /// A Workflows webhook URL; `name` is what reports show.
    pub fn new(url: Secret, name: impl Into<String>, timeout: Duration) -> Self {
        Teams { url, name: name.into(), client: http::client(timeout) }
    }

    fn card(n: &Notification, body: &str) -> Value {
        let color = match n.severity {
            crate::Severity::Info => "Default",
            crate::Severity::Warning => "Warning",
            crate::Severity::Error | crate::Severity::Critical => "Attention",
        };
        let resolved = if n.action == crate::Action::Resolve { "RESOLVED: " } else { "" };
        let mut facts: Vec<Value> = vec![json!({"title": "severity", "value": n.severity.as_str()})];
        if let Some(task) = &n.task {
            facts.push(json!({"title": "task", "value": task}));
        }
        facts.extend(n.fields.iter().map(|(k, v)| json!({"title": k, "value": v})));
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "size": "Large", "weight": "Bolder", "color": color, "wrap": true,
                         "text": format!("{resolved}{}", n.title)},
                        {"type": "TextBlock", "wrap": true, "text": body},
                        {"type": "FactSet", "facts": facts}
                    ]
                }
            }]
        })
    }

    /// The JSON body sent, with the text cut so the whole payload stays within 28 KB.
    pub fn payload(n: &Notification) -> Vec<u8> {
        let full = serde_json::to_vec(&Self::card(n, &n.body)).unwrap_or_default();
        if full.len() <= TEAMS_MAX_BYTES {
            return full;
        }
        let overhead = serde_json::to_vec(&Self::card(n, "")).map(|v| v.len()).unwrap_or(0);
        let mut budget = TEAMS_MAX_BYTES.saturating_sub(overhead + 64);
        loop {
            let mut cut: String = String::new();
            for ch in n.body.chars() {
                if cut.len() + ch.len_utf8() > budget {
                    break;
                }
                cut.push(ch);
            }
            cut.push_str("\n… (truncated)");
            let v = serde_json::to_vec(&Self::card(n, &cut)).unwrap_or_default();
            if v.len() <= TEAMS_MAX_BYTES || budget == 0 {
                return v;
            }
            // JSON escaping made it longer than its raw length: shrink and try again.
            budget = budget.saturating_sub(v.len() - TEAMS_MAX_BYTES + 16);
        }
    }
}

#[async_trait]
impl Notifier for Teams {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn send(&self, n: &Notification) -> Result<(), Error> {
        http::post_json(&self.client, self.url.expose(), &[], Self::payload(n)).await
    }
}
