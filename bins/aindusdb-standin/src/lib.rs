//! A small in-memory stand-in for AindusDB Core, for tests and the demo (publish = false).
//! It speaks AindusDB's API as the maintenance plan's `test_update.py` calls it; answer
//! shapes follow AindusDB Core where it has them (`results` of `{id, distance, metadata}`,
//! errors as `{"detail"}`, `Authorization: Bearer`, 401 with `WWW-Authenticate: Bearer`).
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /health` | `{"status": "healthy" \| "degraded", "version", "ready"}` (always 200) |
//! | `GET /health/ready` | 200, or 503 in broken mode |
//! | `GET /health/live` | 200 |
//! | `GET /version` | `{"name": "aindusdb-standin", "version"}` |
//! | `GET /metrics` | Prometheus text: `aindusdb_build_info`, `aindusdb_http_requests_total`, `aindusdb_vector_indexes`, `aindusdb_veritas_calculations_total` |
//! | `GET /v1/vectors/indexes` | `{"indexes": [{"id", "name", "dimension", "metric", "count"}]}` |
//! | `POST /v1/vectors/indexes` | `{"name", "dimension", "metric": "cosine" \| "euclidean" \| "dot"}`: 201 with the index |
//! | `DELETE /v1/vectors/indexes/{id}` | 204, 404 when unknown |
//! | `POST /v1/vectors/indexes/{id}/upsert` | `{"vectors": [{"id", "values", "metadata"?}]}`: `{"upserted", "count"}` |
//! | `POST /v1/vectors/indexes/{id}/query` | `{"vector", "top_k"?}`: `{"results": [{"id", "distance", "metadata"}], "count"}`, nearest first |
//! | `POST /v1/veritas/calculate` | `{"query", "verification_level"?}`: `{"query", "answer", "verification_level", "verified": true}`, 422 when it does not parse |
//!
//! Every `/v1` route needs `Authorization: Bearer <token>` (401 otherwise). VERITAS
//! evaluates `+ - * / ^`, parentheses, `sqrt sin cos tan abs ln exp` and `pi`, `e`.
//! Distances: cosine `1 - cos`, euclidean L2, dot `-a·b` (pgvector's operators).
//!
//! Faults, for the tests that must see a bad version fail ([`Options`]): readiness fails
//! (`broken`), VERITAS answers off by an offset, a query that never returns the upserted
//! vectors, requests without a (valid) token accepted, every request delayed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// How the stand-in behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The version it reports (`/version`, `/health`, `/metrics`).
    pub version: String,
    /// Broken mode: `/health/ready` answers 503.
    pub broken: bool,
    /// The bearer token the `/v1` routes accept.
    pub token: String,
    /// Added to every VERITAS answer (0 is a correct service).
    pub veritas_offset: f64,
    /// Upserts are acknowledged but never stored: a query does not return them.
    pub lose_vectors: bool,
    /// Requests without a token, or with a wrong one, are accepted.
    pub no_auth: bool,
    /// Every request waits this long before it is answered.
    pub delay: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            broken: false,
            token: DEFAULT_TOKEN.to_owned(),
            veritas_offset: 0.0,
            lose_vectors: false,
            no_auth: false,
            delay: Duration::ZERO,
        }
    }
}

/// The token accepted when `STANDIN_TOKEN` is not set.
pub const DEFAULT_TOKEN: &str = "standin-token";

fn boolean(name: &str, v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{name}: {v:?} is not a boolean")),
    }
}

impl Options {
    /// Reads `STANDIN_VERSION`, `STANDIN_BROKEN`, `STANDIN_TOKEN`, `STANDIN_VERITAS_OFFSET`,
    /// `STANDIN_LOSE_VECTORS`, `STANDIN_NO_AUTH` (booleans: `1`/`true`) and
    /// `STANDIN_DELAY_MS`; unset variables keep the defaults.
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut o = Options::default();
        if let Some(v) = var("STANDIN_VERSION") {
            o.version = v;
        }
        if let Some(v) = var("STANDIN_BROKEN") {
            o.broken = boolean("STANDIN_BROKEN", &v)?;
        }
        if let Some(v) = var("STANDIN_TOKEN") {
            o.token = v;
        }
        if let Some(v) = var("STANDIN_VERITAS_OFFSET") {
            o.veritas_offset =
                v.trim().parse().map_err(|_| format!("STANDIN_VERITAS_OFFSET: {v:?} is not a number"))?;
        }
        if let Some(v) = var("STANDIN_LOSE_VECTORS") {
            o.lose_vectors = boolean("STANDIN_LOSE_VECTORS", &v)?;
        }
        if let Some(v) = var("STANDIN_NO_AUTH") {
            o.no_auth = boolean("STANDIN_NO_AUTH", &v)?;
        }
        if let Some(v) = var("STANDIN_DELAY_MS") {
            let ms: u64 =
                v.trim().parse().map_err(|_| format!("STANDIN_DELAY_MS: {v:?} is not a number of milliseconds"))?;
            o.delay = Duration::from_millis(ms);
        }
        Ok(o)
    }

    /// The faults set, for the start-up line (`readiness fails, no auth`); empty when none.
    pub fn faults(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.broken {
            f.push("readiness fails".to_owned());
        }
        if self.veritas_offset != 0.0 {
            f.push(format!("VERITAS off by {}", self.veritas_offset));
        }
        if self.lose_vectors {
            f.push("queries miss upserted vectors".to_owned());
        }
        if self.no_auth {
            f.push("no token needed".to_owned());
        }
        if !self.delay.is_zero() {
            f.push(format!("{} ms delay", self.delay.as_millis()));
        }
        f
    }
}

#[derive(Debug)]
struct Index {
    id: String,
    name: String,
    dimension: usize,
    metric: Metric,
    vectors: BTreeMap<String, (Vec<f64>, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    Cosine,
    Euclidean,
    Dot,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Euclidean => "euclidean",
            Metric::Dot => "dot",
        }
    }

    /// Lower is closer, as pgvector's `<=>`, `<->` and `<#>`.
    fn distance(self, a: &[f64], b: &[f64]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        match self {
            Metric::Dot => -dot,
            Metric::Euclidean => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt(),
            Metric::Cosine => {
                let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
                let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
                if na == 0.0 || nb == 0.0 { 1.0 } else { 1.0 - dot / (na * nb) }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Store {
    next_id: u64,
    indexes: BTreeMap<String, Index>,
}

#[derive(Debug)]
struct AppState {
    opts: Options,
    store: Mutex<Store>,
    requests: AtomicU64,
    calculations: AtomicU64,
}

type Shared = Arc<AppState>;

/// The stand-in's routes, with an empty in-memory store.
pub fn app(opts: Options) -> Router {
    let state = Arc::new(AppState {
        opts,
        store: Mutex::new(Store::default()),
        requests: AtomicU64::new(0),
        calculations: AtomicU64::new(0),
    });
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/health/live", get(|| async { Json(json!({ "status": "alive" })) }))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/v1/vectors/indexes", get(list_indexes).post(create_index))
        .route("/v1/vectors/indexes/{id}", delete(delete_index))
        .route("/v1/vectors/indexes/{id}/upsert", post(upsert))
        .route("/v1/vectors/indexes/{id}/query", post(query))
        .route("/v1/veritas/calculate", post(calculate))
        .layer(middleware::from_fn_with_state(state.clone(), count_and_delay))
        .with_state(state)
}

/// Counts every request (`aindusdb_http_requests_total`) and applies the delay fault.
async fn count_and_delay(State(s): State<Shared>, req: Request, next: Next) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    if !s.opts.delay.is_zero() {
        tokio::time::sleep(s.opts.delay).await;
    }
    next.run(req).await
}

/// An error answer: `{"detail": message}` with a status (FastAPI's shape).
#[derive(Debug)]
struct Reject(StatusCode, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "detail": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Reject {
    Reject(status, message.into())
}

type Answer = Result<Response, Reject>;

fn lock(s: &AppState) -> std::sync::MutexGuard<'_, Store> {
    s.store.lock().unwrap_or_else(PoisonError::into_inner)
}

fn authorized(s: &AppState, headers: &HeaderMap) -> Result<(), Reject> {
    if s.opts.no_auth {
        return Ok(());
    }
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if t.trim() == s.opts.token => Ok(()),
        Some(_) => Err(error(StatusCode::UNAUTHORIZED, "invalid token")),
        None => Err(error(StatusCode::UNAUTHORIZED, "Authentication required")),
    }
}

