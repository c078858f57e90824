#![doc = include_str!("../README.md")]

mod collect;
pub mod textfile;
mod tls;

pub use collect::{CollectConfig, METRICS, MetricsCollection, push_to_gateway, render_textfile};
pub use tls::{CertificateInfo, certificate_expiry, https_endpoint};

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_redis::redis;
use futures::StreamExt;
use maint_core::{Impact, Secret, Task, TaskContext, TaskReport, one_line};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

/// What to check. Anything left out is not checked (and not reported as passed).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Base URL of the AindusDB API; `/health`, `/health/ready`, `/health/live` are checked.
    pub service_url: Option<String>,
    /// PostgreSQL.
    pub database_url: Option<Secret>,
    /// Redis.
    pub redis_url: Option<Secret>,
    /// Timeout of each check, milliseconds.
    pub timeout_ms: u64,
    /// Slower than this is a warning, milliseconds.
    pub slow_ms: u64,
    /// Object store (not from TOML: built by the caller).
    #[serde(skip)]
    pub store: Option<Arc<dyn ObjectStore>>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            service_url: None,
            database_url: None,
            redis_url: None,
            timeout_ms: 5000,
            slow_ms: 500,
            store: None,
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// What was checked (`http /health/ready`, `postgresql`, ...).
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: f64,
    /// The answer, or why it failed.
    pub detail: String,
}

/// The health-checks task (`health-checks`, impact none).
#[derive(Debug, Clone)]
pub struct HealthChecks {
    config: HealthConfig,
}

impl HealthChecks {
    /// A task over this configuration.
    pub fn new(config: HealthConfig) -> Self {
        HealthChecks { config }
    }

    /// Runs every configured check concurrently.
    pub async fn check(&self) -> Vec<CheckResult> {
        let timeout = Duration::from_millis(self.config.timeout_ms.max(1));
        let mut checks: Vec<futures::future::BoxFuture<'_, CheckResult>> = Vec::new();
        if let Some(base) = &self.config.service_url {
            let client = reqwest::Client::builder().timeout(timeout).build().unwrap_or_default();
            for path in ["/health", "/health/ready", "/health/live"] {
                let (client, url) = (client.clone(), format!("{}{path}", base.trim_end_matches('/')));
                checks.push(Box::pin(timed(format!("http {path}"), timeout, async move {
                    let resp = client.get(&url).send().await.map_err(|e| one_line(&e.without_url()))?;
                    let status = resp.status();
                    let body: String = resp.text().await.unwrap_or_default().chars().take(120).collect();
                    if status.is_success() {
                        Ok(format!("HTTP {status}"))
                    } else {
                        Err(format!("HTTP {status}: {}", body.trim()))
                    }
                })));
            }
        }
        if let Some(url) = &self.config.database_url {
            checks.push(Box::pin(timed("postgresql".into(), timeout, async move {
                let client = maint_db::connect(url).await.map_err(|e| one_line(&e))?;
                let v: String = client
                    .query_one("SELECT current_setting('server_version')", &[])
                    .await
                    .map_err(|e| one_line(&e))?
                    .get(0);
                Ok(format!("PostgreSQL {v}"))
            })));
        }
        if let Some(url) = &self.config.redis_url {
            checks.push(Box::pin(timed("redis".into(), timeout, async move {
                let client = redis::Client::open(url.expose()).map_err(|_| "invalid Redis URL".to_owned())?;
                let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
                let pong: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| e.to_string())?;
                Ok(pong)
            })));
        }
        if let Some(store) = &self.config.store {
            checks.push(Box::pin(timed("object store".into(), timeout, async move {
                match store.list(None).next().await {
                    None | Some(Ok(_)) => Ok("listing works".to_owned()),
                    Some(Err(e)) => Err(one_line(&e)),
                }
            })));
        }
        futures::future::join_all(checks).await
    }
}

async fn timed(
    check: String,
    timeout: Duration,
    f: impl std::future::Future<Output = Result<String, String>>,
) -> CheckResult {
    let started = Instant::now();
    let result =
        tokio::time::timeout(timeout, f).await.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(detail) => CheckResult { check, ok: true, latency_ms, detail },
        Err(detail) => CheckResult { check, ok: false, latency_ms, detail },
    }
}

#[async_trait]
impl Task for HealthChecks {
    fn name(&self) -> &str {
        "health-checks"
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(self.name(), ctx.dry_run);
        let findings = self.check().await;
        if findings.is_empty() {
            report.skip("nothing to check: configure service_url, database_url, redis_url or a store");
            return report.finish();
        }
        let failed: Vec<&CheckResult> = findings.iter().filter(|f| !f.ok).collect();
        for f in &findings {
            if f.ok && f.latency_ms > self.config.slow_ms as f64 {
                report.warn(format!("{} is slow: {:.0} ms (over {} ms)", f.check, f.latency_ms, self.config.slow_ms));
            }
            let metric = format!("latency_ms_{}", f.check.replace(['/', ' '], "_").trim_matches('_'));
            report.metric(metric, (f.latency_ms * 10.0).round() / 10.0);
            report.item(f);
        }
        report.metric("checks_passed", (findings.len() - failed.len()) as f64);
        report.metric("checks_failed", failed.len() as f64);
        if !failed.is_empty() {
            let names: Vec<String> = failed.iter().map(|f| format!("{}: {}", f.check, f.detail)).collect();
            report.fail(names.join("; "));
        }
        report.finish()
    }
}
