//! maint-db against a real PostgreSQL 15 (maint-testkit).

use maint_core::{Secret, Status, Task, TaskContext, TaskReport};
use maint_db::deadpool_postgres::tokio_postgres::{self, NoTls};
use maint_db::{
    CapacityPlanning, Config, DatabaseOptimization, Db, Error, IndexIntegrity, IndexRebuild, PerformanceAnalysis,
    PgSecurityAudit, RetentionRuleConfig, RunLockAttempt, Severity, Steps,
};
use maint_testkit::{Postgres, TestDb};

#[path = "postgres/tls.rs"]
mod tls;

#[path = "postgres/vector.rs"]
mod vector;

async fn fresh() -> TestDb {
    Postgres::shared().await.fresh_database().await
}

/// A plain session outside any pool, for setup and for holding locks.
async fn session(db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.plain_url(), NoTls).await.expect("connect");
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
    // logs: few rows expire and an index finds them (batches of LIMIT n rows by ctid);
    // user_sessions: most rows expire (the table is walked in page ranges).
    c.batch_execute(
        "CREATE TABLE logs (id serial, created_at timestamptz NOT NULL, msg text); \
         INSERT INTO logs (created_at, msg) SELECT now() - interval '40 days', 'old' FROM generate_series(1, 25); \
         INSERT INTO logs (created_at, msg) SELECT now() - interval '29 days', 'new' FROM generate_series(1, 5000); \
         CREATE INDEX logs_created_at_idx ON logs (created_at); ANALYZE logs; \
         CREATE TABLE user_sessions (id serial, expires_at timestamp NOT NULL); \
         INSERT INTO user_sessions (expires_at) SELECT localtimestamp - interval '1 hour' FROM generate_series(1, 3000); \
         INSERT INTO user_sessions (expires_at) SELECT localtimestamp + interval '1 hour' FROM generate_series(1, 500); \
         ANALYZE user_sessions",
    )
    .await
    .unwrap();
    let mut cfg = config(&db, Steps { analyze: false, vacuum: false, invalid_indexes: false, retention: true });
    cfg.retention.batch_size = 10;
    cfg.retention.pause = "1ms".into();

    let dry = run(&cfg, true).await;
    assert_eq!(dry.status, Status::Ok, "{dry:#?}");
    assert_eq!(item(&dry, "table", "\"public\".\"logs\"")["would_delete"], 25);
    assert_eq!(item(&dry, "table", "\"public\".\"user_sessions\"")["would_delete"], 3000);

    cfg.retention.batch_size = 500;
    let report = run(&cfg, false).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    assert_eq!(report.metrics["rows_deleted"], 3025.0);
    let logs = item(&report, "table", "\"public\".\"logs\"");
    assert_eq!(logs["scan"]["scan"], "rows", "{logs}");
    assert_eq!((logs["deleted"].as_u64(), logs["batches"].as_u64()), (Some(25), Some(1)));
    let sessions = item(&report, "table", "\"public\".\"user_sessions\"");
    assert_eq!(sessions["scan"]["scan"], "pages", "{sessions}");
    assert!(sessions["batches"].as_u64().unwrap() >= 4, "several statements of about 500 rows: {sessions}");
    assert_eq!(sessions["deleted"].as_u64(), Some(3000));
    let left: i64 = c.query_one("SELECT count(*) FROM logs WHERE msg = 'old'", &[]).await.unwrap().get(0);
    let kept: i64 = c.query_one("SELECT count(*) FROM logs WHERE msg = 'new'", &[]).await.unwrap().get(0);
    assert_eq!((left, kept), (0, 5000));
    let expired: i64 = c
        .query_one("SELECT count(*) FILTER (WHERE expires_at < localtimestamp) FROM user_sessions", &[])
        .await
        .unwrap()
        .get(0);
    let total: i64 = c.query_one("SELECT count(*) FROM user_sessions", &[]).await.unwrap().get(0);
    assert_eq!((expired, total), (0, 500));

    // Batches of LIMIT n rows: several statements for the 25 old logs.
    c.batch_execute(
        "INSERT INTO logs (created_at, msg) SELECT now() - interval '40 days', 'old' FROM generate_series(1, 25); ANALYZE logs",
    )
    .await
    .unwrap();
    cfg.retention.batch_size = 10;
    let report = run(&cfg, false).await;
    let logs = item(&report, "table", "\"public\".\"logs\"");
    assert_eq!((logs["deleted"].as_u64(), logs["batches"].as_u64()), (Some(25), Some(3)), "{logs}");
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

