//! Restore test of a large database, side by side with a bare `pg_restore` of the same
//! dump into an empty database (what an operator would run by hand, without any check).
//! Two tables with primary keys, as the service's have: `pg_restore` loads the data, then
//! builds the indexes; the restore test fingerprints each table as soon as it is loaded.
//!
//! Run: `scripts/test-env cargo bench -p maint-backup --bench restore`
//! Size: `MAINT_BENCH_MB` megabytes of table data (default 1024).

use std::time::Instant;

use maint_backup::{CLIENT_ROOT, Compression, CreateOptions, RestoreOptions, create, restore_test};
use maint_core::Secret;
use maint_testkit::{Postgres, S3};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    let mb: i64 = std::env::var("MAINT_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let pg = Postgres::shared().await;
    let db = pg.fresh_database().await;
    let client = db.pool().get().await.unwrap();
    let rows = mb * 1024 * 1024 / 120;
    let t = Instant::now();
    client
        .batch_execute(&format!(
            "CREATE TABLE vectors AS SELECT g AS id, md5(g::text) AS label, ARRAY[g * 0.5, g * 0.25]::float8[] AS embedding, \
             now() AS created_at FROM generate_series(1, {rows}) g;
             CREATE TABLE veritas AS SELECT g AS id, jsonb_build_object('x', g) AS result FROM generate_series(1, {}) g;
             ALTER TABLE vectors ADD PRIMARY KEY (id); ALTER TABLE veritas ADD PRIMARY KEY (id);",
            rows / 10
        ))
        .await
        .unwrap();
    let size: i64 = client.query_one("SELECT pg_database_size(current_database())", &[]).await.unwrap().get(0);
    println!("seeded {} MiB in {:.0}s", size >> 20, t.elapsed().as_secs_f64());

    let store = S3::shared().await.fresh_bucket().await.store();
    let mut opts = CreateOptions::new(Secret::new(db.url()));
    opts.compression = Compression::None;
    let m = create(&store, &opts, &CancellationToken::new()).await.unwrap();
    println!("dump: {} MiB", m.dump_bytes >> 20);

    // Bare pg_restore from a local file into an empty database.
    let dir = std::env::temp_dir().join(format!("maint-restore-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dump");
    let st = std::process::Command::new(format!("{CLIENT_ROOT}/17/bin/pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&file)
        .args(["--dbname", &db.url()])
        .status()
        .unwrap();
    assert!(st.success());
    let empty = pg.fresh_database().await;
    let t = Instant::now();
    let st = std::process::Command::new(format!("{CLIENT_ROOT}/17/bin/pg_restore"))
        .args(["--no-owner", "--no-privileges", "--exit-on-error", "--dbname", &empty.url()])
        .arg(&file)
        .status()
        .unwrap();
    let bare = t.elapsed().as_secs_f64();
    assert!(st.success());
    std::fs::remove_dir_all(&dir).unwrap();

    let ropts = RestoreOptions::new(Secret::new(pg.url("postgres")));
    let t = Instant::now();
    let r = restore_test(&store, &m.key, &ropts, &CancellationToken::new()).await.unwrap();
    let ours = t.elapsed().as_secs_f64();
    assert!(r.mismatches.is_empty());
    println!("bare pg_restore (local file, no checks): {bare:.2}s");
    println!(
        "maint-backup restore-test (from S3, fingerprints compared, scratch dropped): {ours:.2}s = {:.2}x bare \
         (fingerprints of the restored tables: {:.2}s)",
        ours / bare,
        r.fingerprint_seconds
    );
}
