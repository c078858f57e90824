//! Vector and text indexes (issue 14) on PostgreSQL 17 + pgvector: the inventory by access
//! method, recall measured against an independent computation, rebuilds of churned HNSW
//! indexes while clients keep working.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use maint_core::{Status, Task, TaskContext, TaskReport};
use maint_db::deadpool_postgres::tokio_postgres;
use maint_db::{Config, IndexRebuild, PerformanceAnalysis, Steps};
use maint_testkit::TestDb;

use super::{config, fresh, session};

fn vector_config(db: &TestDb) -> Config {
    let mut cfg = config(db, Steps::default());
    cfg.lock_timeout = "2s".into();
    cfg
}

fn items<'a>(r: &'a TaskReport, step: &str) -> Vec<&'a serde_json::Value> {
    r.items.iter().filter(|i| i["step"] == step).collect()
}

fn by_index<'a>(r: &'a TaskReport, step: &str, index: &str) -> &'a serde_json::Value {
    items(r, step)
        .into_iter()
        .find(|i| i["index"] == index)
        .unwrap_or_else(|| panic!("no {step} item for {index}: {:#?}", r.items))
}

/// `rows` random vectors of `dims` dimensions (seeded) in `public.items`, with an HNSW
/// index `items_embedding_idx` built with `with`.
async fn vectors(db: &TestDb, rows: u32, dims: u32, with: &str) -> tokio_postgres::Client {
    let c = session(db).await;
    c.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS vector; \
         CREATE TABLE items (id bigserial PRIMARY KEY, embedding vector({dims})); \
         SELECT setseed(0.42); \
         INSERT INTO items (embedding) SELECT array_agg(random())::vector({dims}) \
           FROM generate_series(1, {rows}) r, generate_series(1, {dims}) d GROUP BY r; \
         CREATE INDEX items_embedding_idx ON items USING hnsw (embedding vector_l2_ops) WITH ({with}); \
         ANALYZE items"
    ))
    .await
    .expect("vector table");
    c
}

