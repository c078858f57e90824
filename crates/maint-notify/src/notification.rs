use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How urgent a notification is. Targets can filter on a minimum severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    #[default]
    Info,
    /// Someone should look during working hours.
    Warning,
    /// Something failed.
    Error,
    /// Wake someone up.
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" | "warn" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            "critical" => Ok(Severity::Critical),
            _ => Err(format!("unknown severity {s:?} (expected info, warning, error or critical)")),
        }
    }
}

/// Whether the notification opens (or repeats) an alert or closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Something happened (PagerDuty `trigger`).
    #[default]
    Trigger,
    /// The condition is over (PagerDuty `resolve`, same event key).
    Resolve,
}

/// One message to send to every target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// One line.
    pub title: String,
    /// Details, plain text.
    pub body: String,
    /// How urgent.
    pub severity: Severity,
    /// The task that sent it (`backup-verification`), if any.
    pub task: Option<String>,
    /// Extra facts shown as a table.
    pub fields: BTreeMap<String, String>,
    /// A stable key for the condition (`backup-verification:2026-11-23`): a resolve with
    /// the same key closes the alert its trigger opened.
    pub event_key: String,
    /// Trigger or resolve.
    pub action: Action,
}

impl Notification {
    /// A trigger notification; the event key defaults to the title.
    pub fn new(title: impl Into<String>, body: impl Into<String>, severity: Severity) -> Self {
        let title = title.into();
        Notification {
            event_key: title.clone(),
            title,
            body: body.into(),
            severity,
            task: None,
            fields: BTreeMap::new(),
            action: Action::Trigger,
        }
    }

    /// Sets the event key.
    pub fn with_event_key(mut self, key: impl Into<String>) -> Self {
        self.event_key = key.into();
        self
    }

    /// Sets the task.
    pub fn with_task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }

    /// Adds a field.
    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// Makes this the resolve of the alert with the same event key.
    pub fn resolve(mut self) -> Self {
        self.action = Action::Resolve;
        self
    }

    /// Title and body as one plain-text message (for chat fallbacks and email).
    pub fn plain_text(&self) -> String {
        let mut s = format!("[{}] {}", self.severity.as_str().to_uppercase(), self.title);
        if self.action == Action::Resolve {
            s.insert_str(0, "RESOLVED ");
        }
        if !self.body.is_empty() {
            s.push_str("\n\n");
            s.push_str(&self.body);
        }
        if let Some(task) = &self.task {
            s.push_str(&format!("\n\ntask: {task}"));
        }
        for (k, v) in &self.fields {
            s.push_str(&format!("\n{k}: {v}"));
        }
        s
    }
}
