//! A smoke suite's types as written in a file (TOML, YAML or JSON), its parsing, and its
//! validation (every error names the field: `steps[2].assert[0].path`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::template::{Masker, is_name, references, short, value_references};
use crate::{Error, JsonPath};

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
/// path = "/v1/vectors/indexes"
/// body = { name = "smoke-${run_id}", dimension = 1536, metric = "cosine" }
/// expect_status = 201
/// assert = [{ path = "$.dimension", number = 1536 }]
/// capture = { index_id = "$.id" }
///
/// [[steps]]
/// name = "veritas-sum"
/// method = "POST"
/// path = "/v1/veritas/calculate"
/// body = { query = "2 + 3", verification_level = "standard" }
/// assert = [{ path = "$.answer", number = 5, tolerance = 1e-9 }]
///
/// [[steps]]
/// name = "auth-missing-token"
/// method = "POST"
/// path = "/v1/veritas/calculate"
/// headers = { Authorization = "" }       # an empty value: the header is not sent
/// body = { query = "2 + 3" }
/// expect_status = 401
///
/// [[steps]]
/// name = "performance-health"
/// path = "/health"
/// repeat = 20                            # or "${perf_requests}"
/// p95_ms = 500
///
/// [[steps]]
/// name = "monitoring-metrics"
/// path = "/metrics"
/// series = ["aindusdb_http_requests_total"]
///
/// [[steps]]
/// name = "database-read"
/// sql = "SELECT 1"                       # through the runner's database_url
///
/// [[teardown]]
/// name = "delete-index"
/// method = "DELETE"
/// path = "/v1/vectors/indexes/${index_id}"
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

pub(super) fn default_timeout() -> f64 {
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
    /// The path after the base URL (`/v1/vectors/indexes/${index_id}`); empty for a
    /// database step.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Request headers (they override the suite's; an empty value: the header is not sent).
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
    /// The answer is Prometheus text exposition that must parse and carry these series
    /// (sample names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<String>,
    /// Performance: once the step passed, its request is sent this many times more (each
    /// must answer `expect_status`) and the durations are reported (p50, p95, max).
    /// Default 20 when `p95_ms` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Figure>,
    /// The budget of those requests' 95th percentile, in milliseconds: over it, the step fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<Figure>,
    /// A database step instead of a request: this SQL (a read) runs through the runner's
    /// variable `database_url` (always secret) and must return a row. Without
    /// `database_url`, the step is reported as not configured (skipped: never a pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// A number in a suite, or `"${name}"`: a variable whose value is one, so that the
/// runner's variables can set it (`[smoke] variables = { p95_budget_ms = "250" }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Figure {
    /// A number.
    Number(f64),
    /// `${name}`.
    Variable(String),
}

impl Figure {
    /// The number, a variable's value parsed; Err: what is wrong.
    pub(super) fn resolve(&self, vars: &super::template::Vars) -> Result<f64, String> {
        match self {
            Figure::Number(n) => Ok(*n),
            Figure::Variable(text) => {
                let v = super::template::render(text, vars, &BTreeSet::new())
                    .map_err(|name| format!("${{{name}}} is not set"))?;
                v.trim().parse().map_err(|_| format!("{text} is {v:?}, not a number"))
            }
        }
    }

    fn references(&self) -> Vec<&str> {
        match self {
            Figure::Number(_) => Vec::new(),
            Figure::Variable(text) => references(text),
        }
    }

    /// Checks a number (`check`) or that the text is exactly one `${name}`.
    fn validate(&self, field: &str, check: impl Fn(f64) -> bool, what: &str) -> Result<(), Error> {
        match self {
            Figure::Number(n) if check(*n) => Ok(()),
            Figure::Number(n) => Err(Error::invalid(field, format!("{n} is not {what}"))),
            Figure::Variable(text) => match references(text).as_slice() {
                [name] if *text == format!("${{{name}}}") => Ok(()),
                _ => Err(Error::invalid(field, format!("{text:?} is neither {what} nor \"${{name}}\""))),
            },
        }
    }
}

/// A request count: a whole number from 1 to 10000.
pub(super) fn is_count(n: f64) -> bool {
    n.fract() == 0.0 && (1.0..=10_000.0).contains(&n)
}

