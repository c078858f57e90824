//! Runs the `maint` binary as an operator would.

use std::process::Command;

fn maint(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_maint"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env_remove("MAINT_CALENDAR")
        .output()
        .expect("run maint");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn calendar_lists_the_next_windows_of_the_shipped_plan() {
    let (code, out, err) = maint(&["calendar", "--from", "2026-05-04T00:00:00Z", "--json", "--count", "2"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let monthly = &v["windows"][2];
    assert_eq!(monthly["window"], "monthly");
    assert_eq!(monthly["next"][0], "2026-06-07T02:00:00Z");
    assert_eq!(monthly["next"][1], "2026-07-05T02:00:00Z");
    assert_eq!(monthly["tasks"][0]["impact"], "downtime");
    assert_eq!(v["windows"][0]["next"][0], "2026-05-04T02:00:00Z");
    assert_eq!(v["windows"][1]["next"][0], "2026-05-10T03:00:00Z");
    let (code, text, _) = maint(&["calendar", "--from", "2026-05-04T00:00:00Z"]);
    assert_eq!(code, 0);
    assert!(text.contains("monthly (0 2 * * SUN#1, 240 min, impact downtime): next 2026-06-07T02:00:00Z"), "{text}");
    assert!(text.contains("  - Index Rebuild [index-rebuild] impact read_only"), "{text}");
}

#[test]
fn calendar_reads_toml_and_exports_icalendar() {
    let (code, out, err) =
        maint(&["calendar", "--config", "deploy/maintenance.toml", "--ical", "--from", "2026-11-24T00:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("BEGIN:VCALENDAR"), "{out}");
    assert_eq!(out.matches("BEGIN:VEVENT").count(), 3);
    assert!(out.contains("RRULE:FREQ=MONTHLY;BYDAY=1SU"));
}

#[test]
fn a_bad_plan_exits_2_with_one_line_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("maint-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/maintenance.yaml")).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, plan.replacen("\"02:00 UTC\"", "\"25:00 UTC\"", 1)).unwrap();
    let (code, out, err) = maint(&["calendar", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("maint: daily_maintenance.time: \"25:00 UTC\""), "{err}");
    let (code, _, err) = maint(&["calendar", "--config", "/nonexistent/plan.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /nonexistent/plan.yaml"), "{err}");
    let (code, _, err) = maint(&["calendar", "--from", "yesterday"]);
    assert_eq!(code, 2, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

mod run {
    //! `maint run` end to end against the testkit's PostgreSQL and S3.

    use maint_backup::{Compression, CreateOptions};
    use maint_core::Secret;
    use maint_testkit::{ACCESS_KEY, Postgres, REGION, S3, SECRET_KEY, TestBucket, TestDb, aindusdb};

    /// Documents in each test's AindusDB fixture: every kind of index gets pages, and the
    /// fixture builds in a few seconds.
    const DOCS: u32 = 300;

    struct Env {
        redis: maint_testkit::TestRedis,
        db: TestDb,
        bucket: TestBucket,
        dir: std::path::PathBuf,
    }

    async fn env() -> Env {
        let db = Postgres::shared().await.fresh_database().await;
        aindusdb::create(&db, DOCS).await;
        let bucket = S3::shared().await.fresh_bucket().await;
        let store = bucket.store();
        let mut opts = CreateOptions::new(Secret::new(db.url()));
        opts.compression = Compression::Gzip;
        maint_backup::create(&store, &opts, &Default::default()).await.unwrap();
        let dir = std::env::temp_dir().join(format!("maint-run-{}-{}", std::process::id(), db.name));
        std::fs::create_dir_all(&dir).unwrap();
        let redis = maint_testkit::Redis::shared().await.fresh_db().await;
        let client = maint_testkit::deadpool_redis::redis::Client::open(redis.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let old = (std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let fresh = old + 3 * 86400;
        let _: () = maint_testkit::deadpool_redis::redis::pipe()
            .hset("session:old", "last_access", old)
            .hset("session:fresh", "last_access", fresh)
            .query_async(&mut conn)
            .await
            .unwrap();
        Env { redis, db, bucket, dir }
    }

    fn write_config(e: &Env, store: &str) -> std::path::PathBuf {
        let path = e.dir.join("maint.toml");
        let text = format!(
            "calendar = \"deploy/maintenance.yaml\"\nlock_file = \"{dir}/run.lock\"\nmetrics_textfile = \"{dir}/maint.prom\"\n\
             [notify]\ntargets = [\"log://stderr\"]\n[health]\nredis_url = \"{redis}\"\n[logs]\npaths = [\"{dir}/app.log\"]\n[database]\nurl = \"{db}\"\n[backup]\nstore = \"{store}\"\nrolling_days = 7\n\
             [database.amcheck]\ncreate_extension = true\n[security]\nfail_on = \"never\"\n",
            dir = e.dir.display(),
            db = e.db.url(),
            redis = e.redis.url,
        );
        std::fs::write(&path, text).unwrap();
        // The test Redis has no password: the scans report it (asserted) without failing the
        // runs (`fail_on = "never"`); `security_scan_fails_on_the_open_test_redis` checks the
        // default threshold. The file holds secrets: owner-only, or the scan rightly objects.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        path
    }

    async fn maint(e: &Env, args: &[&str]) -> (i32, serde_json::Value, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_maint"))
            .args(args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .env("AWS_ENDPOINT", &e.bucket.endpoint)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", REGION)
            .env("AWS_ALLOW_HTTP", "true")
            .env_remove("MAINT_DATABASE_URL")
            .env_remove("MAINT_BACKUP_STORE")
            .env_remove("MAINT_CONFIG")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout} / {stderr}"));
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    fn task<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
        report["tasks"].as_array().unwrap().iter().find(|t| t["task"] == id).unwrap()
    }

    #[tokio::test]
    async fn security_scan_fails_on_the_open_test_redis() {
        let e = env().await;
        let cfg = write_config(&e, &format!("s3://{}", e.bucket.bucket));
        let text = std::fs::read_to_string(&cfg).unwrap().replace("fail_on = \"never\"", "fail_on = \"high\"");
        std::fs::write(&cfg, text).unwrap();
        let (code, report, err) =
            maint(&e, &["task", "security-scan", "--json", "--config", cfg.to_str().unwrap()]).await;
        assert_eq!(code, 1, "{report} {err}");
        let scan = &report; // `maint task --json` prints the TaskReport
        assert_eq!(scan["task"], "security-scan", "{scan}");
        assert_eq!(scan["status"], "failed", "{scan}");
        let error = scan["error"].as_str().unwrap_or_else(|| panic!("{scan}"));
        assert!(error.contains("of severity high or worse"), "{scan}");
        assert!(
            scan["metrics"]["findings_high"].as_f64().unwrap() + scan["metrics"]["findings_critical"].as_f64().unwrap()
                >= 1.0
        );
        assert!(!report.to_string().contains(&e.db.password), "no secret in the report");
    }

    #[tokio::test]
    async fn weekly_runs_for_real_and_writes_metrics() {
        let e = env().await;
        let cfg = write_config(&e, &format!("s3://{}", e.bucket.bucket));
        let (code, report, err) = maint(&e, &["run", "weekly", "--json", "--config", cfg.to_str().unwrap()]).await;
        assert_eq!(code, 0, "{report} {err}");
        assert_eq!(report["window"], "weekly");
        assert_eq!(task(&report, "database-optimization")["status"], "ok", "{report}");
        let optimization = task(&report, "database-optimization");
        assert_eq!(optimization["metrics"]["tables_vacuumed"], aindusdb::TABLES.len() as f64, "{optimization}");
        let vacuumed: Vec<&str> = optimization["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["step"] == "table" && i["outcome"] == "done")
            .filter_map(|i| i["table"].as_str())
            .collect();
        assert!(vacuumed.contains(&"\"aindusdb\".\"documents\""), "the churned documents: {optimization}");
        let verification = task(&report, "backup-verification");
        assert_eq!(verification["status"], "ok", "{report}");
        assert_eq!(verification["metrics"]["backups_verified"], 1.0);
        let perf = task(&report, "performance-analysis");
        assert!(perf["status"] == "ok" || perf["status"] == "warning", "{perf}");
        let scan = task(&report, "security-scan");
        assert_eq!(scan["status"], "warning", "{scan}");
        let checks: Vec<&str> = scan["items"].as_array().unwrap().iter().filter_map(|i| i["check"].as_str()).collect();
        assert!(checks.contains(&"redis-default-user-nopass"), "the open test Redis is reported: {scan}");
        assert!(!checks.contains(&"config-permissions"), "{scan}");
        let prom = std::fs::read_to_string(e.dir.join("maint.prom")).unwrap();
        assert!(prom.contains("maint_task_status{task=\"backup-verification\",window=\"weekly\"} 0"), "{prom}");
        assert!(prom.contains("maint_task_last_success_timestamp_seconds{task=\"database-optimization\"}"));
        assert!(!prom.contains(&e.db.password), "no secret in the metrics");

        // The monthly window carries out the planned update: the stand-in (local images from
        // scripts/test-env) to 1.1.0 on one Docker replica, admitted once its readiness answers.
        let service = format!("maint-run-{}", e.db.name);
        let update = e.dir.join("maint-update.toml");
        let run_id = std::env::var("MAINT_TEST_RUN_ID").unwrap_or_else(|_| "none".into());
        std::fs::write(
            &update,
            format!(
                "[update]\nimage = \"local/aindusdb-standin\"\nworkloads = [\"{service}\"]\nrollout_timeout_secs = 120\n\
                 [docker]\nservices = [{{ name = \"{service}\", replicas = 1, port = 8080, readiness_path = \"/health/ready\", \
                 labels = {{ maint-testkit = \"1\", \"maint-testkit.run\" = \"{run_id}\" }} }}]\n"
            ),
        )
        .unwrap();
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(&format!(
            "[system_updates]\nconfig = \"{}\"\nto = \"1.1.0\"\nfrom = \"1.0.0\"\n",
            update.display()
        ));
        std::fs::write(&cfg, text).unwrap();
        let (code, report, err) =
            maint(&e, &["run", "monthly", "--force", "--json", "--config", cfg.to_str().unwrap()]).await;
        let running = std::process::Command::new("docker")
            .args(["ps", "--filter", &format!("label=maint.release.service={service}"), "--format", "{{.Image}}"])
            .output()
            .unwrap();
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("docker ps -aq --filter label=maint.release.service={service} | xargs -r docker rm -f"))
            .output();
        assert_eq!(code, 0, "{report} {err}");
        let updates = task(&report, "system-updates");
        assert_eq!(updates["status"], "ok", "{updates}");
        assert!(
            updates["items"].as_array().unwrap().iter().any(|i| i["step"] == "rollout" && i["status"] == "ok"),
            "{updates}"
        );
        assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "local/aindusdb-standin:1.1.0");
        for id in ["index-rebuild", "full-security-audit", "capacity-planning"] {
            let t = task(&report, id);
            assert!(t["status"] == "ok" || t["status"] == "warning", "{id}: {t}");
        }
        let capacity = task(&report, "capacity-planning");
        assert!(!capacity["metrics"].as_object().unwrap().is_empty());
        let sized: Vec<&str> =
            capacity["items"].as_array().unwrap().iter().filter_map(|i| i["name"].as_str()).collect();
        for name in ["\"aindusdb\".\"documents\"", "\"aindusdb\".\"idx_documents_embedding_text\""] {
            assert!(sized.contains(&name), "{name}: {capacity}");
        }

        std::fs::write(e.dir.join("app.log"), "line 1\nline 2\n").unwrap();
        let (code, report, err) = maint(&e, &["run", "daily", "--json", "--config", cfg.to_str().unwrap()]).await;
        assert_eq!(code, 0, "{report} {err}");
        let health = task(&report, "health-checks");
        assert!(health["status"] == "ok" || health["status"] == "warning", "{report}");
        assert_eq!(health["metrics"]["checks_passed"], 3.0, "PostgreSQL, Redis and the store: {health}");
        let cache = task(&report, "cache-cleanup");
        assert_eq!(cache["status"], "ok", "{report}");
        assert_eq!(cache["metrics"]["keys_deleted"], 1.0, "the old session goes: {cache}");
        let logs = task(&report, "log-rotation");
        assert_eq!(logs["status"], "ok", "{report}");
        assert_eq!(logs["metrics"]["files_rotated"], 1.0, "{logs}");
        let collect = task(&report, "metrics-collection");
        assert_eq!(collect["status"], "ok", "{report}");
        assert_eq!(collect["metrics"]["aindusdb_backups"], 1.0);
    }

    #[tokio::test]
    async fn checklists_gate_on_a_fresh_verified_backup_and_never_pass_manual_items() {
        let e = env().await;
        let cfg = write_config(&e, &format!("s3://{}", e.bucket.bucket));
        let cfg = cfg.to_str().unwrap();
        // The backup exists but was never verified: the pre-checklist fails.
        let (code, report, _) = maint(&e, &["checklist", "pre", "--json", "--config", cfg]).await;
        assert_eq!(code, 1, "{report}");
        assert!(report["error"].as_str().unwrap().contains("no verified backup"), "{report}");
        let items = report["items"].as_array().unwrap();
        assert!(items.iter().filter(|i| i["state"] == "manual").count() >= 2);
        assert!(items.iter().all(|i| i["state"] != "passed" || !i["item"].as_str().unwrap().contains("stakeholders")));
        // Verify it (weekly window), then the gate opens.
        let (code, _, _) = maint(&e, &["run", "weekly", "--json", "--config", cfg]).await;
        assert_eq!(code, 0);
        let (code, report, _) = maint(&e, &["checklist", "pre", "--json", "--config", cfg]).await;
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["status"], "warning", "manual items are warnings, never passes: {report}");
        assert_eq!(report["metrics"]["items_failed"], 0.0);
        let state = |report: &serde_json::Value, prefix: &str| {
            let items = report["items"].as_array().unwrap();
            let i = items.iter().find(|i| i["item"].as_str().unwrap().starts_with(prefix)).unwrap();
            (i["state"].as_str().unwrap().to_owned(), i["detail"].as_str().unwrap().to_owned())
        };
        let (integrity, detail) = state(&report, "data integrity");
        assert_eq!(integrity, "passed", "{report}");
        assert!(detail.ends_with("indexes checked, none corrupt"), "{detail}");
        // A stale backup fails the gate.
        let (code, report, _) =
            maint(&e, &["checklist", "pre", "--json", "--config", cfg, "--max-backup-age-hours", "0"]).await;
        assert_eq!(code, 1);
        assert!(report["error"].as_str().unwrap().contains("h old"), "{report}");
        // After the window: a restore test's scratch database left by a crash fails the
        // post-checklist, by name; once it is gone the gate opens.
        let admin = e.db.pool().get().await.unwrap();
        admin.batch_execute("CREATE DATABASE maint_restore_20200101000000000_1").await.unwrap();
        let (code, report, _) = maint(&e, &["checklist", "post", "--json", "--config", cfg]).await;
        admin.batch_execute("DROP DATABASE maint_restore_20200101000000000_1").await.unwrap();
        assert_eq!(code, 1, "{report}");
        let (leftovers, detail) = state(&report, "no leftovers");
        assert_eq!(leftovers, "failed");
        assert!(detail.contains("scratch database maint_restore_20200101000000000_1"), "{detail}");
        let (code, report, _) = maint(&e, &["checklist", "post", "--json", "--config", cfg]).await;
        assert_eq!(code, 0, "{report}");
        assert_eq!(state(&report, "no leftovers").0, "passed", "{report}");
    }

    #[tokio::test]
    async fn a_service_down_fails_its_task_and_the_others_still_run() {
        let e = env().await;
        let cfg = write_config(&e, "s3://no-such-bucket-here");
        let (code, report, _) = maint(&e, &["run", "weekly", "--json", "--config", cfg.to_str().unwrap()]).await;
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["status"], "failed");
        assert_eq!(task(&report, "backup-verification")["status"], "failed");
        assert_eq!(task(&report, "database-optimization")["status"], "ok", "the others ran: {report}");
    }

    #[tokio::test]
    async fn a_second_run_reports_the_lock_holder() {
        let e = env().await;
        let cfg = write_config(&e, &format!("s3://{}", e.bucket.bucket));
        let holder = e.db.pool().get().await.unwrap();
        let key: i64 = 0x6d61_696e_7472_756e;
        let got: bool = holder.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await.unwrap().get(0);
        assert!(got);
        let (code, report, _) = maint(&e, &["run", "weekly", "--json", "--config", cfg.to_str().unwrap()]).await;
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["status"], "skipped");
        assert_eq!(report["tasks"][0]["status"], "skipped");
        let why = report["tasks"][0]["warnings"][0].as_str().unwrap();
        assert!(why.contains("another maint run holds the database run lock: pid"), "{why}");
        assert_eq!(report["tasks"].as_array().unwrap().len(), 1, "no task ran");
    }
}

#[test]
fn deploy_manifests_match_the_calendar() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let cal = maint_core::Calendar::from_path(format!("{root}/deploy/maintenance.yaml")).unwrap();
    for window in ["daily", "weekly", "monthly"] {
        let text = std::fs::read_to_string(format!("{root}/deploy/kubernetes/cronjob-{window}.yaml")).unwrap();
        let job: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(job["kind"], "CronJob");
        let spec = &job["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Forbid", "{window}");
        assert!(spec["startingDeadlineSeconds"].as_u64().unwrap() > 0);
        assert_eq!(spec["timeZone"], "Etc/UTC");
        let args: Vec<&str> = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(&args[..2], ["run", window]);
        let pattern = cal.window(window).unwrap().cron_pattern();
        if window == "monthly" {
            // A cron line cannot say "first Sunday": fire every Sunday, let maint decide.
            assert_eq!(pattern, "0 2 * * SUN#1");
            assert_eq!(spec["schedule"], "0 2 * * 0");
            assert!(args.contains(&"--only-in-window"));
        } else {
            assert_eq!(spec["schedule"].as_str().unwrap().replace(" 0", " SUN"), pattern);
        }
        let timer = std::fs::read_to_string(format!("{root}/deploy/systemd/aindusdb-maint-{window}.timer")).unwrap();
        assert!(timer.contains("OnCalendar="));
    }
    let config = std::fs::read_to_string(format!("{root}/deploy/kubernetes/config.yaml")).unwrap();
    let docs: Vec<serde_json::Value> =
        serde_norway::Deserializer::from_str(&config).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["kind"], "Secret");
}

/// Issue 16 L13: under `ProtectSystem=strict` every directory the shipped config writes must
/// be in `ReadWritePaths=` (or the log rotation fails with a read-only file system).
#[test]
fn systemd_units_can_write_every_directory_the_shipped_config_writes() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let config: toml::Table =
        toml::from_str(&std::fs::read_to_string(format!("{root}/deploy/maint.toml")).unwrap()).unwrap();
    let str_at = |path: &[&str]| {
        let mut v = &toml::Value::Table(config.clone());
        for key in path {
            v = v.get(*key).unwrap_or_else(|| panic!("deploy/maint.toml has {path:?}"));
        }
        v.as_str().unwrap().to_owned()
    };
    let mut written =
        vec![str_at(&["metrics_textfile"]), str_at(&["collect", "textfile"]), str_at(&["collect", "snapshots"])];
    for log in config["logs"]["paths"].as_array().unwrap() {
        written.push(log.as_str().unwrap().to_owned());
    }
    let dirs: Vec<std::path::PathBuf> =
        written.iter().map(|p| std::path::Path::new(p).parent().unwrap().to_owned()).collect();
    for window in ["daily", "weekly", "monthly"] {
        let unit = std::fs::read_to_string(format!("{root}/deploy/systemd/aindusdb-maint-{window}.service")).unwrap();
        let setting = |key: &str| unit.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
        assert_eq!(setting("ProtectSystem="), Some("strict"), "{window}");
        assert_eq!(setting("PrivateTmp="), Some("yes"), "{window}");
        assert_eq!(setting("RuntimeDirectory="), Some("aindusdb-maint"), "{window}: the run lock's directory");
        assert_eq!(setting("StateDirectory="), Some("aindusdb-maint"), "{window}: the log rotation state");
        let writable: Vec<&str> = setting("ReadWritePaths=").unwrap_or("").split_whitespace().collect();
        for dir in &dirs {
            assert!(
                writable.iter().any(|w| dir.starts_with(w)),
                "{window}: {} is not in ReadWritePaths",
                dir.display()
            );
        }
    }
}

