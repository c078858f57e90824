//! The built-in AindusDB smoke suite ([`SmokeSuite::aindusdb`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::suite::default_timeout;
use crate::{Assertion, Figure, SmokeStep, SmokeSuite};

/// The series the monitoring step expects at `/metrics`.
pub(super) const EXPECTED_SERIES: [&str; 2] = ["aindusdb_build_info", "aindusdb_http_requests_total"];

impl SmokeSuite {
    /// The built-in AindusDB suite: the maintenance plan's `test_update.py`, on AindusDB's
    /// API. Needs the variable `token` (the bearer token); reads `perf_requests` (default
    /// 20), `p95_budget_ms` (default 500) and `database_url` (no default: the database
    /// step is then reported as not configured) from the runner's variables.
    ///
    /// - health: `GET /health` (status `healthy`, a version), `/health/ready`,
    ///   `/health/live` (3 attempts each);
    /// - vectors: create a 1536-dimension cosine index `maint-smoke-${run_id}`
    ///   (`POST /v1/vectors/indexes`, 201, id captured as `index_id`), upsert one vector
    ///   (`POST .../upsert`), query it back (`POST .../query`, top_k 1: the first result
    ///   is it, distance 0 ± 1e-6);
    /// - authentication: the token is accepted (the query), a missing and a wrong token
    ///   get 401;
    /// - VERITAS: `POST /v1/veritas/calculate` `sqrt(16)` = 4, `2 + 3` = 5,
    ///   `sin(pi/2)` = 1 (`answer` ± 1e-6);
    /// - database: a read through `database_url` (pgvector's version);
    /// - performance: `perf_requests` requests to `/health` and to the query, p95 under
    ///   `p95_budget_ms`, the figures reported;
    /// - monitoring: `/metrics` is Prometheus text with [`EXPECTED_SERIES`];
    /// - teardown (always): `DELETE /v1/vectors/indexes/${index_id}`.
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
            series: Vec::new(),
            repeat: None,
            p95_ms: None,
            sql: None,
        };
        let post = |name: &str, path: &str, body: Value| SmokeStep {
            method: "POST".into(),
            body: Some(body),
            ..get(name, path)
        };
        let query =
            |name: &str| post(name, "/v1/vectors/indexes/${index_id}/query", json!({ "vector": vector, "top_k": 1 }));
        let calculate = |q: &str| json!({ "query": q, "verification_level": "standard" });
        let veritas = |name: &str, q: &str, expected: f64| SmokeStep {
            assertions: vec![Assertion::number("$.answer", expected, 1e-6)],
            ..post(name, "/v1/veritas/calculate", calculate(q))
        };
        let token = |name: &str, value: &str| SmokeStep {
            headers: BTreeMap::from([("Authorization".to_owned(), value.to_owned())]),
            expect_status: 401,
            ..post(name, "/v1/veritas/calculate", calculate("2 + 3"))
        };
        let timed = |s: SmokeStep| SmokeStep {
            repeat: Some(Figure::Variable("${perf_requests}".into())),
            p95_ms: Some(Figure::Variable("${p95_budget_ms}".into())),
            ..s
        };
        let retried = |s: SmokeStep| SmokeStep { attempts: 3, ..s };
        SmokeSuite {
            name: "aindusdb".into(),
            timeout_secs: default_timeout(),
            variables: BTreeMap::from([
                ("perf_requests".to_owned(), "20".to_owned()),
                ("p95_budget_ms".to_owned(), "500".to_owned()),
            ]),
            headers: BTreeMap::from([("Authorization".to_owned(), "Bearer ${token}".to_owned())]),
            secrets: BTreeSet::new(),
            steps: vec![
                retried(SmokeStep {
                    assertions: vec![Assertion::equals("$.status", json!("healthy")), Assertion::exists("$.version")],
                    ..get("health", "/health")
                }),
                retried(get("health-ready", "/health/ready")),
                retried(get("health-live", "/health/live")),
                SmokeStep {
                    expect_status: 201,
                    assertions: vec![Assertion::number("$.dimension", 1536.0, 0.0)],
                    capture: BTreeMap::from([("index_id".to_owned(), "$.id".to_owned())]),
                    ..post(
                        "create-index",
                        "/v1/vectors/indexes",
                        json!({ "name": "maint-smoke-${run_id}", "dimension": 1536, "metric": "cosine" }),
                    )
                },
                SmokeStep {
                    assertions: vec![Assertion::number("$.upserted", 1.0, 0.0)],
                    ..post(
                        "upsert-vector",
                        "/v1/vectors/indexes/${index_id}/upsert",
                        json!({ "vectors": [{ "id": "smoke-1", "values": vector, "metadata": { "source": "maint-smoke" } }] }),
                    )
                },
                SmokeStep {
                    assertions: vec![
                        Assertion::equals("$.results[0].id", json!("smoke-1")),
                        Assertion::number("$.results[0].distance", 0.0, 1e-6),
                    ],
                    ..query("query-vector")
                },
                token("auth-missing-token", ""),
                token("auth-wrong-token", "Bearer not-the-token-${run_id}"),
                veritas("veritas-sqrt", "sqrt(16)", 4.0),
                veritas("veritas-sum", "2 + 3", 5.0),
                veritas("veritas-sin", "sin(pi/2)", 1.0),
                SmokeStep {
                    sql: Some("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'vector'".into()),
                    ..get("database-read", "")
                },
                timed(get("performance-health", "/health")),
                timed(query("performance-query")),
                SmokeStep {
                    series: EXPECTED_SERIES.map(str::to_owned).to_vec(),
                    ..get("monitoring-metrics", "/metrics")
                },
            ],
            teardown: vec![SmokeStep {
                method: "DELETE".into(),
                expect_status: 204,
                ..get("delete-index", "/v1/vectors/indexes/${index_id}")
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::field;

    #[test]
    fn the_builtin_suite_validates_with_a_token_and_round_trips_through_toml_and_yaml() {
        let s = SmokeSuite::aindusdb();
        let token = BTreeSet::from(["token".to_owned()]);
        s.validate_with(&token).unwrap();
        s.validate().unwrap();
        let none = BTreeSet::new();
        assert!(field(s.validate_with(&none).unwrap_err()).starts_with("headers.Authorization: ${token} is never set"));
        let names: Vec<&str> = s.steps.iter().chain(&s.teardown).map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "health",
                "health-ready",
                "health-live",
                "create-index",
                "upsert-vector",
                "query-vector",
                "auth-missing-token",
                "auth-wrong-token",
                "veritas-sqrt",
                "veritas-sum",
                "veritas-sin",
                "database-read",
                "performance-health",
                "performance-query",
                "monitoring-metrics",
                "delete-index",
            ]
        );
        assert_eq!(s.teardown[0].path, "/v1/vectors/indexes/${index_id}");
        let toml_text = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<SmokeSuite>(&toml_text).unwrap(), s);
        let yaml = serde_norway::to_string(&s).unwrap();
        assert_eq!(serde_norway::from_str::<SmokeSuite>(&yaml).unwrap(), s);
    }
}
