//! What a checking task found: one severity scale and one finding shape for every task
//! (the Redis and PostgreSQL security checks, the performance report, index integrity,
//! maint's own configuration audit), so a scan can merge, sort and gate them as they are.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How bad a finding is, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, or could not be checked.
    Info,
    /// Hardening.
    Low,
    /// Needs attention.
    Medium,
    /// Fix soon.
    High,
    /// Fix now: data or service at risk.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
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

    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a severity (info, low, medium, high, critical)"))
    }
}

/// One thing found, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The check, stable across runs (`idle_in_transaction`, `default-user-nopass`).
    pub check: String,
    /// How bad.
    pub severity: Severity,
    /// What it is about (a node, an index, a setting, a file).
    pub subject: String,
    /// What was found.
    pub message: String,
    /// What to do.
    pub action: String,
}

impl Finding {
    /// A finding.
    pub fn new(
        check: impl Into<String>,
        severity: Severity,
        subject: impl Into<String>,
        message: impl Into<String>,
        action: impl Into<String>,
    ) -> Finding {
        Finding {
            check: check.into(),
            severity,
            subject: subject.into(),
            message: message.into(),
            action: action.into(),
        }
    }

    /// Worst first, then by check and subject: the order every report lists findings in.
    pub fn sort(findings: &mut [Finding]) {
        findings.sort_by(|a, b| {
            b.severity.cmp(&a.severity).then_with(|| a.check.cmp(&b.check)).then_with(|| a.subject.cmp(&b.subject))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_parse_and_print_one_way() {
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("warning".parse::<Severity>().unwrap_err().contains("not a severity"));
        let mut f = vec![
            Finding::new("b", Severity::Low, "x", "m", "a"),
            Finding::new("a", Severity::Critical, "y", "m", "a"),
            Finding::new("a", Severity::Low, "x", "m", "a"),
        ];
        Finding::sort(&mut f);
        let order: Vec<_> = f.iter().map(|f| (f.check.as_str(), f.severity)).collect();
        assert_eq!(order, [("a", Severity::Critical), ("a", Severity::Low), ("b", Severity::Low)]);
    }
}
