//! What a smoke run reports: each step's outcome, a one-line summary, and JUnit XML.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Whether a step passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmokeStatus {
    /// Every expectation held.
    Passed,
    /// Something did not.
    Failed,
    /// Not run: it needs a value an earlier (failed) step should have captured.
    Skipped,
}

/// Whether a step is one of the steps or of the teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmokePhase {
    /// `steps`.
    Step,
    /// `teardown`.
    Teardown,
}

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeStepResult {
    /// The step's name.
    pub name: String,
    /// Step or teardown.
    pub phase: SmokePhase,
    /// Passed, failed or skipped.
    pub status: SmokeStatus,
    /// The method.
    pub method: String,
    /// The path sent (secret variables print as `***`).
    pub path: String,
    /// The status answered (of the last attempt).
    pub http_status: Option<u16>,
    /// What went wrong (every failed expectation, `; `-separated), or why it was skipped.
    pub error: Option<String>,
    /// Figures worth reading when it passed too (a performance step's durations, the rows
    /// of a database read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// How long it took, all attempts.
    pub duration_ms: u64,
}

/// The counts of a suite's steps (the plan's `summary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeSummary {
    /// Every step, teardown included.
    pub total: usize,
    /// Steps that passed.
    pub passed: usize,
    /// Steps that failed.
    pub failed: usize,
    /// Steps skipped (after a failure, or not configured).
    pub skipped: usize,
}

/// The outcome of a suite. Its JSON carries the plan's `summary {total, passed, failed}`
/// and `overall_status` (`passed` or `failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeReport {
    /// The suite's name.
    pub suite: String,
    /// The base URL.
    pub base_url: String,
    /// Steps that passed (teardown included).
    pub passed: usize,
    /// Steps that failed (teardown included).
    pub failed: usize,
    /// Steps skipped.
    pub skipped: usize,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// Every step, in the order run.
    pub steps: Vec<SmokeStepResult>,
    /// The counts.
    pub summary: SmokeSummary,
    /// `passed` when no step failed, else `failed`.
    pub overall_status: SmokeStatus,
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

impl SmokeReport {
    /// The report of these steps (the counts and the overall status from them).
    pub fn new(
        suite: String,
        base_url: String,
        started_at: chrono::DateTime<chrono::Utc>,
        duration_ms: u64,
        steps: Vec<SmokeStepResult>,
    ) -> Self {
        let count = |st| steps.iter().filter(|r| r.status == st).count();
        let summary = SmokeSummary {
            total: steps.len(),
            passed: count(SmokeStatus::Passed),
            failed: count(SmokeStatus::Failed),
            skipped: count(SmokeStatus::Skipped),
        };
        SmokeReport {
            suite,
            base_url,
            passed: summary.passed,
            failed: summary.failed,
            skipped: summary.skipped,
            started_at,
            duration_ms,
            steps,
            summary,
            overall_status: if summary.failed == 0 { SmokeStatus::Passed } else { SmokeStatus::Failed },
        }
    }

    /// No step failed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// `aindusdb: 11 passed, 1 failed, 0 skipped; veritas-sum: $.result: expected 5.1 (±0), got 5`.
    pub fn summary(&self) -> String {
        let mut s = format!("{}: {} passed, {} failed, {} skipped", self.suite, self.passed, self.failed, self.skipped);
        let failures: Vec<String> = self
            .steps
            .iter()
            .filter(|r| r.status == SmokeStatus::Failed)
            .map(|r| format!("{}: {}", r.name, r.error.as_deref().unwrap_or("failed")))
            .collect();
        if !failures.is_empty() {
            s.push_str("; ");
            s.push_str(&failures.join("; "));
        }
        s
    }