async fn health(State(s): State<Shared>) -> Json<Value> {
    let status = if s.opts.broken { "degraded" } else { "healthy" };
    Json(json!({ "status": status, "version": s.opts.version, "ready": !s.opts.broken }))
}

async fn ready(State(s): State<Shared>) -> Answer {
    if s.opts.broken {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "broken build: not ready"));
    }
    Ok(Json(json!({ "status": "ready" })).into_response())
}

async fn version(State(s): State<Shared>) -> Json<Value> {
    Json(json!({ "name": "aindusdb-standin", "version": s.opts.version }))
}

async fn metrics(State(s): State<Shared>) -> Response {
    let version = s.opts.version.replace('\\', "\\\\").replace('"', "\\\"");
    let text = format!(
        "# HELP aindusdb_build_info The running version.\n# TYPE aindusdb_build_info gauge\n\
         aindusdb_build_info{{version=\"{version}\"}} 1\n\
         # HELP aindusdb_http_requests_total HTTP requests served.\n# TYPE aindusdb_http_requests_total counter\n\
         aindusdb_http_requests_total {}\n\
         # HELP aindusdb_vector_indexes Vector indexes.\n# TYPE aindusdb_vector_indexes gauge\n\
         aindusdb_vector_indexes {}\n\
         # HELP aindusdb_veritas_calculations_total VERITAS calculations.\n\
         # TYPE aindusdb_veritas_calculations_total counter\n\
         aindusdb_veritas_calculations_total {}\n",
        s.requests.load(Ordering::Relaxed),
        lock(&s).indexes.len(),
        s.calculations.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

fn describe(i: &Index) -> Value {
    json!({ "id": i.id, "name": i.name, "dimension": i.dimension, "metric": i.metric.name(), "count": i.vectors.len() })
}

fn not_found(id: &str) -> Reject {
    error(StatusCode::NOT_FOUND, format!("no index {id}"))
}

async fn list_indexes(State(s): State<Shared>, headers: HeaderMap) -> Answer {
    authorized(&s, &headers)?;
    let store = lock(&s);
    Ok(Json(json!({ "indexes": store.indexes.values().map(describe).collect::<Vec<_>>() })).into_response())
}

#[derive(Deserialize)]
struct NewIndex {
    name: String,
    dimension: usize,
    #[serde(default)]
    metric: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, format!("bad request body: {e}")))
}

