//! `VACUUM (ANALYZE)` of 500 small and 5 large tables with 2 jobs, side by side with
//! `vacuumdb --analyze --jobs=2` on an identical database (what an operator would run).
//!
//! Run: `scripts/test-env cargo bench -p maint-db --bench vacuum`
//! Size: `MAINT_BENCH_LARGE_ROWS` rows in each large table (default 1,000,000).

use std::time::Instant;

use maint_core::{Secret, Task, TaskContext};
use maint_db::{Config, DatabaseOptimization, Steps};
use maint_testkit::{Postgres, TestDb};

/// 500 small tables (200 rows, a quarter deleted) and 5 large ones (a tenth of the rows
/// updated), autovacuum off so that both databases wait in the same state.
async fn seed(db: &TestDb, rows: i64) {
    let client = db.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "DO $$ BEGIN
               FOR i IN 0..499 LOOP
                 EXECUTE format('CREATE TABLE small_%s (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
                   INSERT INTO small_%s SELECT g, md5(g::text) FROM generate_series(1, 200) g;
                   DELETE FROM small_%s WHERE id %% 4 = 0', i, i, i);
               END LOOP;
               FOR i IN 0..4 LOOP
                 EXECUTE format('CREATE TABLE large_%s (id int PRIMARY KEY, v text, n int) WITH (autovacuum_enabled = false);
                   INSERT INTO large_%s SELECT g, md5(g::text), g %% 1000 FROM generate_series(1, {rows}) g;
                   UPDATE large_%s SET n = n + 1 WHERE id %% 10 = 0', i, i, i);
               END LOOP;
             END $$"
        ))
        .await
        .unwrap();
    client.batch_execute("CHECKPOINT").await.unwrap();
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    let rows: i64 = std::env::var("MAINT_BENCH_LARGE_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let pg = Postgres::shared().await;
    let (ours, theirs) = (pg.fresh_database().await, pg.fresh_database().await);
    let t = Instant::now();
    seed(&ours, rows).await;
    seed(&theirs, rows).await;
    println!(
        "seeded two databases of 500 small + 5 large tables ({rows} rows each) in {:.0}s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let st = std::process::Command::new("vacuumdb")
        .args(["--analyze", "--jobs=2", "--quiet", "--dbname", &theirs.url()])
        .status()
        .expect("vacuumdb (scripts/test-env installs postgresql-client)");
    let bare = t.elapsed().as_secs_f64();
    assert!(st.success());

    let cfg = Config {
        url: Some(Secret::new(ours.url())),
        jobs: 2,
        steps: Steps { analyze: true, vacuum: true, invalid_indexes: false, retention: false },
        ..Config::default()
    };
    let t = Instant::now();
    let report = DatabaseOptimization::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    let mine = t.elapsed().as_secs_f64();
    assert_eq!(report.metrics["tables_vacuumed"], 505.0, "{report:#?}");

    println!("vacuumdb --analyze --jobs=2 (user tables and the system catalogs): {bare:.2}s");
    println!(
        "maint-db VACUUM (ANALYZE, SKIP_LOCKED), 2 jobs, each table confirmed from pg_stat_all_tables: {mine:.2}s = {:.2}x vacuumdb (target <= 1.1x)",
        mine / bare
    );
}
