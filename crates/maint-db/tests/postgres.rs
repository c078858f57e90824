//! maint-db against a real PostgreSQL 15 (maint-testkit).

use maint_core::{Secret, Status, Task, TaskContext, TaskReport};
use maint_db::deadpool_postgres::tokio_postgres::{self, NoTls};
use maint_db::{Config, DatabaseOptimization, Db, Error, RunLockAttempt, Steps};
use maint_testkit::{Postgres, TestDb};

async fn fresh() -> TestDb {
    Postgres::shared().await.fresh_database().await
}

/// A plain session outside any pool, for setup and for holding locks.
async fn session(db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url(), NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

fn config(db: &TestDb, steps: Steps) -> Config {
    Config {
        url: Some(Secret::new(db.url())),
        steps,
        lock_timeout: "300ms".into(),
        lock_attempts: 2,
        retry_backoff: "10ms".into(),
        ..Config::default()
    }
}

async fn run(cfg: &Config, dry_run: bool) -> TaskReport {
    DatabaseOptimization::new(cfg).expect("valid config").run(&TaskContext::new(dry_run)).await
}

fn optimize_only() -> Steps {
    Steps { analyze: true, vacuum: true, invalid_indexes: false, retention: false }
}

fn item<'a>(report: &'a TaskReport, key: &str, value: &str) -> &'a serde_json::Value {
    report
        .items
        .iter()
        .find(|i| i[key] == value)
        .unwrap_or_else(|| panic!("no item with {key} = {value}: {:#?}", report.items))
}

#[tokio::test]
async fn every_session_carries_the_lock_and_statement_timeouts() {
    let db = fresh().await;
    let cfg = Config { lock_timeout: "750ms".into(), statement_timeout: "2min".into(), ..Config::default() };
    let handle = Db::connect(&Secret::new(db.url()), &cfg.validate().unwrap()).unwrap();
    let client = handle.client().await.unwrap();
    let show = |name: &'static str| {
        let client = &client;
        async move { client.query_one(&format!("SHOW {name}"), &[]).await.unwrap().get::<_, String>(0) }
    };
    assert_eq!(show("lock_timeout").await, "750ms");
    assert_eq!(show("statement_timeout").await, "2min");
    assert_eq!(show("application_name").await, "maint-db");
}

const HOSTILE: [&str; 5] = ["we\"ird", "semi;colon", "with space", "données_🚀", "Robert'); DROP TABLE students;--"];

#[tokio::test]
async fn hostile_table_names_are_vacuumed_and_analyzed() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute("CREATE TABLE students (id int); CREATE SCHEMA \"odd \"\"schema\"\"\"").await.unwrap();
    let mut names: Vec<(String, String)> = HOSTILE.iter().map(|n| ("public".to_owned(), (*n).to_owned())).collect();
    names.push(("odd \"schema\"".into(), "x; y".into()));
    for (schema, name) in &names {
        let t = maint_db::qualified(schema, name);
        c.batch_execute(&format!(
            "CREATE TABLE {t} (id int); INSERT INTO {t} SELECT generate_series(1, 500); DELETE FROM {t} WHERE id % 2 = 0"
        ))
        .await
        .unwrap();
    }
    let report = run(&config(&db, optimize_only()), false).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    assert_eq!(report.metrics["tables_vacuumed"], 7.0);
    assert_eq!(report.metrics["tables_analyzed"], 7.0);
    for (schema, name) in &names {
        let t = maint_db::qualified(schema, name);
        assert_eq!(item(&report, "table", &t)["outcome"], "done");
        let row = c
            .query_one(
                "SELECT vacuum_count, analyze_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2",
                &[schema, name],
            )
            .await
            .unwrap();
        // (n_dead_tup is not checked: whether VACUUM may remove a dead row depends on
        // the oldest snapshot on the server, which other tests' sessions move.)
        let (v, a): (i64, i64) = (row.get(0), row.get(1));
        assert!(v >= 1 && a >= 1, "{t}: vacuum_count {v}, analyze_count {a}");
    }
    // Nothing was spliced: the table named in the hostile string is still there.
    c.query_one("SELECT count(*) FROM students", &[]).await.unwrap();
    assert!(report.metrics["db_bytes_before"] > 0.0 && report.metrics["db_bytes_after"] > 0.0);
}