async fn create_index(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    authorized(&s, &headers)?;
    let new: NewIndex = parse(&body)?;
    let metric = match new.metric.as_deref().unwrap_or("cosine") {
        "cosine" => Metric::Cosine,
        "euclidean" => Metric::Euclidean,
        "dot" => Metric::Dot,
        other => return Err(error(StatusCode::UNPROCESSABLE_ENTITY, format!("unknown metric {other:?}"))),
    };
    if new.name.trim().is_empty() || !(1..=65_536).contains(&new.dimension) {
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "an index needs a name and a dimension from 1 to 65536"));
    }
    let mut store = lock(&s);
    if store.indexes.values().any(|i| i.name == new.name) {
        return Err(error(StatusCode::CONFLICT, format!("an index named {:?} exists", new.name)));
    }
    store.next_id += 1;
    let id = format!("idx-{}", store.next_id);
    let index = Index { id: id.clone(), name: new.name, dimension: new.dimension, metric, vectors: BTreeMap::new() };
    let out = describe(&index);
    store.indexes.insert(id, index);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn delete_index(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    authorized(&s, &headers)?;
    lock(&s).indexes.remove(&id).ok_or_else(|| not_found(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct Upsert {
    vectors: Vec<NewVector>,
}

#[derive(Deserialize)]
struct NewVector {
    id: String,
    values: Vec<f64>,
    #[serde(default)]
    metadata: Value,
}

async fn upsert(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Answer {
    authorized(&s, &headers)?;
    let req: Upsert = parse(&body)?;
    let mut store = lock(&s);
    let index = store.indexes.get_mut(&id).ok_or_else(|| not_found(&id))?;
    if let Some(v) = req.vectors.iter().find(|v| v.values.len() != index.dimension) {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("vector {} has {} values, the index has dimension {}", v.id, v.values.len(), index.dimension),
        ));
    }
    let n = req.vectors.len();
    if !s.opts.lose_vectors {
        for v in req.vectors {
            index.vectors.insert(v.id, (v.values, v.metadata));
        }
    }
    let count = if s.opts.lose_vectors { n } else { index.vectors.len() };
    Ok(Json(json!({ "upserted": n, "count": count })).into_response())
}

#[derive(Deserialize)]
struct Query {
    vector: Vec<f64>,
    #[serde(default = "ten")]
    top_k: usize,
}

fn ten() -> usize {
    10
}

async fn query(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Answer {
    authorized(&s, &headers)?;
    let q: Query = parse(&body)?;
    let store = lock(&s);
    let index = store.indexes.get(&id).ok_or_else(|| not_found(&id))?;
    if q.vector.len() != index.dimension {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the query has {} values, the index has dimension {}", q.vector.len(), index.dimension),
        ));
    }
    let mut results: Vec<(f64, &String, &Value)> = index
        .vectors
        .iter()
        .map(|(vid, (values, meta))| (index.metric.distance(&q.vector, values), vid, meta))
        .collect();
    results.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    let results: Vec<Value> = results
        .into_iter()
        .take(q.top_k)
        .map(|(distance, vid, meta)| json!({ "id": vid, "distance": distance, "metadata": meta }))
        .collect();
    Ok(Json(json!({ "count": results.len(), "results": results })).into_response())
}

#[derive(Deserialize)]
struct Calculate {
    query: String,
    #[serde(default = "standard")]
    verification_level: String,
}

fn standard() -> String {
    "standard".into()
}

async fn calculate(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    authorized(&s, &headers)?;
    let req: Calculate = parse(&body)?;
    let v = evaluate(&req.query).map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    s.calculations.fetch_add(1, Ordering::Relaxed);
    let answer = v + s.opts.veritas_offset;
    Ok(Json(json!({
        "query": req.query, "answer": answer, "verification_level": req.verification_level, "verified": true,
    }))
    .into_response())
}

/// Evaluates an arithmetic expression: numbers, `+ - * / ^` (right-associative),
/// parentheses, unary minus, `pi`, `e` and the functions `sqrt sin cos tan abs ln exp`.
pub fn evaluate(expression: &str) -> Result<f64, String> {
    let mut p = Parser { s: expression.as_bytes(), i: 0 };
    let v = p.expr()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected {:?} at {}", char::from(p.s[p.i]), p.i));
    }
    if v.is_finite() { Ok(v) } else { Err(format!("{expression} is not a finite number")) }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<f64, String> {
        let mut v = self.term()?;
        loop {
            if self.eat(b'+') {
                v += self.term()?;
            } else if self.eat(b'-') {
                v -= self.term()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        loop {
            if self.eat(b'*') {
                v *= self.unary()?;
            } else if self.eat(b'/') {
                v /= self.unary()?;
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.eat(b'-') {
            return Ok(-self.unary()?);
        }
        if self.eat(b'+') {
            return self.unary();
        }
        let base = self.atom()?;
        if self.eat(b'^') { Ok(base.powf(self.unary()?)) } else { Ok(base) }
    }

    fn atom(&mut self) -> Result<f64, String> {
        self.ws();
        let start = self.i;
        match self.s.get(self.i) {
            None => Err("unexpected end of expression".into()),
            Some(b'(') => {
                self.i += 1;
                let v = self.expr()?;
                if self.eat(b')') { Ok(v) } else { Err(format!("missing ) at {}", self.i)) }
            }
            Some(c) if c.is_ascii_digit() || *c == b'.' => {
                while self.s.get(self.i).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
                    self.i += 1;
                }
                if matches!(self.s.get(self.i), Some(b'e' | b'E'))
                    && self.s.get(self.i + 1).is_some_and(|c| c.is_ascii_digit() || *c == b'-' || *c == b'+')
                {
                    self.i += 2;
                    while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                        self.i += 1;
                    }
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]);
                text.parse().map_err(|_| format!("bad number {text:?} at {start}"))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                while self.s.get(self.i).is_some_and(u8::is_ascii_alphanumeric) {
                    self.i += 1;
                }
                let name = String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_lowercase();
                let f: fn(f64) -> f64 = match name.as_str() {
                    "pi" => return Ok(std::f64::consts::PI),
                    "e" => return Ok(std::f64::consts::E),
                    "sqrt" => f64::sqrt,
                    "sin" => f64::sin,
                    "cos" => f64::cos,
                    "tan" => f64::tan,
                    "abs" => f64::abs,
                    "ln" => f64::ln,
                    "exp" => f64::exp,
                    _ => return Err(format!("unknown name {name:?} at {start}")),
                };
                if !self.eat(b'(') {
                    return Err(format!("{name} needs parentheses at {}", self.i));
                }
                let arg = self.expr()?;
                if !self.eat(b')') {
                    return Err(format!("missing ) at {}", self.i));
                }
                Ok(f(arg))
            }
            Some(c) => Err(format!("unexpected {:?} at {start}", char::from(*c))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veritas_evaluates_the_smoke_expressions_and_refuses_garbage() {
        assert_eq!(evaluate("sqrt(16)"), Ok(4.0));
        assert_eq!(evaluate("2 + 3"), Ok(5.0));
        assert!((evaluate("sin(pi/2)").unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(evaluate("-2^2 + (1 - 3) * 4 / 2"), Ok(-8.0));
        assert_eq!(evaluate("2^3^2"), Ok(512.0), "right-associative");
        assert_eq!(evaluate("cos(0) + 1.5e1"), Ok(16.0));
        assert!(evaluate("2 +").is_err());
        assert!(evaluate("foo(1)").unwrap_err().contains("unknown name"));
        assert!(evaluate("(1").unwrap_err().contains("missing )"));
        assert!(evaluate("1 2").unwrap_err().contains("unexpected"));
        assert!(evaluate("1/0").unwrap_err().contains("not a finite number"));
    }

    #[test]
    fn distances_are_pgvectors() {
        let a = [1.0, 2.0, 3.0];
        assert!(Metric::Cosine.distance(&a, &[2.0, 4.0, 6.0]).abs() < 1e-12, "same direction: 0");
        assert!((Metric::Cosine.distance(&a, &[-1.0, -2.0, -3.0]) - 2.0).abs() < 1e-12);
        assert_eq!(Metric::Cosine.distance(&a, &[0.0; 3]), 1.0);
        assert_eq!(Metric::Euclidean.distance(&a, &a), 0.0);
        assert_eq!(Metric::Dot.distance(&a, &a), -14.0);
    }

    #[test]
    fn faults_are_listed_and_booleans_checked() {
        let o = Options {
            broken: true,
            veritas_offset: 0.5,
            lose_vectors: true,
            no_auth: true,
            delay: Duration::from_millis(300),
            ..Options::default()
        };
        assert_eq!(
            o.faults(),
            [
                "readiness fails",
                "VERITAS off by 0.5",
                "queries miss upserted vectors",
                "no token needed",
                "300 ms delay"
            ]
        );
        assert!(Options::default().faults().is_empty());
        assert_eq!(boolean("STANDIN_NO_AUTH", "maybe").unwrap_err(), "STANDIN_NO_AUTH: \"maybe\" is not a boolean");
    }
}
