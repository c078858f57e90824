//! Runs the `maint-backup` binary against a real PostgreSQL and S3 server.

use chrono::{TimeDelta, Utc};
use maint_backup::object_store::path::Path;
use maint_backup::object_store::{ObjectStoreExt, PutPayload};
use maint_backup::{Compression, backup_key, manifest_key};
use maint_testkit::{ACCESS_KEY, Postgres, REGION, S3, SECRET_KEY};

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("{e}: {} / {}", self.out, self.err))
    }
}

async fn maint_backup(endpoint: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_maint-backup"))
        .args(args)
        .env("AWS_ENDPOINT", endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_ALLOW_HTTP", "true")
        .env_remove("MAINT_BACKUP_STORE")
        .env_remove("MAINT_DATABASE_URL")
        .env_remove("MAINT_CONFIG")
        .env_remove("MAINT_BACKUP_CLIENT_DIR")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn create_verify_restore_prune_through_the_binary() {
    let db = Postgres::shared().await.fresh_database().await;
    db.pool()
        .get()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE sessions (id int PRIMARY KEY, data text); INSERT INTO sessions SELECT g, md5(g::text) FROM generate_series(1, 1000) g;")
        .await
        .unwrap();
    let bucket = S3::shared().await.fresh_bucket().await;
    let store = format!("s3://{}/prod", bucket.bucket);
    let ep = bucket.endpoint.as_str();
    let admin = Postgres::shared().await.url("postgres");
    let url = db.url();

    let r =
        maint_backup(ep, &["--store", &store, "--json", "create", "--database-url", &url, "--compress", "zstd"]).await;
    assert_eq!(r.code, 0, "{} {}", r.out, r.err);
    let report = r.json();
    assert_eq!(report["task"], "backup-create");
    assert_eq!(report["metrics"]["tables"], 1.0);
    assert!(!r.out.contains("maint-test"), "no password in the report");

    let r = maint_backup(ep, &["--store", &store, "--json", "verify", "--prefix", "backups"]).await;
    assert_eq!(r.code, 0, "{} {}", r.out, r.err);
    assert_eq!(r.json()["metrics"]["backups_verified"], 1.0);

    let r = maint_backup(ep, &["--store", &store, "--json", "restore-test", "--admin-url", &admin]).await;
    assert_eq!(r.code, 0, "{} {}", r.out, r.err);
    let report = r.json();
    assert_eq!(report["metrics"]["tables_compared"], 1.0);
    assert_eq!(report["metrics"]["tables_mismatched"], 0.0);
    assert!(report["metrics"]["restore_seconds"].as_f64().unwrap() > 0.0);

    // Yesterday (the default) has no backups: a warning, not a failure.
    let r = maint_backup(ep, &["--store", &store, "verify"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("warning: no backups under backups/"), "{}", r.out);

    // A policy that keeps nothing is refused.
    let mut prune = [
        "--store",
        &store,
        "--json",
        "prune",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--min-age-days",
        "0",
    ];
    let r = maint_backup(ep, &prune).await;
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("keep_daily, keep_weekly and keep_monthly are all 0"), "{}", r.err);
    // Retention keeps the newest verified backup.
    prune[5] = "1";
    let r = maint_backup(ep, &prune).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.json()["metrics"]["backups_deleted"], 0.0);
    assert!(r.json()["items"][0].as_str().unwrap().contains("newest verified backup"));

    let r = maint_backup(ep, &["--store", &store, "list"]).await;
    assert!(r.out.contains(".dump.zst  ") && r.out.contains("bytes"), "{}", r.out);
}

#[tokio::test]
async fn bad_input_exits_2_with_one_line() {
    let ep = "http://127.0.0.1:9";
    for (args, want) in [
        (vec!["--store", "ftp://bucket/x", "list"], "maint-backup: store: \"ftp://bucket/x\": unknown scheme \"ftp\""),
        (vec!["list"], "maint-backup: --store: required"),
        (vec!["--store", "memory://", "create"], "maint-backup: --database-url: required"),
        (
            vec!["--store", "memory://", "--config", "/nonexistent.toml", "list"],
            "maint-backup: --config: cannot read /nonexistent.toml",
        ),
    ] {
        let r = maint_backup(ep, &args).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.err);
        assert!(r.err.starts_with(want), "{args:?}: {}", r.err);
        assert_eq!(r.err.trim().lines().count(), 1, "{}", r.err);
    }
    let r = maint_backup(ep, &["--store", "memory://", "verify", "--date", "2026-13-45"]).await;
    assert_eq!(r.code, 2, "{}", r.err);
    let r = maint_backup(
        ep,
        &["--store", "memory://", "restore-test", "--admin-url", "postgresql://x@127.0.0.1:9/postgres"],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("no complete backup in the store"), "{}", r.err);
}

