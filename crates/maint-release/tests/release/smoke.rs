//! The declarative smoke suite against the real AindusDB stand-in, served in-process.

use std::collections::BTreeMap;

use aindusdb_standin::{DEFAULT_TOKEN, Options};
use maint_core::Secret;
use maint_release::{Error, HealthChecks, SmokeChecks, SmokePhase, SmokeReport, SmokeRunner, SmokeStatus, SmokeSuite};
use quick_xml::events::Event;

/// Serves a stand-in on a random port; its base URL.
async fn standin(opts: Options) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, aindusdb_standin::app(opts)).await.unwrap() });
    format!("http://{addr}")
}

fn runner(base: &str) -> SmokeRunner {
    SmokeRunner::new(base).unwrap().secret("token", Secret::new(DEFAULT_TOKEN))
}

fn suite_file(name: &str, text: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let path = std::env::temp_dir().join(format!("maint-smoke-{}-{nanos}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// Every element of a JUnit document with its attributes, parsed back with quick-xml.
fn junit_elements(xml: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        let value = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned();
                        (String::from_utf8(a.key.as_ref().to_vec()).unwrap(), value)
                    })
                    .collect();
                out.push((String::from_utf8(e.name().as_ref().to_vec()).unwrap(), attrs));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

fn statuses(r: &SmokeReport) -> Vec<(&str, SmokeStatus)> {
    r.steps.iter().map(|s| (s.name.as_str(), s.status)).collect()
}

async fn index_count(base: &str) -> usize {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/v1/vectors/indexes"))
        .bearer_auth(DEFAULT_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["indexes"].as_array().unwrap().len()
}

/// A database with pgvector, as AindusDB's: its verify-full URL.
async fn aindusdb_database() -> (maint_testkit::TestDb, String) {
    let db = super::fresh().await;
    super::session(&db).await.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").await.unwrap();
    let url = db.url();
    (db, url)
}

fn step<'a>(r: &'a SmokeReport, name: &str) -> &'a maint_release::SmokeStepResult {
    r.steps.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no step {name}: {}", r.summary()))
}

#[tokio::test]
async fn the_builtin_suite_passes_on_a_healthy_standin_and_cleans_up() {
    let base = standin(Options { version: "1.1.0".into(), ..Options::default() }).await;
    let (_db, url) = aindusdb_database().await;
    let r = runner(&base).secret("database_url", Secret::new(url.clone())).run(&SmokeSuite::aindusdb()).await.unwrap();
    assert!(r.ok(), "{}", r.summary());
    assert_eq!((r.passed, r.failed, r.skipped), (16, 0, 0), "{}", r.summary());
    // The index id the create step captured was used by the next steps and the teardown.
    assert_eq!(step(&r, "create-index").http_status, Some(201));
    assert_eq!(step(&r, "upsert-vector").path, "/v1/vectors/indexes/idx-1/upsert");
    assert_eq!(step(&r, "query-vector").path, "/v1/vectors/indexes/idx-1/query");
    let delete = r.steps.last().unwrap();
    assert_eq!(
        (delete.phase, delete.path.as_str(), delete.http_status),
        (SmokePhase::Teardown, "/v1/vectors/indexes/idx-1", Some(204))
    );
    assert_eq!(index_count(&base).await, 0, "the teardown deleted the index");
    // The groups the plan asks for, with their figures.
    assert_eq!(step(&r, "auth-missing-token").http_status, Some(401));
    assert_eq!(step(&r, "auth-wrong-token").http_status, Some(401));
    let db_step = step(&r, "database-read");
    assert_eq!((db_step.method.as_str(), db_step.detail.as_deref()), ("SQL", Some("1 row(s) read")));
    for name in ["performance-health", "performance-query"] {
        let detail = step(&r, name).detail.clone().unwrap();
        assert!(detail.starts_with("20 requests: p50 "), "{detail}");
        assert!(detail.ends_with(" (budget: p95 under 500 ms)"), "{detail}");
    }
    assert_eq!(step(&r, "monitoring-metrics").status, SmokeStatus::Passed);

    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["summary"], serde_json::json!({ "total": 16, "passed": 16, "failed": 0, "skipped": 0 }));
    assert_eq!(json["overall_status"], "passed");
    assert!(!json.to_string().contains(&url), "the database URL is secret");
    let xml = r.to_junit();
    let elements = junit_elements(&xml);
    let suite = &elements.iter().find(|(n, _)| n == "testsuite").unwrap().1;
    assert_eq!((suite["name"].as_str(), suite["tests"].as_str(), suite["failures"].as_str()), ("aindusdb", "16", "0"));
    let cases: Vec<&str> = elements.iter().filter(|(n, _)| n == "testcase").map(|(_, a)| a["name"].as_str()).collect();
    assert_eq!(cases.len(), 16);
    assert_eq!(cases[0], "health");
    assert!(!elements.iter().any(|(n, _)| n == "failure"));
    assert_eq!(elements.iter().filter(|(n, _)| n == "system-out").count(), 3, "the figures are in JUnit too");

    // A run again creates a second index (unique name per run) and deletes it too.
    // Without a database URL the database step is not configured: skipped, never passed.
    let again = runner(&base).run(&SmokeSuite::aindusdb()).await.unwrap();
    assert!(again.ok(), "{}", again.summary());
    assert_eq!((again.passed, again.failed, again.skipped), (15, 0, 1));
    assert!(
        step(&again, "database-read")
            .error
            .as_deref()
            .unwrap()
            .starts_with("not configured: set the smoke variable database_url")
    );
    assert_eq!(index_count(&base).await, 0);

    // A database that cannot be read fails the step, the URL masked.
    let bad = "postgresql://maint:hunter2@127.0.0.1:1/aindusdb?connect_timeout=2";
    let r = runner(&base).secret("database_url", Secret::new(bad)).run(&SmokeSuite::aindusdb()).await.unwrap();
    assert_eq!((r.failed, step(&r, "database-read").status), (1, SmokeStatus::Failed), "{}", r.summary());
    assert!(!format!("{r:?}").contains("hunter2"));
}