/// A retention-only configuration with these `(table, column, older_than)` rules.
fn retention_rules(db: &TestDb, rules: &[(&str, &str, &str)]) -> Config {
    let mut cfg = config(db, Steps { analyze: false, vacuum: false, invalid_indexes: false, retention: true });
    cfg.retention.pause = "1ms".into();
    cfg.retention.rules = rules
        .iter()
        .map(|(table, column, older_than)| RetentionRuleConfig {
            table: (*table).into(),
            column: (*column).into(),
            older_than: (*older_than).into(),
            ..RetentionRuleConfig::default()
        })
        .collect();
    cfg
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

#[tokio::test]
async fn retention_on_an_inheritance_parent_deletes_only_the_expired_rows_of_each_table() {
    let db = fresh().await;
    let c = session(&db).await;
    // logs and its child: both indexed, few rows expire (batches of ctids). The parent's
    // expired rows come first, so they share their ctids with the child's recent rows.
    // events and its child: no index (page ranges); the child is far bigger than the parent.
    c.batch_execute(
        "CREATE TABLE logs (id int, created_at timestamptz NOT NULL, msg text); \
         CREATE TABLE logs_child () INHERITS (logs); \
         INSERT INTO logs SELECT i, now() - interval '40 days', 'old' FROM generate_series(1, 25) i; \
         INSERT INTO logs SELECT i, now() - interval '1 day', 'new' FROM generate_series(1, 5000) i; \
         INSERT INTO logs_child SELECT i, now() - interval '1 day', 'new' FROM generate_series(1, 5000) i; \
         INSERT INTO logs_child SELECT i, now() - interval '40 days', 'old' FROM generate_series(1, 10) i; \
         CREATE INDEX ON logs (created_at); CREATE INDEX ON logs_child (created_at); ANALYZE logs, logs_child; \
         CREATE TABLE events (id int, at timestamptz NOT NULL); \
         CREATE TABLE events_child () INHERITS (events); \
         INSERT INTO events SELECT i, now() FROM generate_series(1, 10) i; \
         INSERT INTO events_child SELECT i, now() - interval '40 days' FROM generate_series(1, 3000) i; \
         INSERT INTO events_child SELECT i, now() FROM generate_series(1, 500) i; \
         ANALYZE events, events_child",
    )
    .await
    .unwrap();
    let mut cfg = retention_rules(&db, &[("logs", "created_at", "30d"), ("events", "at", "30d")]);
    cfg.retention.batch_size = 100;
    let report = run(&cfg, false).await;
    let kept = |t: &str| format!("SELECT count(*) FROM ONLY {t} WHERE created_at >= now() - interval '30 days'");
    let old = |t: &str| format!("SELECT count(*) FROM ONLY {t} WHERE created_at < now() - interval '30 days'");
    assert_eq!((count(&c, &old("logs")).await, count(&c, &kept("logs")).await), (0, 5000));
    assert_eq!((count(&c, &old("logs_child")).await, count(&c, &kept("logs_child")).await), (0, 5000));
    let events =
        |t: &str| format!("SELECT count(*) FILTER (WHERE at < now() - interval '30 days'), count(*) FROM ONLY {t}");
    let pair = |sql: String| {
        let c = &c;
        async move {
            let r = c.query_one(&sql, &[]).await.unwrap();
            (r.get::<_, i64>(0), r.get::<_, i64>(1))
        }
    };
    assert_eq!(pair(events("events")).await, (0, 10));
    assert_eq!(pair(events("events_child")).await, (0, 500));
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    assert_eq!(report.metrics["rows_deleted"], 3035.0, "{report:#?}");
    let logs = item(&report, "table", "\"public\".\"logs\"");
    assert_eq!((logs["scan"]["scan"].as_str(), logs["deleted"].as_u64()), (Some("rows"), Some(25)), "{logs}");
    let child = item(&report, "table", "\"public\".\"events_child\"");
    assert_eq!((child["scan"]["scan"].as_str(), child["deleted"].as_u64()), (Some("pages"), Some(3000)), "{child}");
}

#[tokio::test]
async fn a_rule_on_a_partitioned_table_runs_on_each_partition() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute(
        "CREATE TABLE metrics (id int, at timestamptz NOT NULL) PARTITION BY RANGE (id); \
         CREATE TABLE metrics_a PARTITION OF metrics FOR VALUES FROM (0) TO (1000); \
         CREATE TABLE metrics_b PARTITION OF metrics FOR VALUES FROM (1000) TO (2000) PARTITION BY RANGE (id); \
         CREATE TABLE metrics_b1 PARTITION OF metrics_b FOR VALUES FROM (1000) TO (2000); \
         INSERT INTO metrics SELECT i, now() - interval '40 days' FROM generate_series(0, 99) i; \
         INSERT INTO metrics SELECT i, now() FROM generate_series(100, 199) i; \
         INSERT INTO metrics SELECT i, now() FROM generate_series(1000, 1099) i; \
         INSERT INTO metrics SELECT i, now() - interval '40 days' FROM generate_series(1100, 1149) i; \
         ANALYZE metrics",
    )
    .await
    .unwrap();
    let cfg = retention_rules(&db, &[("metrics", "at", "30d")]);
    let dry = run(&cfg, true).await;
    assert_eq!(dry.status, Status::Ok, "{dry:#?}");
    assert_eq!(item(&dry, "table", "\"public\".\"metrics_a\"")["would_delete"], 100);
    assert_eq!(item(&dry, "table", "\"public\".\"metrics_b1\"")["would_delete"], 50);
    let report = run(&cfg, false).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    assert_eq!(report.metrics["rows_deleted"], 150.0);
    assert_eq!(item(&report, "table", "\"public\".\"metrics_a\"")["deleted"], 100);
    assert_eq!(item(&report, "table", "\"public\".\"metrics_b1\"")["deleted"], 50);
    let left = count(&c, "SELECT count(*) FROM metrics WHERE at < now() - interval '30 days'").await;
    assert_eq!((left, count(&c, "SELECT count(*) FROM metrics").await), (0, 200));
}