#[tokio::test]
async fn prune_keeps_each_database_s_slots_and_what_may_still_be_uploading() {
    let bucket = S3::shared().await.fresh_bucket().await;
    let s3 = bucket.store();
    let now = Utc::now();
    let put = |key: String| {
        let s3 = s3.clone();
        async move { s3.put(&Path::from(key.as_str()), PutPayload::from_static(b"x")).await.unwrap() }
    };
    // Ten nights of backups of two databases, "b" always a few minutes after "a".
    for day in 1..=10 {
        for (db, minutes) in [("a", 0), ("b", 5)] {
            let key = backup_key(db, now - TimeDelta::days(day) + TimeDelta::minutes(minutes), Compression::Gzip);
            put(manifest_key(&key)).await;
            put(key).await;
        }
    }
    // A three-hour dump of "a" whose upload just ended: its manifest is not written yet.
    let uploading = backup_key("a", now - TimeDelta::hours(3), Compression::Gzip);
    put(uploading.clone()).await;

    let store = format!("s3://{}", bucket.bucket);
    let args = [
        "--store",
        &store,
        "--json",
        "prune",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
        "--min-age-days",
        "0",
    ];
    let r = maint_backup(&bucket.endpoint, &args).await;
    assert_eq!(r.code, 0, "{} {}", r.out, r.err);
    let report = r.json();
    let items: Vec<&str> = report["items"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    for db in ["a", "b"] {
        let mine = |verb: &str| {
            items
                .iter()
                .filter(|i| i.starts_with(verb) && i.contains(&format!("/{db}-2")) && !i.contains(&uploading))
                .count()
        };
        assert_eq!((mine("keep "), mine("deleted ")), (7, 3), "{db}: {items:#?}");
    }
    let kept = items.iter().find(|i| i.contains(&uploading)).unwrap();
    assert!(kept.starts_with("keep ") && kept.contains("may still be uploading"), "{kept}");
    assert!(s3.head(&Path::from(uploading.as_str())).await.is_ok());
}

#[tokio::test]
async fn prune_refuses_a_policy_that_keeps_nothing_and_durations_out_of_range() {
    let ep = "http://127.0.0.1:9";
    for (args, want) in [
        (
            vec!["prune", "--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0"],
            "maint-backup: retention: keep_daily, keep_weekly and keep_monthly are all 0",
        ),
        (vec!["prune", "--min-age-days", "4000000000"], "maint-backup: min_age_days: 4000000000 days"),
        (vec!["prune", "--min-age-days", "99999999999"], "maint-backup: invalid value '99999999999'"),
        (
            vec!["verify", "--prefix", "backups", "--rolling-days", "4000000000"],
            "maint-backup: rolling_days: 4000000000 days",
        ),
    ] {
        let mut all = vec!["--store", "memory://"];
        all.extend(&args);
        let r = maint_backup(ep, &all).await;
        assert_eq!(r.code, 2, "{args:?}: {}", r.err);
        assert!(r.err.starts_with(want), "{args:?}: {}", r.err);
        assert_eq!(r.err.trim().lines().count(), 1, "{}", r.err);
    }
}

/// Every file under `dir`, with its size.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = e.metadata().unwrap();
        if meta.is_dir() {
            out.extend(files(&e.path()));
        } else {
            out.push((e.path(), meta.len()));
        }
    }
    out
}

/// SIGTERM (how systemd and Kubernetes stop a job) once the upload has started: the
/// library's cancellation stops the dump and aborts the upload, so the store holds nothing
/// (no manifest, no staged part), `list` counts no backup, and the binary says so and exits
/// 1 promptly. It used to die on the signal and leave the staged upload behind.
#[tokio::test]
async fn sigterm_mid_upload_leaves_no_backup_counted() {
    let db = Postgres::shared().await.fresh_database().await;
    // ~24 MB of hex, which pg_dump's compression halves at best: more than one 8 MiB part.
    db.pool()
        .get()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE blobs (id int PRIMARY KEY, data text); INSERT INTO blobs SELECT g, \
             (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 32) i) \
             FROM generate_series(1, 24000) g;",
        )
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("maint-backup-sigterm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("file://{}", dir.display());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_maint-backup"))
        .args(["--store", &store, "create", "--database-url", &db.url(), "--compress", "none"])
        .env_remove("MAINT_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The upload has started when its first part is staged (`<key>#<n>`, not empty yet).
    let started = std::time::Instant::now();
    while !files(&dir).iter().any(|(p, len)| p.to_string_lossy().contains('#') && *len > 0) {
        assert!(started.elapsed().as_secs() < 120, "the upload never started: {:?}", files(&dir));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("stopped within 20 s of SIGTERM")
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{}: {stdout} {stderr}", out.status);
    assert!(stdout.contains("error: cancelled"), "{stdout} {stderr}");
    assert_eq!(files(&dir), vec![], "nothing left in the store");
    let r = maint_backup("http://127.0.0.1:9", &["--store", &store, "--json", "list"]).await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.json()["metrics"]["backups"], 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--client-dir` names the directory of the tools to run, whatever the server's version:
/// the 17 clients against PostgreSQL 17 work, a directory without them is a failure (exit 1).
#[tokio::test]
async fn client_dir_overrides_the_tools_picked_by_version() {
    let pg17 = std::env::var("MAINT_TEST_PG17_CLIENT").expect("run the tests through scripts/test-env");
    let db = Postgres::shared().await.fresh_database().await;
    let bucket = S3::shared().await.fresh_bucket().await;
    let store = format!("s3://{}/prod", bucket.bucket);
    let (ep, url) = (bucket.endpoint.as_str(), db.url());
    let r =
        maint_backup(ep, &["--store", &store, "--client-dir", &pg17, "--json", "create", "--database-url", &url]).await;
    assert_eq!(r.code, 0, "{} {}", r.out, r.err);
    let r =
        maint_backup(ep, &["--store", &store, "--client-dir", "/nonexistent", "create", "--database-url", &url]).await;
    assert_eq!(r.code, 1, "{} {}", r.out, r.err);
    assert!(r.out.contains("pg_dump failed: not found"), "{} {}", r.out, r.err);
}
