//! The maintenance tasks on an AindusDB-shaped database (`maint_testkit::aindusdb`: pgvector
//! embeddings under HNSW indexes, GIN on jsonb and tsvector, row-level security, churned),
//! on PostgreSQL 17 over `sslmode=verify-full`: each test builds the fixture in a fresh
//! database and asserts what the task reports about it.

use maint_backup::{CreateOptions, RestoreOptions, catalog, create, restore_test, verify_one};
use maint_core::{Secret, Status, Task, TaskContext, TaskReport};
use maint_db::{
    CapacityPlanning, Config, DatabaseOptimization, IndexIntegrity, IndexRebuild, PerformanceAnalysis, PgSecurityAudit,
    Steps,
};
use maint_testkit::{Postgres, S3, TestDb, aindusdb};
use tokio_util::sync::CancellationToken;

/// Documents per fixture: enough for every kind of index to have pages, small enough to
/// build in a few seconds.
const DOCS: u32 = 600;

async fn fixture() -> TestDb {
    let db = Postgres::shared().await.fresh_database().await;
    aindusdb::create(&db, DOCS).await;
    db
}

fn config(db: &TestDb) -> Config {
    Config { url: Some(Secret::new(db.url())), ..Config::default() }
}

async fn query_i64(db: &TestDb, sql: &str) -> i64 {
    db.pool().get().await.unwrap().query_one(sql, &[]).await.unwrap().get(0)
}

fn items<'a>(report: &'a TaskReport, step: &str) -> Vec<&'a serde_json::Value> {
    report.items.iter().filter(|i| i["step"] == step).collect()
}

