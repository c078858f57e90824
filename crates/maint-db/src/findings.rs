//! How a reporting task (performance analysis, security audit, index integrity) reports
//! its findings. The severity and the finding are maint-core's, shared by every task.

use maint_core::{Finding, Severity, TaskReport};
use serde_json::json;

/// Adds findings to a report: one item each (`{"step": "finding", "check", "severity",
/// "subject", "message", "action"}`), a warning for each medium or worse one, and the
/// counts as `findings_<severity>` for every severity (`findings_critical` ...
/// `findings_info`).
pub(crate) fn report_findings(report: &mut TaskReport, findings: &[Finding]) {
    for f in findings {
        let mut item = json!(f);
        item["step"] = "finding".into();
        report.item(item);
        if f.severity >= Severity::Medium {
            report.warn(format!("{}: {} {}: {} ({})", f.severity, f.check, f.subject, f.message, f.action));
        }
    }
    for sev in Severity::ALL {
        report.metric(format!("findings_{sev}"), findings.iter().filter(|f| f.severity == sev).count() as f64);
    }
}

/// Each finding's check, severity and subject, for the tests' assertions.
#[cfg(test)]
pub(crate) fn checks(f: &[Finding]) -> Vec<(&str, Severity, &str)> {
    f.iter().map(|f| (f.check.as_str(), f.severity, f.subject.as_str())).collect()
}
