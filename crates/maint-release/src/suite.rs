use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use maint_core::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{CheckResult, Error, HealthChecks, JsonPath};

/// A declarative smoke suite: HTTP steps run in order against a base URL, then the
/// teardown steps, which always run (even after a failure).
///
/// ```toml
/// name = "aindusdb"
/// timeout_secs = 10
/// headers = { Authorization = "Bearer ${token}" }
/// secrets = ["session"]
///
/// [[steps]]
/// name = "create-index"
/// method = "POST"
/// path = "/v1/vector/indexes"
/// body = { name = "smoke-${run_id}", dimension = 1536, metric = "cosine" }
/// expect_status = 201
/// assert = [{ path = "$.dimension", number = 1536 }]
/// capture = { index_id = "$.id" }
///
/// [[steps]]
/// name = "veritas-sum"
/// method = "POST"
/// path = "/v1/veritas/verify"
/// body = { expression = "2 + 3" }
/// assert = [{ path = "$.result", number = 5, tolerance = 1e-9 }]
///
/// [[teardown]]
/// name = "delete-index"
/// method = "DELETE"
/// path = "/v1/vector/indexes/${index_id}"
/// expect_status = 204
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeSuite {
    /// The suite's name (JUnit `testsuite`).
    pub name: String,
    /// Default per-request timeout of a step, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Variables (`${name}` in paths, header values and bodies); the runner's variables
    /// override them. `run_id` is always set (unique per run).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Headers sent with every step (a step's own headers win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Variables whose values are secret (suite variables, the runner's, or captured from
    /// an answer: `secrets = ["session"]` with `capture = { session = "$.token" }`): their
    /// values print as `***` in paths, failure messages and reports. The runner's secret
    /// variables (`token`) are always secret.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub secrets: BTreeSet<String>,
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<SmokeStep>,
    /// Steps that always run after `steps`, whatever happened (cleanup).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teardown: Vec<SmokeStep>,
}

fn default_timeout() -> f64 {
    10.0
}

/// One HTTP request and what its answer must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeStep {
    /// The step's name (JUnit `testcase`).
    pub name: String,
    /// The HTTP method (default `GET`).
    #[serde(default = "default_method")]
    pub method: String,
    /// The path after the base URL (`/v1/vector/indexes/${index_id}`).
    pub path: String,
    /// Request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON body; a string that is exactly `${name}` becomes the variable's JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// The expected status (default 200).
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// Assertions on the JSON answer.
    #[serde(default, rename = "assert", skip_serializing_if = "Vec::is_empty")]
    pub assertions: Vec<Assertion>,
    /// Values of the answer kept for later steps: variable name -> JSON path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capture: BTreeMap<String, String>,
    /// This step's timeout, in seconds (default: the suite's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// Attempts (default 1), 500 ms apart: for read-only steps right after a rollout.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub attempts: u32,
}

fn default_method() -> String {
    "GET".into()
}