#[tokio::test]
async fn each_fault_of_a_bad_version_fails_the_suite_and_the_teardown_still_runs() {
    // No token needed: the missing and the wrong token are accepted.
    let open = standin(Options { no_auth: true, ..Options::default() }).await;
    let r = runner(&open).run(&SmokeSuite::aindusdb()).await.unwrap();
    let answered = "HTTP 200 (expected 401): {\"answer\":5.0,\"query\":\"2 + 3\",\"verification_level\":\"standard\",\"verified\":true}";
    let failed: Vec<(&str, Option<&str>)> = r
        .steps
        .iter()
        .filter(|s| s.status == SmokeStatus::Failed)
        .map(|s| (s.name.as_str(), s.error.as_deref()))
        .collect();
    assert_eq!(failed, [("auth-missing-token", Some(answered)), ("auth-wrong-token", Some(answered))]);
    assert_eq!(r.summary.failed, 2);

    // Upserts acknowledged but lost: the query does not return the inserted vector.
    let lost = standin(Options { lose_vectors: true, ..Options::default() }).await;
    let r = runner(&lost).run(&SmokeSuite::aindusdb()).await.unwrap();
    assert_eq!(r.failed, 1, "{}", r.summary());
    assert_eq!(
        step(&r, "query-vector").error.as_deref(),
        Some("$.results[0].id: missing; $.results[0].distance: missing")
    );
    assert_eq!(index_count(&lost).await, 0);

    // Slow: p95 over the budget (the runner's variables set the budget and the count).
    let slow = standin(Options { delay: std::time::Duration::from_millis(120), ..Options::default() }).await;
    let r = runner(&slow)
        .variable("p95_budget_ms", "60")
        .variable("perf_requests", "4")
        .run(&SmokeSuite::aindusdb())
        .await
        .unwrap();
    let failed: Vec<&str> =
        r.steps.iter().filter(|s| s.status == SmokeStatus::Failed).map(|s| s.name.as_str()).collect();
    assert_eq!(failed, ["performance-health", "performance-query"], "{}", r.summary());
    let error = step(&r, "performance-health").error.clone().unwrap();
    assert!(error.starts_with("p95 1"), "{error}");
    assert!(error.contains(" ms is over the budget of 60 ms; 4 requests: p50 "), "{error}");
    assert_eq!(r.overall_status, SmokeStatus::Failed);
    assert_eq!(r.steps.last().unwrap().status, SmokeStatus::Passed, "teardown ran");
    assert_eq!(index_count(&slow).await, 0);

    // /metrics that is not Prometheus text, or lacks a series.
    let suite: SmokeSuite = toml::from_str(
        "name = \"m\"\n[[steps]]\nname = \"json\"\npath = \"/version\"\nseries = [\"up\"]\n\
         [[steps]]\nname = \"missing\"\npath = \"/metrics\"\nseries = [\"aindusdb_build_info\", \"nope_total\"]\n",
    )
    .unwrap();
    let r = SmokeRunner::new(&open).unwrap().run(&suite).await.unwrap();
    let errors: Vec<&str> = r.steps.iter().map(|s| s.error.as_deref().unwrap()).collect();
    assert_eq!(
        errors[0],
        "not Prometheus text: line 1: \"{\\\"name\\\":\\\"aindusdb-standin\\\",\\\"version\\\":\\\"0…\" is not a sample"
    );
    assert_eq!(errors[1], "missing series: nope_total");
}