fn default_method() -> String {
    "GET".into()
}

pub(super) fn default_status() -> u16 {
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
    pub(super) fn check(
        &self,
        path: &JsonPath,
        answer: &Value,
        equals: Option<&Value>,
        mask: &Masker,
    ) -> Option<String> {
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
            match &s.sql {
                Some(sql) if sql.trim().is_empty() => return Err(Error::invalid(f("sql"), "empty")),
                Some(_) if !s.path.is_empty() => {
                    return Err(Error::invalid(f("sql"), "a database step has no path (a request or sql, not both)"));
                }
                Some(_)
                    if !(s.assertions.is_empty() && s.capture.is_empty() && s.series.is_empty())
                        || s.repeat.is_some()
                        || s.p95_ms.is_some() =>
                {
                    return Err(Error::invalid(
                        f("sql"),
                        "a database step has no assert, capture, series, repeat or p95_ms",
                    ));
                }
                Some(_) => {}
                None if !s.path.starts_with('/') => {
                    return Err(Error::invalid(f("path"), format!("{:?} does not start with /", s.path)));
                }
                None => {}
            }
            if let Some(name) = s.series.iter().find(|n| !super::prometheus::is_name(n)) {
                return Err(Error::invalid(f("series"), format!("{name:?} is not a metric name")));
            }
            if let Some(r) = &s.repeat {
                r.validate(&f("repeat"), is_count, "a whole number from 1 to 10000")?;
            }
            if let Some(p) = &s.p95_ms {
                p.validate(&f("p95_ms"), |n| n > 0.0 && n.is_finite(), "a positive number of milliseconds")?;
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
                }))
                .chain(s.repeat.iter().flat_map(Figure::references).map(|r| (r, "repeat".to_owned())))
                .chain(s.p95_ms.iter().flat_map(Figure::references).map(|r| (r, "p95_ms".to_owned())));
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

    /// [`validate_with`](Self::validate_with), the field of an error prefixed with
    /// `smoke suite <name>: `.
    pub(super) fn validate_named(&self, runner: &BTreeSet<String>) -> Result<(), Error> {
        self.validate_with(runner).map_err(|e| match e {
            Error::Invalid { field, message } => Error::invalid(format!("smoke suite {}: {field}", self.name), message),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::smoke::field;

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
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nsql = \"SELECT 1\"",
                "steps[0].sql: a database step has no path",
            ),
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\nsql = \"SELECT 1\"\nrepeat = 3",
                "steps[0].sql: a database step has no assert, capture, series, repeat or p95_ms",
            ),
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nrepeat = 2.5",
                "steps[0].repeat: 2.5 is not a whole number",
            ),
            ("name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\np95_ms = 0", "steps[0].p95_ms: 0 is not a positive"),
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\np95_ms = \"fast\"",
                "steps[0].p95_ms: \"fast\" is neither a positive number of milliseconds nor \"${name}\"",
            ),
            (
                "name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nseries = [\"a b\"]",
                "steps[0].series: \"a b\" is not a metric name",
            ),
        ];
        for (text, expected) in cases {
            let got = field(parse(text).validate().unwrap_err());
            assert!(got.starts_with(expected), "{text}\n{got}");
        }
        // A teardown may use what any step captures.
        parse("name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\ncapture = { id = \"$.id\" }\n[[teardown]]\nname = \"d\"\npath = \"/x/${id}\"")
            .validate()
            .unwrap();
        // A figure from a variable: known to the runner, or refused.
        let timed = parse("name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nrepeat = \"${n}\"\np95_ms = 250");
        timed.validate_with(&BTreeSet::from(["n".to_owned()])).unwrap();
        assert!(
            field(timed.validate_with(&BTreeSet::new()).unwrap_err()).starts_with("steps[0].repeat: ${n} is never set")
        );
        assert_eq!(timed.steps[0].p95_ms, Some(Figure::Number(250.0)));
        assert!(
            toml::from_str::<SmokeSuite>("name = \"s\"\n[[steps]]\nname = \"a\"\npath = \"/\"\nexpect = 1").is_err()
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
}