fn default_status() -> u16 {
    200
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// One check of the JSON answer, on the value at `path`: exactly one of `equals`,
/// `exists` and `number` (with an optional `tolerance`, default 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    /// A JSON path (`$.matches[0].score`).
    pub path: String,
    /// The value equals this (numbers compared as numbers: `5` equals `5.0`); `${name}`
    /// variables are replaced, as in a body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// The path exists (`true`) or does not (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The value is a number within `tolerance` of this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<f64>,
    /// The allowed absolute difference for `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

impl Assertion {
    fn new(path: &str) -> Self {
        Assertion { path: path.into(), equals: None, exists: None, number: None, tolerance: None }
    }

    /// `path` equals `value`.
    pub fn equals(path: &str, value: Value) -> Self {
        Assertion { equals: Some(value), ..Assertion::new(path) }
    }

    /// `path` exists.
    pub fn exists(path: &str) -> Self {
        Assertion { exists: Some(true), ..Assertion::new(path) }
    }

    /// `path` is a number within `tolerance` of `n`.
    pub fn number(path: &str, n: f64, tolerance: f64) -> Self {
        Assertion { number: Some(n), tolerance: Some(tolerance), ..Assertion::new(path) }
    }

    /// `None` when it holds, else what is wrong; `equals` is the expected value with its
    /// variables replaced.
    fn check(&self, path: &JsonPath, answer: &Value, equals: Option<&Value>, mask: &Masker) -> Option<String> {
        let got = path.select(answer);
        let p = path.as_str();
        if let Some(exists) = self.exists {
            return match (exists, got) {
                (true, None) => Some(format!("{p}: missing")),
                (false, Some(v)) => Some(format!("{p}: expected no value, got {}", short(v, mask))),
                _ => None,
            };
        }
        let Some(got) = got else { return Some(format!("{p}: missing")) };
        if let Some(n) = self.number {
            let tolerance = self.tolerance.unwrap_or(0.0);
            return match got.as_f64() {
                Some(g) if (g - n).abs() <= tolerance => None,
                _ => Some(format!("{p}: expected {n} (±{tolerance}), got {}", short(got, mask))),
            };
        }
        let expected = equals?;
        let same = match (expected.as_f64(), got.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => expected == got,
        };
        if same { None } else { Some(format!("{p}: expected {}, got {}", short(expected, mask), short(got, mask))) }
    }
}

/// A value on one line, secrets masked, at most 80 characters.
fn short(v: &Value, mask: &Masker) -> String {
    cut(&mask.apply(&v.to_string()), 80)
}

/// At most `max` characters, `…` at the end when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() > max { format!("{}…", s.chars().take(max - 1).collect::<String>()) } else { s.to_owned() }
}

/// Replaces the values of secret variables with `***` in a message, before it is cut to
/// length (a cut would otherwise leave a prefix of the secret).
#[derive(Debug, Default)]
struct Masker(Vec<String>);

impl Masker {
    /// The values of the `masked` names set in `vars`.
    fn new(vars: &Vars, masked: &BTreeSet<String>) -> Self {
        let mut m = Masker::default();
        m.add(masked.iter().filter_map(|n| vars.get(n)));
        m
    }

    /// Masks these values too: as they are, and as they appear inside a JSON string.
    fn add<'a>(&mut self, values: impl IntoIterator<Item = &'a Value>) {
        for v in values {
            let text = text_of(v);
            let quoted = Value::String(text.clone()).to_string();
            self.0.extend([quoted[1..quoted.len() - 1].to_owned(), text].into_iter().filter(|t| !t.is_empty()));
        }
        // The longest first: a secret that contains another is masked whole.
        self.0.sort_by_key(|t| std::cmp::Reverse(t.len()));
        self.0.dedup();
    }

    fn apply(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |t, secret| t.replace(secret.as_str(), "***"))
    }
}

/// Whether a string is a variable name (`index_id`).
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The `${name}` references in a text.
fn references(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

fn value_references(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => references(s),
        Value::Array(a) => a.iter().flat_map(value_references).collect(),
        Value::Object(o) => o.values().flat_map(value_references).collect(),
        _ => Vec::new(),
    }
}