#[tokio::test]
async fn a_session_extended_while_the_delete_waits_for_its_row_lock_survives() {
    let db = fresh().await;
    let c = session(&db).await;
    // Few rows expire and an index finds them: batches of ctids.
    c.batch_execute(
        "CREATE TABLE user_sessions (id int PRIMARY KEY, expires_at timestamptz NOT NULL); \
         INSERT INTO user_sessions SELECT i, now() - interval '1 hour' FROM generate_series(1, 5) i; \
         INSERT INTO user_sessions SELECT i, now() + interval '1 day' FROM generate_series(6, 5000) i; \
         CREATE INDEX ON user_sessions (expires_at); ANALYZE user_sessions",
    )
    .await
    .unwrap();
    // The application extends session 1 and has not committed yet.
    let app = session(&db).await;
    app.batch_execute("BEGIN; UPDATE user_sessions SET expires_at = now() + interval '1 day' WHERE id = 1")
        .await
        .unwrap();
    let mut cfg = retention_rules(&db, &[("user_sessions", "expires_at", "0s")]);
    cfg.lock_timeout = "30s".into();
    let retention = tokio::spawn(async move { run(&cfg, false).await });
    // The DELETE waits for the row lock; then the extension commits.
    let mut waited = false;
    for _ in 0..200 {
        waited = count(
            &c,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'maint-db' \
             AND wait_event_type = 'Lock' AND query LIKE 'DELETE%'",
        )
        .await
            > 0;
        if waited {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(waited, "the retention DELETE never waited for the row lock");
    app.batch_execute("COMMIT").await.unwrap();
    let report = retention.await.unwrap();
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    let sessions = item(&report, "table", "\"public\".\"user_sessions\"");
    assert_eq!(sessions["scan"]["scan"], "rows", "{sessions}");
    assert_eq!(count(&c, "SELECT count(*) FROM user_sessions WHERE id = 1").await, 1, "the extended session is gone");
    assert_eq!(count(&c, "SELECT count(*) FROM user_sessions WHERE expires_at < now()").await, 0);
    assert_eq!(count(&c, "SELECT count(*) FROM user_sessions").await, 4996);
    assert_eq!(sessions["deleted"], 4);
}

#[tokio::test]
async fn a_session_time_zone_other_than_utc_does_not_change_which_rows_go() {
    let db = fresh().await;
    let c = session(&db).await;
    // The application stores UTC in `timestamp` columns; the server's sessions run in Tokyo
    // (UTC+9) and New York (UTC-5 or -4): an hour either side of now must decide alone.
    c.batch_execute(
        "CREATE TABLE user_sessions (id int, expires_at timestamp NOT NULL); \
         INSERT INTO user_sessions SELECT i, (now() AT TIME ZONE 'UTC') - interval '1 hour' FROM generate_series(1, 10) i; \
         INSERT INTO user_sessions SELECT i, (now() AT TIME ZONE 'UTC') + interval '1 hour' FROM generate_series(11, 30) i; \
         CREATE TABLE logs (id int, created_at timestamp NOT NULL); \
         INSERT INTO logs SELECT i, (now() AT TIME ZONE 'UTC') - interval '30 days 1 hour' FROM generate_series(1, 10) i; \
         INSERT INTO logs SELECT i, (now() AT TIME ZONE 'UTC') - interval '29 days 23 hours' FROM generate_series(11, 30) i; \
         CREATE TABLE paris_sessions (id int, expires_at timestamp NOT NULL); \
         INSERT INTO paris_sessions SELECT i, (now() AT TIME ZONE 'Europe/Paris') - interval '1 hour' FROM generate_series(1, 10) i; \
         INSERT INTO paris_sessions SELECT i, (now() AT TIME ZONE 'Europe/Paris') + interval '1 hour' FROM generate_series(11, 30) i",
    )
    .await
    .unwrap();
    // A table written in Paris time says so in its rule.
    let mut cfg = retention_rules(
        &db,
        &[("user_sessions", "expires_at", "0s"), ("logs", "created_at", "30d"), ("paris_sessions", "expires_at", "0s")],
    );
    cfg.retention.rules[2].timezone = "Europe/Paris".into();
    for zone in ["Asia/Tokyo", "America/New_York"] {
        c.batch_execute(&format!(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET timezone = %L', current_database(), '{zone}'); END $$"
        ))
        .await
        .unwrap();
        let dry = run(&cfg, true).await;
        assert_eq!(dry.status, Status::Ok, "{dry:#?}");
        assert_eq!(item(&dry, "table", "\"public\".\"user_sessions\"")["would_delete"], 10, "{zone}: {dry:#?}");
        assert_eq!(item(&dry, "table", "\"public\".\"logs\"")["would_delete"], 10, "{zone}: {dry:#?}");
        assert_eq!(item(&dry, "table", "\"public\".\"paris_sessions\"")["would_delete"], 10, "{zone}: {dry:#?}");
    }
    let report = run(&cfg, false).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    assert_eq!(report.metrics["rows_deleted"], 30.0, "{report:#?}");
    for table in ["user_sessions", "logs", "paris_sessions"] {
        let left = format!("SELECT count(*) FILTER (WHERE id > 10), count(*) FROM {table}");
        let row = c.query_one(&left, &[]).await.unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (20, 20), "{table}");
    }
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

fn items<'a>(report: &'a TaskReport, step: &str) -> Vec<&'a serde_json::Value> {
    report.items.iter().filter(|i| i["step"] == step).collect()
}

/// A table whose indexes are left with sparse leaves: 20,000 rows, 90% deleted, vacuumed.
async fn churned(c: &tokio_postgres::Client) {
    c.batch_execute(
        "CREATE TABLE churn (id int PRIMARY KEY, v text NOT NULL); \
         INSERT INTO churn SELECT i, md5(i::text) FROM generate_series(1, 20000) i; \
         CREATE INDEX churn_v_idx ON churn (v); \
         CREATE INDEX \"ix; DROP TABLE churn\" ON churn (id, v); \
         DELETE FROM churn WHERE id % 10 <> 0",
    )
    .await
    .unwrap();
    c.batch_execute("VACUUM ANALYZE churn").await.unwrap();
}

async fn index_state(c: &tokio_postgres::Client, name: &str) -> Option<(bool, i64)> {
    c.query_opt(
        "SELECT i.indisvalid, pg_relation_size(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE c.relname = $1",
        &[&name],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1)))
}

