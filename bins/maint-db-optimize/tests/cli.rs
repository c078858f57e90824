//! The `maint-db-optimize` binary against a real PostgreSQL (maint-testkit).

use std::process::Output;

use maint_testkit::deadpool_postgres::tokio_postgres::{self, NoTls};
use maint_testkit::{Postgres, TestDb};
use tokio::process::Command;

async fn bin(args: &[&str], url: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maint-db-optimize"));
    cmd.args(args).env_remove("MAINT_DATABASE_URL").env_remove("MAINT_DB_CONFIG");
    if let Some(url) = url {
        cmd.env("MAINT_DATABASE_URL", url);
    }
    cmd.output().await.expect("run maint-db-optimize")
}

fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

async fn seeded() -> TestDb {
    let db = Postgres::shared().await.fresh_database().await;
    let (c, conn) = tokio_postgres::connect(&db.plain_url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute(
        "CREATE TABLE a (id int); INSERT INTO a SELECT generate_series(1, 100); DELETE FROM a WHERE id < 50; \
         CREATE TABLE \"b; DROP TABLE a\" (id int)",
    )
    .await
    .unwrap();
    db
}

#[tokio::test]
async fn bad_input_is_one_line_naming_the_field_with_exit_2() {
    let cases: [(&[&str], Option<&str>, &str); 6] = [
        (
            &["--maintenance-work-mem", "1; DROP"],
            Some("postgresql://u:hunter2@h/db"),
            "maintenance_work_mem: \"1; DROP\" is not a size",
        ),
        (&[], None, "database_url: required"),
        (&["--database-url", "postgresql://u:hunter2@h:port/db"], None, "database_url: invalid connection string"),
        (&["--jobs", "0"], Some("postgresql://u:hunter2@h/db"), "jobs: 0 is not between 1 and 64"),
        (&["--jobs", "many"], Some("postgresql://u:hunter2@h/db"), "jobs: \"many\" is not a number"),
        (&["--lock-timeout", "soon"], Some("postgresql://u:hunter2@h/db"), "lock_timeout: \"soon\" is not a duration"),
    ];
    for (args, url, expected) in cases {
        let out = bin(args, url).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with(&format!("maint-db-optimize: {expected}")), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2") && out.stdout.is_empty(), "{args:?}: {stderr}");
    }
    let out = bin(&["--no-such-flag"], None).await;
    assert_eq!(out.status.code(), Some(2));
    // --help shows the variable's name, never its value.
    let out = bin(&["--help"], Some("postgresql://u:hunter2@h/db")).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(help.contains("MAINT_DATABASE_URL") && !help.contains("hunter2"), "{help}");
}

#[tokio::test]
async fn a_run_prints_the_json_contract_and_never_the_password() {
    let db = seeded().await;
    let out = bin(&["--json", "--vacuum", "--analyze", "--jobs", "2", "--lock-timeout", "2s"], Some(&db.url())).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    for field in ["task", "status", "started_at", "duration_ms", "dry_run", "metrics", "items", "warnings", "error"] {
        assert!(report.get(field).is_some(), "missing {field}: {report}");
    }
    assert_eq!(report["task"], "database-optimization");
    assert_eq!(report["status"], "ok");
    assert_eq!(report["metrics"]["tables_vacuumed"], 2.0);
    assert_eq!(report["metrics"]["tables_analyzed"], 2.0);
    assert!(report["metrics"]["db_bytes_after"].as_f64().unwrap() > 0.0);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&db.password));
}

#[tokio::test]
async fn dry_run_prints_the_plan_as_text() {
    let db = seeded().await;
    let out = bin(&["--dry-run", "--database-url", &db.url()], None).await;
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("VACUUM (ANALYZE, SKIP_LOCKED) \"public\".\"a\" (routine)"), "{stdout}");
    assert!(stdout.contains("VACUUM (ANALYZE, SKIP_LOCKED) \"public\".\"b; DROP TABLE a\""), "{stdout}");
    assert!(stdout.contains("database-optimization: ok (dry run)"), "{stdout}");
}

#[tokio::test]
async fn wrong_password_fails_with_exit_1_and_a_clear_reason() {
    let db = seeded().await;
    let wrong = db.url().replace(&format!(":{}@", db.password), ":not-the-password@");
    let out = bin(&["--json"], Some(&wrong)).await;
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["status"], "failed");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("not-the-password"));
}