#[tokio::test]
async fn a_wrong_veritas_answer_is_caught_and_the_teardown_still_runs() {
    // The service answers 5.5 for 2 + 3: the built-in suite's numeric assertions fail.
    let base = standin(Options { veritas_offset: 0.5, ..Options::default() }).await;
    let r = runner(&base).run(&SmokeSuite::aindusdb()).await.unwrap();
    assert_eq!((r.passed, r.failed, r.skipped), (12, 3, 1), "{}", r.summary());
    let sum = r.steps.iter().find(|s| s.name == "veritas-sum").unwrap();
    assert_eq!(sum.error.as_deref(), Some("$.answer: expected 5 (±0.000001), got 5.5"));
    assert_eq!(r.steps.last().unwrap().status, SmokeStatus::Passed, "teardown ran after the failures");
    assert_eq!(index_count(&base).await, 0);
    let elements = junit_elements(&r.to_junit());
    let failures: Vec<&str> =
        elements.iter().filter(|(n, _)| n == "failure").map(|(_, a)| a["message"].as_str()).collect();
    assert_eq!(failures.len(), 3);
    assert!(failures.contains(&"$.answer: expected 4 (±0.000001), got 4.5"), "{failures:?}");

    // A suite that expects 5.1 without tolerance fails on a correct service.
    let good = standin(Options::default()).await;
    let path = suite_file(
        "strict.toml",
        r#"
        name = "strict"
        headers = { Authorization = "Bearer ${token}" }
        [[steps]]
        name = "veritas-sum"
        method = "post"
        path = "/v1/veritas/calculate"
        body = { query = "2 + 3", verification_level = "standard" }
        assert = [{ path = "$.answer", number = 5.1 }, { path = "$.verified", equals = true }]
        "#,
    );
    let strict = SmokeSuite::from_path(&path).unwrap();
    let r = runner(&good).run(&strict).await.unwrap();
    assert_eq!((r.passed, r.failed), (0, 1));
    assert_eq!(r.steps[0].error.as_deref(), Some("$.answer: expected 5.1 (±0), got 5.0"));
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn a_failing_teardown_is_reported_and_a_missing_capture_skips_what_needs_it() {
    let base = standin(Options::default()).await;
    // YAML, with captures used in a path, a header-less body and the teardown; the last
    // step already deleted the index, so the teardown's delete answers 404.
    let path = suite_file(
        "teardown.yaml",
        r#"
name: teardown
headers: { Authorization: "Bearer ${token}" }
steps:
  - name: create
    method: POST
    path: /v1/vectors/indexes
    body: { name: "t-${run_id}", dimension: 3 }
    expect_status: 201
    capture: { index_id: $.id, dim: $.dimension }
  - name: upsert
    method: POST
    path: /v1/vectors/indexes/${index_id}/upsert
    body: { vectors: [{ id: "v", values: [1, 0, 0], metadata: { dim: "${dim}" } }] }
    assert: [{ path: $.count, number: 1 }]
  - name: query
    method: POST
    path: /v1/vectors/indexes/${index_id}/query
    body: { vector: [2, 0, 0] }
    assert: [{ path: "$.results[0].metadata.dim", equals: 3 }, { path: "$.results[0].distance", number: 0, tolerance: 1e-9 }]
  - name: get
    method: POST
    path: /v1/vectors/indexes/${index_id}/query
    body: { vector: [0, 1, 0] }
    assert: [{ path: "$.results[0].id", equals: "v" }, { path: $.count, equals: "${dim}" }]
  - name: delete-early
    method: DELETE
    path: /v1/vectors/indexes/${index_id}
    expect_status: 204
teardown:
  - name: delete
    method: DELETE
    path: /v1/vectors/indexes/${index_id}
    expect_status: 204
"#,
    );
    let suite = SmokeSuite::from_path(&path).unwrap();
    let r = runner(&base).run(&suite).await.unwrap();
    assert_eq!(
        statuses(&r),
        [
            ("create", SmokeStatus::Passed),
            ("upsert", SmokeStatus::Passed),
            ("query", SmokeStatus::Passed),
            ("get", SmokeStatus::Failed),
            ("delete-early", SmokeStatus::Passed),
            ("delete", SmokeStatus::Failed),
        ],
        "{}",
        r.summary()
    );
    assert!(!r.ok());
    // A captured value compared with equals: the id matches, the count (1) is not the dimension (3).
    assert_eq!(r.steps[3].error.as_deref(), Some("$.count: expected 3, got 1"));
    let teardown = r.steps.last().unwrap();
    assert_eq!(teardown.phase, SmokePhase::Teardown);
    assert_eq!(teardown.error.as_deref(), Some("HTTP 404 (expected 204): {\"detail\":\"no index idx-1\"}"));
    let elements = junit_elements(&r.to_junit());
    // Each failure element follows its testcase.
    let failed: Vec<(&str, &str)> = elements
        .windows(2)
        .filter(|w| w[1].0 == "failure")
        .map(|w| (w[0].1["name"].as_str(), w[0].1["classname"].as_str()))
        .collect();
    assert_eq!(failed, [("get", "teardown.steps"), ("delete", "teardown.teardown")]);

    // A wrong token: the create fails, what needs its capture is skipped, not failed.
    let r = SmokeRunner::new(&base).unwrap().secret("token", Secret::new("wrong")).run(&suite).await.unwrap();
    assert_eq!(
        statuses(&r),
        [
            ("create", SmokeStatus::Failed),
            ("upsert", SmokeStatus::Skipped),
            ("query", SmokeStatus::Skipped),
            ("get", SmokeStatus::Skipped),
            ("delete-early", SmokeStatus::Skipped),
            ("delete", SmokeStatus::Skipped),
        ]
    );
    assert_eq!(r.steps[0].error.as_deref(), Some("HTTP 401 (expected 201): {\"detail\":\"invalid token\"}"));
    assert_eq!(r.steps[1].error.as_deref(), Some("needs ${index_id}, which no earlier step captured"));
    assert!(!serde_json::to_string(&r).unwrap().contains("wrong"), "the secret token is never in the report");
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn a_broken_standin_fails_readiness_and_health_and_a_step_times_out() {
    let base = standin(Options { broken: true, ..Options::default() }).await;
    let checks = SmokeChecks::new(runner(&base), SmokeSuite::aindusdb()).unwrap();
    let results = checks.check().await;
    let failed: Vec<(&str, Option<&str>, u32)> =
        results.iter().filter(|c| !c.ok).map(|c| (c.name.as_str(), c.error.as_deref(), c.attempts)).collect();
    assert_eq!(
        failed,
        [
            ("health", Some("$.status: expected \"healthy\", got \"degraded\""), 3),
            ("health-ready", Some("HTTP 503 (expected 200): {\"detail\":\"broken build: not ready\"}"), 3),
        ]
    );
    assert_eq!(results.len(), 15, "skipped steps (the database, not configured) are not check results");

    // Without the token variable, the built-in suite is refused before anything runs.
    let err = SmokeChecks::new(SmokeRunner::new(&base).unwrap(), SmokeSuite::aindusdb()).unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "smoke suite aindusdb: headers.Authorization"),
        "{err}"
    );

    // A server that accepts and never answers: the step's own timeout fails it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (sock, _) = silent.accept().await.unwrap();
            held.push(sock);
        }
    });
    let suite: SmokeSuite = toml::from_str(
        "name = \"slow\"\ntimeout_secs = 3600\n[[steps]]\nname = \"hang\"\npath = \"/health\"\ntimeout_secs = 0.3",
    )
    .unwrap();
    let r = SmokeRunner::new(&format!("http://{addr}")).unwrap().run(&suite).await.unwrap();
    assert_eq!(r.failed, 1);
    assert_eq!(r.steps[0].http_status, None);
    assert!(r.steps[0].error.as_deref().unwrap().contains("timed out"), "{:?}", r.steps[0].error);
    holder.abort();
}

