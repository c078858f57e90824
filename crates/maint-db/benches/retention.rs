//! Retention delete of 2 million rows in batches, side by side with one big `DELETE`
//! on an identical table: the longest single statement of ours, and both totals.
//!
//! Run: `scripts/test-env cargo bench -p maint-db --bench retention`
//! Settings: `MAINT_BENCH_ROWS` expired rows (default 2,000,000), `MAINT_BENCH_BATCH`
//! rows per batch (default 200,000), `MAINT_BENCH_PAUSE` between batches (default 100ms).

use std::time::Instant;

use maint_core::{Secret, Task, TaskContext};
use maint_db::{Config, DatabaseOptimization, RetentionRuleConfig, Steps};
use maint_testkit::{Postgres, TestDb};

/// `logs` with `rows` rows older than 30 days and a quarter as many recent ones.
async fn seed(db: &TestDb, rows: i64) {
    let client = db.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE logs (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, level text, msg text)
               WITH (autovacuum_enabled = false);
             INSERT INTO logs (created_at, level, msg)
               SELECT now() - interval '90 days' + (g % 5000000) * interval '1 second', 'info', md5(g::text)
               FROM generate_series(1, {rows}) g;
             INSERT INTO logs (created_at, level, msg)
               SELECT now() - (g % 86400) * interval '1 second', 'info', md5(g::text)
               FROM generate_series(1, {rows} / 4) g;
             CREATE INDEX logs_created_at ON logs (created_at)"
        ))
        .await
        .unwrap();
    client.batch_execute("VACUUM ANALYZE logs").await.unwrap();
    client.batch_execute("CHECKPOINT").await.unwrap();
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let rows: i64 = env("MAINT_BENCH_ROWS", "2000000").parse().unwrap();
    let batch: u64 = env("MAINT_BENCH_BATCH", "200000").parse().unwrap();
    let pause = env("MAINT_BENCH_PAUSE", "100ms");
    let pg = Postgres::shared().await;
    let (ours, theirs) = (pg.fresh_database().await, pg.fresh_database().await);
    let t = Instant::now();
    seed(&ours, rows).await;
    seed(&theirs, rows).await;
    println!(
        "seeded two logs tables of {rows} expired + {} recent rows in {:.0}s",
        rows / 4,
        t.elapsed().as_secs_f64()
    );

    let client = theirs.pool().get().await.unwrap();
    let t = Instant::now();
    let n = client.execute("DELETE FROM logs WHERE created_at < now() - interval '30 days'", &[]).await.unwrap();
    let bare = t.elapsed().as_secs_f64();
    assert_eq!(n as i64, rows);

    let mut cfg = Config {
        url: Some(Secret::new(ours.url())),
        steps: Steps { analyze: false, vacuum: false, invalid_indexes: false, retention: true },
        ..Config::default()
    };
    cfg.retention.batch_size = batch;
    cfg.retention.pause = pause.clone();
    cfg.retention.rules = vec![RetentionRuleConfig {
        table: "logs".into(),
        column: "created_at".into(),
        older_than: "30d".into(),
        ..Default::default()
    }];
    let t = Instant::now();
    let report = DatabaseOptimization::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    let mine = t.elapsed().as_secs_f64();
    assert_eq!(report.metrics["rows_deleted"], rows as f64, "{report:#?}");
    let item = &report.items[0];
    let longest = item["longest_batch_ms"].as_u64().unwrap() as f64 / 1000.0;

    println!("one DELETE of {rows} rows: {bare:.2}s (one statement, locks held and WAL written all that time)");
    println!(
        "maint-db retention, batches of {batch} with {pause} pauses: {mine:.2}s = {:.2}x one DELETE (target <= 2x), \
         {} statements deleted rows ({}), longest statement {longest:.3}s (target < 1s)",
        mine / bare,
        item["batches"],
        item["scan"]
    );
}