type Vars = BTreeMap<String, Value>;

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `${name}`; `masked` names print as `***`. Err: the first unset name.
fn render(text: &str, vars: &Vars, masked: &BTreeSet<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        let value = vars.get(name).ok_or_else(|| name.to_owned())?;
        out.push_str(&rest[..start]);
        if masked.contains(name) {
            out.push_str("***");
        } else {
            out.push_str(&text_of(value));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn render_value(v: &Value, vars: &Vars) -> Result<Value, String> {
    let none = BTreeSet::new();
    Ok(match v {
        Value::String(s) => {
            let whole = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')).filter(|n| is_name(n));
            match whole {
                Some(name) => vars.get(name).cloned().ok_or_else(|| name.to_owned())?,
                None => Value::String(render(s, vars, &none)?),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| render_value(x, vars)).collect::<Result<_, _>>()?),
        Value::Object(o) => Value::Object(
            o.iter().map(|(k, x)| Ok((k.clone(), render_value(x, vars)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn secs(field: &str, v: f64) -> Result<Duration, Error> {
    if v <= 0.0 {
        return Err(Error::invalid(field, format!("{v} is not a positive number of seconds")));
    }
    Duration::try_from_secs_f64(v).map_err(|_| Error::invalid(field, format!("{v} is not a number of seconds")))
}

impl SmokeSuite {
    /// Reads a suite from a `.toml`, `.yaml`/`.yml` or `.json` file and validates it.
    pub fn from_path(path: &Path) -> Result<Self, Error> {
        let field = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid(&field, format!("cannot read the smoke suite: {e}")))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        let suite: SmokeSuite = match ext.as_str() {
            "toml" => toml::from_str(&text).map_err(|e| Error::invalid(&field, e.message().to_owned()))?,
            "yaml" | "yml" => serde_norway::from_str(&text).map_err(|e| Error::invalid(&field, e.to_string()))?,
            "json" => serde_json::from_str(&text).map_err(|e| Error::invalid(&field, e.to_string()))?,
            _ => return Err(Error::invalid(&field, "a smoke suite is a .toml, .yaml, .yml or .json file")),
        };
        suite.validate().map_err(|e| match e {
            Error::Invalid { field: f, message } => Error::invalid(format!("{field}: {f}"), message),
            other => other,
        })?;
        Ok(suite)
    }

    /// Checks every field (the error names it: `steps[2].assert[0].path`) and that every
    /// `${name}` is a suite variable, `run_id`, one of `runner` (the runner's variables),
    /// or captured by an earlier step (any step, for the teardown).
    pub fn validate_with(&self, runner: &BTreeSet<String>) -> Result<(), Error> {
        self.check(Some(runner))
    }

    /// [`validate_with`](Self::validate_with) before the runner's variables are known:
    /// a name that is neither a suite variable nor captured passes (the runner may set
    /// it), a name captured only by a later step does not.
    pub fn validate(&self) -> Result<(), Error> {
        self.check(None)
    }

    fn check(&self, runner: Option<&BTreeSet<String>>) -> Result<(), Error> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "required"));
        }
        secs("timeout_secs", self.timeout_secs)?;
        if self.steps.is_empty() && self.teardown.is_empty() {
            return Err(Error::invalid("steps", "a suite needs at least one step"));
        }
        let mut known: BTreeSet<&str> = self.variables.keys().map(String::as_str).collect();
        known.insert("run_id");
        known.extend(runner.into_iter().flatten().map(String::as_str));
        let mut captured: BTreeSet<&str> = BTreeSet::new();
        for s in &self.steps {
            captured.extend(s.capture.keys().map(String::as_str));
        }
        let all_captures: BTreeSet<&str> =
            self.steps.iter().chain(&self.teardown).flat_map(|s| s.capture.keys().map(String::as_str)).collect();
        // Without the runner's variables, any name that no step captures may be one of them.
        let external = |r: &str| runner.is_none() && !all_captures.contains(r);
        for name in &self.secrets {
            if !is_name(name)
                || !(known.contains(name.as_str()) || all_captures.contains(name.as_str()) || runner.is_none())
            {
                return Err(Error::invalid(
                    "secrets",
                    format!("{name:?} is not a variable (of the suite, the runner, or captured by a step)"),
                ));
            }
        }
        for (k, v) in &self.headers {
            for r in references(v) {
                if !known.contains(r) && !external(r) {
                    return Err(Error::invalid(format!("headers.{k}"), format!("${{{r}}} is never set")));
                }
            }
        }
        let mut so_far: BTreeSet<&str> = BTreeSet::new();
        let mut names = BTreeSet::new();
        let all = self.steps.iter().map(|s| ("steps", s)).chain(self.teardown.iter().map(|s| ("teardown", s)));
        for (i, (section, s)) in all.enumerate() {
            let i = if section == "steps" { i } else { i - self.steps.len() };
            let f = |what: &str| format!("{section}[{i}].{what}");
            if s.name.trim().is_empty() {
                return Err(Error::invalid(f("name"), "required"));
            }
            if !names.insert(s.name.as_str()) {
                return Err(Error::invalid(f("name"), format!("{:?} is used by two steps", s.name)));
            }
            reqwest::Method::from_bytes(s.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| Error::invalid(f("method"), format!("{:?} is not an HTTP method", s.method)))?;
            if !s.path.starts_with('/') {
                return Err(Error::invalid(f("path"), format!("{:?} does not start with /", s.path)));
            }
            if !(100..=599).contains(&s.expect_status) {
                return Err(Error::invalid(f("expect_status"), format!("{} is not an HTTP status", s.expect_status)));
            }
            if let Some(t) = s.timeout_secs {
                secs(&f("timeout_secs"), t)?;
            }
            if s.attempts == 0 {
                return Err(Error::invalid(f("attempts"), "must be at least 1"));
            }
            for (j, a) in s.assertions.iter().enumerate() {
                let af = |what: &str| f(&format!("assert[{j}].{what}"));
                JsonPath::parse(&a.path).map_err(|e| Error::invalid(af("path"), e))?;
                let kinds =
                    usize::from(a.equals.is_some()) + usize::from(a.exists.is_some()) + usize::from(a.number.is_some());
                if kinds != 1 {
                    return Err(Error::invalid(af("path"), "needs exactly one of equals, exists, number"));
                }
                match (a.tolerance, a.number) {
                    (Some(_), None) => return Err(Error::invalid(af("tolerance"), "only with number")),
                    (Some(t), _) if !(t >= 0.0 && t.is_finite()) => {
                        return Err(Error::invalid(af("tolerance"), format!("{t} is not a non-negative number")));
                    }
                    _ => {}
                }
            }
            for (name, path) in &s.capture {
                if !is_name(name) {
                    return Err(Error::invalid(f("capture"), format!("{name:?} is not a variable name")));
                }
                JsonPath::parse(path).map_err(|e| Error::invalid(f(&format!("capture.{name}")), e))?;
            }
            let refs = references(&s.path)
                .into_iter()
                .map(|r| (r, "path".to_owned()))
                .chain(
                    s.headers
                        .iter()
                        .flat_map(|(k, v)| references(v).into_iter().map(move |r| (r, format!("headers.{k}")))),
                )
                .chain(s.body.iter().flat_map(value_references).map(|r| (r, "body".to_owned())))
                .chain(s.assertions.iter().enumerate().flat_map(|(j, a)| {
                    a.equals.iter().flat_map(value_references).map(move |r| (r, format!("assert[{j}].equals")))
                }));
            for (r, where_) in refs {
                let ok = known.contains(r)
                    || external(r)
                    || so_far.contains(r)
                    || (section == "teardown" && captured.contains(r));
                if !ok {
                    return Err(Error::invalid(
                        f(&where_),
                        format!("${{{r}}} is never set (not a variable, nor captured by an earlier step)"),
                    ));
                }
            }
            so_far.extend(s.capture.keys().map(String::as_str));
        }
        Ok(())
    }

    /// The built-in AindusDB suite (the old plan's checks). Needs the variable `token`
    /// (a bearer token for `/v1/users/me` and the vector routes).
    ///
    /// Health: `GET /health` (status `healthy`, a version), `/health/ready`, `/health/live`
    /// (3 attempts each); `GET /v1/users/me`; `GET /v1/vector/indexes`; create a 1536-dimension
    /// cosine index `maint-smoke-${run_id}` (id captured as `index_id`), upsert one vector,
    /// query it back (top match is it, score 1 ± 1e-6); VERITAS `sqrt(16)` = 4, `2 + 3` = 5,
    /// `sin(pi/2)` = 1 (± 1e-9); teardown: delete the index.
    pub fn aindusdb() -> Self {
        let vector: Vec<Value> = (0..1536).map(|i| json!(f64::from(i % 7 + 1) / 7.0)).collect();
        let get = |name: &str, path: &str| SmokeStep {
            name: name.into(),
            method: "GET".into(),
            path: path.into(),
            headers: BTreeMap::new(),
            body: None,
            expect_status: 200,
            assertions: Vec::new(),
            capture: BTreeMap::new(),
            timeout_secs: None,
            attempts: 1,
        };
        let post = |name: &str, path: &str, body: Value| SmokeStep {
            method: "POST".into(),
            body: Some(body),
            ..get(name, path)
        };
        let veritas = |name: &str, expr: &str, expected: f64| SmokeStep {
            assertions: vec![Assertion::number("$.result", expected, 1e-9)],
            ..post(name, "/v1/veritas/verify", json!({ "expression": expr }))
        };
        let retried = |s: SmokeStep| SmokeStep { attempts: 3, ..s };
        SmokeSuite {
            name: "aindusdb".into(),
            timeout_secs: default_timeout(),
            variables: BTreeMap::new(),
            headers: BTreeMap::from([("Authorization".to_owned(), "Bearer ${token}".to_owned())]),
            secrets: BTreeSet::new(),
            steps: vec![
                retried(SmokeStep {
                    assertions: vec![Assertion::equals("$.status", json!("healthy")), Assertion::exists("$.version")],
                    ..get("health", "/health")
                }),
                retried(get("health-ready", "/health/ready")),
                retried(get("health-live", "/health/live")),
                SmokeStep { assertions: vec![Assertion::exists("$.username")], ..get("users-me", "/v1/users/me") },
                SmokeStep {
                    assertions: vec![Assertion::exists("$.indexes")],
                    ..get("list-indexes", "/v1/vector/indexes")
                },
                SmokeStep {
                    expect_status: 201,
                    assertions: vec![Assertion::number("$.dimension", 1536.0, 0.0)],
                    capture: BTreeMap::from([("index_id".to_owned(), "$.id".to_owned())]),
                    ..post(
                        "create-index",
                        "/v1/vector/indexes",
                        json!({ "name": "maint-smoke-${run_id}", "dimension": 1536, "metric": "cosine" }),
                    )
                },
                SmokeStep {
                    assertions: vec![Assertion::number("$.upserted", 1.0, 0.0)],
                    ..post(
                        "upsert-vector",
                        "/v1/vector/indexes/${index_id}/vectors",
                        json!({ "vectors": [{ "id": "smoke-1", "values": vector, "metadata": { "source": "maint-smoke" } }] }),
                    )
                },
                SmokeStep {
                    assertions: vec![
                        Assertion::equals("$.matches[0].id", json!("smoke-1")),
                        Assertion::number("$.matches[0].score", 1.0, 1e-6),
                    ],
                    ..post(
                        "query-vector",
                        "/v1/vector/indexes/${index_id}/query",
                        json!({ "vector": vector, "top_k": 1 }),
                    )
                },
                veritas("veritas-sqrt", "sqrt(16)", 4.0),
                veritas("veritas-sum", "2 + 3", 5.0),
                veritas("veritas-sin", "sin(pi/2)", 1.0),
            ],
            teardown: vec![SmokeStep {
                method: "DELETE".into(),
                expect_status: 204,
                ..get("delete-index", "/v1/vector/indexes/${index_id}")
            }],
        }
    }
}

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
        suite.validate_with(&self.variable_names()).map_err(|e| match e {
            Error::Invalid { field, message } => {
                Error::invalid(format!("smoke suite {}: {field}", suite.name), message)
            }
            other => other,
        })?;
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
        let masked: BTreeSet<String> = self.secrets.keys().chain(&suite.secrets).cloned().collect();
        let mut steps = Vec::new();
        for s in &suite.steps {
            steps.push(self.one(&client, suite, s, SmokePhase::Step, &mut vars, &masked).await);
        }
        for s in &suite.teardown {
            steps.push(self.one(&client, suite, s, SmokePhase::Teardown, &mut vars, &masked).await);
        }
        let count = |st| steps.iter().filter(|r| r.status == st).count();
        Ok(SmokeReport {
            suite: suite.name.clone(),
            base_url: self.base_url.clone(),
            passed: count(SmokeStatus::Passed),
            failed: count(SmokeStatus::Failed),
            skipped: count(SmokeStatus::Skipped),
            started_at,
            duration_ms: t.elapsed().as_millis() as u64,
            steps,
        })
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
            attempts: 0,
            duration_ms: 0,
        };
        let rendered = (|| -> Result<_, String> {
            let path = render(&s.path, vars, &BTreeSet::new())?;
            r.path = render(&s.path, vars, masked)?;
            let mut headers = BTreeMap::new();
            for (k, v) in suite.headers.iter().chain(&s.headers) {
                headers.insert(k.to_ascii_lowercase(), (k.clone(), render(v, vars, &BTreeSet::new())?));
            }
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
        // Validated: the method parses and the timeout is a positive number of seconds.
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let timeout = Duration::try_from_secs_f64(s.timeout_secs.unwrap_or(suite.timeout_secs))
            .unwrap_or(Duration::from_secs(10));
        let url = format!("{}{path}", self.base_url);
        for attempt in 1..=s.attempts {
            r.attempts = attempt;
            let mut req = client.request(m.clone(), &url).timeout(timeout);
            for (k, v) in headers.values() {
                req = req.header(k.as_str(), v.as_str());
            }
            if let Some(b) = &body {
                req = req.header("content-type", "application/json").body(b.to_string());
            }
            let (status, outcome) = match req.send().await {
                Err(e) => (None, Err(maint_core::one_line(&e.without_url()))),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Err(e) => (Some(status), Err(maint_core::one_line(&e.without_url()))),
                        Ok(bytes) => (Some(status), Self::judge(s, status, &bytes, vars, masked)),
                    }
                }
            };
            r.http_status = status;
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
        suite.validate_with(&runner.variable_names()).map_err(|e| match e {
            Error::Invalid { field, message } => {
                Error::invalid(format!("smoke suite {}: {field}", suite.name), message)
            }
            other => other,
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: Error) -> String {
        match e {
            Error::Invalid { field, message } => format!("{field}: {message}"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn the_builtin_suite_validates_with_a_token_and_round_trips_through_toml_and_yaml() {
        let s = SmokeSuite::aindusdb();
        let token = BTreeSet::from(["token".to_owned()]);
        s.validate_with(&token).unwrap();
        s.validate().unwrap();
        let none = BTreeSet::new();
        assert!(field(s.validate_with(&none).unwrap_err()).starts_with("headers.Authorization: ${token} is never set"));
        let names: Vec<&str> = s.steps.iter().chain(&s.teardown).map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 12);
        assert_eq!(s.teardown[0].path, "/v1/vector/indexes/${index_id}");
        let toml_text = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<SmokeSuite>(&toml_text).unwrap(), s);
        let yaml = serde_norway::to_string(&s).unwrap();
        assert_eq!(serde_norway::from_str::<SmokeSuite>(&yaml).unwrap(), s);
    }

    #[test]
    fn validation_names_the_bad_field() {
        let parse = |t: &str| toml::from_str::<SmokeSuite>(t).unwrap();
        let cases = [
            ("name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"x\"", "steps[0].path: \"x\" does not start with /"),
            ("name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nmethod = \"G T\"", "steps[0].method:"),
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nassert = [{ path = \"$.a\" }]",
                "steps[0].assert[0].path: needs exactly one of equals, exists, number",
            ),
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nassert = [{ path = \"$.a\", equals = 1, tolerance = 1 }]",
                "steps[0].assert[0].tolerance: only with number",
            ),
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nassert = [{ path = \"a\", exists = true }]",
                "steps[0].assert[0].path: \"a\" does not start with $",
            ),
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/x/${id}\"\n[[steps]]\nname = \"b\"\npath = \"/\"\ncapture = { id = \"$.id\" }",
                "steps[0].path: ${id} is never set",
            ),
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\n[[steps]]\nname = \"a\"\npath = \"/\"",
                "steps[1].name: \"a\" is used by two steps",
            ),
            ("name = \"s\"\ntimeout_secs = 0\n[[steps]]\nname = \"a\"\npath = \"/\"", "timeout_secs:"),
            ("name = \"s\"", "steps: a suite needs at least one step"),
        ];
        for (text, expected) in cases {
            let got = field(parse(text).validate().unwrap_err());
            assert!(got.starts_with(expected), "{text}\n{got}");
        }
        // A teardown may use what any step captures.
        parse("name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\ncapture = { id = \"$.id\" }\n[[teardown]]\nname = \"d\"\npath = \"/x/${id}\"")
            .validate()
            .unwrap();
        assert!(
            toml::from_str::<SmokeSuite>("name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nexpect = 1").is_err()
        );
    }

    #[test]
    fn templates_keep_json_types_and_mask_secrets() {
        let vars: Vars = BTreeMap::from([
            ("id".to_owned(), json!(42)),
            ("token".to_owned(), json!("s3cr3t")),
            ("name".to_owned(), json!("idx")),
        ]);
        let masked = BTreeSet::from(["token".to_owned()]);
        assert_eq!(render("/a/${id}/${name}", &vars, &BTreeSet::new()).unwrap(), "/a/42/idx");
        assert_eq!(render("/a?t=${token}", &vars, &masked).unwrap(), "/a?t=***");
        assert_eq!(render("/a/${nope}", &vars, &masked).unwrap_err(), "nope");
        let body = render_value(&json!({ "n": "${id}", "s": "x-${id}", "l": ["${name}"] }), &vars).unwrap();
        assert_eq!(body, json!({ "n": 42, "s": "x-42", "l": ["idx"] }));

        // Values are masked as they are and inside JSON strings, before a cut.
        let vars: Vars = BTreeMap::from([("t".to_owned(), json!("a\"b")), ("u".to_owned(), json!("s3cr3t"))]);
        let mask = Masker::new(&vars, &BTreeSet::from(["t".to_owned(), "u".to_owned()]));
        assert_eq!(mask.apply("a\"b / \"a\\\"b\" / s3cr3ts3cr3t"), "*** / \"***\" / ******");
        let long = json!(format!("{}s3cr3t", "x".repeat(76)));
        assert_eq!(short(&long, &mask), format!("\"{}**…", "x".repeat(76)), "no prefix of the secret is left");
        // A secret is a variable of the suite, of the runner or a capture.
        let suite: SmokeSuite = toml::from_str(
            "name = \"s\"\nsecrets = [\"sid\", \"token\"]\n[[steps]]\nname = \"a\"\npath = \"/\"\ncapture = { sid = \"$.id\" }",
        )
        .unwrap();
        suite.validate_with(&BTreeSet::from(["token".to_owned()])).unwrap();
        assert_eq!(
            field(suite.validate_with(&BTreeSet::new()).unwrap_err()),
            "secrets: \"token\" is not a variable (of the suite, the runner, or captured by a step)"
        );
    }

    #[test]
    fn assertions_compare_numbers_with_tolerance() {
        let answer = json!({ "result": 5, "f": 0.30000000000000004, "s": "x" });
        let check =
            |a: Assertion| a.check(&JsonPath::parse(&a.path).unwrap(), &answer, a.equals.as_ref(), &Masker::default());
        assert_eq!(check(Assertion::number("$.result", 5.0, 0.0)), None);
        assert_eq!(
            check(Assertion::number("$.result", 5.1, 0.0)).as_deref(),
            Some("$.result: expected 5.1 (±0), got 5")
        );
        assert_eq!(check(Assertion::number("$.f", 0.3, 1e-9)), None);
        assert!(check(Assertion::number("$.s", 1.0, 1.0)).unwrap().contains("got \"x\""));
        assert_eq!(check(Assertion::equals("$.result", json!(5.0))), None, "5 equals 5.0");
        assert_eq!(check(Assertion::equals("$.s", json!("y"))).as_deref(), Some("$.s: expected \"y\", got \"x\""));
        assert_eq!(check(Assertion::exists("$.nope")).as_deref(), Some("$.nope: missing"));
        assert_eq!(check(Assertion { exists: Some(false), ..Assertion::new("$.nope") }), None);
    }

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