#[tokio::test]
async fn a_locked_table_is_skipped_its_blocker_named_and_the_others_done() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute("CREATE TABLE a (id int); CREATE TABLE b (id int); CREATE TABLE locked (id int)").await.unwrap();
    let holder = session(&db).await;
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    holder.batch_execute("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE").await.unwrap();

    let report = run(&config(&db, optimize_only()), false).await;
    assert_eq!(report.status, Status::Warning, "{report:#?}");
    assert_eq!(report.metrics["tables_vacuumed"], 2.0);
    assert_eq!(report.metrics["tables_skipped"], 1.0);
    assert_eq!(item(&report, "table", "\"public\".\"a\"")["outcome"], "done");
    assert_eq!(item(&report, "table", "\"public\".\"b\"")["outcome"], "done");
    let skipped = item(&report, "table", "\"public\".\"locked\"");
    assert_eq!(skipped["outcome"], "skipped");
    assert_eq!(skipped["blockers"][0]["pid"], pid);
    assert_eq!(skipped["blockers"][0]["mode"], "AccessExclusiveLock");
    assert!(skipped["blockers"][0]["query"].as_str().unwrap().contains("LOCK TABLE locked"));
    let warning = format!("locked by pid {pid} (AccessExclusiveLock");
    assert!(report.warnings.iter().any(|w| w.contains(&warning)), "{:?}", report.warnings);
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn retention_on_a_locked_table_gives_up_after_retries_and_names_the_blocker() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute(
        "CREATE TABLE logs (id int, created_at timestamptz); \
         INSERT INTO logs SELECT i, now() - interval '40 days' FROM generate_series(1, 10) i",
    )
    .await
    .unwrap();
    let holder = session(&db).await;
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    holder.batch_execute("BEGIN; LOCK TABLE logs IN SHARE MODE").await.unwrap();
    let mut cfg = config(&db, Steps { analyze: false, vacuum: false, invalid_indexes: false, retention: true });
    cfg.retention.rules.truncate(1);
    let report = run(&cfg, false).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(report.status, Status::Warning, "{report:#?}");
    let w = &report.warnings[0];
    assert!(w.contains("lock not available after 2 attempts"), "{w}");
    assert!(w.contains(&format!("blocked by pid {pid} (ShareLock")), "{w}");
    assert_eq!(report.metrics["rows_deleted"], 0.0);
}

#[tokio::test]
async fn two_runs_at_once_one_reports_a_run_in_progress() {
    let db = fresh().await;
    let settings = Config::default().validate().unwrap();
    let handle = Db::connect(&Secret::new(db.url()), &settings).unwrap();
    let (first, second) = tokio::join!(handle.try_lock_run(), handle.try_lock_run());
    let (held, busy) = match (first.unwrap(), second.unwrap()) {
        (RunLockAttempt::Acquired(l), b @ RunLockAttempt::Busy { .. })
        | (b @ RunLockAttempt::Busy { .. }, RunLockAttempt::Acquired(l)) => (l, b),
        other => panic!("expected exactly one holder, got {other:?}"),
    };
    assert!(matches!(busy, RunLockAttempt::Busy { holder: Some(_) }), "{busy:?}");

    // A whole run started while the lock is held is skipped and says why.
    let report = run(&config(&db, Steps::default()), false).await;
    assert_eq!(report.status, Status::Skipped, "{report:#?}");
    assert!(report.warnings[0].starts_with("a run is in progress on this database"), "{:?}", report.warnings);
    assert!(report.metrics.is_empty());

    held.release().await;
    let report = run(&config(&db, Steps::default()), false).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
}

