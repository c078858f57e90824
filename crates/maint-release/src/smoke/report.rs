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
    /// What went wrong (every failed expectation, `; `-separated).
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// How long it took, all attempts.
    pub duration_ms: u64,
}

/// The outcome of a suite.
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
            match r.status {
                SmokeStatus::Passed => x.push_str("/>\n"),
                SmokeStatus::Failed => {
                    let status = r.http_status.map(|s| format!(" -> HTTP {s}")).unwrap_or_default();
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{message}\" type=\"smoke\">{} {}{status} after {} attempt(s): {message}</failure>\n    </testcase>",
                        xml_escape(&r.method),
                        xml_escape(&r.path),
                        r.attempts
                    );
                }
                SmokeStatus::Skipped => {
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
            attempts: 1,
            duration_ms: 12,
        };
        let r = SmokeReport {
            suite: "s&\"q\"".into(),
            base_url: "http://x".into(),
            passed: 1,
            failed: 1,
            skipped: 1,
            started_at: chrono::Utc::now(),
            duration_ms: 1500,
            steps: vec![
                step("ok", SmokeStatus::Passed, None),
                step("bad <one>", SmokeStatus::Failed, Some("HTTP 500 (expected 200): \"oops\"")),
                step("later", SmokeStatus::Skipped, Some("needs ${id}")),
            ],
        };
        let x = r.to_junit();
        assert!(x.contains("<testsuite name=\"s&amp;&quot;q&quot;\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.500\""), "{x}");
        assert!(x.contains("<testcase name=\"bad &lt;one&gt;\""), "{x}");
        assert!(x.contains("message=\"HTTP 500 (expected 200): &quot;oops&quot;\""), "{x}");
        assert!(x.contains("GET /a?b=1&amp;c=&lt;2&gt; -> HTTP 500"), "{x}");
        assert!(x.contains("<skipped message=\"needs ${id}\"/>"), "{x}");
        assert!(!r.ok());
        assert!(r.summary().starts_with("s&\"q\": 1 passed, 1 failed, 1 skipped; bad <one>: HTTP 500"));
    }
}
