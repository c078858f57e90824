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