#[tokio::test]
async fn retention_deletes_exactly_the_old_rows_in_several_batches() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute(
        "CREATE TABLE logs (id serial, created_at timestamptz NOT NULL, msg text); \
         INSERT INTO logs (created_at, msg) SELECT now() - interval '40 days', 'old' FROM generate_series(1, 25); \
         INSERT INTO logs (created_at, msg) SELECT now() - interval '29 days', 'new' FROM generate_series(1, 10); \
         CREATE TABLE user_sessions (id serial, expires_at timestamp NOT NULL); \
         INSERT INTO user_sessions (expires_at) SELECT localtimestamp - interval '1 hour' FROM generate_series(1, 7); \
         INSERT INTO user_sessions (expires_at) SELECT localtimestamp + interval '1 hour' FROM generate_series(1, 5)",
    )
    .await
    .unwrap();
    let mut cfg = config(&db, Steps { analyze: false, vacuum: false, invalid_indexes: false, retention: true });
    cfg.retention.batch_size = 10;
    cfg.retention.pause = "1ms".into();

    let dry = run(&cfg, true).await;
    assert_eq!(dry.status, Status::Ok, "{dry:#?}");
    assert_eq!(item(&dry, "table", "\"public\".\"logs\"")["would_delete"], 25);
    assert_eq!(item(&dry, "table", "\"public\".\"user_sessions\"")["would_delete"], 7);

    let report = run(&cfg, false).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    assert_eq!(report.metrics["rows_deleted"], 32.0);
    let logs = item(&report, "table", "\"public\".\"logs\"");
    assert_eq!((logs["deleted"].as_u64(), logs["batches"].as_u64()), (Some(25), Some(3)));
    let left: Vec<String> = c.query("SELECT msg FROM logs", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(left, vec!["new".to_owned(); 10]);
    let expired: i64 = c
        .query_one("SELECT count(*) FILTER (WHERE expires_at < localtimestamp) FROM user_sessions", &[])
        .await
        .unwrap()
        .get(0);
    let total: i64 = c.query_one("SELECT count(*) FROM user_sessions", &[]).await.unwrap().get(0);
    assert_eq!((expired, total), (0, 5));
}

#[tokio::test]
async fn a_nonexistent_retention_table_is_a_clear_error_and_nothing_is_deleted() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute("CREATE TABLE logs (created_at timestamptz); INSERT INTO logs SELECT now() - interval '90 days'")
        .await
        .unwrap();
    // Default rules: logs exists, user_sessions does not.
    let report = run(&config(&db, Steps { retention: true, ..optimize_only() }), false).await;
    assert_eq!(report.status, Status::Failed);
    assert_eq!(
        report.error.as_deref(),
        Some("retention.rules[1].table: table \"public\".\"user_sessions\" does not exist")
    );
    let n: i64 = c.query_one("SELECT count(*) FROM logs", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "no rule may run before all are checked");
}

#[tokio::test]
async fn a_leftover_ccnew_index_is_dropped_and_other_invalid_indexes_reported() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1), (1), (2); CREATE INDEX t_v_idx ON t (v)")
        .await
        .unwrap();
    // A failed concurrent build leaves its index behind, invalid.
    for name in ["t_v_key_ccnew", "t v \"half\" built"] {
        let sql = format!("CREATE UNIQUE INDEX CONCURRENTLY {} ON t (v)", maint_db::quote_ident(name));
        let err = c.batch_execute(&sql).await.expect_err("duplicates make the build fail");
        assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    }
    let invalid = "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                   WHERE NOT i.indisvalid ORDER BY 1";
    let names = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<String>>();
    assert_eq!(names(c.query(invalid, &[]).await.unwrap()), ["t v \"half\" built", "t_v_key_ccnew"]);

    let cfg = config(&db, Steps { analyze: false, vacuum: false, invalid_indexes: true, retention: false });
    let dry = run(&cfg, true).await;
    assert_eq!(item(&dry, "index", "\"public\".\"t_v_key_ccnew\"")["action"], "would_drop");
    assert_eq!(names(c.query(invalid, &[]).await.unwrap()).len(), 2, "a dry run drops nothing");

    let report = run(&cfg, false).await;
    assert_eq!(report.status, Status::Warning, "{report:#?}");
    assert_eq!(report.metrics["invalid_indexes_dropped"], 1.0);
    assert_eq!(item(&report, "index", "\"public\".\"t_v_key_ccnew\"")["action"], "dropped");
    assert_eq!(item(&report, "index", "\"public\".\"t v \"\"half\"\" built\"")["action"], "report");
    assert!(report.warnings.iter().any(|w| w.contains("half") && w.contains("left alone")), "{:?}", report.warnings);
    assert_eq!(names(c.query(invalid, &[]).await.unwrap()), ["t v \"half\" built"]);
    let valid: i64 =
        c.query_one("SELECT count(*) FROM pg_indexes WHERE indexname = 't_v_idx'", &[]).await.unwrap().get(0);
    assert_eq!(valid, 1, "valid indexes are never touched");
}

