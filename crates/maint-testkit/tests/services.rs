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
async fn postgres_17_has_pgvector_tls_on_and_a_plain_url() {
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

/// What two builds of the AindusDB fixture must share: each table with its row count, each
/// index with its definition, and a digest of the documents' content and text embeddings.
async fn aindusdb_shape(db: &maint_testkit::TestDb) -> (Vec<(String, i64)>, Vec<String>, String) {
    let c = db.pool().get().await.unwrap();
    let mut tables = Vec::new();
    let names =
        c.query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'aindusdb' ORDER BY 1", &[]).await.unwrap();
    for row in names {
        let name: String = row.get(0);
        let n: i64 = c.query_one(&format!("SELECT count(*) FROM aindusdb.{name}"), &[]).await.unwrap().get(0);
        tables.push((format!("aindusdb.{name}"), n));
    }
    let indexes = c
        .query("SELECT indexdef FROM pg_indexes WHERE schemaname = 'aindusdb' ORDER BY indexname", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let digest = c
        .query_one(
            "SELECT md5(string_agg(id::text || content || embedding_text::text || coalesce(embedding_image::text, ''), \
             ',' ORDER BY id)) FROM aindusdb.documents",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (tables, indexes, digest)
}

#[tokio::test]
async fn the_aindusdb_fixture_has_its_shape_and_psql_builds_the_same() {
    use maint_testkit::aindusdb;
    const DOCS: u32 = 300;
    let pg = Postgres::shared().await;
    let db = pg.fresh_database().await;
    aindusdb::create(&db, DOCS).await;
    let c = db.pool().get().await.unwrap();

    // Five HNSW indexes, one a column, each WITH (m = 32, ef_construction = 128).
    let hnsw = c
        .query(
            "SELECT a.attname::text, c.relname::text, c.reloptions FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = 'aindusdb.documents'::regclass AND am.amname = 'hnsw' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let mut columns: Vec<String> = hnsw.iter().map(|r| r.get(0)).collect();
    let mut expected = aindusdb::EMBEDDINGS.map(String::from).to_vec();
    columns.sort();
    expected.sort();
    assert_eq!(columns, expected);
    for row in &hnsw {
        let (name, options): (String, Vec<String>) = (row.get(1), row.get(2));
        assert_eq!(options, ["m=32", "ef_construction=128"], "{name}");
        let def: String = c
            .query_one("SELECT pg_get_indexdef($1::text::regclass)", &[&format!("aindusdb.{name}")])
            .await
            .unwrap()
            .get(0);
        assert!(def.contains("vector_cosine_ops"), "{def}");
    }
    // GIN on the documents' metadata and tsvector, the audit details and the three proof columns.
    let gin: Vec<String> = c
        .query(
            "SELECT i.indrelid::regclass::text || '(' || a.attname || ')' FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam AND am.amname = 'gin' \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE c.relnamespace = 'aindusdb'::regnamespace ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        gin,
        [
            "aindusdb.audit_logs(details)",
            "aindusdb.documents(content_tsvector)",
            "aindusdb.documents(metadata)",
            "aindusdb.veritas_proofs(computation_steps)",
            "aindusdb.veritas_proofs(input_data)",
            "aindusdb.veritas_proofs(result_value)",
        ]
    );
    // Row-level security on documents, with the tenant policy.
    let row = c
        .query_one(
            "SELECT c.relrowsecurity, (SELECT string_agg(pg_get_expr(p.polqual, p.polrelid), ' ') FROM pg_policy p \
               WHERE p.polrelid = c.oid) FROM pg_class c WHERE c.oid = 'aindusdb.documents'::regclass",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "RLS is enabled on documents");
    let policy: String = row.get(1);
    assert!(policy.contains("current_setting('app.current_tenant_id'"), "{policy}");
    // Rows after the churn; the embeddings filled as AindusDB's rows fill them.
    let (tables, indexes, digest) = aindusdb_shape(&db).await;
    let mut expected: Vec<(String, i64)> =
        aindusdb::row_counts(DOCS).iter().map(|(t, n)| ((*t).to_owned(), *n)).collect();
    expected.sort();
    assert_eq!(tables, expected);
    assert_eq!(tables.iter().find(|(t, _)| t == "aindusdb.documents").unwrap().1, 225, "a quarter deleted");
    let row = c
        .query_one(
            "SELECT count(embedding_text), count(embedding_image), count(embedding_audio) + count(embedding_video) \
               + count(embedding_3d), count(*) FILTER (WHERE title LIKE '% (rev. 2)') FROM aindusdb.documents",
            &[],
        )
        .await
        .unwrap();
    let counts: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(counts, (225, 75, 0, 30));
    let expired: i64 = c
        .query_one("SELECT count(*) FROM aindusdb.user_sessions WHERE is_active AND expires_at < now()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(expired > 0, "some expired sessions are still active");

    // psql with `-v docs=N -f` (over verified TLS) builds the same database.
    let other = pg.fresh_database().await;
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", &format!("docs={DOCS}"), "-f"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/aindusdb.sql"))
        .arg(other.url())
        .output()
        .expect("run psql (scripts/test-env installs the client)");
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    let theirs = aindusdb_shape(&other).await;
    assert_eq!((tables, indexes, digest), theirs);
}