#[tokio::test]
async fn bloated_indexes_are_estimated_measured_and_rebuilt_concurrently() {
    let db = fresh().await;
    let c = session(&db).await;
    churned(&c).await;
    c.batch_execute(
        "CREATE TABLE small (v int); INSERT INTO small VALUES (1), (1); CREATE INDEX small_v_idx ON small (v)",
    )
    .await
    .unwrap();
    for name in ["churn_v_idx_ccnew", "half built"] {
        let sql = format!("CREATE UNIQUE INDEX CONCURRENTLY {} ON small (v)", maint_db::quote_ident(name));
        c.batch_execute(&sql).await.expect_err("duplicates make the build fail");
    }
    let (_, churn_before) = index_state(&c, "churn_v_idx").await.unwrap();
    let mut cfg = config(&db, Steps::default());
    cfg.bloat.create_extension = true;
    cfg.reindex.min_bloat_bytes = 64 << 10;

    // A dry run creates nothing, measures nothing and plans from the estimates.
    let dry = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    assert_eq!(dry.status, Status::Warning, "{dry:#?}"); // "half built" is reported
    assert!(dry.items.iter().any(|i| i["pgstattuple"] == false), "{dry:#?}");
    let ext: i64 =
        c.query_one("SELECT count(*) FROM pg_extension WHERE extname = 'pgstattuple'", &[]).await.unwrap().get(0);
    assert_eq!(ext, 0, "a dry run does not create the extension");
    let planned = item(&dry, "index", "\"public\".\"churn_v_idx\"");
    assert_eq!((planned["outcome"].as_str(), planned["basis"].as_str()), (Some("would_rebuild"), Some("estimated")));
    assert!(planned["bloat_bytes"].as_i64().unwrap() > 64 << 10, "{planned}");

    let report = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Warning, "{report:#?}");
    // Estimated and measured, side by side.
    let bloat = items(&report, "bloat");
    let v = bloat.iter().find(|i| i["relation"] == "\"public\".\"churn_v_idx\"").expect("churn_v_idx is a candidate");
    assert!(v["bloat_bytes_estimate"].as_i64().unwrap() > 0, "{v}");
    assert!(v["bloat_bytes_measured"].as_i64().unwrap() > 64 << 10, "{v}");
    assert!(v["leaf_density"].as_f64().unwrap() < 70.0, "{v}");
    let table = bloat.iter().find(|i| i["relation"] == "\"public\".\"churn\"").expect("the table is a candidate");
    assert_eq!(table["kind"], "table");
    assert!(table["bloat_bytes_measured"].as_i64().unwrap() > 0, "{table}");
    // Rebuilt, hostile name included; the leftover dropped, the other invalid index reported.
    for name in ["\"public\".\"churn_v_idx\"", "\"public\".\"ix; DROP TABLE churn\"", "\"public\".\"churn_pkey\""] {
        let done = report.items.iter().find(|i| i["step"] == "reindex" && i["index"] == name).expect(name);
        assert_eq!((done["outcome"].as_str(), done["basis"].as_str()), (Some("done"), Some("measured")), "{done}");
        assert!(done["bytes_after"].as_i64().unwrap() < done["bytes_before"].as_i64().unwrap(), "{done}");
    }
    assert_eq!(report.metrics["indexes_rebuilt"], 3.0);
    assert_eq!(report.metrics["invalid_indexes_dropped"], 1.0);
    assert!(report.items.iter().all(|i| i["index"] != "\"public\".\"small_v_idx\""), "clean indexes stay");
    assert!(
        report.warnings.iter().any(|w| w.contains("half built") && w.contains("left alone")),
        "{:?}",
        report.warnings
    );
    let (valid, after) = index_state(&c, "churn_v_idx").await.unwrap();
    assert!(valid && after < churn_before, "{after} vs {churn_before}");
    assert_eq!(index_state(&c, "ix; DROP TABLE churn").await.map(|s| s.0), Some(true));
    assert_eq!(index_state(&c, "churn_v_idx_ccnew").await, None);
    assert_eq!(index_state(&c, "half built").await.map(|s| s.0), Some(false), "never touched");
    let n: i64 = c.query_one("SELECT count(*) FROM churn", &[]).await.unwrap().get(0);
    assert_eq!(n, 2000);

    // Dense now: nothing left to rebuild.
    let again = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(again.metrics["indexes_rebuilt"], 0.0, "{again:#?}");
}

#[tokio::test]
async fn a_rebuild_blocked_by_a_lock_is_skipped_with_its_blocker_and_leaves_no_leftover() {
    let db = fresh().await;
    let c = session(&db).await;
    churned(&c).await;
    let holder = session(&db).await;
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    holder.batch_execute("BEGIN; LOCK TABLE churn IN SHARE MODE").await.unwrap();
    let mut cfg = config(&db, Steps::default());
    cfg.reindex.min_bloat_bytes = 64 << 10;
    let report = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(report.status, Status::Warning, "{report:#?}");
    assert_eq!(report.metrics["indexes_rebuilt"], 0.0);
    let skipped = items(&report, "reindex");
    assert!(!skipped.is_empty());
    for s in skipped {
        assert_eq!(s["outcome"], "skipped", "{s}");
        assert_eq!(s["blockers"][0]["pid"], pid, "{s}");
    }
    let invalid: i64 = c.query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[]).await.unwrap().get(0);
    assert_eq!(invalid, 0, "no _ccnew index is left behind");
}

