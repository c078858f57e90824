//! The smoke runner: a suite's steps in order against one base URL, then its teardown,
//! with variables, captures, retries and per-step timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use maint_core::Secret;
use serde_json::Value;

use super::suite::is_count;
use super::template::{Masker, Vars, cut, render, render_value};
use crate::{Error, JsonPath, SmokePhase, SmokeReport, SmokeStatus, SmokeStep, SmokeStepResult, SmokeSuite};

/// Runs smoke suites against one base URL, with variables (`token`).
#[derive(Debug, Clone)]
pub struct SmokeRunner {
    base_url: String,
    variables: BTreeMap<String, String>,
    secrets: BTreeMap<String, Secret>,
    retry_pause: Duration,
}

impl SmokeRunner {
    /// A runner for `base_url` (`http://aindusdb:8080`, a path prefix is kept).
    pub fn new(base_url: &str) -> Result<Self, Error> {
        // The value is never repeated in errors or reports' properties with credentials:
        // a URL with user:password is refused (the token goes in [smoke] token).
        let u = url::Url::parse(base_url).map_err(|e| Error::invalid("smoke.base_url", format!("not a URL: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(Error::invalid("smoke.base_url", format!("{:?}: not http or https", u.scheme())));
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(Error::invalid(
                "smoke.base_url",
                "credentials in the URL are not supported (they would show in reports): use [smoke] token",
            ));
        }
        Ok(SmokeRunner {
            base_url: base_url.trim_end_matches('/').to_owned(),
            variables: BTreeMap::new(),
            secrets: BTreeMap::new(),
            retry_pause: Duration::from_millis(500),
        })
    }

    /// Sets a variable (overrides the suite's).
    pub fn variable(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.insert(name.into(), value.into());
        self
    }

    /// Sets a secret variable: it never appears in a report (`***` in paths).
    pub fn secret(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.secrets.insert(name.into(), value);
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Names of the runner's variables.
    pub fn variable_names(&self) -> BTreeSet<String> {
        self.variables.keys().chain(self.secrets.keys()).cloned().collect()
    }

    /// Runs the suite: the steps in order (a step whose variable was never captured is
    /// skipped), then every teardown step. Errors only for a suite that does not
    /// validate with this runner's variables; failed steps are in the report.
    pub async fn run(&self, suite: &SmokeSuite) -> Result<SmokeReport, Error> {
        suite.validate_named(&self.variable_names())?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("maint-release-smoke/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::invalid("smoke", maint_core::one_line(&e)))?;
        let started_at = chrono::Utc::now();
        let t = Instant::now();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let mut vars: Vars = suite.variables.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        vars.insert("run_id".into(), Value::String(format!("{}-{}", std::process::id(), nanos % 1_000_000_000)));
        vars.extend(self.variables.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))));
        vars.extend(self.secrets.iter().map(|(k, v)| (k.clone(), Value::String(v.expose().to_owned()))));
        // A database URL carries a password: always secret.
        let masked: BTreeSet<String> =
            self.secrets.keys().chain(&suite.secrets).cloned().chain([DATABASE_URL.to_owned()]).collect();
        let mut steps = Vec::new();
        for s in &suite.steps {
            steps.push(self.one(&client, suite, s, SmokePhase::Step, &mut vars, &masked).await);
        }
        for s in &suite.teardown {
            steps.push(self.one(&client, suite, s, SmokePhase::Teardown, &mut vars, &masked).await);
        }
        Ok(SmokeReport::new(
            suite.name.clone(),
            self.base_url.clone(),
            started_at,
            t.elapsed().as_millis() as u64,
            steps,
        ))
    }

    async fn one(
        &self,
        client: &reqwest::Client,
        suite: &SmokeSuite,
        s: &SmokeStep,
        phase: SmokePhase,
        vars: &mut Vars,
        masked: &BTreeSet<String>,
    ) -> SmokeStepResult {
        let t = Instant::now();
        let method = s.method.to_ascii_uppercase();
        let mut r = SmokeStepResult {
            name: s.name.clone(),
            phase,
            status: SmokeStatus::Failed,
            method: method.clone(),
            path: s.path.clone(),
            http_status: None,
            error: None,
            detail: None,
            attempts: 0,
            duration_ms: 0,
        };
        // Validated: the timeout is a positive number of seconds.
        let timeout = Duration::try_from_secs_f64(s.timeout_secs.unwrap_or(suite.timeout_secs))
            .unwrap_or(Duration::from_secs(10));
        if let Some(sql) = &s.sql {
            database(&mut r, sql, timeout, vars, masked).await;
            r.duration_ms = t.elapsed().as_millis() as u64;
            return r;
        }
        let rendered = (|| -> Result<_, String> {
            let path = render(&s.path, vars, &BTreeSet::new())?;
            r.path = render(&s.path, vars, masked)?;
            let mut headers = BTreeMap::new();
            for (k, v) in suite.headers.iter().chain(&s.headers) {
                headers.insert(k.to_ascii_lowercase(), (k.clone(), render(v, vars, &BTreeSet::new())?));
            }
            // An empty value (a step's `Authorization = ""`): the header is not sent.
            headers.retain(|_, (_, v)| !v.is_empty());
            let body = s.body.as_ref().map(|b| render_value(b, vars)).transpose()?;
            Ok((path, headers, body))
        })();
        let (path, headers, body) = match rendered {
            Ok(x) => x,
            Err(name) => {
                r.status = SmokeStatus::Skipped;
                r.error = Some(format!("needs ${{{name}}}, which no earlier step captured"));
                r.duration_ms = t.elapsed().as_millis() as u64;
                return r;
            }
        };
        // Validated: the method parses.
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let url = format!("{}{path}", self.base_url);
        let send = || {
            let mut req = client.request(m.clone(), &url).timeout(timeout);
            for (k, v) in headers.values() {
                req = req.header(k.as_str(), v.as_str());
            }
            if let Some(b) = &body {
                req = req.header("content-type", "application/json").body(b.to_string());
            }
            async move {
                match req.send().await {
                    Err(e) => (None, Err(maint_core::one_line(&e.without_url()))),
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        (
                            Some(status),
                            resp.bytes().await.map(|b| b.to_vec()).map_err(|e| maint_core::one_line(&e.without_url())),
                        )
                    }
                }
            }
        };
        for attempt in 1..=s.attempts {
            r.attempts = attempt;
            let (status, answer) = send().await;
            r.http_status = status;
            let outcome = match answer {
                Ok(bytes) => Self::judge(s, status.unwrap_or_default(), &bytes, vars, masked),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(captured) => {
                    vars.extend(captured);
                    r.status = SmokeStatus::Passed;
                    r.error = None;
                    break;
                }
                Err(e) => r.error = Some(e),
            }
            if attempt < s.attempts {
                tokio::time::sleep(self.retry_pause).await;
            }
        }
        if r.status == SmokeStatus::Passed && (s.repeat.is_some() || s.p95_ms.is_some()) {
            performance(&mut r, s, vars, send).await;
        }
        r.duration_ms = t.elapsed().as_millis() as u64;
        tracing::debug!(step = %r.name, status = ?r.status, "smoke step");
        r
    }