#[test]
fn only_in_window_skips_outside_the_window() {
    let (code, out, err) = maint(&["run", "monthly", "--only-in-window", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cal =
        maint_core::Calendar::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/maintenance.yaml")).unwrap();
    if !cal.window("monthly").unwrap().contains(maint_core::chrono::Utc::now()) {
        assert_eq!(report["tasks"][0]["task"], "window");
        assert_eq!(report["tasks"][0]["status"], "skipped");
        assert!(report["tasks"][0]["warnings"][0].as_str().unwrap().contains("not inside the monthly window"));
    }
}

/// `[system_updates]` drives the same procedure as `maint-update run`: a dry run plans the
/// planned update step by step; a bad version is refused before anything runs (exit 2).
#[test]
fn system_updates_plans_the_configured_update() {
    let dir = std::env::temp_dir().join(format!("maint-updates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let update = dir.join("maint-update.toml");
    std::fs::write(&update, "[update]\nimage = \"registry.example/aindusdb\"\nworkloads = [\"api\", \"worker\"]\n")
        .unwrap();
    let cfg = dir.join("maint.toml");
    let write = |to: &str| {
        let text = format!(
            "lock_file = \"{dir}/run.lock\"\n[system_updates]\nconfig = \"{update}\"\nto = \"{to}\"\nfrom = \"1.4.2\"\n",
            dir = dir.display(),
            update = update.display()
        );
        std::fs::write(&cfg, text).unwrap();
    };
    write("1.5.0");
    let (code, out, err) = maint(&["task", "system-updates", "--dry-run", "--json", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out} {err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["task"], "system-updates");
    let steps: Vec<(&str, &str)> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["step"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    assert_eq!(steps[0], ("version", "ok"), "{report}");
    assert!(report["items"][0]["detail"].as_str().unwrap().contains("minor update 1.4.2 -> 1.5.0"), "{report}");
    let rollout = report["items"].as_array().unwrap().iter().find(|i| i["step"] == "rollout").unwrap();
    assert!(
        rollout["detail"].as_str().unwrap().contains("registry.example/aindusdb:1.5.0 on api, worker"),
        "{rollout}"
    );

    write("2.0.0");
    let (code, out, _) = maint(&["task", "system-updates", "--dry-run", "--json", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "a major update without a change request is refused: {out}");
    write("2.0");
    let (code, _, err) = maint(&["task", "system-updates", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("maint: system_updates.to: ") && err.trim_end().lines().count() == 1, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A scratch directory for one test, removed first if a previous run left it.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("maint-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A secret given with the wrong type (or unquoted) in any field that carries one never
/// reaches stderr (toml's messages quote the value, its Display prints the line); the
/// error names the field and the expected type, exit 2.
#[test]
fn a_config_type_error_names_the_field_and_never_the_value() {
    let dir = scratch("config-secret");
    let cfg = dir.join("maint.toml");
    let cases: &[(&str, &str, &str)] = &[
        ("[database]\nurl = [\"postgresql://maint:SECRET@db/aindusdb\"]\n", "database.url", "expected a string"),
        ("[database]\nurl = postgresql://maint:SECRET@db/aindusdb\n", "database.url", "quoted"),
        ("[backup]\nadmin_url = [\"postgresql://restore:SECRET@scratch/postgres\"]\n", "backup.admin_url", "expected"),
        (
            "[notify]\ntargets = \"slack://hooks.slack.com/services/T/B/SECRET\"\n",
            "notify.targets",
            "expected a sequence",
        ),
        (
            "notify.targets = \"webhook://hooks.example/x?secret=whsec_SECRET\"\n",
            "notify.targets",
            "expected a sequence",
        ),
        ("notify = { targets = [\"webhook://h/x?secret=whsec_SECRET\", 7] }\n", "notify.targets[1]", "expected"),
        ("[health]\nredis_url = [\"redis://:SECRET@redis:6379/0\"]\n", "health.redis_url", "expected"),
        ("[health]\ndatabase_url = { url = \"postgresql://u:SECRET@db/x\" }\n", "health.database_url", "expected"),
        ("[collect]\ndatabase_url = [\"postgresql://u:SECRET@db/x\"]\n", "collect.database_url", "expected"),
        ("[collect]\nredis_url = [\"redis://:SECRET@redis\"]\n", "collect.redis_url", "expected"),
        ("[collect]\npushgateway = [\"https://u:SECRET@push\"]\n", "collect.pushgateway", "expected"),
        ("[cache]\nredis_url = [\"redis://:SECRET@redis\"]\n", "cache.redis_url", "expected"),
        ("[security]\ntls_endpoints = \"https://u:SECRET@grafana\"\n", "security.tls_endpoints", "expected a sequence"),
        ("[logs]\nmode = \"SECRET\"\n", "logs.mode", "unknown variant"),
    ];
    for (text, field, expected) in cases {
        std::fs::write(&cfg, text).unwrap();
        let (code, out, err) = maint(&["config-check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}: {out} {err}");
        assert!(!err.contains("SECRET") && !out.contains("SECRET"), "{text}: the value is printed: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("maint: {field}: ")), "{text}: the field is not named: {err}");
        assert!(err.contains(expected) && err.contains(cfg.to_str().unwrap()), "{text}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Durations too large for the clock, from a flag or from the plan, exit 2 with the
/// field's name (they panicked in chrono).
#[test]
fn huge_durations_exit_2_naming_the_field() {
    let huge = i64::MAX.to_string();
    let (code, _, err) = maint(&["checklist", "pre", "--max-backup-age-hours", &huge]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("maint: --max-backup-age-hours: "), "{err}");
    let (code, _, err) = maint(&["daemon", "--grace-minutes", &huge]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("maint: --grace-minutes: "), "{err}");
    let dir = scratch("huge-plan");
    let plan = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/maintenance.yaml")).unwrap();
    let bad = dir.join("plan.yaml");
    std::fs::write(&bad, plan.replacen("\"15 minutes\"", "\"9999999999999999 days\"", 1)).unwrap();
    let (code, _, err) = maint(&["calendar", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("maint: daily_maintenance.duration: "), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A lock directory everyone can write (no sticky bit) is refused: exit 1, one line
/// naming the directory, before any task runs.
#[test]
fn a_lock_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = scratch("lock-dir");
    let locks = dir.join("locks");
    std::fs::create_dir(&locks).unwrap();
    std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = dir.join("maint.toml");
    std::fs::write(&cfg, format!("lock_file = \"{}/run.lock\"\n[logs]\npaths = []\n", locks.display())).unwrap();
    let (code, out, err) = maint(&["run", "daily", "--dry-run", "--json", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out} {err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("refusing {}", locks.display())) && err.contains("writable"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A full disk is the world failing, not bad input: a run that cannot create its lock file
/// exits 1 (it exited 2, "bad input"), with one line naming the file and the cause. The disk
/// is a tmpfs with no block and no inode left; mounting one needs root.
#[test]
fn a_full_disk_exits_1_not_2() {
    struct Mount(std::path::PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let dir = scratch("full-disk");
    if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&dir).unwrap()) != 0 {
        eprintln!("not root: cannot mount a full disk; checked as root in CI");
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    }
    let disk = dir.join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k,nr_inodes=3,mode=0700", "tmpfs"])
        .arg(&disk)
        .status();
    assert!(mounted.unwrap().success(), "mount a tmpfs on {}", disk.display());
    let mount = Mount(disk.clone());
    let locks = disk.join("locks");
    std::fs::create_dir(&locks).unwrap();
    let fill = std::fs::write(disk.join("fill"), vec![0u8; 64 << 10]).unwrap_err();
    assert_eq!(fill.raw_os_error(), Some(28), "the disk is full: {fill}");
    let cfg = dir.join("maint.toml");
    std::fs::write(&cfg, format!("lock_file = \"{}/run.lock\"\n[logs]\npaths = []\n", locks.display())).unwrap();
    let (code, out, err) = maint(&["run", "daily", "--dry-run", "--json", "--config", cfg.to_str().unwrap()]);
    drop(mount);
    assert_eq!(code, 1, "{out} {err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{}/run.lock", locks.display())) && err.contains("No space left on device"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
