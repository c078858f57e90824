//! The findings every reporting task shares (performance analysis, security audit, index
//! integrity): a severity, the finding, and how a task reports them.

use maint_core::TaskReport;
use serde::Serialize;
use serde_json::json;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention.
    Warning,
    /// Needs attention now.
    Critical,
}

/// One thing found, with what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The check (`idle_in_transaction`, `duplicate_index`).
    pub check: &'static str,
    /// How bad.
    pub severity: Severity,
    /// What it is about (a pid, an index, a setting).
    pub subject: String,
    /// What was found.
    pub message: String,
    /// What to do.
    pub action: String,
}

pub(crate) fn finding(
    check: &'static str,
    severity: Severity,
    subject: String,
    message: String,
    action: &str,
) -> Finding {
    Finding { check, severity, subject, message, action: action.to_owned() }
}

pub(crate) fn sort(findings: &mut [Finding]) {
    findings
        .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(b.check)).then_with(|| a.subject.cmp(&b.subject)));
}

/// Adds findings to a report: one item each (`{"step": "finding", "check", "severity",
/// "subject", "message", "action"}`), a warning for each warning or critical one, and
/// the counts as `findings_critical`, `findings_warning`, `findings_info`.
pub(crate) fn report_findings(report: &mut TaskReport, findings: &[Finding]) {
    for f in findings {
        let mut item = json!(f);
        item["step"] = "finding".into();
        report.item(item);
        if f.severity >= Severity::Warning {
            let sev = if f.severity == Severity::Critical { "critical" } else { "warning" };
            report.warn(format!("{sev}: {} {}: {} ({})", f.check, f.subject, f.message, f.action));
        }
    }
    for (name, sev) in [
        ("findings_critical", Severity::Critical),
        ("findings_warning", Severity::Warning),
        ("findings_info", Severity::Info),
    ] {
        report.metric(name, findings.iter().filter(|f| f.severity == sev).count() as f64);
    }
}

/// Each finding's check, severity and subject, for the tests' assertions.
#[cfg(test)]
pub(crate) fn checks(f: &[Finding]) -> Vec<(&'static str, Severity, &str)> {
    f.iter().map(|f| (f.check, f.severity, f.subject.as_str())).collect()
}