    /// Checks one answer; Ok: the captured values. Err: every failed expectation, with
    /// the values of secret variables (those captured from this answer included) masked.
    fn judge(s: &SmokeStep, status: u16, body: &[u8], vars: &Vars, masked: &BTreeSet<String>) -> Result<Vars, String> {
        let mut mask = Masker::new(vars, masked);
        if status != s.expect_status {
            let text = String::from_utf8_lossy(body);
            let text = mask.apply(&text.split_whitespace().collect::<Vec<_>>().join(" "));
            let snippet = if text.is_empty() { String::new() } else { format!(": {}", cut(&text, 120)) };
            return Err(format!("HTTP {status} (expected {}){snippet}", s.expect_status));
        }
        if !s.series.is_empty() {
            let found = super::prometheus::series(&String::from_utf8_lossy(body))
                .map_err(|e| mask.apply(&format!("not Prometheus text: {e}")))?;
            let missing: Vec<&str> = s.series.iter().filter(|n| !found.contains(*n)).map(String::as_str).collect();
            if !missing.is_empty() {
                return Err(format!("missing series: {}", missing.join(", ")));
            }
        }
        if s.assertions.is_empty() && s.capture.is_empty() {
            return Ok(Vars::new());
        }
        let answer: Value = serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON ({e})"))?;
        let mut captured = Vars::new();
        let mut capture_errors = Vec::new();
        for (name, path) in &s.capture {
            match JsonPath::parse(path).map(|p| p.select(&answer).cloned()) {
                Ok(Some(v)) => {
                    captured.insert(name.clone(), v);
                }
                Ok(None) => capture_errors.push(format!("capture {name}: {path} is not in the answer")),
                Err(e) => capture_errors.push(e),
            }
        }
        mask.add(captured.iter().filter(|(name, _)| masked.contains(*name)).map(|(_, v)| v));
        let mut errors = Vec::new();
        for a in &s.assertions {
            let equals = a.equals.as_ref().map(|e| render_value(e, vars)).transpose();
            match (JsonPath::parse(&a.path), equals) {
                (Ok(p), Ok(equals)) => errors.extend(a.check(&p, &answer, equals.as_ref(), &mask)),
                (Err(e), _) => errors.push(e),
                (_, Err(name)) => errors.push(format!("{}: needs ${{{name}}}, which no earlier step captured", a.path)),
            }
        }
        errors.extend(capture_errors);
        if errors.is_empty() { Ok(captured) } else { Err(mask.apply(&errors.join("; "))) }
    }
}

