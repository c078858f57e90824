//! maint-release against real services: PostgreSQL (maint-testkit) for migrations, a
//! local HTTP server for smoke checks.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use maint_core::{Secret, Status, TaskContext};
use maint_release::bollard::Docker;
use maint_release::deadpool_postgres::tokio_postgres::{self, NoTls};
use maint_release::maint_backup::{CreateOptions, open_store};
use maint_release::{
    ApprovalPolicy, AuditLog, AuditRecord, BackupGate, ChangeStore, DatabaseConfig, Deployer, DockerDeployer,
    DockerService, Error, HealthChecks, HttpCheck, HttpChecks, MIGRATION_LOCK_KEY, Migrator, MigratorOptions,
    NewChange, PgAuditLog, PgChangeStore, Phase, Revision, StoreBackupGate, UpdateRequest, UpdateSettings, Updater,
    pg_pool, semver::Version, sha256_hex,
};
use maint_testkit::{Postgres, TestDb};

#[path = "release/smoke.rs"]
mod smoke;

#[path = "release/changes.rs"]
mod changes;

async fn fresh() -> TestDb {
    Postgres::shared().await.fresh_database().await
}

async fn session(db: &TestDb) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.plain_url(), NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

fn migrations_dir(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "maint-release-it-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for (file, sql) in files {
        std::fs::write(dir.join(file), sql).unwrap();
    }
    dir
}

fn migrator(db: &TestDb, dir: &Path) -> Migrator {
    Migrator::new(db.pool(), MigratorOptions::new(dir)).unwrap()
}

async fn history(db: &TestDb) -> Vec<(String, String, String, String)> {
    session(db)
        .await
        .query("SELECT version, name, phase, checksum FROM maint_release_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

async fn table_exists(db: &TestDb, name: &str) -> bool {
    session(db).await.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name]).await.unwrap().get(0)
}

const V1: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text, legacy text);";
const V2: &str =
    "-- maint:expand\nALTER TABLE users ADD COLUMN email text;\nINSERT INTO users (id, name) VALUES (1, 'a');";
const V3: &str = "-- maint:contract\nALTER TABLE users DROP COLUMN legacy;";