#[tokio::test]
async fn the_performance_analysis_finds_sessions_locks_and_index_problems() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT i, i FROM generate_series(1, 1000) i; \
         CREATE INDEX t_v_idx ON t (v); CREATE INDEX t_v_copy ON t (v); \
         CREATE TABLE big (id int); INSERT INTO big SELECT generate_series(1, 5000); ANALYZE",
    )
    .await
    .unwrap();
    c.batch_execute("CREATE UNIQUE INDEX CONCURRENTLY broken ON big ((id % 2))").await.expect_err("duplicates");
    for _ in 0..3 {
        c.query_one("SELECT count(*) FROM big", &[]).await.unwrap();
    }
    c.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    c.batch_execute("SELECT 1").await.unwrap();

    // A session idle in a transaction that holds a lock, and one waiting for it.
    let holder = session(&db).await;
    let holder_pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    holder.batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let waiter = session(&db).await;
    let waiter_pid: i32 = waiter.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let waiting = tokio::spawn(async move { waiter.query_one("SELECT count(*) FROM t", &[]).await.map(|_| ()) });
    loop {
        let row = c
            .query_one(
                "SELECT wait_event_type IS NOT DISTINCT FROM 'Lock' FROM pg_stat_activity WHERE pid = $1",
                &[&waiter_pid],
            )
            .await
            .unwrap();
        if row.get::<_, bool>(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await; // past idle_in_transaction = 1ms

    let mut cfg = config(&db, Steps::default());
    cfg.analysis.idle_in_transaction = "1ms".into();
    cfg.analysis.seq_scan_min_rows = 1000;
    let task = PerformanceAnalysis::new(&cfg).unwrap();
    let findings = task.findings().await.unwrap();
    let report = task.run(&TaskContext::new(false)).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    waiting.await.unwrap().unwrap();

    let has = |check: &str, subject: &str| findings.iter().find(|f| f.check == check && f.subject.contains(subject));
    let idle = has("idle_in_transaction", &format!("pid {holder_pid} ")).expect("the holder is idle in transaction");
    assert!(idle.severity >= Severity::Medium && idle.message.contains("LOCK TABLE t"), "{idle:?}");
    let blocked = has("blocked_lock", &format!("pid {waiter_pid} ")).expect("the waiter is blocked");
    assert!(blocked.message.contains(&format!("held by pid {holder_pid}")), "{blocked:?}");
    let dup = has("duplicate_index", "t_v_").expect("a duplicate index");
    assert!(dup.message.contains("same definition as"), "{dup:?}");
    assert!(
        has("unused_index", "\"t_v_idx\"").is_some() && has("unused_index", "\"t_pkey\"").is_none(),
        "{findings:#?}"
    );
    assert!(has("invalid_index", "\"broken\"").is_some(), "{findings:#?}");
    assert!(has("seq_scan_heavy", "\"big\"").is_some(), "{findings:#?}");
    assert!(findings.iter().all(|f| !f.action.is_empty()));

    assert_eq!(report.status, Status::Warning, "{report:#?}");
    assert!(report.metrics["findings_medium"] + report.metrics["findings_critical"] >= 4.0, "{:?}", report.metrics);
    let ratio = report.metrics["cache_hit_ratio"];
    assert!((0.0..=1.0).contains(&ratio) && report.metrics["max_xid_age"] > 0.0, "{:?}", report.metrics);
    assert!(items(&report, "finding").iter().any(|i| i["check"] == "duplicate_index"));
}

#[tokio::test]
async fn the_security_audit_names_roles_public_create_and_server_settings() {
    let db = fresh().await;
    let c = session(&db).await;
    let (plain, super_) =
        (format!("audit plain {}", std::process::id()), format!("audit super {}", std::process::id()));
    for (role, extra) in [(&plain, ""), (&super_, " SUPERUSER")] {
        c.batch_execute(&format!("DROP ROLE IF EXISTS {0}; CREATE ROLE {0} LOGIN{extra}", maint_db::quote_ident(role)))
            .await
            .unwrap();
    }
    c.batch_execute("GRANT CREATE ON SCHEMA public TO PUBLIC").await.unwrap();
    let mut cfg = config(&db, Steps::default());
    cfg.audit.require_password_expiry = true;
    let settings = cfg.validate().unwrap();
    let handle = Db::connect(&Secret::new(db.url()), &settings).unwrap();
    let findings = maint_db::pg_security_audit(&handle, &settings.audit).await.unwrap();
    let report = PgSecurityAudit::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    for role in [&plain, &super_] {
        c.batch_execute(&format!("DROP ROLE {}", maint_db::quote_ident(role))).await.unwrap();
    }

    let has = |check: &str, subject: &str| findings.iter().find(|f| f.check == check && f.subject == subject);
    let q = |r: &str| format!("role {}", maint_db::quote_ident(r));
    assert_eq!(has("superuser_login", &q(&super_)).map(|f| f.severity), Some(Severity::Medium), "{findings:#?}");
    assert_eq!(has("superuser_login", &q("postgres")).map(|f| f.severity), Some(Severity::Info), "{findings:#?}");
    assert!(has("superuser_login", &q(&plain)).is_none());
    assert!(has("password_expiry", &q(&plain)).is_some(), "{findings:#?}");
    assert!(has("public_schema_create", "schema \"public\"").is_some(), "{findings:#?}");
    // The server's own settings, as the server reports them.
    let row = c
        .query_one(
            "SELECT current_setting('ssl') = 'on', current_setting('password_encryption'), \
               (SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust' AND error IS NULL)",
            &[],
        )
        .await
        .unwrap();
    let (ssl, enc, trust): (bool, String, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(has("ssl_off", "ssl").is_some(), !ssl);
    assert_eq!(has("password_encryption", "password_encryption").is_some(), enc != "scram-sha-256");
    assert_eq!(findings.iter().filter(|f| f.check == "hba_trust").count() as i64, trust, "{findings:#?}");
    assert_eq!(report.status, Status::Warning, "{report:#?}");
    assert!(items(&report, "finding").iter().any(|i| i["check"] == "public_schema_create"));
}

#[tokio::test]
async fn capacity_snapshots_are_recorded_in_the_tools_schema_and_projected_to_the_budget() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 5000) i; \
         ANALYZE t",
    )
    .await
    .unwrap();
    let mut cfg = config(&db, Steps::default());
    cfg.capacity.schema = "maint \"ops\"".into();
    let report = CapacityPlanning::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    let snapshots = "\"maint \"\"ops\"\"\".size_snapshots";
    let rows = c.query(&format!("SELECT kind, name, bytes FROM {snapshots} ORDER BY kind, name"), &[]).await.unwrap();
    let kinds: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(kinds.contains(&("database".into(), db.name.clone())), "{kinds:?}");
    assert!(kinds.contains(&("table".into(), "\"public\".\"t\"".into())), "{kinds:?}");
    assert!(kinds.contains(&("index".into(), "\"public\".\"t_pkey\"".into())), "{kinds:?}");
    let t = item(&report, "name", "\"public\".\"t\"");
    assert!(t["bytes"].as_i64().unwrap() > 100_000 && t["growth_bytes_per_day"].is_null(), "{t}");

    // Two older snapshots: the database grew 1 MiB a day.
    let now: i64 =
        c.query_one(&format!("SELECT bytes FROM {snapshots} WHERE kind = 'database'"), &[]).await.unwrap().get(0);
    c.execute(
        &format!(
            "INSERT INTO {snapshots} (taken_at, kind, name, bytes) VALUES \
             (now() - interval '20 days', 'database', $1, $2::bigint - 20 * 1048576), \
             (now() - interval '10 days', 'database', $1, $2::bigint - 10 * 1048576)"
        ),
        &[&db.name, &now],
    )
    .await
    .unwrap();
    cfg.capacity.disk_budget = Some((now + 100 * 1_048_576).to_string());
    let report = CapacityPlanning::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    let growth = report.metrics["db_growth_bytes_per_day"];
    assert!((0.8 * 1_048_576.0..1.2 * 1_048_576.0).contains(&growth), "{growth}");
    let days = report.metrics["days_until_budget"];
    assert!((80.0..120.0).contains(&days), "{days}");
    let db_item = item(&report, "kind", "database");
    assert_eq!(db_item["samples"], 4);

    // Close to the budget: a warning. A dry run records nothing.
    let count_sql = format!("SELECT count(*) FROM {snapshots}");
    let before: i64 = c.query_one(&count_sql, &[]).await.unwrap().get(0);
    cfg.capacity.disk_budget = Some((now + 10 * 1_048_576).to_string());
    let dry = CapacityPlanning::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    assert_eq!(dry.status, Status::Warning, "{dry:#?}");
    assert!(dry.warnings[0].contains("reaches its disk budget"), "{:?}", dry.warnings);
    let after: i64 = c.query_one(&count_sql, &[]).await.unwrap().get(0);
    assert_eq!(after, before);
}

