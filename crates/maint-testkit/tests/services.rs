//! The testkit's own tests: each container starts and the real server inside answers.

use maint_testkit::deadpool_redis::redis::AsyncCommands;
use maint_testkit::object_store::{ObjectStoreExt, PutPayload, path::Path};
use maint_testkit::{Postgres, Redis, S3};

#[tokio::test]
async fn postgres_answers_a_query_and_has_the_contrib_extensions() {
    let db = Postgres::shared().await.fresh_database().await;
    let client = db.pool().get().await.unwrap();
    let row =
        client.query_one("SELECT current_database(), current_setting('server_version_num')::int", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), db.name);
    assert!(row.get::<_, i32>(1) >= 150000, "PostgreSQL 15 or newer");
    client.batch_execute("CREATE EXTENSION pgstattuple; CREATE EXTENSION amcheck;").await.unwrap();
    let other = Postgres::shared().await.fresh_database().await;
    assert_ne!(other.name, db.name, "each test gets its own database");
}

#[tokio::test]
async fn redis_set_get_in_a_database_of_its_own() {
    let a = Redis::shared().await.fresh_db().await;
    let b = Redis::shared().await.fresh_db().await;
    assert_ne!(a.db, b.db);
    let mut ca = a.pool().get().await.unwrap();
    let mut cb = b.pool().get().await.unwrap();
    let _: () = ca.set("session:1", "alive").await.unwrap();
    let got: String = ca.get("session:1").await.unwrap();
    assert_eq!(got, "alive");
    let other: Option<String> = cb.get("session:1").await.unwrap();
    assert_eq!(other, None, "databases are isolated");
}

#[tokio::test]
async fn s3_put_get_list() {
    let bucket = S3::shared().await.fresh_bucket().await;
    let store = bucket.store();
    let path = Path::from("backups/2026/11/24/app.dump");
    store.put(&path, PutPayload::from_static(b"PGDMP test")).await.unwrap();
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"PGDMP test");
    let meta = store.head(&path).await.unwrap();
    assert_eq!(meta.size, 10);
}

#[tokio::test]
async fn the_default_server_is_postgres_17_with_pgvector_tls_on_and_a_plain_url() {
    let pg = Postgres::shared().await;
    let db = pg.fresh_database().await;
    assert!(db.plain_url().ends_with("?sslmode=disable"), "{}", db.plain_url());
    let ca = pg.ca().expect("the 17 server has a CA").display().to_string();
    assert_eq!(db.url(), db.plain_url().replace("sslmode=disable", &format!("sslmode=verify-full&sslrootcert={ca}")));
    assert!(pg.other_ca().unwrap().is_file());
    let client = db.pool().get().await.unwrap();
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int, current_setting('ssl')", &[])
        .await
        .unwrap();
    assert!(row.get::<_, i32>(0) >= 170000, "PostgreSQL 17 or newer");
    assert_eq!(row.get::<_, String>(1), "on");
    client.batch_execute("CREATE EXTENSION vector; CREATE EXTENSION amcheck;").await.unwrap();
    let v: String =
        client.query_one("SELECT extversion FROM pg_extension WHERE extname = 'vector'", &[]).await.unwrap().get(0);
    assert!(!v.is_empty());
    let d: f64 = client.query_one("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector", &[]).await.unwrap().get(0);
    assert_eq!(d, 1.0);
}

#[tokio::test]
async fn postgres_17_hostssl_only_refuses_plain_text() {
    use maint_testkit::deadpool_postgres::tokio_postgres::{self, NoTls};
    let pg = Postgres::shared_17_hostssl_only().await;
    let Err(err) = tokio_postgres::connect(&pg.plain_url("postgres"), NoTls).await else {
        panic!("plain text accepted")
    };
    let msg = err.as_db_error().expect("the server's refusal").message().to_owned();
    assert!(msg.contains("no pg_hba.conf entry") && msg.contains("no encryption"), "{msg}");
}
