use async_trait::async_trait;

use crate::{Error, Notification, Notifier, Severity};

/// Writes notifications as tracing events (`log://`) or plain lines on stderr
/// (`log://stderr`). The default target when nothing is configured.
#[derive(Debug, Default)]
pub struct LogNotifier {
    stderr: bool,
}

impl LogNotifier {
    /// Tracing events (target `maint_notify`).
    pub fn tracing() -> Self {
        LogNotifier { stderr: false }
    }

    /// One line per notification on stderr.
    pub fn stderr() -> Self {
        LogNotifier { stderr: true }
    }
}

#[async_trait]
impl Notifier for LogNotifier {
    fn name(&self) -> String {
        if self.stderr { "log://stderr".into() } else { "log://".into() }
    }

    async fn send(&self, n: &Notification) -> Result<(), Error> {
        let text = n.plain_text().replace('\n', " | ");
        if self.stderr {
            eprintln!("notification: {text}");
            return Ok(());
        }
        match n.severity {
            Severity::Info => tracing::info!(target: "maint_notify", event_key = %n.event_key, "{text}"),
            Severity::Warning => tracing::warn!(target: "maint_notify", event_key = %n.event_key, "{text}"),
            Severity::Error | Severity::Critical => {
                tracing::error!(target: "maint_notify", event_key = %n.event_key, "{text}");
            }
        }
        Ok(())
    }
}