#[tokio::test]
async fn sizes_after_a_bulk_load_without_analyze_are_the_real_ones() {
    let db = fresh().await;
    let c = session(&db).await;
    // The index exists before the load (CREATE INDEX would update relpages), and nothing
    // analyzes or vacuums the table: relpages stays 0, reltuples -1.
    c.batch_execute(
        "CREATE TABLE loaded (id int, v text) WITH (autovacuum_enabled = off); \
         CREATE INDEX loaded_id_idx ON loaded (id); \
         INSERT INTO loaded SELECT i, md5(i::text) FROM generate_series(1, 20000) i",
    )
    .await
    .unwrap();
    let cfg = config(&db, Steps::default());
    let report = CapacityPlanning::new(&cfg).unwrap().run(&TaskContext::new(true)).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    let row = c
        .query_one("SELECT pg_table_size('loaded'), pg_relation_size('loaded_id_idx'), pg_indexes_size('loaded')", &[])
        .await
        .unwrap();
    let (table, index, indexes): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(table > 1_000_000 && index > 300_000 && index == indexes, "{table} {index}");
    let t = item(&report, "name", "\"public\".\"loaded\"");
    assert_eq!(t["bytes"].as_i64(), Some(table), "{t}");
    let i = item(&report, "name", "\"public\".\"loaded_id_idx\"");
    assert_eq!(i["bytes"].as_i64(), Some(index), "{i}");

    // The performance report names the unused index with its real size.
    let findings = PerformanceAnalysis::new(&cfg).unwrap().findings().await.unwrap();
    let unused = findings
        .iter()
        .find(|f| f.check == "unused_index" && f.subject.contains("loaded_id_idx"))
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(unused.message.contains(&format!("{:.1} MiB", index as f64 / 1_048_576.0)), "{unused:?}");
}

#[tokio::test]
async fn a_rebuild_that_times_out_waiting_for_an_old_snapshot_leaves_no_ccnew_behind() {
    let db = fresh().await;
    let c = session(&db).await;
    churned(&c).await;
    c.batch_execute("CREATE TABLE other (id int); INSERT INTO other VALUES (1)").await.unwrap();
    // A repeatable-read transaction holds a snapshot (and no lock on "churn"): the last
    // phase of REINDEX CONCURRENTLY waits for it, times out, and leaves an invalid _ccnew.
    let holder = session(&db).await;
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    holder.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM other").await.unwrap();
    let mut cfg = config(&db, Steps::default());
    cfg.reindex.min_bloat_bytes = 64 << 10;
    let report = IndexRebuild::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    let during: i64 = c.query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[]).await.unwrap().get(0);
    holder.batch_execute("ROLLBACK").await.unwrap();

    assert_eq!(report.status, Status::Warning, "{report:#?}");
    assert_eq!(report.metrics["indexes_rebuilt"], 0.0);
    let v = item(&report, "index", "\"public\".\"churn_v_idx\"");
    assert_eq!(v["outcome"], "skipped", "{v}");
    assert_eq!(
        (v["blockers"][0]["pid"].as_i64(), v["blockers"][0]["mode"].as_str()),
        (Some(pid.into()), Some("snapshot"))
    );
    // Each attempt left a _ccnew index; the cleanup after the rebuilds dropped them all.
    let dropped: Vec<&str> = report
        .items
        .iter()
        .filter(|i| i["step"] == "invalid_index" && i["action"] == "dropped")
        .map(|i| i["index"].as_str().unwrap())
        .collect();
    assert!(dropped.contains(&"\"public\".\"churn_v_idx_ccnew\""), "{dropped:?}");
    assert_eq!(report.metrics["invalid_indexes_dropped"], dropped.len() as f64);
    assert_eq!(during, 0, "no invalid index is left behind");
    assert_eq!(index_state(&c, "churn_v_idx").await.map(|s| s.0), Some(true));
}

/// A btree index whose operator class changes its order after the build (how PostgreSQL's
/// own amcheck tests make a corrupt index): `fickle_idx` on `fickle`.
async fn fickle_index(c: &tokio_postgres::Client) {
    let cmp = |sign: &str| {
        format!(
            "CREATE OR REPLACE FUNCTION int4_fickle_cmp(a int4, b int4) RETURNS int LANGUAGE sql IMMUTABLE AS \
             $$ SELECT CASE WHEN a = b THEN 0 WHEN a > b THEN {sign}1 ELSE -({sign}1) END $$"
        )
    };
    c.batch_execute(&cmp("")).await.unwrap();
    c.batch_execute(
        "CREATE OPERATOR CLASS int4_fickle_ops FOR TYPE int4 USING btree AS \
           OPERATOR 1 < (int4, int4), OPERATOR 2 <= (int4, int4), OPERATOR 3 = (int4, int4), \
           OPERATOR 4 >= (int4, int4), OPERATOR 5 > (int4, int4), FUNCTION 1 int4_fickle_cmp(int4, int4); \
         CREATE TABLE fickle (i int4); INSERT INTO fickle SELECT generate_series(1, 1000); \
         CREATE INDEX fickle_idx ON fickle (i int4_fickle_ops)",
    )
    .await
    .unwrap();
    c.batch_execute(&cmp("-")).await.unwrap();
}