    /// The report as JUnit XML: one `testsuite`, one `testcase` per step (classname
    /// `<suite>.steps` or `<suite>.teardown`), `failure` and `skipped` elements.
    pub fn to_junit(&self) -> String {
        let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
        let total = self.steps.len();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let name = xml_escape(&self.suite);
        let _ = writeln!(
            x,
            "<testsuites name=\"maint-smoke\" tests=\"{total}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">",
            self.failed,
            self.skipped,
            secs(self.duration_ms)
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"{name}\" tests=\"{total}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">",
            self.failed,
            self.skipped,
            secs(self.duration_ms),
            self.started_at.format("%Y-%m-%dT%H:%M:%S")
        );
        let _ = writeln!(
            x,
            "    <properties><property name=\"base_url\" value=\"{}\"/></properties>",
            xml_escape(&self.base_url)
        );
        for r in &self.steps {
            let class = match r.phase {
                SmokePhase::Step => "steps",
                SmokePhase::Teardown => "teardown",
            };
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"{name}.{class}\" time=\"{}\"",
                xml_escape(&r.name),
                secs(r.duration_ms)
            );
            let message = xml_escape(r.error.as_deref().unwrap_or_default());
            let out = r.detail.as_deref().map(|d| format!("      <system-out>{}</system-out>\n", xml_escape(d)));
            match (r.status, out) {
                (SmokeStatus::Passed, None) => x.push_str("/>\n"),
                (SmokeStatus::Passed, Some(out)) => {
                    let _ = write!(x, ">\n{out}    </testcase>\n");
                }
                (SmokeStatus::Failed, out) => {
                    let status = r.http_status.map(|s| format!(" -> HTTP {s}")).unwrap_or_default();
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{message}\" type=\"smoke\">{} {}{status} after {} attempt(s): {message}</failure>\n{}    </testcase>",
                        xml_escape(&r.method),
                        xml_escape(&r.path),
                        r.attempts,
                        out.unwrap_or_default()
                    );
                }
                (SmokeStatus::Skipped, _) => {
                    let _ = writeln!(x, ">\n      <skipped message=\"{message}\"/>\n    </testcase>");
                }
            }
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_and_counts() {
        let step = |name: &str, status, error: Option<&str>| SmokeStepResult {
            name: name.into(),
            phase: SmokePhase::Step,
            status,
            method: "GET".into(),
            path: "/a?b=1&c=<2>".into(),
            http_status: Some(500),
            error: error.map(str::to_owned),
            detail: None,
            attempts: 1,
            duration_ms: 12,
        };
        let r = SmokeReport::new(
            "s&\"q\"".into(),
            "http://x".into(),
            chrono::Utc::now(),
            1500,
            vec![
                step("ok", SmokeStatus::Passed, None),
                step("bad <one>", SmokeStatus::Failed, Some("HTTP 500 (expected 200): \"oops\"")),
                step("later", SmokeStatus::Skipped, Some("needs ${id}")),
                SmokeStepResult {
                    detail: Some("20 requests: p95 <1 ms".into()),
                    ..step("fast", SmokeStatus::Passed, None)
                },
            ],
        );
        let x = r.to_junit();
        assert!(x.contains("<testsuite name=\"s&amp;&quot;q&quot;\" tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.500\""), "{x}");
        assert!(x.contains("<testcase name=\"fast\" classname=\"s&amp;&quot;q&quot;.steps\" time=\"0.012\">\n      <system-out>20 requests: p95 &lt;1 ms</system-out>\n    </testcase>"), "{x}");
        assert!(x.contains("<testcase name=\"bad &lt;one&gt;\""), "{x}");
        assert!(x.contains("message=\"HTTP 500 (expected 200): &quot;oops&quot;\""), "{x}");
        assert!(x.contains("GET /a?b=1&amp;c=&lt;2&gt; -> HTTP 500"), "{x}");
        assert!(x.contains("<skipped message=\"needs ${id}\"/>"), "{x}");
        assert!(!r.ok());
        assert!(r.summary().starts_with("s&\"q\": 2 passed, 1 failed, 1 skipped; bad <one>: HTTP 500"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["summary"], serde_json::json!({ "total": 4, "passed": 2, "failed": 1, "skipped": 1 }));
        assert_eq!(json["overall_status"], "failed");
    }
}