#[tokio::test]
async fn applies_expand_then_contract_and_a_rerun_is_a_no_op() {
    let db = fresh().await;
    let dir = migrations_dir("apply", &[("V1__users.sql", V1), ("V2__email.sql", V2), ("V3__drop_legacy.sql", V3)]);
    let m = migrator(&db, &dir);
    let ctx = TaskContext::new(false);

    let dry = m.run(Phase::Expand, &TaskContext::new(true)).await.unwrap();
    assert_eq!(dry.planned, ["V1__users", "V2__email"]);
    assert!(dry.applied.is_empty());
    assert!(!table_exists(&db, "maint_release_migrations").await, "a dry run creates nothing");

    let expand = m.run(Phase::Expand, &ctx).await.unwrap();
    let applied: Vec<&str> = expand.applied.iter().map(|a| a.version.as_str()).collect();
    assert_eq!(applied, ["1", "2"]);
    let h = history(&db).await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0], ("1".into(), "users".into(), "expand".into(), sha256_hex(V1.as_bytes())));
    let again = m.run(Phase::Expand, &ctx).await.unwrap();
    assert!(again.applied.is_empty(), "re-running is a no-op: {again:?}");
    assert_eq!(m.plan(Phase::Contract).await.unwrap().pending.len(), 1);

    let contract = m.run(Phase::Contract, &ctx).await.unwrap();
    assert_eq!(contract.applied[0].name, "drop_legacy");
    assert!(m.run(Phase::Contract, &ctx).await.unwrap().applied.is_empty());
    let cols: Vec<String> = session(&db)
        .await
        .query("SELECT column_name::text FROM information_schema.columns WHERE table_name = 'users' ORDER BY 1", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(cols, ["email", "id", "name"]);
    assert_eq!(history(&db).await.len(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused_before_anything_runs() {
    let db = fresh().await;
    let dir = migrations_dir("drift", &[("V1__users.sql", V1)]);
    let m = migrator(&db, &dir);
    m.run(Phase::Expand, &TaskContext::new(false)).await.unwrap();
    std::fs::write(dir.join("V1__users.sql"), format!("{V1}\n-- an innocent edit")).unwrap();
    std::fs::write(dir.join("V2__email.sql"), V2).unwrap();
    for dry_run in [true, false] {
        let err = m.run(Phase::Expand, &TaskContext::new(dry_run)).await.unwrap_err();
        match &err {
            Error::ChecksumMismatch { version, applied, found, .. } => {
                assert_eq!(version, "1");
                assert_eq!(applied, &sha256_hex(V1.as_bytes()));
                assert_ne!(found, applied);
            }
            other => panic!("expected a checksum error, got {other}"),
        }
        assert!(err.to_string().contains("V1__users was changed after it was applied"), "{err}");
    }
    assert_eq!(history(&db).await.len(), 1, "V2 was not applied");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_failing_migration_rolls_back_and_leaves_the_history_consistent() {
    let db = fresh().await;
    let broken = "CREATE TABLE half (id int);\nINSERT INTO no_such_table VALUES (1);";
    let dir = migrations_dir(
        "fail",
        &[("V1__users.sql", V1), ("V2__broken.sql", broken), ("V3__later.sql", "CREATE TABLE later (id int);")],
    );
    let m = migrator(&db, &dir);
    let err = m.run(Phase::Expand, &TaskContext::new(false)).await.unwrap_err();
    match &err {
        Error::MigrationFailed { version, transactional: true, .. } => assert_eq!(version, "2"),
        other => panic!("expected a migration failure, got {other}"),
    }
    let msg = maint_core::one_line(&err);
    assert!(msg.starts_with("migration V2__broken failed and was rolled back"), "{msg}");
    assert!(msg.contains("no_such_table"), "the server's message is in the chain: {msg}");
    assert!(!table_exists(&db, "half").await, "the failed migration's first statement was rolled back");
    assert!(!table_exists(&db, "later").await, "nothing after a failure runs");
    let h = history(&db).await;
    assert_eq!(h.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["1"]);
    // The lock was released: a fixed file applies on the next run.
    std::fs::write(dir.join("V2__broken.sql"), "CREATE TABLE half (id int);").unwrap();
    let out = m.run(Phase::Expand, &TaskContext::new(false)).await.unwrap();
    assert_eq!(out.applied.iter().map(|a| a.version.as_str()).collect::<Vec<_>>(), ["2", "3"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_non_transactional_migration_runs_statement_by_statement() {
    let db = fresh().await;
    let concurrently = "-- maint:no-transaction\nCREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY t_id ON t (id);";
    let dir = migrations_dir("notx", &[("V1__t.sql", concurrently)]);
    let out = migrator(&db, &dir).run(Phase::Expand, &TaskContext::new(false)).await.unwrap();
    assert_eq!(out.applied.len(), 1);
    assert!(table_exists(&db, "t_id").await, "CREATE INDEX CONCURRENTLY cannot run in a transaction");
    let transactional: bool = session(&db)
        .await
        .query_one("SELECT transactional FROM maint_release_migrations WHERE version = '1'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!transactional);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn two_runners_at_once_apply_each_migration_exactly_once() {
    let db = fresh().await;
    let slow = "SELECT pg_sleep(0.5);\nCREATE TABLE slow (id int);";
    let dir = migrations_dir("race", &[("V1__slow.sql", slow), ("V2__users.sql", V1), ("V3__email.sql", V2)]);
    let (a, b) = (migrator(&db, &dir), migrator(&db, &dir));
    let ctx = TaskContext::new(false);
    let (ra, rb) = tokio::join!(a.run(Phase::Expand, &ctx), b.run(Phase::Expand, &ctx));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut versions: Vec<String> = ra.applied.iter().chain(&rb.applied).map(|s| s.version.clone()).collect();
    versions.sort();
    assert_eq!(versions, ["1", "2", "3"], "each migration applied by exactly one runner");
    assert_eq!(history(&db).await.len(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_runner_waits_for_the_lock_and_gives_up_after_lock_wait() {
    let db = fresh().await;
    let dir = migrations_dir("lock", &[("V1__users.sql", V1)]);
    let holder = session(&db).await;
    holder.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await.unwrap();
    let holder_pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);

    let impatient = Migrator::new(
        db.pool(),
        MigratorOptions { lock_wait: Duration::from_millis(300), ..MigratorOptions::new(&dir) },
    )
    .unwrap();
    let err = impatient.run(Phase::Expand, &TaskContext::new(false)).await.unwrap_err();
    assert!(matches!(err, Error::LockBusy { holder: Some(pid), .. } if pid == holder_pid), "{err}");
    assert!(!table_exists(&db, "users").await);

    let patient = migrator(&db, &dir);
    let waiting = tokio::spawn(async move { patient.run(Phase::Expand, &TaskContext::new(false)).await });
    // Wait until the runner has asked for the lock (and been refused) at least once.
    let watcher = session(&db).await;
    for attempt in 0.. {
        let tried: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND pid NOT IN (pg_backend_pid(), $1) AND query LIKE '%pg_try_advisory_lock%'",
                &[&holder_pid],
            )
            .await
            .unwrap()
            .get(0);
        if tried > 0 {
            break;
        }
        assert!(attempt < 3000, "the runner never asked for the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!table_exists(&db, "users").await, "nothing runs while another session holds the lock");
    holder.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await.unwrap();
    let out = waiting.await.unwrap().unwrap();
    assert!(out.waited_for_lock);
    assert_eq!(out.applied.len(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_migration_blocked_by_a_long_reader_gives_up_after_its_lock_timeout_and_applies_nothing() {
    let db = fresh().await;
    let dir = migrations_dir("lock-timeout", &[("V1__users.sql", V1)]);
    let opts = MigratorOptions {
        lock_timeout: Duration::from_millis(200),
        lock_attempts: 3,
        retry_backoff: Duration::from_millis(50),
        ..MigratorOptions::new(&dir)
    };
    let m = Migrator::new(db.pool(), opts).unwrap();
    let ctx = TaskContext::new(false);
    m.run(Phase::Expand, &ctx).await.unwrap();
    // V2 creates a table, then needs ACCESS EXCLUSIVE on users, which a long reader holds
    // a conflicting lock on: the classic migration outage (every later query on users
    // queues behind the waiting ALTER).
    std::fs::write(dir.join("V2__email.sql"), "CREATE TABLE side (id int);\nALTER TABLE users ADD COLUMN email text;")
        .unwrap();
    let reader = session(&db).await;
    reader.batch_execute("BEGIN; SELECT count(*) FROM users;").await.unwrap();

    let run = tokio::time::timeout(Duration::from_secs(60), m.run(Phase::Expand, &ctx))
        .await
        .expect("the migration waited behind the reader instead of giving up after its lock_timeout");
    let err = run.unwrap_err();
    let msg = maint_core::one_line(&err);
    assert!(matches!(err, Error::MigrationLockTimeout { attempts: 3, .. }), "{msg}");
    assert!(
        msg.starts_with("migration V2__email: lock not available after 3 attempt(s) of lock_timeout 200ms"),
        "{msg}"
    );
    assert!(msg.contains("rolled back, nothing applied"), "{msg}");
    assert!(!table_exists(&db, "side").await, "nothing of V2 stays applied");
    let email: i64 = session(&db)
        .await
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(email, 0);
    assert_eq!(history(&db).await.len(), 1, "V2 is not in the history");
    // Once the reader is done, the same run applies V2 (the migration lock was released).
    reader.batch_execute("COMMIT").await.unwrap();
    let out = m.run(Phase::Expand, &ctx).await.unwrap();
    assert_eq!(out.applied.iter().map(|a| a.version.as_str()).collect::<Vec<_>>(), ["2"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_audit_log_and_the_change_store_give_up_on_a_lock_instead_of_waiting() {
    let db = fresh().await;
    let cfg: DatabaseConfig = toml::from_str("lock_timeout_secs = 0.3\nstatement_timeout_secs = 30").unwrap();
    let timeouts = cfg.timeouts().unwrap();
    let pool = pg_pool(&db.url(), "audit.database_url", &timeouts).unwrap();
    let client = pool.get().await.unwrap();
    let mut shown = Vec::new();
    for setting in ["lock_timeout", "statement_timeout", "application_name"] {
        shown.push(client.query_one(&format!("SHOW {setting}"), &[]).await.unwrap().get::<_, String>(0));
    }
    assert_eq!(shown, ["300ms", "30s", "maint-release"], "every session of the pool has the limits");
    drop(client);
    let record = AuditRecord {
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        actor: "ops".into(),
        from_version: None,
        to_version: "1.1.0".into(),
        change_id: None,
        change_window: None,
        status: "ok".into(),
        error: None,
        steps: Vec::new(),
    };
    let audit = PgAuditLog::new(pool);
    audit.record(&record).await.unwrap();
    let blocker = session(&db).await;
    blocker.batch_execute("BEGIN; LOCK TABLE public.maint_release_audit IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), audit.record(&record))
        .await
        .expect("the audit record waited behind the lock")
        .unwrap_err();
    assert!(maint_core::one_line(&err).contains("lock timeout"), "{}", maint_core::one_line(&err));
    blocker.batch_execute("COMMIT").await.unwrap();

    let store = PgChangeStore::from_url(&db.url(), "changes.database_url", &timeouts).unwrap();
    let new = NewChange {
        title: "t".into(),
        requester: "bob".into(),
        approvers: vec!["alice".into()],
        estimated_minutes: 5,
        ..NewChange::default()
    };
    let c = store.create(new, &ApprovalPolicy::default(), chrono::Utc::now()).await.unwrap();
    blocker.batch_execute("BEGIN; SELECT * FROM maint_change.change_request FOR UPDATE").await.unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        store.update(&c.id, &mut |c| c.cancel("bob", "postponed", chrono::Utc::now())),
    )
    .await
    .expect("the change update waited behind the row lock")
    .unwrap_err();
    assert!(maint_core::one_line(&err).contains("lock timeout"), "{}", maint_core::one_line(&err));
    blocker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(store.load(&c.id).await.unwrap().state, maint_release::ChangeState::Pending);
}

#[tokio::test]
async fn the_external_command_runs_inside_the_same_lock() {
    let db = fresh().await;
    let dir = migrations_dir("external", &[("V1__users.sql", V1)]);
    let out_file = dir.join("external.out");
    // The command asks PostgreSQL whether it could take the migration lock: it must not.
    let script = format!(
        "psql \"$DB\" -tAc 'SELECT pg_try_advisory_lock({MIGRATION_LOCK_KEY}), count(*) FROM users' > {}",
        out_file.display()
    );
    let opts = MigratorOptions {
        external_command: vec!["sh".into(), "-c".into(), script.replace("$DB", &db.url())],
        ..MigratorOptions::new(&dir)
    };
    let m = Migrator::new(db.pool(), opts).unwrap();
    let dry = m.run(Phase::Expand, &TaskContext::new(true)).await.unwrap();
    assert!(dry.external.as_deref().unwrap().starts_with("sh -c psql"));
    assert!(!out_file.exists(), "a dry run does not run the command");
    let out = m.run(Phase::Expand, &TaskContext::new(false)).await.unwrap();
    assert!(out.external.is_some());
    assert_eq!(std::fs::read_to_string(&out_file).unwrap().trim(), "f|0", "lock held, SQL migrations applied first");
    let contract = m.run(Phase::Contract, &TaskContext::new(false)).await.unwrap();
    assert_eq!(contract.external, None, "the command belongs to the expand phase");

    let failing = Migrator::new(
        db.pool(),
        MigratorOptions {
            external_command: vec!["sh".into(), "-c".into(), "echo 'alembic: no head' >&2; exit 1".into()],
            ..MigratorOptions::new(&dir)
        },
    )
    .unwrap();
    let err = failing.run(Phase::Expand, &TaskContext::new(false)).await.unwrap_err();
    assert!(err.to_string().contains("alembic: no head"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// A stand-in service: `/health/ready` answers 200 while `ready`, else 503;
/// `/health/live` always 200.
async fn service(ready: Arc<AtomicBool>) -> String {
    async fn readiness(State(ready): State<Arc<AtomicBool>>) -> StatusCode {
        if ready.load(Ordering::SeqCst) { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
    }
    let app = Router::new()
        .route("/health/ready", axum::routing::get(readiness))
        .route("/health/live", axum::routing::get(|| async { StatusCode::OK }))
        .with_state(ready);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn checks(base: &str) -> HttpChecks {
    HttpChecks::new(
        vec![HttpCheck::get(format!("{base}/health/ready")), HttpCheck::get(format!("{base}/health/live"))],
        Duration::from_secs(5),
        2,
        Duration::from_millis(10),
    )
    .unwrap()
}

#[tokio::test]
async fn http_checks_report_status_and_attempts_against_a_real_server() {
    let ready = Arc::new(AtomicBool::new(true));
    let base = service(ready.clone()).await;
    let c = checks(&base);
    let ok = c.check().await;
    assert!(ok.iter().all(|r| r.ok && r.status == Some(200) && r.attempts == 1), "{ok:?}");
    ready.store(false, Ordering::SeqCst);
    let failed = c.check().await;
    assert_eq!(failed[0].name, "/health/ready");
    assert_eq!((failed[0].ok, failed[0].status, failed[0].attempts), (false, Some(503), 2));
    assert_eq!(failed[0].error.as_deref(), Some("HTTP 503 (expected 200)"));
    assert!(failed[1].ok);
    let nobody =
        HttpChecks::new(vec![HttpCheck::get("http://127.0.0.1:9/health")], Duration::from_secs(2), 1, Duration::ZERO)
            .unwrap()
            .check()
            .await;
    assert!(!nobody[0].ok && nobody[0].status.is_none() && nobody[0].error.is_some());
}

/// A deployer for one stand-in service: an image whose tag contains `broken` makes the
/// service unready; it records what it was asked and checks, at `set_image`, that the
/// expand migrations are already in the database.
#[derive(Debug)]
struct StandIn {
    ready: Arc<AtomicBool>,
    images: Mutex<Vec<String>>,
    db: TestDb,
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl Deployer for StandIn {
    fn name(&self) -> String {
        "stand-in".into()
    }
    async fn set_image(&self, _workloads: &[String], image: &str) -> Result<(), Error> {
        let expanded = table_exists(&self.db, "users").await;
        self.calls.lock().unwrap().push(format!("set_image {image} (schema expanded: {expanded})"));
        self.images.lock().unwrap().push(image.to_owned());
        self.ready.store(!image.contains("broken"), Ordering::SeqCst);
        Ok(())
    }
    async fn wait_rollout(&self, _workloads: &[String], _timeout: Duration) -> Result<(), Error> {
        self.calls.lock().unwrap().push("wait".into());
        Ok(())
    }
    async fn undo(&self, _workloads: &[String]) -> Result<(), Error> {
        self.calls.lock().unwrap().push("undo".into());
        let mut images = self.images.lock().unwrap();
        images.pop();
        let previous = images.last().cloned().unwrap_or_default();
        self.ready.store(!previous.contains("broken"), Ordering::SeqCst);
        Ok(())
    }
    async fn history(&self, workload: &str) -> Result<Vec<Revision>, Error> {
        let images = self.images.lock().unwrap();
        Ok(images
            .iter()
            .enumerate()
            .map(|(i, image)| Revision {
                workload: workload.to_owned(),
                number: i as u64 + 1,
                image: image.clone(),
                current: i + 1 == images.len(),
                change_cause: None,
            })
            .collect())
    }
}

#[tokio::test]
async fn an_update_migrates_around_a_rollout_and_a_broken_version_is_rolled_back() {
    let db = fresh().await;
    let ready = Arc::new(AtomicBool::new(true));
    let base = service(ready.clone()).await;
    let dir = migrations_dir("update", &[("V1__users.sql", V1), ("V2__email.sql", V2), ("V3__drop_legacy.sql", V3)]);
    let deployer = Arc::new(StandIn {
        ready,
        images: Mutex::new(vec!["local/aindusdb:1.4.0".into()]),
        db: db.clone(),
        calls: Mutex::new(Vec::new()),
    });
    let updater = Updater::new(
        deployer.clone(),
        UpdateSettings {
            workloads: vec!["api".into()],
            image_repository: "local/aindusdb".into(),
            rollout_timeout: Duration::from_secs(30),
        },
    )
    .unwrap()
    .with_migrations(Arc::new(migrator(&db, &dir)))
    .with_checks(Arc::new(checks(&base)))
    .with_audit(Arc::new(PgAuditLog::new(db.pool())));

    let plan = updater
        .run(&UpdateRequest { to: Some(Version::new(1, 5, 0)), ..UpdateRequest::default() }, &TaskContext::new(true))
        .await;
    assert_eq!(plan.status, Status::Ok, "{plan:#?}");
    assert!(deployer.calls.lock().unwrap().is_empty(), "a dry run deploys nothing");
    assert!(!table_exists(&db, "users").await, "a dry run migrates nothing");

    let r = updater
        .run(
            &UpdateRequest {
                to: Some(Version::new(1, 5, 0)),
                actor: Some("ops-bob".into()),
                ..UpdateRequest::default()
            },
            &TaskContext::new(false),
        )
        .await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(deployer.calls.lock().unwrap()[0], "set_image local/aindusdb:1.5.0 (schema expanded: true)");
    assert_eq!(history(&db).await.len(), 3, "expand before, contract after");

    std::fs::write(dir.join("V4__audit.sql"), "CREATE TABLE audit (id int);").unwrap();
    std::fs::write(dir.join("V5__drop_email.sql"), "-- maint:contract\nALTER TABLE users DROP COLUMN email;").unwrap();
    let broken = Version::parse("1.6.0-broken").unwrap();
    let r =
        updater.run(&UpdateRequest { to: Some(broken), ..UpdateRequest::default() }, &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Failed);
    assert!(
        r.error.as_deref().unwrap().starts_with("smoke: smoke checks failed on 1.6.0-broken: /health/ready: HTTP 503"),
        "{:?}",
        r.error
    );
    assert_eq!(r.metrics["rolled_back"], 1.0);
    assert!(deployer.calls.lock().unwrap().contains(&"undo".to_owned()));
    assert_eq!(deployer.images.lock().unwrap().last().unwrap(), "local/aindusdb:1.5.0");
    assert!(checks(&base).check().await.iter().all(|c| c.ok), "the previous version serves again");
    let versions: Vec<String> = history(&db).await.into_iter().map(|h| h.0).collect();
    assert_eq!(versions, ["1", "2", "3", "4"], "the expand migration stays, the contract one never ran");

    let audit = session(&db)
        .await
        .query(
            "SELECT actor, from_version, to_version, status, error, steps::text FROM maint_release_audit ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 2, "one record per real run, none for the dry run");
    let row = |i: usize| -> (String, Option<String>, String, String, Option<String>, String) {
        let r = &audit[i];
        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))
    };
    let (actor, from, to, status, error, _) = row(0);
    assert_eq!(
        (actor.as_str(), from.as_deref(), to.as_str(), status.as_str(), error),
        ("ops-bob", Some("1.4.0"), "1.5.0", "ok", None)
    );
    let (actor, from, to, status, error, steps) = row(1);
    assert_eq!(
        (actor.as_str(), from.as_deref(), to.as_str(), status.as_str()),
        ("unknown", Some("1.5.0"), "1.6.0-broken", "failed")
    );
    assert!(error.unwrap().starts_with("smoke: smoke checks failed"));
    let steps: Vec<serde_json::Value> = serde_json::from_str(&steps).unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["version", "change", "pre-checks", "expand-migrations", "rollout", "smoke", "rollback"]);
    assert!(steps.iter().all(|s| s["duration_ms"].is_u64()));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_backup_gate_creates_a_verified_backup_then_reuses_it() {
    let db = fresh().await;
    session(&db).await.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);").await.unwrap();
    let dir = migrations_dir("backup", &[]);
    let store = open_store(&format!("file://{}", dir.display())).unwrap();
    let gate = StoreBackupGate::new(store, CreateOptions::new(Secret::new(db.url())), Duration::from_secs(3600));
    let planned = gate.ensure_backup(&TaskContext::new(true)).await.unwrap();
    assert_eq!(planned, "would create a backup (no complete backup)");
    let created = gate.ensure_backup(&TaskContext::new(false)).await.unwrap();
    assert!(created.starts_with("created and verified backup backups/"), "{created}");
    let reused = gate.ensure_backup(&TaskContext::new(false)).await.unwrap();
    let key = created.trim_start_matches("created and verified backup ").split(' ').next().unwrap();
    assert_eq!(reused, format!("recent verified backup {key}"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// The stand-in images scripts/test-env builds: 1.0.0, 1.1.0, 1.2.0-broken (readiness
/// fails), 1.3.0-wrong (VERITAS answers off by 0.5).
async fn standin_repo(docker: &Docker) -> String {
    let repo = std::env::var("MAINT_TEST_STANDIN_IMAGE").unwrap_or_else(|_| "local/aindusdb-standin".into());
    for tag in ["1.0.0", "1.1.0", "1.2.0-broken"] {
        if docker.inspect_image(&format!("{repo}:{tag}")).await.is_err() {
            panic!("no image {repo}:{tag}: run the tests through scripts/test-env, which builds the stand-in images");
        }
    }
    repo
}

fn standin_service(name: &str) -> DockerService {
    DockerService {
        labels: [("maint-testkit".to_owned(), "1".to_owned())].into(),
        ..DockerService::new(name, 3, 8080, "/health/ready")
    }
}

#[tokio::test]
async fn docker_deployer_updates_three_replicas_and_a_broken_version_is_rolled_back() {
    let docker =
        Docker::connect_with_local_defaults().expect("a Docker engine (run the tests through scripts/test-env)");
    let standin = standin_repo(&docker).await;
    let name = format!("standin-{}", std::process::id());
    let service = standin_service(&name);
    let deployer = Arc::new(DockerDeployer::new(docker.clone(), vec![service], Duration::from_secs(10)).unwrap());
    let workloads = vec![name.clone()];
    deployer.set_image(&workloads, &format!("{standin}:1.0.0")).await.unwrap();
    deployer.wait_rollout(&workloads, Duration::from_secs(30)).await.unwrap();
    let history = deployer.history(&name).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].image, format!("{standin}:1.0.0"));

    let updater = Updater::new(
        deployer.clone(),
        UpdateSettings {
            workloads: workloads.clone(),
            image_repository: standin.clone(),
            rollout_timeout: Duration::from_secs(30),
        },
    )
    .unwrap();
    let to = |v: &str| UpdateRequest { to: Some(Version::parse(v).unwrap()), ..UpdateRequest::default() };
    // A client polls throughout the rollout: each round it tries the running replicas
    // until one answers; a round in which none answers is a failed request.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(client_rounds(docker.clone(), name.clone(), stop.clone()));
    let r = updater.run(&to("1.1.0"), &TaskContext::new(false)).await;
    stop.store(true, Ordering::SeqCst);
    let (rounds, failed) = poller.await.unwrap();
    assert!(rounds > 0);
    assert_eq!(failed, 0, "no failed request during the rollout ({rounds} rounds)");
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(r.items[0]["detail"], "minor update 1.0.0 -> 1.1.0", "the running version is read from the containers");
    let history = deployer.history(&name).await.unwrap();
    assert_eq!(
        history.iter().map(|r| (r.image.clone(), r.current)).collect::<Vec<_>>(),
        [(format!("{standin}:1.0.0"), false), (format!("{standin}:1.1.0"), true)]
    );
    assert_eq!(running_images(&docker, &name).await, vec![format!("{standin}:1.1.0"); 3]);

    let r = updater.run(&to("1.2.0-broken"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Failed);
    assert!(r.error.as_deref().unwrap().contains(&format!("({standin}:1.2.0-broken) not ready after")), "{r:#?}");
    assert_eq!(r.metrics["rolled_back"], 1.0);
    assert_eq!(
        running_images(&docker, &name).await,
        vec![format!("{standin}:1.1.0"); 3],
        "v1.1.0 serves again on all replicas"
    );

    deployer.undo(&workloads).await.unwrap();
    assert_eq!(
        running_images(&docker, &name).await,
        vec![format!("{standin}:1.0.0"); 3],
        "undo goes one revision back"
    );
    remove_service(&docker, &name).await;
}

/// Rounds of requests to any running replica until `stop`: (rounds, rounds where no replica answered).
async fn client_rounds(docker: Docker, service: String, stop: Arc<AtomicBool>) -> (u32, u32) {
    use maint_release::bollard::query_parameters::ListContainersOptionsBuilder;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let filters = std::collections::HashMap::from([("label", vec![format!("maint.release.service={service}")])]);
    let (mut rounds, mut failed) = (0, 0);
    while !stop.load(Ordering::SeqCst) {
        let list =
            docker.list_containers(Some(ListContainersOptionsBuilder::new().filters(&filters).build())).await.unwrap();
        let ports: Vec<u16> = list
            .iter()
            .filter_map(|c| c.ports.as_ref()?.iter().find(|p| p.private_port == 8080)?.public_port)
            .collect();
        let mut answered = false;
        for port in ports {
            if matches!(http.get(format!("http://127.0.0.1:{port}/version")).send().await, Ok(r) if r.status().is_success())
            {
                answered = true;
                break;
            }
        }
        rounds += 1;
        if !answered {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (rounds, failed)
}

async fn running_images(docker: &Docker, service: &str) -> Vec<String> {
    use maint_release::bollard::query_parameters::ListContainersOptionsBuilder;
    let filters = std::collections::HashMap::from([("label", vec![format!("maint.release.service={service}")])]);
    let list =
        docker.list_containers(Some(ListContainersOptionsBuilder::new().filters(&filters).build())).await.unwrap();
    let mut images: Vec<String> = list.into_iter().filter_map(|c| c.image).collect();
    images.sort();
    images
}

async fn remove_service(docker: &Docker, service: &str) {
    use maint_release::bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
    let filters = std::collections::HashMap::from([("label", vec![format!("maint.release.service={service}")])]);
    let list = docker
        .list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&filters).build()))
        .await
        .unwrap();
    for c in list {
        let _ = docker
            .remove_container(c.id.as_deref().unwrap(), Some(RemoveContainerOptionsBuilder::new().force(true).build()))
            .await;
    }
}

fn epoch_now() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// The most and the fewest running containers of a service between `since` and `until`,
/// from the engine's own start and die events (exact, not sampled), starting at `running`.
async fn running_bounds(
    docker: &Docker,
    service: &str,
    since: String,
    until: String,
    running: usize,
) -> (usize, usize) {
    use futures::StreamExt;
    use maint_release::bollard::query_parameters::EventsOptions;
    let filters = std::collections::HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("label".to_owned(), vec![format!("maint.release.service={service}")]),
        ("event".to_owned(), vec!["start".to_owned(), "die".to_owned()]),
    ]);
    let events: Vec<_> = docker
        .events(Some(EventsOptions { since: Some(since), until: Some(until), filters: Some(filters) }))
        .collect()
        .await;
    let (mut extra, mut gone) = (std::collections::HashSet::new(), 0usize);
    let (mut max, mut min) = (running, running);
    for e in events {
        let e = e.unwrap();
        let id = e.actor.and_then(|a| a.id).unwrap_or_default();
        match e.action.as_deref() {
            Some("start") => {
                extra.insert(id);
            }
            // A die of a container started before `since` (an old one), or of a new one.
            Some("die") if !extra.remove(&id) => gone += 1,
            _ => {}
        }
        let now = running + extra.len() - gone;
        max = max.max(now);
        min = min.min(now);
    }
    (max, min)
}

#[tokio::test]
async fn docker_deployer_honours_max_surge_and_max_unavailable() {
    let docker =
        Docker::connect_with_local_defaults().expect("a Docker engine (run the tests through scripts/test-env)");
    let standin = standin_repo(&docker).await;
    // (max_surge, max_unavailable) -> (most, fewest) containers running during 1.0.0 -> 1.1.0.
    for (surge, unavailable, bounds) in [(0, 1, (3, 2)), (2, 0, (5, 3))] {
        let name = format!("surge-{}-{surge}-{unavailable}", std::process::id());
        let service = DockerService { max_surge: surge, max_unavailable: unavailable, ..standin_service(&name) };
        let deployer = DockerDeployer::new(docker.clone(), vec![service], Duration::from_secs(20)).unwrap();
        let workloads = vec![name.clone()];
        deployer.set_image(&workloads, &format!("{standin}:1.0.0")).await.unwrap();
        deployer.wait_rollout(&workloads, Duration::from_secs(30)).await.unwrap();
        let since = epoch_now();
        deployer.set_image(&workloads, &format!("{standin}:1.1.0")).await.unwrap();
        deployer.wait_rollout(&workloads, Duration::from_secs(30)).await.unwrap();
        let until = epoch_now();
        assert_eq!(running_images(&docker, &name).await, vec![format!("{standin}:1.1.0"); 3]);
        assert_eq!(
            running_bounds(&docker, &name, since, until, 3).await,
            bounds,
            "max_surge {surge}, max_unavailable {unavailable}"
        );
        remove_service(&docker, &name).await;
    }
    let err = DockerDeployer::new(
        docker,
        vec![DockerService { max_surge: 0, max_unavailable: 0, ..standin_service("x") }],
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(matches!(&err, Error::Invalid { field, .. } if field == "docker.services[0].max_surge"), "{err}");
}