/// The fixture's indexes of one access method, quoted as the reports name them.
async fn indexes(db: &TestDb, am: &str) -> Vec<String> {
    let rows = db
        .pool()
        .get()
        .await
        .unwrap()
        .query(
            "SELECT format('\"%s\".\"%s\"', n.nspname, c.relname) FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam \
             WHERE n.nspname = 'aindusdb' AND c.relkind = 'i' AND am.amname = $1 ORDER BY 1",
            &[&am],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn backup_create_verify_and_restore_test_compare_every_table_including_the_rls_one() {
    let db = fixture().await;
    let store = S3::shared().await.fresh_bucket().await.store();
    let m = create(&store, &CreateOptions::new(Secret::new(db.url())), &CancellationToken::new()).await.unwrap();
    assert!(m.server_version.starts_with("17."), "{}", m.server_version);
    let mut tables: Vec<(String, i64)> =
        m.tables.iter().map(|t| (format!("{}.{}", t.schema, t.table), t.rows)).collect();
    tables.sort();
    let mut expected: Vec<(String, i64)> = aindusdb::row_counts(DOCS).iter().map(|(t, n)| ((*t).into(), *n)).collect();
    expected.sort();
    assert_eq!(tables, expected, "the manifest fingerprints every table with its rows");

    let day = m.key.rsplit_once('/').unwrap().0.to_owned();
    let entry = catalog(&store, &day).await.unwrap().into_iter().find(|e| e.key == m.key).unwrap();
    let v = verify_one(&store, &entry).await;
    assert!(v.ok, "{v:?}");

    let admin = Secret::new(Postgres::shared().await.url("postgres"));
    let r = restore_test(&store, &m.key, &RestoreOptions::new(admin), &CancellationToken::new()).await.unwrap();
    assert!(r.mismatches.is_empty(), "{r:?}");
    assert_eq!(r.tables_compared, aindusdb::TABLES.len(), "{r:?}");
    let rls: bool = db
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT relrowsecurity FROM pg_class WHERE oid = 'aindusdb.documents'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    assert!(rls, "documents, compared above, is under row-level security");
}

#[tokio::test]
async fn database_optimization_vacuums_the_churned_documents() {
    let db = fixture().await;
    let dead =
        query_i64(&db, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'aindusdb.documents'::regclass").await;
    let cfg =
        Config { steps: Steps { analyze: true, vacuum: true, invalid_indexes: true, retention: false }, ..config(&db) };
    let report = DatabaseOptimization::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    let done = items(&report, "table");
    let documents =
        done.iter().find(|i| i["table"] == "\"aindusdb\".\"documents\"").unwrap_or_else(|| panic!("{report:#?}"));
    assert_eq!(documents["outcome"], "done", "{documents}");
    assert!(documents["sql"].as_str().unwrap().starts_with("VACUUM"), "{documents}");
    assert!(dead >= i64::from(DOCS / 4), "the churn left dead rows: {dead}");
    let row = db
        .pool()
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT last_vacuum IS NOT NULL, n_dead_tup FROM pg_stat_user_tables WHERE relid = 'aindusdb.documents'::regclass",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, bool>(0), row.get::<_, i64>(1)), (true, 0), "vacuumed, no dead rows left");
}

#[tokio::test]
async fn index_rebuild_rebuilds_the_churned_btree_indexes() {
    let db = fixture().await;
    // Vacuumed first (as the weekly window does before the monthly rebuild): the deleted
    // quarter leaves the btree pages a quarter empty.
    let cfg = Config {
        steps: Steps { analyze: true, vacuum: true, invalid_indexes: false, retention: false },
        ..config(&db)
    };
    let vacuum = DatabaseOptimization::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(vacuum.status, Status::Ok, "{vacuum:#?}");
    let mut cfg = config(&db);
    cfg.bloat.create_extension = true;
    cfg.reindex.min_bloat_bytes = 8 << 10;
    cfg.reindex.min_bloat_ratio = 0.1;
    cfg.reindex.max_leaf_density = 90.0;
    let report = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert!(report.status == Status::Ok || report.status == Status::Warning, "{report:#?}");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let btree = indexes(&db, "btree").await;
    let rebuilt: Vec<&str> = items(&report, "reindex")
        .iter()
        .filter(|i| i["outcome"] == "done")
        .map(|i| i["index"].as_str().unwrap())
        .collect();
    assert!(rebuilt.contains(&"\"aindusdb\".\"documents_pkey\""), "{report:#?}");
    // The btree step (REINDEX CONCURRENTLY after a measured bloat) takes btree indexes only;
    // the HNSW and GIN indexes are not its candidates.
    assert!(rebuilt.iter().all(|i| btree.iter().any(|b| b == i)), "only btree indexes here: {rebuilt:?}");
    assert!(report.metrics["indexes_rebuilt"] >= rebuilt.len() as f64, "{report:#?}");
    let invalid = query_i64(&db, "SELECT count(*) FROM pg_index WHERE NOT indisvalid").await;
    assert_eq!(invalid, 0, "no _ccnew index left behind");
}

#[tokio::test]
async fn the_performance_report_names_the_unused_vector_indexes_with_their_real_sizes() {
    let db = fixture().await;
    let findings = PerformanceAnalysis::new(&config(&db)).unwrap().findings().await.unwrap();
    let c = db.pool().get().await.unwrap();
    for column in aindusdb::EMBEDDINGS {
        let name = format!("idx_documents_{column}");
        let bytes: i64 = c
            .query_one("SELECT pg_relation_size($1::text::regclass)", &[&format!("aindusdb.{name}")])
            .await
            .unwrap()
            .get(0);
        let f = findings
            .iter()
            .find(|f| f.check == "unused_index" && f.subject.contains(&format!("\"aindusdb\".\"{name}\"")))
            .unwrap_or_else(|| panic!("{name} never scanned: {findings:#?}"));
        assert!(f.message.contains(&format!("{:.1} MiB", bytes as f64 / 1_048_576.0)), "{bytes}: {f:?}");
    }
    let text = c
        .query_one("SELECT pg_relation_size('aindusdb.idx_documents_embedding_text')", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(text > 1 << 20, "the text embeddings' HNSW index is megabytes, not a relpages 0: {text}");
}

#[tokio::test]
async fn capacity_planning_reports_the_sizes_of_right_after_the_bulk_load() {
    let db = fixture().await;
    let mut cfg = config(&db);
    cfg.capacity.top = 100; // every relation of the fixture, the small btree indexes too
    let report = CapacityPlanning::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    let c = db.pool().get().await.unwrap();
    let reported = |name: &str| {
        report
            .items
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the report: {report:#?}"))["bytes"]
            .as_i64()
            .unwrap()
    };
    let row = c
        .query_one(
            "SELECT pg_table_size('aindusdb.documents'), pg_relation_size('aindusdb.idx_documents_embedding_text'), \
               pg_relation_size('aindusdb.idx_documents_metadata'), pg_table_size('aindusdb.audit_logs'), \
               pg_database_size(current_database())",
            &[],
        )
        .await
        .unwrap();
    let (documents, hnsw, gin, audit, database): (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert!(documents > 1 << 20 && hnsw > 1 << 20, "{documents} {hnsw}");
    assert_eq!(reported("\"aindusdb\".\"documents\""), documents);
    assert_eq!(reported("\"aindusdb\".\"idx_documents_embedding_text\""), hnsw);
    assert_eq!(reported("\"aindusdb\".\"idx_documents_metadata\""), gin);
    assert_eq!(reported("\"aindusdb\".\"audit_logs\""), audit);
    let db_bytes = report.metrics["db_bytes"] as i64;
    assert!((db_bytes - database).abs() < database / 10, "{db_bytes} vs {database}");
    // pg_total_relation_size = the table with its TOAST plus its indexes, every one reported.
    let total: i64 = c.query_one("SELECT pg_total_relation_size('aindusdb.documents')", &[]).await.unwrap().get(0);
    let index_names: Vec<String> = c
        .query(
            "SELECT format('\"aindusdb\".\"%s\"', c.relname) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = 'aindusdb.documents'::regclass",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let indexes_reported: i64 = index_names.iter().map(|n| reported(n)).sum();
    assert_eq!(documents + indexes_reported, total, "{index_names:?}");
}

#[tokio::test]
async fn amcheck_checks_every_btree_index_of_the_fixture_and_finds_them_sound() {
    let db = fixture().await;
    let mut cfg = config(&db);
    cfg.amcheck.create_extension = true;
    cfg.amcheck.include_catalogs = false;
    let btree = indexes(&db, "btree").await;
    let dry = IndexIntegrity::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    let mut planned: Vec<&str> = items(&dry, "amcheck").iter().filter_map(|i| i["index"].as_str()).collect();
    planned.sort();
    assert_eq!(planned, btree.iter().map(String::as_str).collect::<Vec<_>>(), "every btree index, no HNSW nor GIN");
    assert!(planned.contains(&"\"aindusdb\".\"documents_pkey\""));

    let report = IndexIntegrity::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    assert_eq!(report.metrics["indexes_checked"], btree.len() as f64, "{report:#?}");
    assert_eq!(report.metrics["indexes_corrupt"], 0.0);
}

#[tokio::test]
async fn the_security_audit_sees_pgvector_in_use_and_tls_on() {
    let db = fixture().await;
    let cfg = config(&db);
    let report = PgSecurityAudit::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert!(report.status == Status::Ok || report.status == Status::Warning, "{report:#?}");
    let findings = items(&report, "finding");
    let has = |check: &str, subject: &str| findings.iter().any(|f| f["check"] == check && f["subject"] == subject);
    // The documents' embedding columns depend on pgvector: not an unused extension.
    assert!(!has("unused_extension", "extension \"vector\""), "{findings:#?}");
    assert!(findings.iter().all(|f| f["check"] != "ssl_off"), "the server serves TLS: {findings:#?}");
    assert!(has("superuser_login", "role \"postgres\""), "{findings:#?}");
}
