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
    };
    let task = MetricsCollection::new(config);
    let report = task.run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert!(report.metrics["aindusdb_pg_database_bytes"] > 1_000_000.0);
    assert!(report.metrics["aindusdb_redis_used_memory_bytes"] > 0.0);
    assert_eq!(report.metrics["aindusdb_backups_total"], 0.0);
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
    assert_eq!(samples.len(), 17, "9 PostgreSQL, 6 Redis, 2 backup figures: {text}");
    assert_eq!(text.matches("# TYPE ").count(), 17);
    std::fs::remove_dir_all(&dir).unwrap();

    let down = CollectConfig { redis_url: Some(Secret::new("redis://127.0.0.1:9/0")), ..CollectConfig::default() };
    let report = MetricsCollection::new(down).run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Failed);
    assert!(report.error.unwrap().starts_with("redis: "));
}
