//! Bloat scan over 1,000 btree indexes: maint-db's catalog estimate followed by
//! `pgstatindex` on the top 20 candidates, side by side with `pgstatindex` on every index
//! (what an operator would otherwise run), and whether both find the same top 10.
//!
//! Run: `scripts/test-env cargo bench -p maint-db --bench bloat`
//! Size: `MAINT_BENCH_ROWS` rows per table (default 100,000).

use std::collections::BTreeSet;
use std::time::Instant;

use maint_core::Secret;
use maint_db::{Config, Db, DbBackend, PgBackend, RelKind, bloat_candidates, index_waste};
use maint_testkit::Postgres;

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    let rows: i64 = std::env::var("MAINT_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let pg = Postgres::shared().await;
    let db = pg.fresh_database().await;
    let client = db.pool().get().await.unwrap();
    let t = Instant::now();
    // 98 clean tables with 10 indexes each (built after the load: dense) and 20 tables
    // with one index each, left with sparse leaves by deleting 40%..97% of their rows.
    client
        .batch_execute(&format!(
            "CREATE EXTENSION pgstattuple;
             DO $$ BEGIN
               FOR i IN 0..97 LOOP
                 EXECUTE format('CREATE TABLE clean_%s (id int, a int, b bigint, c text, d text);
                   INSERT INTO clean_%s SELECT g, g %% 997, g * 7, md5(g::text), md5((g * 3)::text)
                     FROM generate_series(1, {rows}) g;
                   CREATE INDEX ON clean_%s (id); CREATE INDEX ON clean_%s (a); CREATE INDEX ON clean_%s (b);
                   CREATE INDEX ON clean_%s (c); CREATE INDEX ON clean_%s (d); CREATE INDEX ON clean_%s (id, a);
                   CREATE INDEX ON clean_%s (a, b); CREATE INDEX ON clean_%s (b, c); CREATE INDEX ON clean_%s (c, d);
                   CREATE INDEX ON clean_%s (d, id)', i, i, i, i, i, i, i, i, i, i, i, i);
               END LOOP;
               FOR i IN 0..19 LOOP
                 EXECUTE format('CREATE TABLE sparse_%s (id int, v text);
                   INSERT INTO sparse_%s SELECT g, md5(g::text) FROM generate_series(1, {rows}) g;
                   CREATE INDEX sparse_%s_id ON sparse_%s (id);
                   DELETE FROM sparse_%s WHERE id %% 100 < %s', i, i, i, i, i, 40 + 3 * i);
               END LOOP;
             END $$;"
        ))
        .await
        .unwrap();
    client.batch_execute("VACUUM ANALYZE").await.unwrap();
    client.batch_execute("CHECKPOINT").await.unwrap();
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    println!("seeded {n} btree indexes ({rows} rows per table) in {:.0}s", t.elapsed().as_secs_f64());

    // What an operator would run: pgstatindex on every index, in one query.
    let t = Instant::now();
    let every = client
        .query(
            "SELECT c.relname::text, s.leaf_pages, s.deleted_pages, s.avg_leaf_density, \
               current_setting('block_size')::bigint \
             FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_am am ON am.oid = c.relam AND am.amname = 'btree' \
             CROSS JOIN LATERAL pgstatindex(x.indexrelid) s WHERE n.nspname = 'public'",
            &[],
        )
        .await
        .unwrap();
    let bare = t.elapsed().as_secs_f64();
    let mut all: Vec<(i64, String)> =
        every.iter().map(|r| (index_waste(r.get(4), r.get(1), r.get(2), r.get(3)), r.get::<_, String>(0))).collect();
    all.sort_by(|a, b| b.cmp(a));

    // maint-db: the catalog estimate, then pgstatindex on the 20 most promising indexes.
    let cfg = Config { url: Some(Secret::new(db.url())), ..Config::default() };
    let settings = cfg.validate().unwrap();
    let backend = PgBackend::new(Db::connect(cfg.url.as_ref().unwrap(), &settings).unwrap());
    backend.database_size().await.unwrap(); // open the pool outside the timing
    let t = Instant::now();
    let estimates: Vec<_> =
        backend.bloat_estimates().await.unwrap().into_iter().filter(|e| e.kind == RelKind::Index).collect();
    let estimated = t.elapsed().as_secs_f64();
    let mut measured = Vec::new();
    for c in bloat_candidates(&estimates, settings.bloat.measure_top) {
        let m = backend.measure(&c).await.unwrap();
        measured.push((m.bloat_bytes, c.name.clone()));
    }
    let mine = t.elapsed().as_secs_f64();
    measured.sort_by(|a, b| b.cmp(a));

    let top = |v: &[(i64, String)]| v.iter().take(10).map(|(_, n)| n.clone()).collect::<BTreeSet<_>>();
    let (theirs_top, ours_top) = (top(&all), top(&measured));
    println!("pgstatindex on all {} indexes: {bare:.2}s", all.len());
    println!(
        "maint-db estimate over {} indexes ({estimated:.2}s) + pgstatindex on the top {}: {mine:.2}s; \
         pgstatindex-on-all is {:.1}x slower (target >= 10x)",
        estimates.len(),
        measured.len(),
        bare / mine
    );
    println!(
        "top 10 by measured waste: {} (ours: {:?})",
        if theirs_top == ours_top { "the same" } else { "DIFFERENT" },
        measured.iter().take(10).map(|(b, n)| format!("{n}={}KiB", b >> 10)).collect::<Vec<_>>()
    );
    if theirs_top != ours_top {
        println!("pgstatindex-on-all top 10: {:?}", all.iter().take(10).collect::<Vec<_>>());
    }
}