#[tokio::test]
async fn the_inventory_names_every_index_by_access_method_with_its_options() {
    let db = fresh().await;
    maint_testkit::aindusdb::create(&db, 200).await;
    let mut cfg = vector_config(&db);
    cfg.vector.recall = false;
    let report = PerformanceAnalysis::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    assert_eq!(report.metrics["vector_indexes"], 5.0, "{:#?}", report.warnings);
    let text = by_index(&report, "index_inventory", r#""aindusdb"."idx_documents_embedding_text""#);
    assert_eq!(text["method"], "hnsw");
    assert_eq!((text["m"].as_i64(), text["ef_construction"].as_i64()), (Some(32), Some(128)));
    assert_eq!((text["distance"].as_str(), text["dimensions"].as_i64()), (Some("cosine"), Some(384)));
    assert_eq!(text["opclass"], "vector_cosine_ops");
    assert!(text["bytes"].as_i64().unwrap() > 8192);
    assert!(text["since_build"]["deleted"].as_i64().unwrap() > 0, "the churn deleted documents: {text}");
    let image = by_index(&report, "index_inventory", r#""aindusdb"."idx_documents_embedding_image""#);
    assert_eq!(image["dimensions"].as_i64(), Some(512));
    let gins: Vec<_> = items(&report, "index_inventory").into_iter().filter(|i| i["method"] == "gin").collect();
    assert!(gins.len() >= 2, "GIN on metadata and content_tsvector: {gins:#?}");
    assert!(gins.iter().all(|g| g["fastupdate"] == true));
    assert!(items(&report, "index_inventory").iter().any(|i| i["method"] == "btree"));
}

#[tokio::test]
async fn recall_equals_an_independent_computation_and_a_low_ef_search_warns_with_the_fix() {
    let db = fresh().await;
    let c = vectors(&db, 300, 16, "m = 4, ef_construction = 8").await;
    c.batch_execute(&format!("ALTER DATABASE {} SET hnsw.ef_search = 1", maint_db::quote_ident(&db.name)))
        .await
        .unwrap();
    // Every row is a query: the sample is the whole table, so the test can recompute it.
    let mut cfg = vector_config(&db);
    cfg.vector.sample = 300;
    cfg.vector.critical = 0.0;
    let report = PerformanceAnalysis::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    let m = by_index(&report, "recall", r#""public"."items_embedding_idx""#);
    assert_eq!(
        (m["parameter"].as_str(), m["value"].as_i64(), m["queries"].as_u64()),
        (Some("hnsw.ef_search"), Some(1), Some(300))
    );
    let recall = m["recall"].as_f64().unwrap();

    // The same recall with plain SQL: the index's answer at ef_search = 1 against the exact one.
    let c = session(&db).await;
    c.batch_execute("SET hnsw.ef_search = 1; SET enable_seqscan = off").await.unwrap();
    let ids: Vec<i64> =
        c.query("SELECT id FROM items ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let mut sum = 0.0;
    for id in &ids {
        let q = "(SELECT embedding FROM items WHERE id = $1)";
        let approx: Vec<i64> = c
            .query(&format!("SELECT id FROM items ORDER BY embedding <-> {q} LIMIT 10"), &[id])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let exact: Vec<i64> = c
            .query(
                &format!(
                    "SELECT id FROM (SELECT id, embedding <-> {q} AS d FROM items OFFSET 0) s ORDER BY d LIMIT 10"
                ),
                &[id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        sum += exact.iter().filter(|e| approx.contains(e)).count() as f64 / exact.len() as f64;
    }
    let expected = sum / ids.len() as f64;
    assert!((recall - expected).abs() < 1e-9, "tool {recall}, plain SQL {expected}");
    assert!(recall <= 0.1, "ef_search = 1 finds one neighbour of ten: {recall}");
    assert_eq!(report.metrics["recall_min"], recall);

    // Below the target (critical threshold 0 here): a warning naming the parameter and the value that reaches it.
    let needed = m["needed"].as_i64().expect("some ef_search up to 400 reaches 0.95 on 300 rows");
    assert!(needed > 1, "{m}");
    let f = items(&report, "finding").into_iter().find(|f| f["check"] == "vector_recall").expect("recall finding");
    assert_eq!(
        (f["severity"].as_str(), f["subject"].as_str()),
        (Some("medium"), Some(r#""public"."items_embedding_idx""#))
    );
    assert!(f["action"].as_str().unwrap().contains(&format!("SET hnsw.ef_search = {needed}")), "{f}");
    assert_eq!(report.status, Status::Warning);
    // The default critical threshold (0.8) makes it critical; the history gives the trend.
    cfg.vector.critical = 0.8;
    let again = PerformanceAnalysis::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    let f = items(&again, "finding").into_iter().find(|f| f["check"] == "vector_recall").unwrap();
    assert_eq!(f["severity"], "critical");
    let m2 = by_index(&again, "recall", r#""public"."items_embedding_idx""#);
    assert_eq!(m2["recall_previous"].as_f64(), Some(recall));
    let rows: i64 = c.query_one("SELECT count(*) FROM maint.recall_history", &[]).await.unwrap().get(0);
    assert_eq!(rows, 2);
}

async fn index_oid(c: &tokio_postgres::Client) -> u32 {
    c.query_one("SELECT 'items_embedding_idx'::regclass::oid", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_churned_hnsw_index_is_rebuilt_concurrently_while_clients_query_and_insert() {
    let db = fresh().await;
    let c = vectors(&db, 3000, 32, "m = 16, ef_construction = 64").await;
    c.batch_execute("DELETE FROM items WHERE id % 2 = 0; SELECT pg_stat_force_next_flush()").await.unwrap();
    c.batch_execute("SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before_oid = index_oid(&c).await;
    let cfg = vector_config(&db);

    // A dry run plans the rebuild and changes nothing.
    let dry = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    let plan = by_index(&dry, "vector_rebuild", r#""public"."items_embedding_idx""#);
    assert_eq!(plan["outcome"], "would_rebuild", "{plan}");
    assert!(plan["reason"].as_str().unwrap().contains("50% of the rows deleted"), "{plan}");
    assert_eq!(index_oid(&c).await, before_oid);
    let tool_tables: i64 = c
        .query_one("SELECT count(*) FROM pg_class WHERE relname IN ('index_builds', 'recall_history')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tool_tables, 0, "a dry run records nothing");

    // Clients keep searching and inserting during the rebuild.
    let stop = Arc::new(AtomicBool::new(false));
    let (queries, inserts) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let client = {
        let (stop, queries, inserts) = (Arc::clone(&stop), Arc::clone(&queries), Arc::clone(&inserts));
        let w = session(&db).await;
        tokio::spawn(async move {
            w.batch_execute("SET lock_timeout = '2s'").await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                w.query(
                    "SELECT id FROM items ORDER BY embedding <-> (SELECT embedding FROM items WHERE id = 1) LIMIT 10",
                    &[],
                )
                .await
                .map_err(|e| format!("query: {e:?}"))?;
                queries.fetch_add(1, Ordering::Relaxed);
                w.execute("INSERT INTO items (embedding) SELECT embedding FROM items WHERE id = 1", &[])
                    .await
                    .map_err(|e| format!("insert: {e:?}"))?;
                inserts.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, String>(())
        })
    };
    let report = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap().expect("no client error during the rebuild");
    assert!(queries.load(Ordering::Relaxed) > 0 && inserts.load(Ordering::Relaxed) > 0);
    assert_ne!(report.status, Status::Failed, "{:#?}", report);
    let done = by_index(&report, "vector_rebuild", r#""public"."items_embedding_idx""#);
    assert_eq!(done["outcome"], "done", "{done}");
    let (before, after) = (done["bytes_before"].as_i64().unwrap(), done["bytes_after"].as_i64().unwrap());
    assert!(after < before, "the index shrinks: {before} -> {after}");
    let (rb, ra) = (done["recall_before"].as_f64().unwrap(), done["recall_after"].as_f64().unwrap());
    assert!(ra >= 0.9, "recall before {rb}, after {ra}");
    assert!(report.metrics["indexes_rebuilt"] >= 1.0);
    assert_ne!(index_oid(&c).await, before_oid, "REINDEX CONCURRENTLY swapped in a new index");
    let leftovers: i64 =
        c.query_one("SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_cc%'", &[]).await.unwrap().get(0);
    assert_eq!(leftovers, 0);
    let builds: i64 = c.query_one("SELECT count(*) FROM maint.index_builds", &[]).await.unwrap().get(0);
    assert_eq!(builds, 1);
    println!(
        "rebuild of 1,500 live rows (32 dims): {}s, {before} -> {after} bytes, recall {rb} -> {ra}",
        done["seconds"]
    );

    // From the recorded build on, the churn counts again from zero: nothing to rebuild.
    let next = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    assert!(items(&next, "vector_rebuild").is_empty(), "{:#?}", items(&next, "vector_rebuild"));
}

#[tokio::test]
async fn a_memory_estimate_over_the_cap_warns_before_the_build() {
    let db = fresh().await;
    let c = vectors(&db, 400, 8, "m = 8").await;
    c.batch_execute("DELETE FROM items WHERE id % 2 = 0").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut cfg = vector_config(&db);
    cfg.vector.maintenance_work_mem_cap = "1MB".into();
    cfg.vector.rebuild_changed_share = 0.0;
    // 200 rows × (8 × 4 + 2 × 8 × 8 + 64) bytes is far below 1MB: no warning.
    let r = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    assert!(!r.warnings.iter().any(|w| w.contains("maintenance_work_mem")), "{:?}", r.warnings);
    c.batch_execute(
        "INSERT INTO items (embedding) SELECT embedding FROM items, generate_series(1, 40); ANALYZE items; \
         SELECT pg_stat_force_next_flush()",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    let w = r.warnings.iter().find(|w| w.contains("maintenance_work_mem")).unwrap_or_else(|| panic!("{:#?}", r));
    assert!(w.contains("vector.maintenance_work_mem_cap (1 MiB)"), "{w}");
}
