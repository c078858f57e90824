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