/// A service that echoes what it is given: a session id at `/login`, the secrets back in
/// its answers and in the body of an error.
async fn echo_service(token: &'static str, session: &'static str) -> String {
    use axum::routing::get;
    let app =
        axum::Router::new()
            .route(
                "/login",
                get(move || async move { axum::Json(serde_json::json!({ "session": session, "user": "ops" })) }),
            )
            .route("/whoami", get(|| async { axum::Json(serde_json::json!({ "token_seen": "other", "user": "ops" })) }))
            .route(
                "/echo",
                get(move || async move {
                    axum::Json(serde_json::json!({ "note": format!("you are {session} with {token}") }))
                }),
            )
            .route(
                "/fail/{id}",
                get(move || async move {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, format!("bad token {token} for session {session}"))
                }),
            );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn assertion_failures_and_reports_never_show_a_secret() {
    // Long enough that a message cut at 80 characters would show a prefix of it.
    const TOKEN: &str =
        "tok-SECRET-0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890";
    const SESSION: &str = "sess-SECRET-42";
    let base = echo_service(TOKEN, SESSION).await;
    let suite: SmokeSuite = toml::from_str(
        r#"
        name = "secrets"
        secrets = ["session"]
        [[steps]]
        name = "login"
        path = "/login"
        capture = { session = "$.session" }
        [[steps]]
        name = "token-compared"
        path = "/whoami"
        assert = [{ path = "$.token_seen", equals = "${token}" }]
        [[steps]]
        name = "session-compared"
        path = "/whoami"
        assert = [{ path = "$.user", equals = "${session}" }, { path = "$.user", equals = "x-${token}" }]
        [[steps]]
        name = "echoed"
        path = "/echo"
        assert = [{ path = "$.note", equals = "nothing" }]
        [[steps]]
        name = "error-body"
        path = "/fail/${session}"
        "#,
    )
    .unwrap();
    let r = SmokeRunner::new(&base).unwrap().secret("token", Secret::new(TOKEN)).run(&suite).await.unwrap();
    assert_eq!((r.passed, r.failed), (1, 4), "{}", r.summary());
    let error = |name: &str| r.steps.iter().find(|s| s.name == name).unwrap().error.clone().unwrap();
    assert_eq!(error("token-compared"), "$.token_seen: expected \"***\", got \"other\"");
    assert_eq!(
        error("session-compared"),
        "$.user: expected \"***\", got \"ops\"; $.user: expected \"x-***\", got \"ops\""
    );
    assert_eq!(error("echoed"), "$.note: expected \"nothing\", got \"you are *** with ***\"");
    assert_eq!(error("error-body"), "HTTP 500 (expected 200): bad token *** for session ***");
    assert_eq!(r.steps[4].path, "/fail/***");
    let everything = format!("{}\n{}\n{}\n{:?}", r.summary(), r.to_junit(), serde_json::to_string(&r).unwrap(), r);
    for secret in ["tok-SECRET", "sess-SECRET"] {
        assert!(!everything.contains(secret), "{secret} leaked:\n{everything}");
    }
}