#[tokio::test]
async fn a_run_in_progress_makes_the_second_one_skip_with_exit_0() {
    let db = seeded().await;
    let (holder, conn) = tokio_postgres::connect(&db.plain_url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    holder.execute("SELECT pg_advisory_lock($1)", &[&maint_db::RUN_LOCK_KEY]).await.unwrap();
    let out = bin(&["--json"], Some(&db.url())).await;
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out);
    assert_eq!(report["status"], "skipped");
    assert!(report["warnings"][0].as_str().unwrap().contains("a run is in progress"), "{report}");
}

#[tokio::test]
async fn a_config_file_is_read_and_a_bad_one_names_the_problem() {
    let db = seeded().await;
    let dir = std::env::temp_dir().join(format!("maint-db-optimize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, "jobs = 1\n[steps]\nvacuum = false\nanalyze = true\ninvalid_indexes = false\n").unwrap();
    let out = bin(&["--json", "--config", good.to_str().unwrap()], Some(&db.url())).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    assert_eq!(
        (report["metrics"]["tables_analyzed"].as_f64(), report["metrics"]["tables_vacuumed"].as_f64()),
        (Some(2.0), Some(0.0))
    );
    assert!(report["items"][0]["sql"].as_str().unwrap().starts_with("ANALYZE (SKIP_LOCKED) "), "{report}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "jobz = 1\n").unwrap();
    let out = bin(&["--config", bad.to_str().unwrap()], Some(&db.url())).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("maint-db-optimize: config: ") && stderr.contains("jobz"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_locked_table_is_reported_with_its_blocker_and_the_rest_is_done() {
    let db = seeded().await;
    let (holder, conn) = tokio_postgres::connect(&db.plain_url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    holder.batch_execute("BEGIN; LOCK TABLE a IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let out = bin(&["--json", "--vacuum", "--analyze", "--lock-timeout", "200ms"], Some(&db.url())).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    assert_eq!(report["status"], "warning");
    assert_eq!(report["metrics"]["tables_vacuumed"], 1.0);
    assert_eq!(report["metrics"]["tables_skipped"], 1.0);
    let warning = report["warnings"][0].as_str().unwrap();
    assert!(warning.contains(&format!("locked by pid {pid} (AccessExclusiveLock")), "{warning}");
}

#[tokio::test]
async fn several_steps_print_one_run_report_with_a_report_per_task() {
    let db = seeded().await;
    let (c, conn) = tokio_postgres::connect(&db.plain_url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v int); CREATE INDEX t_v_idx ON t (v); CREATE INDEX t_v_copy ON t (v)",
    )
    .await
    .unwrap();
    let out = bin(&["--json", "--reindex", "--report", "--dry-run"], Some(&db.url())).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    let run: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let reports = run["tasks"].as_array().unwrap();
    let tasks: Vec<&str> = reports.iter().map(|r| r["task"].as_str().unwrap()).collect();
    assert_eq!(tasks, ["index-rebuild", "performance-analysis"], "only the named steps run");
    assert_eq!(reports[0]["metrics"]["indexes_rebuilt"], 0.0);
    let findings = reports[1]["items"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["check"] == "duplicate_index" && f["severity"] == "medium"), "{stdout}");

    let out = bin(&["--report"], Some(&db.url())).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[medium] duplicate_index \"public\".\"t_v_"), "{stdout}");
    assert!(stdout.contains("performance-analysis: warning"), "{stdout}");
    assert!(!stdout.contains("database-optimization"), "{stdout}");

    let out = bin(&["--capacity", "--audit", "--json"], Some(&db.url())).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let run: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let tasks: Vec<String> =
        run["tasks"].as_array().unwrap().iter().map(|t| t["task"].as_str().unwrap().to_owned()).collect();
    assert_eq!(tasks, ["pg-security-audit", "capacity-planning"], "{stdout}");
}

#[tokio::test]
async fn amcheck_runs_its_own_task_and_says_when_the_extension_is_missing() {
    let db = seeded().await;
    let (c, conn) = tokio_postgres::connect(&db.plain_url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
    let out = bin(&["--amcheck", "--json"], Some(&db.url())).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    assert_eq!((report["task"].as_str(), report["status"].as_str()), (Some("index-integrity"), Some("warning")));
    assert!(report["warnings"][0].as_str().unwrap().contains("amcheck is not installed"), "{report}");
    c.batch_execute("CREATE EXTENSION amcheck").await.unwrap();
    let out = bin(&["--amcheck"], Some(&db.url())).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("index-integrity: ok") && stdout.contains("indexes_corrupt=0"), "{stdout}");
    assert!(!stdout.contains("database-optimization"), "{stdout}");
}