#[tokio::test]
async fn amcheck_finds_the_corrupt_index_and_passes_the_sound_ones() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute(
        "CREATE TABLE fine (id int PRIMARY KEY, v text); INSERT INTO fine SELECT i, md5(i::text) FROM generate_series(1, 5000) i; \
         CREATE INDEX \"ix; DROP TABLE fine\" ON fine (v)",
    )
    .await
    .unwrap();
    fickle_index(&c).await;
    let mut cfg = config(&db, Steps::default());

    // Missing extension, not allowed to create it: nothing checked, and the report says why.
    let report = IndexIntegrity::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Warning, "{report:#?}");
    assert!(report.warnings[0].contains("amcheck is not installed"), "{:?}", report.warnings);
    assert_eq!(report.metrics["indexes_checked"], 0.0);

    // Created when configured; every btree index checked (the catalogs' too), one corrupt.
    cfg.amcheck.create_extension = true;
    let report = IndexIntegrity::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Failed, "{report:#?}");
    assert_eq!(report.error.as_deref(), Some("1 corrupt index(es): \"public\".\"fickle_idx\""));
    assert_eq!(report.metrics["indexes_corrupt"], 1.0);
    assert_eq!(report.metrics["indexes_checked"], report.metrics["indexes_planned"]);
    assert!(report.metrics["indexes_checked"] > 50.0, "catalog indexes are checked too: {:?}", report.metrics);
    let finding = items(&report, "finding")[0];
    assert_eq!(
        (finding["check"].as_str(), finding["severity"].as_str(), finding["subject"].as_str()),
        (Some("index_corrupt"), Some("critical"), Some("\"public\".\"fickle_idx\""))
    );
    assert!(finding["message"].as_str().unwrap().contains("item order invariant violated"), "{finding}");
    let corrupt = item(&report, "index", "\"public\".\"fickle_idx\"");
    assert_eq!((corrupt["outcome"].as_str(), corrupt["sqlstate"].as_str()), (Some("corrupt"), Some("XX002")));

    // A table locked by someone else: its indexes are skipped within lock_timeout, with the blocker.
    let holder = session(&db).await;
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    holder.batch_execute("BEGIN; LOCK TABLE fine IN ACCESS EXCLUSIVE MODE").await.unwrap();
    cfg.amcheck.include_catalogs = false;
    let report = IndexIntegrity::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(report.metrics["indexes_planned"], 3.0, "{report:#?}");
    assert_eq!((report.metrics["indexes_checked"], report.metrics["indexes_corrupt"]), (1.0, 1.0));
    for name in ["\"public\".\"fine_pkey\"", "\"public\".\"ix; DROP TABLE fine\""] {
        let skipped = item(&report, "index", name);
        assert_eq!(
            (skipped["outcome"].as_str(), skipped["blockers"][0]["pid"].as_i64()),
            (Some("skipped"), Some(pid.into()))
        );
    }

    // Rebuilt with the operator class as it is now, the index is sound.
    c.batch_execute("REINDEX INDEX fickle_idx").await.unwrap();
    let report = IndexIntegrity::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:#?}");
    assert_eq!((report.metrics["indexes_checked"], report.metrics["indexes_corrupt"]), (3.0, 0.0));
}

#[tokio::test]
async fn extensions_nothing_depends_on_are_listed_for_review() {
    let db = fresh().await;
    let c = session(&db).await;
    c.batch_execute(
        "CREATE EXTENSION hstore; CREATE EXTENSION pg_trgm; CREATE EXTENSION citext; \
         CREATE TABLE docs (body text); CREATE INDEX docs_trgm ON docs USING gin (body gin_trgm_ops); \
         CREATE TABLE people (email citext)",
    )
    .await
    .unwrap();
    let settings = config(&db, Steps::default()).validate().unwrap();
    let handle = Db::connect(&Secret::new(db.url()), &settings).unwrap();
    let findings = maint_db::pg_security_audit(&handle, &settings.audit).await.unwrap();
    let unused: Vec<&str> =
        findings.iter().filter(|f| f.check == "unused_extension").map(|f| f.subject.as_str()).collect();
    assert_eq!(unused, ["extension \"hstore\""], "{findings:#?}");
    let hstore = findings.iter().find(|f| f.check == "unused_extension").unwrap();
    assert_eq!(hstore.severity, Severity::Info);
    assert!(hstore.message.contains("no object of this database depends on it"), "{}", hstore.message);
    // The dependency is what counts: without the index, pg_trgm is unused too.
    c.batch_execute("DROP INDEX docs_trgm").await.unwrap();
    let findings = maint_db::pg_security_audit(&handle, &settings.audit).await.unwrap();
    let unused: Vec<&str> =
        findings.iter().filter(|f| f.check == "unused_extension").map(|f| f.subject.as_str()).collect();
    assert_eq!(unused, ["extension \"hstore\"", "extension \"pg_trgm\""], "{findings:#?}");
}

/// `pgbench` (`MAINT_PGBENCH`, else from `PATH`); the test fails, never skips, without it.
fn pgbench() -> String {
    let exe = std::env::var("MAINT_PGBENCH").unwrap_or_else(|_| "pgbench".into());
    match std::process::Command::new(&exe).arg("--version").output() {
        Ok(o) if o.status.success() => exe,
        _ => panic!(
            "`{exe} --version` failed: the lock safety test needs pgbench. scripts/test-env installs it \
             (Debian ships it in postgresql-15), or point MAINT_PGBENCH at one"
        ),
    }
}

/// The latency (µs) of every transaction in pgbench's per-transaction logs under `dir`
/// (`client_id transaction_no time script_no time_epoch time_us`), and the lines whose
/// time is not a number (`failed`).
fn pgbench_latencies(dir: &std::path::Path) -> (Vec<u64>, usize) {
    let (mut latencies, mut failed) = (Vec::new(), 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            match line.split_whitespace().nth(2).map(str::parse::<u64>) {
                Some(Ok(us)) => latencies.push(us),
                _ => failed += 1,
            }
        }
    }
    (latencies, failed)
}

