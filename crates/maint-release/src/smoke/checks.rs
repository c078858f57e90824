//! Health checks as the update orchestrator runs them ([`HealthChecks`]): HTTP GET
//! checks ([`HttpChecks`]) and a smoke suite as checks ([`SmokeChecks`]).

use std::fmt::Debug;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Error, SmokePhase, SmokeRunner, SmokeStatus, SmokeSuite};

/// One HTTP check: `GET url` must answer `expect_status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// A short name (`health`); defaults to the URL's path.
    #[serde(default)]
    pub name: String,
    /// The URL.
    pub url: String,
    /// The expected status (default 200).
    #[serde(default = "super::suite::default_status")]
    pub expect_status: u16,
}

impl HttpCheck {
    /// A check that expects 200, named after the URL's path.
    pub fn get(url: impl Into<String>) -> Self {
        let url = url.into();
        let name = url::Url::parse(&url).map(|u| u.path().to_owned()).unwrap_or_else(|_| url.clone());
        HttpCheck { name, url, expect_status: 200 }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// The status answered, if any.
    pub status: Option<u16>,
    /// What went wrong.
    pub error: Option<String>,
    /// Attempts made.
    pub attempts: u32,
}

/// Summarizes failed checks on one line (`/health/ready: HTTP 503 (expected 200)`).
pub fn describe_failures(results: &[CheckResult]) -> String {
    results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{}: {}", r.name, r.error.as_deref().unwrap_or("failed")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Health and smoke checks of the running service. Object safe; the orchestrator runs
/// them before the update (pre-checks) and after the rollout (smoke).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait HealthChecks: Send + Sync + Debug + 'static {
    /// Runs every check once (with its own retries) and returns one result per check.
    async fn check(&self) -> Vec<CheckResult>;
}

/// HTTP GET checks with reqwest: each check is retried `attempts` times, `pause` apart,
/// because a freshly rolled-out service may need a moment behind its load balancer.
#[derive(Debug, Clone)]
pub struct HttpChecks {
    client: reqwest::Client,
    checks: Vec<HttpCheck>,
    attempts: u32,
    pause: Duration,
}

impl HttpChecks {
    /// Checks with a per-request `timeout`. URLs are validated here (field `checks[i].url`).
    pub fn new(checks: Vec<HttpCheck>, timeout: Duration, attempts: u32, pause: Duration) -> Result<Self, Error> {
        for (i, c) in checks.iter().enumerate() {
            let u = url::Url::parse(&c.url)
                .map_err(|e| Error::invalid(format!("checks[{i}].url"), format!("{:?}: {e}", c.url)))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(Error::invalid(format!("checks[{i}].url"), format!("{:?}: not http or https", c.url)));
            }
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("maint-release/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::invalid("checks", maint_core::one_line(&e)))?;
        Ok(HttpChecks { client, checks, attempts: attempts.max(1), pause })
    }

    /// The checks.
    pub fn checks(&self) -> &[HttpCheck] {
        &self.checks
    }

    async fn one(&self, c: &HttpCheck) -> CheckResult {
        let started = Instant::now();
        let mut result = CheckResult { name: c.name.clone(), ok: false, status: None, error: None, attempts: 0 };
        for attempt in 1..=self.attempts {
            result.attempts = attempt;
            match self.client.get(&c.url).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    result.status = Some(status);
                    if status == c.expect_status {
                        result.ok = true;
                        result.error = None;
                        break;
                    }
                    result.error = Some(format!("HTTP {status} (expected {})", c.expect_status));
                }
                Err(e) => result.error = Some(maint_core::one_line(&e.without_url())),
            }
            if attempt < self.attempts {
                tokio::time::sleep(self.pause).await;
            }
        }
        tracing::debug!(check = %c.name, ok = result.ok, elapsed = ?started.elapsed(), "http check");
        result
    }
}

#[async_trait]
impl HealthChecks for HttpChecks {
    async fn check(&self) -> Vec<CheckResult> {
        futures::future::join_all(self.checks.iter().map(|c| self.one(c))).await
    }
}

/// A smoke suite as [`HealthChecks`] for the orchestrator: one [`CheckResult`] per step
/// that ran (skipped steps follow a failure that is already reported).
#[derive(Debug, Clone)]
pub struct SmokeChecks {
    runner: SmokeRunner,
    suite: SmokeSuite,
    junit: Option<std::path::PathBuf>,
}

impl SmokeChecks {
    /// The suite, checked against the runner's variables now (not at the first run).
    pub fn new(runner: SmokeRunner, suite: SmokeSuite) -> Result<Self, Error> {
        suite.validate_named(&runner.variable_names())?;
        Ok(SmokeChecks { runner, suite, junit: None })
    }

    /// Writes the JUnit XML of every run to `path` (the latest run wins: after an update,
    /// the suite on the new version, or the pre-checks' run when they failed). A failure
    /// to write it is logged, never a failed check.
    pub fn with_junit(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.junit = Some(path.into());
        self
    }

    /// The suite.
    pub fn suite(&self) -> &SmokeSuite {
        &self.suite
    }

    /// The runner.
    pub fn runner(&self) -> &SmokeRunner {
        &self.runner
    }
}

#[async_trait]
impl HealthChecks for SmokeChecks {
    async fn check(&self) -> Vec<CheckResult> {
        match self.runner.run(&self.suite).await {
            Err(e) => vec![CheckResult {
                name: format!("smoke suite {}", self.suite.name),
                ok: false,
                status: None,
                error: Some(maint_core::one_line(&e)),
                attempts: 0,
            }],
            Ok(report) => {
                if let Some(path) = &self.junit
                    && let Err(e) = std::fs::write(path, report.to_junit())
                {
                    tracing::warn!("cannot write the smoke JUnit report {}: {e}", path.display());
                }
                report
                    .steps
                    .into_iter()
                    .filter(|s| s.status != SmokeStatus::Skipped)
                    .map(|s| CheckResult {
                        name: match s.phase {
                            SmokePhase::Step => s.name,
                            SmokePhase::Teardown => format!("teardown {}", s.name),
                        },
                        ok: s.status == SmokeStatus::Passed,
                        status: s.http_status,
                        error: s.error,
                        attempts: s.attempts,
                    })
                    .collect()
            }
        }
    }
}