#[tokio::test]
async fn bad_url_wrong_password_and_missing_database_are_clear_errors() {
    let db = fresh().await;
    match DatabaseOptimization::new(&Config {
        url: Some("postgresql://u:hunter2@h:port/db".into()),
        ..Config::default()
    }) {
        Err(e @ Error::Invalid { .. }) => {
            let msg = maint_core::one_line(&e);
            assert!(msg.starts_with("database_url: invalid connection string"), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
        other => panic!("expected an Invalid error, got {other:?}"),
    }
    match DatabaseOptimization::new(&Config::default()) {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "database_url"),
        other => panic!("expected an Invalid error, got {other:?}"),
    }

    let wrong = db.url().replace(&format!(":{}@", db.password), ":not-the-password@");
    let report = run(&Config { url: Some(Secret::new(wrong)), ..Config::default() }, false).await;
    assert_eq!(report.status, Status::Failed);
    let error = report.error.unwrap();
    assert!(
        error.starts_with(&format!("cannot connect to PostgreSQL at {}:{}/{}", db.host, db.port, db.name)),
        "{error}"
    );
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");

    // The pooled path says the same, without deadpool's wrapper text.
    let settings = Config::default().validate().unwrap();
    let wrong = db.url().replace(&format!(":{}@", db.password), ":not-the-password@");
    let err = Db::connect(&Secret::new(wrong), &settings).unwrap().ping().await.unwrap_err();
    let msg = maint_core::one_line(&err);
    assert!(
        msg.starts_with("cannot connect to PostgreSQL at ") && msg.contains("password authentication failed"),
        "{msg}"
    );
    assert!(!msg.contains("creating a new object") && !msg.contains("not-the-password"), "{msg}");

    let missing = db.url().replace(&format!("/{}", db.name), "/no_such_db");
    let report = run(&Config { url: Some(Secret::new(missing)), ..Config::default() }, false).await;
    assert!(report.error.unwrap().contains("database \"no_such_db\" does not exist"));
}

#[tokio::test]
async fn lock_retries_wait_with_backoff_and_give_up_with_the_blocker() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute("CREATE TABLE hot (id int)").await.unwrap();
    let oid: u32 = c.query_one("SELECT 'hot'::regclass::oid", &[]).await.unwrap().get(0);
    let holder = session(&db).await;
    holder.batch_execute("BEGIN; LOCK TABLE hot IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let cfg =
        Config { lock_timeout: "100ms".into(), lock_attempts: 3, retry_backoff: "5ms".into(), ..Config::default() };
    let handle = Db::connect(&Secret::new(db.url()), &cfg.validate().unwrap()).unwrap();
    let mut tries = 0;
    let err = handle
        .retry_locked("SELECT FROM hot", Some((oid, maint_db::LockMode::AccessShare)), || {
            tries += 1;
            let handle = handle.clone();
            async move {
                let client = handle.client().await?;
                client
                    .batch_execute("SELECT FROM hot")
                    .await
                    .map_err(|source| Error::Query { operation: "select".into(), source })
            }
        })
        .await
        .unwrap_err();
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(tries, 3);
    match err {
        Error::LockTimeout { attempts, blockers, .. } => {
            assert_eq!(attempts, 3);
            assert_eq!(blockers.len(), 1);
            assert_eq!(blockers[0].mode, "AccessExclusiveLock");
        }
        other => panic!("expected a lock timeout, got {other:?}"),
    }
}