#[tokio::test]
async fn with_pgbench_running_no_transaction_waits_longer_than_the_lock_timeout_because_of_us() {
    const LOCK_TIMEOUT_S: u64 = 2;
    const MARGIN_S: u64 = 3;
    let exe = pgbench();
    let db = fresh().await;
    let pgbench_cmd = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.args(args)
            .arg(&db.name)
            .env("PGHOST", &db.host)
            .env("PGPORT", db.port.to_string())
            .env("PGUSER", &db.user)
            .env("PGPASSWORD", &db.password)
            .kill_on_drop(true);
        cmd
    };
    let init = pgbench_cmd(&["-i", "-s", "1", "-q"]).output().await.unwrap();
    assert!(init.status.success(), "pgbench -i: {}", String::from_utf8_lossy(&init.stderr));
    let c = session(&db).await;
    churned(&c).await;
    // A session holds a lock on a table pgbench writes to: pgbench's UPDATEs go on (ROW
    // EXCLUSIVE does not conflict with it), every maintenance statement on it conflicts.
    let holder = session(&db).await;
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    holder.batch_execute("BEGIN; LOCK TABLE pgbench_tellers IN SHARE UPDATE EXCLUSIVE MODE").await.unwrap();

    let dir = std::env::temp_dir().join(format!("maint-pgbench-{}-{}", std::process::id(), db.name));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = dir.join("tx");
    // -n: pgbench's own VACUUM would wait for the holder forever (it has no lock_timeout).
    let log_prefix = format!("--log-prefix={}", prefix.display());
    let mut bench = pgbench_cmd(&["-n", "-c", "4", "-j", "2", "-T", "30", "-l", &log_prefix])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // Vacuum/analyze every table, rebuild every index, amcheck every index, again and
    // again while pgbench runs.
    let mut cfg = config(&db, Steps::default());
    cfg.lock_timeout = format!("{LOCK_TIMEOUT_S}s");
    cfg.lock_attempts = 2;
    cfg.retry_backoff = "100ms".into();
    cfg.bloat.create_extension = true;
    cfg.reindex = maint_db::ReindexConfig { min_bloat_bytes: 0, max_leaf_density: 100.0, min_bloat_ratio: 0.0 };
    cfg.amcheck.create_extension = true;
    cfg.amcheck.include_catalogs = false;
    let mut rounds = Vec::new();
    while bench.try_wait().unwrap().is_none() {
        let ctx = TaskContext::new(false);
        let optimize = DatabaseOptimization::new(&cfg).unwrap().run(&ctx).await;
        let rebuild = IndexRebuild::new(&cfg).unwrap().run(&ctx).await;
        let amcheck = IndexIntegrity::new(&cfg).unwrap().run(&ctx).await;
        let overlapped = bench.try_wait().unwrap().is_none();
        rounds.push((optimize, rebuild, amcheck, overlapped));
    }
    let out = bench.wait_with_output().await.unwrap();
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert!(out.status.success(), "pgbench: {}", String::from_utf8_lossy(&out.stderr));
    let (latencies, failed) = pgbench_latencies(&dir);
    std::fs::remove_dir_all(&dir).unwrap();

    // Maintenance really ran while pgbench did, and met the held lock each time.
    assert!(rounds.iter().any(|r| r.3), "no maintenance round finished while pgbench ran: {} rounds", rounds.len());
    for (optimize, rebuild, amcheck, _) in &rounds {
        assert_eq!(optimize.status, Status::Warning, "{optimize:#?}");
        let tellers = item(optimize, "table", "\"public\".\"pgbench_tellers\"");
        assert_eq!(
            (tellers["outcome"].as_str(), tellers["blockers"][0]["pid"].as_i64()),
            (Some("skipped"), Some(pid.into()))
        );
        assert_eq!(item(optimize, "table", "\"public\".\"pgbench_accounts\"")["outcome"], "done");
        let skipped = item(rebuild, "index", "\"public\".\"pgbench_tellers_pkey\"");
        assert_eq!(
            (skipped["outcome"].as_str(), skipped["blockers"][0]["pid"].as_i64()),
            (Some("skipped"), Some(pid.into())),
            "{rebuild:#?}"
        );
        assert_eq!(item(rebuild, "index", "\"public\".\"pgbench_accounts_pkey\"")["outcome"], "done", "{rebuild:#?}");
        assert_eq!(amcheck.metrics["indexes_corrupt"], 0.0, "{amcheck:#?}");
        assert!(amcheck.metrics["indexes_checked"] >= 5.0, "{amcheck:#?}");
    }
    let invalid: i64 = c.query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[]).await.unwrap().get(0);
    assert_eq!(invalid, 0, "no _ccnew index left behind");

    // The safety property: no pgbench transaction waited longer than lock_timeout (plus
    // a margin for a loaded machine) because of us.
    assert_eq!(failed, 0, "failed pgbench transactions");
    assert!(latencies.len() > 100, "pgbench ran {} transactions", latencies.len());
    let max = latencies.iter().copied().max().unwrap_or(0);
    let bound = (LOCK_TIMEOUT_S + MARGIN_S) * 1_000_000;
    assert!(
        max < bound,
        "a pgbench transaction took {:.2}s, more than lock_timeout {LOCK_TIMEOUT_S}s + {MARGIN_S}s ({} transactions, {} rounds)",
        max as f64 / 1e6,
        latencies.len(),
        rounds.len()
    );
    eprintln!(
        "pgbench: {} transactions, max latency {:.3}s, {} maintenance rounds",
        latencies.len(),
        max as f64 / 1e6,
        rounds.len()
    );

    // Control: the same measurement does see a wait when something does block pgbench
    // (a session holding ACCESS EXCLUSIVE on pgbench_branches for 1.5 s).
    std::fs::create_dir_all(&dir).unwrap();
    let bench = pgbench_cmd(&["-n", "-c", "2", "-j", "1", "-T", "5", "-l", &log_prefix])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE pgbench_branches IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT")
        .await
        .unwrap();
    let out = bench.wait_with_output().await.unwrap();
    assert!(out.status.success(), "pgbench: {}", String::from_utf8_lossy(&out.stderr));
    let (latencies, _) = pgbench_latencies(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let max = latencies.iter().copied().max().unwrap_or(0);
    assert!(max >= 1_000_000, "the control lock should have shown in the log: max {max} us");
}

/// Issue 16 L5: the pool's sessions give up at `connect_timeout` on a server that accepts the
/// connection and never answers the startup (the driver's own timeout covers the TCP connect
/// only, so `client()` waited forever).
#[tokio::test]
async fn a_pooled_session_gives_up_on_a_server_that_never_answers() {
    let port = maint_testkit::silent_server();
    let url = Secret::new(format!("postgresql://maint:HUNTER2@127.0.0.1:{port}/postgres?connect_timeout=1"));
    let settings = Config::default().validate().unwrap();
    let db = Db::connect(&url, &settings).unwrap();
    let result =
        tokio::time::timeout(std::time::Duration::from_secs(30), db.ping()).await.expect("gave up within 30 s");
    let e = result.unwrap_err();
    let msg = maint_core::one_line(&e);
    assert!(matches!(e, Error::Connect { .. }), "{msg}");
    assert!(msg.starts_with(&format!("cannot connect to PostgreSQL at 127.0.0.1:{port}/postgres")), "{msg}");
    assert!(!msg.contains("HUNTER2"), "{msg}");
}