/// The runner's variable a database step reads through (always secret).
const DATABASE_URL: &str = "database_url";

/// A database step: `sql` through `database_url`, at least one row; skipped as not
/// configured without `database_url`.
async fn database(r: &mut SmokeStepResult, sql: &str, timeout: Duration, vars: &Vars, masked: &BTreeSet<String>) {
    r.method = "SQL".into();
    r.path = cut(&sql.split_whitespace().collect::<Vec<_>>().join(" "), 80);
    r.attempts = 1;
    let Some(url) = vars.get(DATABASE_URL).and_then(Value::as_str).filter(|u| !u.trim().is_empty()) else {
        r.status = SmokeStatus::Skipped;
        r.error = Some(format!(
            "not configured: set the smoke variable {DATABASE_URL} (AindusDB's PostgreSQL) to check the database"
        ));
        return;
    };
    let timeouts = crate::SessionTimeouts { connect: timeout, lock: timeout, statement: timeout };
    let rows = async {
        let pool = crate::pg_pool(url, "smoke.database_url", &timeouts).map_err(|e| maint_core::one_line(&e))?;
        let client = pool.get().await.map_err(|e| maint_core::one_line(&e))?;
        client.query(sql, &[]).await.map_err(|e| maint_core::one_line(&e))
    };
    match tokio::time::timeout(timeout * 2, rows).await {
        Ok(Ok(rows)) if !rows.is_empty() => {
            r.status = SmokeStatus::Passed;
            r.detail = Some(format!("{} row(s) read", rows.len()));
        }
        Ok(Ok(_)) => r.error = Some("the read returned no row".into()),
        Ok(Err(e)) => r.error = Some(Masker::new(vars, masked).apply(&e)),
        Err(_) => r.error = Some(format!("no answer within {} s", (timeout * 2).as_secs_f64())),
    }
}

/// The `q` quantile (nearest rank) of sorted durations, in milliseconds.
fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// A performance step, once its request passed: `repeat` requests more, each answering
/// `expect_status`, their p50/p95/max in `detail`, a failure when p95 is over `p95_ms`.
async fn performance<F, Fut>(r: &mut SmokeStepResult, s: &SmokeStep, vars: &Vars, send: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (Option<u16>, Result<Vec<u8>, String>)>,
{
    let figures = (|| -> Result<_, String> {
        let repeat = s.repeat.as_ref().map(|f| f.resolve(vars).map_err(|e| format!("repeat: {e}"))).transpose()?;
        if let Some(n) = repeat.filter(|n| !is_count(*n)) {
            return Err(format!("repeat: {n} is not a whole number from 1 to 10000"));
        }
        let budget = s.p95_ms.as_ref().map(|f| f.resolve(vars).map_err(|e| format!("p95_ms: {e}"))).transpose()?;
        if let Some(b) = budget.filter(|b| !(*b > 0.0 && b.is_finite())) {
            return Err(format!("p95_ms: {b} is not a positive number of milliseconds"));
        }
        Ok((repeat.map_or(20, |n| n as usize), budget))
    })();
    let (n, budget) = match figures {
        Ok(x) => x,
        Err(e) => {
            r.status = SmokeStatus::Failed;
            r.error = Some(e);
            return;
        }
    };
    let mut times = Vec::with_capacity(n);
    for i in 1..=n {
        let t = Instant::now();
        let (status, answer) = send().await;
        times.push(t.elapsed());
        let problem = match (status, answer) {
            (Some(st), Ok(_)) if st == s.expect_status => None,
            (Some(st), Ok(_)) => Some(format!("HTTP {st} (expected {})", s.expect_status)),
            (_, Err(e)) => Some(e),
            (None, Ok(_)) => Some("no answer".to_owned()),
        };
        if let Some(p) = problem {
            r.status = SmokeStatus::Failed;
            r.http_status = status;
            r.error = Some(format!("performance request {i} of {n}: {p}"));
            return;
        }
    }
    times.sort();
    let (p50, p95, max) = (quantile(&times, 0.5), quantile(&times, 0.95), quantile(&times, 1.0));
    let mut figures = format!("{n} requests: p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms");
    if let Some(b) = budget {
        figures.push_str(&format!(" (budget: p95 under {b} ms)"));
        if p95 > b {
            r.status = SmokeStatus::Failed;
            r.error = Some(format!("p95 {p95:.1} ms is over the budget of {b} ms; {figures}"));
        }
    }
    r.detail = Some(figures);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect::<Vec<_>>();
        let twenty = ms(&(1..=20).collect::<Vec<_>>());
        assert_eq!((quantile(&twenty, 0.5), quantile(&twenty, 0.95), quantile(&twenty, 1.0)), (10.0, 19.0, 20.0));
        assert_eq!(quantile(&ms(&[7]), 0.95), 7.0);
        assert_eq!(quantile(&ms(&[1, 2, 3]), 0.95), 3.0);
    }
}
