//! Health checks against a real HTTP server, PostgreSQL, Redis and S3.

use axum::Router;
use axum::http::StatusCode;
use maint_core::{Secret, Status, Task, TaskContext};
use maint_health::{HealthChecks, HealthConfig};
use maint_testkit::{Postgres, Redis, S3};

async fn service(ready: bool) -> String {
    let app = Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .route("/health/live", axum::routing::get(|| async { "ok" }))
        .route(
            "/health/ready",
            axum::routing::get(move || async move {
                if ready { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "database migrating") }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn every_service_answers() {
    let config = HealthConfig {
        service_url: Some(service(true).await),
        database_url: Some(Secret::new(Postgres::shared().await.url("postgres"))),
        redis_url: Some(Secret::new(Redis::shared().await.fresh_db().await.url)),
        store: Some(S3::shared().await.fresh_bucket().await.store()),
        ..HealthConfig::default()
    };
    let report = HealthChecks::new(config).run(&TaskContext::new(false)).await;
    assert!(matches!(report.status, Status::Ok | Status::Warning), "{report:?}");
    assert_eq!(report.metrics["checks_passed"], 6.0);
    assert_eq!(report.items.len(), 6);
    assert!(
        report
            .items
            .iter()
            .any(|i| i["check"] == "postgresql" && i["detail"].as_str().unwrap().starts_with("PostgreSQL 1"))
    );
    assert!(report.items.iter().any(|i| i["check"] == "redis" && i["detail"] == "PONG"));
}

#[tokio::test]
async fn a_failing_check_fails_the_task_and_names_it_without_secrets() {
    let config = HealthConfig {
        service_url: Some(service(false).await),
        database_url: Some(Secret::new("postgresql://maint:HUNTER2@127.0.0.1:9/postgres")),
        timeout_ms: 2000,
        ..HealthConfig::default()
    };
    let report = HealthChecks::new(config).run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Failed);
    let error = report.error.clone().unwrap();
    assert!(error.contains("http /health/ready: HTTP 503 Service Unavailable: database migrating"), "{error}");
    assert!(error.contains("postgresql: "), "{error}");
    assert_eq!(report.metrics["checks_passed"], 2.0);
    assert!(!serde_json::to_string(&report).unwrap().contains("HUNTER2"));
    let nothing = HealthChecks::new(HealthConfig::default()).run(&TaskContext::new(false)).await;
    assert_eq!(nothing.status, Status::Skipped);
}

#[tokio::test]
async fn metrics_are_collected_written_and_parse_back() {
    use maint_health::{CollectConfig, MetricsCollection};
    let dir = std::env::temp_dir().join(format!("maint-collect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::shared().await.fresh_db().await;
    let config = CollectConfig {
        database_url: Some(Secret::new(Postgres::shared().await.url("postgres"))),
        redis_url: Some(Secret::new(redis.url.clone())),
        textfile: Some(dir.join("aindusdb.prom")),
        snapshots: Some(dir.join("snapshots.jsonl")),
        store: Some(S3::shared().await.fresh_bucket().await.store()),
        ..CollectConfig::default()
    };
    let task = MetricsCollection::new(config);
    let report = task.run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert!(report.metrics["aindusdb_pg_database_bytes"] > 1_000_000.0);
    assert!(report.metrics["aindusdb_redis_used_memory_bytes"] > 0.0);
    assert_eq!(report.metrics["aindusdb_backups"], 0.0);
    task.run(&TaskContext::new(false)).await;
    let text = std::fs::read_to_string(dir.join("aindusdb.prom")).unwrap();
    let samples: Vec<(&str, f64)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.split_once(' ').unwrap();
            (name, value.parse().unwrap())
        })
        .collect();
    assert!(text.contains("aindusdb_pg_max_connections 300"), "{text}");
    let snapshots = std::fs::read_to_string(dir.join("snapshots.jsonl")).unwrap();
    assert_eq!(snapshots.lines().count(), 2, "one snapshot per run");
    let first: serde_json::Value = serde_json::from_str(snapshots.lines().next().unwrap()).unwrap();
    assert!(first["metrics"]["aindusdb_pg_connections"].as_f64().unwrap() >= 1.0);
    assert_eq!(samples.len(), 18, "10 PostgreSQL, 6 Redis, 2 backup figures: {text}");
    assert_eq!(text.matches("# TYPE ").count(), 18);
    std::fs::remove_dir_all(&dir).unwrap();

    let down = CollectConfig { redis_url: Some(Secret::new("redis://127.0.0.1:9/0")), ..CollectConfig::default() };
    let report = MetricsCollection::new(down).run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Failed);
    assert!(report.error.unwrap().starts_with("redis: "));
}

/// A Pushgateway stand-in: an HTTP server that records each request's method, path and body
/// and answers like the real one (200 to a PUT of valid text, 400 to anything else).
async fn pushgateway() -> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>) {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = Router::new().fallback(move |method: axum::http::Method, uri: axum::http::Uri, body: String| {
        let record = Arc::clone(&record);
        async move {
            let ok = method == axum::http::Method::PUT && body.ends_with('\n');
            record.lock().unwrap().push((method.to_string(), uri.path().to_owned(), body));
            if ok { (StatusCode::OK, "") } else { (StatusCode::BAD_REQUEST, "text format parsing error") }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn metrics_are_pushed_to_a_pushgateway() {
    use maint_health::{CollectConfig, MetricsCollection};
    let (url, seen) = pushgateway().await;
    let redis = Redis::shared().await.fresh_db().await;
    let config = CollectConfig {
        redis_url: Some(Secret::new(redis.url.clone())),
        pushgateway: Some(Secret::new(format!("{url}/"))),
        push_job: Some("aindusdb-maint".into()),
        ..CollectConfig::default()
    };
    let report = MetricsCollection::new(config.clone()).run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert_eq!(report.metrics["pushed"], 1.0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (method, path, body) = &seen[0];
        assert_eq!(method, "PUT");
        assert_eq!(path, &format!("/metrics/job/aindusdb-maint/instance/{}", host.trim()));
        assert!(
            body.contains("# TYPE aindusdb_redis_used_memory_bytes gauge\naindusdb_redis_used_memory_bytes "),
            "{body}"
        );
    }
    // A dry run pushes nothing; a gateway that is down fails the task and says so.
    MetricsCollection::new(config).run(&TaskContext::new(true)).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    let down = CollectConfig {
        redis_url: Some(Secret::new(redis.url.clone())),
        pushgateway: Some(Secret::new("http://127.0.0.1:9")),
        ..CollectConfig::default()
    };
    let report = MetricsCollection::new(down).run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Failed);
    assert!(report.error.unwrap().starts_with("pushgateway: "));
}

/// `openssl s_server` with a fresh self-signed certificate valid for `days`.
struct TlsServer {
    endpoint: String,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn tls_server(days: u32) -> TlsServer {
    tls_server_as("maint-tls-test", days, None)
}

/// A TLS server for the certificate `CN=cn`, valid for `days`: a status page (`-www`), or,
/// with `redirect_to`, a `307` to that URL on its first connection (s_server relays its stdin).
fn tls_server_as(cn: &str, days: u32, redirect_to: Option<&str>) -> TlsServer {
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("maint-tls-{}-{cn}-{days}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", &format!("/CN={cn}"), "-days"])
        .arg(days.to_string())
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed by scripts/test-env");
    assert!(st.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new("openssl")
        .args(if redirect_to.is_some() { &["s_server", "-accept"][..] } else { &["s_server", "-www", "-accept"][..] })
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(dir.join("cert.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"))
        .stdin(if redirect_to.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ready when it says ACCEPT (a probe connection would use up the relayed answer).
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 && !line.contains("ACCEPT") {
        line.clear();
    }
    assert!(line.contains("ACCEPT"), "openssl s_server did not start");
    // s_server prints what it receives: the answer goes once the request has ended (sooner,
    // the client would see an answer to no request).
    let mut answer = redirect_to.map(|location| {
        (
            child.stdin.take().unwrap(),
            format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"),
        )
    });
    std::thread::spawn(move || {
        let mut in_request = false;
        line.clear();
        while out.read_line(&mut line).is_ok_and(|n| n > 0) {
            in_request |= line.starts_with("GET ");
            if in_request
                && line.trim().is_empty()
                && let Some((mut stdin, text)) = answer.take()
            {
                let _ = stdin.write_all(text.as_bytes());
            }
            line.clear();
        }
    });
    TlsServer { endpoint: format!("127.0.0.1:{port}"), child, dir }
}

#[tokio::test]
async fn certificate_expiry_is_read_from_a_real_handshake() {
    use maint_core::chrono::{TimeDelta, Utc};
    let server = tls_server(5).await;
    let info = maint_health::certificate_expiry(&server.endpoint, std::time::Duration::from_secs(10)).await.unwrap();
    assert_eq!(info.endpoint, server.endpoint);
    assert!(info.subject.contains("maint-tls-test"), "{info:?}");
    let left = info.not_after - Utc::now();
    assert!(left > TimeDelta::days(4) && left <= TimeDelta::days(5), "{info:?}");

    let err = maint_health::certificate_expiry("127.0.0.1:9", std::time::Duration::from_secs(5)).await.unwrap_err();
    assert!(err.starts_with("127.0.0.1:9: "), "{err}");
    assert_eq!(
        maint_health::https_endpoint("https://hooks.slack.com/services/T/B/secret"),
        Some("hooks.slack.com:443".into())
    );
    assert_eq!(maint_health::https_endpoint("https://api.internal:8443/v1"), Some("api.internal:8443".into()));
    assert_eq!(maint_health::https_endpoint("http://api.internal/"), None);
}

#[tokio::test]
async fn certificate_expiry_reads_the_endpoints_own_certificate_not_a_redirect_targets() {
    use maint_core::chrono::{TimeDelta, Utc};
    let elsewhere = tls_server_as("maint-tls-elsewhere", 400, None);
    let server = tls_server_as("maint-tls-redirecting", 3, Some(&format!("https://{}/", elsewhere.endpoint)));
    let info = maint_health::certificate_expiry(&server.endpoint, std::time::Duration::from_secs(10)).await.unwrap();
    assert!(info.subject.contains("maint-tls-redirecting"), "{info:?}");
    let left = info.not_after - Utc::now();
    assert!(left > TimeDelta::days(2) && left <= TimeDelta::days(3), "{info:?}");
}

#[tokio::test]
async fn a_redirecting_pushgateway_is_a_failure_and_is_not_followed() {
    use std::sync::{Arc, Mutex};
    let caught: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = caught.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/caught",
            axum::routing::any(move |headers: axum::http::HeaderMap| async move {
                seen.lock().unwrap().push(format!("{headers:?}"));
                "thanks"
            }),
        )
        .fallback(move || async move {
            (StatusCode::TEMPORARY_REDIRECT, [("location", format!("http://{addr}/caught"))], "moved PUSHSECRET")
        });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = Secret::new(format!("http://maint:PUSHSECRET@{addr}/gw/PATHSECRET/"));
    let err = maint_health::push_to_gateway(&base, "maint", "up 1\n").await.unwrap_err();
    assert_eq!(err, "pushgateway: redirected (HTTP 307) to 127.0.0.1, not followed");
    assert!(caught.lock().unwrap().is_empty(), "the redirect was followed: {:?}", caught.lock().unwrap());
}

/// The database check and the metrics collection give up at the URL's `connect_timeout` on
/// a server that accepts the connection and never answers the startup (the driver's own
/// timeout covers only the TCP connect: they waited forever), and say so on one line with
/// the host and port, without the password.
#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_connect_timeout() {
    use maint_health::{CollectConfig, MetricsCollection};
    let port = maint_testkit::silent_server();
    let url = format!("postgresql://maint:HUNTER2@127.0.0.1:{port}/postgres?connect_timeout=2");
    let health = HealthChecks::new(HealthConfig {
        database_url: Some(Secret::new(url.clone())),
        timeout_ms: 600_000,
        ..HealthConfig::default()
    });
    let collect =
        MetricsCollection::new(CollectConfig { database_url: Some(Secret::new(url)), ..CollectConfig::default() });
    let both = async { tokio::join!(health.check(), collect.collect()) };
    let (findings, (metrics, errors)) =
        tokio::time::timeout(std::time::Duration::from_secs(30), both).await.expect("gave up within 30 s");
    let want = format!("cannot connect to PostgreSQL at 127.0.0.1:{port}/postgres: no answer within 2s");
    assert_eq!(findings.len(), 1);
    assert!(!findings[0].ok && findings[0].detail.starts_with(&want), "{findings:?}");
    assert!(metrics.is_empty());
    assert!(errors.len() == 1 && errors[0].starts_with(&format!("postgresql: {want}")), "{errors:?}");
    assert!(!format!("{findings:?}{errors:?}").contains("HUNTER2"));
}

/// `sslmode=verify-full` with `sslrootcert` (which the driver alone refuses as a URL)
/// reaches PostgreSQL 17 over verified TLS, for the check and the collection.
#[tokio::test]
async fn postgres_is_checked_and_collected_over_verified_tls() {
    use maint_health::{CollectConfig, MetricsCollection};
    let url = Secret::new(Postgres::shared().await.url("postgres"));
    let findings =
        HealthChecks::new(HealthConfig { database_url: Some(url.clone()), ..HealthConfig::default() }).check().await;
    assert!(findings.len() == 1 && findings[0].ok && findings[0].detail.starts_with("PostgreSQL 17"), "{findings:?}");
    let (metrics, errors) =
        MetricsCollection::new(CollectConfig { database_url: Some(url), ..CollectConfig::default() }).collect().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(metrics["aindusdb_pg_max_connections"], 300.0);
}
