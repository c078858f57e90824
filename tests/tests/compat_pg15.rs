//! PostgreSQL 15, the oldest major we claim, stays proven: a backup round trip with the
//! client tools picked for a 15 server, and a database optimization run.

use maint_backup::{CreateOptions, RestoreOptions, catalog, create, restore_test, verify_one};
use maint_core::{Secret, Status, Task, TaskContext};
use maint_db::{Config, DatabaseOptimization, Steps};
use maint_testkit::{Postgres, S3, TestDb};
use tokio_util::sync::CancellationToken;

async fn seeded() -> TestDb {
    let db = Postgres::shared_15().await.fresh_database().await;
    db.pool()
        .get()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE documents (id bigserial PRIMARY KEY, title text, metadata jsonb, created_at timestamptz DEFAULT now());
             CREATE INDEX documents_metadata ON documents USING gin (metadata);
             INSERT INTO documents (title, metadata) SELECT 'd' || g, jsonb_build_object('g', g) FROM generate_series(1, 3000) g;
             DELETE FROM documents WHERE id % 4 = 0;",
        )
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn backup_round_trip_on_postgresql_15() {
    let db = seeded().await;
    assert!(db.ca.is_none(), "the 15 server is the plain-text one");
    let store = S3::shared().await.fresh_bucket().await.store();
    let m = create(&store, &CreateOptions::new(Secret::new(db.url())), &CancellationToken::new()).await.unwrap();
    assert!(m.server_version.starts_with("15."), "{}", m.server_version);
    assert_eq!(m.tables.len(), 1);
    assert_eq!(m.tables[0].rows, 2250);

    let day = m.key.rsplit_once('/').unwrap().0.to_owned();
    let entry = catalog(&store, &day).await.unwrap().into_iter().find(|e| e.key == m.key).unwrap();
    let v = verify_one(&store, &entry).await;
    assert!(v.ok, "{v:?}");

    let admin = Secret::new(Postgres::shared_15().await.url("postgres"));
    let r = restore_test(&store, &m.key, &RestoreOptions::new(admin), &CancellationToken::new()).await.unwrap();
    assert!(r.mismatches.is_empty() && r.tables_compared == 1, "{r:?}");
}

#[tokio::test]
async fn database_optimization_on_postgresql_15() {
    let db = seeded().await;
    let cfg = Config {
        url: Some(Secret::new(db.url())),
        steps: Steps { analyze: true, vacuum: true, invalid_indexes: true, retention: false },
        ..Config::default()
    };
    let report = DatabaseOptimization::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    let analyzed: Option<String> = db
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT last_vacuum::text FROM pg_stat_user_tables WHERE relname = 'documents'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(analyzed.is_some(), "documents was vacuumed");
}
