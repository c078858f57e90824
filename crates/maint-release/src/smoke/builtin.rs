//! The built-in AindusDB smoke suite ([`SmokeSuite::aindusdb`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::suite::default_timeout;
use crate::{Assertion, SmokeStep, SmokeSuite};

impl SmokeSuite {
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
        assert_eq!(names.len(), 12);
        assert_eq!(s.teardown[0].path, "/v1/vector/indexes/${index_id}");
        let toml_text = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<SmokeSuite>(&toml_text).unwrap(), s);
        let yaml = serde_norway::to_string(&s).unwrap();
        assert_eq!(serde_norway::from_str::<SmokeSuite>(&yaml).unwrap(), s);
    }
}
