//! The `maint-cache-cleanup` binary: contract (exit codes, one-line errors, --json) and a
//! real run against Redis.

use std::process::{Command, Output};

use maint_testkit::Redis;
use maint_testkit::deadpool_redis::redis::{self, AsyncCommands};

fn bin(args: &[&str], env_url: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maint-cache-cleanup"));
    cmd.args(args).env_remove("MAINT_REDIS_URL");
    if let Some(url) = env_url {
        cmd.env("MAINT_REDIS_URL", url);
    }
    cmd.output().expect("run maint-cache-cleanup")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn one_line_error(o: &Output, want: &str) {
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("maint-cache-cleanup: "), "{err}");
    assert!(err.contains(want), "{err} should contain {want}");
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_field() {
    one_line_error(&bin(&["--bogus"], None), "--bogus");
    one_line_error(&bin(&["--max-ops-per-sec", "lots"], None), "--max-ops-per-sec");
    let o = bin(&["--redis-url", "http://app:hunter2@cache:6379"], None);
    one_line_error(&o, "redis_url: not a Redis URL");
    assert!(!stderr(&o).contains("hunter2"));
    let o = bin(&[], Some("mysql://app:hunter2@db"));
    one_line_error(&o, "redis_url");
    assert!(!stderr(&o).contains("hunter2"));

    let dir = std::env::temp_dir().join(format!("maint-cache-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("older_than = \"one day\"\nfield_type = \"unix_seconds\"", "rules[0].older_than"),
        ("older_than = \"1d\"\nfield_type = \"float\"", "rules[0].field_type: unknown field type \"float\""),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad{i}.toml"));
        let text = format!(
            "[cache]\nredis_url = \"redis://127.0.0.1:1/0\"\n[[cache.rules]]\npattern = \"session:*\"\n\
             condition = \"field_older_than\"\nfield = \"last_access\"\naction = \"delete\"\n{body}\n"
        );
        std::fs::write(&file, text).unwrap();
        one_line_error(&bin(&["--config", file.to_str().unwrap()], None), want);
    }
    let empty = dir.join("empty-pattern.toml");
    std::fs::write(
        &empty,
        "[[rules]]\npattern = \" \"\ncondition = \"larger_than\"\nlarger_than_bytes = 9\naction = \"report\"\n",
    )
    .unwrap();
    one_line_error(&bin(&["--config", empty.to_str().unwrap()], None), "rules[0].pattern: empty pattern");
    one_line_error(&bin(&["--config", dir.join("missing.toml").to_str().unwrap()], None), "cannot read");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unreachable_redis_is_a_failed_report_and_exit_1() {
    let o = bin(&["--redis-url", "redis://127.0.0.1:1/0", "--json"], None);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["task"], "cache-cleanup");
    assert_eq!(report["status"], "failed");
    assert!(report["error"].as_str().unwrap().starts_with("cannot connect to Redis at 127.0.0.1:1/0"), "{report}");
}

#[tokio::test]
async fn dry_run_then_real_run_against_redis() {
    let db = Redis::shared().await.fresh_db().await;
    let mut c = db.pool().get().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for i in 0..30 {
        let _: () = c.hset(format!("session:old:{i}"), "last_access", now - 2 * 86_400).await.unwrap();
        let _: () = c.hset(format!("session:new:{i}"), "last_access", now - 60).await.unwrap();
    }
    let _: () = c.hset("veritas:r1", "created_at", "2020-01-01T00:00:00Z").await.unwrap();
    let _: () = c.set("unrelated", "x").await.unwrap();

    // Dry run through MAINT_REDIS_URL: the plan, nothing changed.
    let o = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || bin(&["--dry-run", "--json"], Some(&url))
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["metrics"]["keys_matched"], 31.0);
    assert_eq!(plan["metrics"]["keys_deleted"], 0.0);
    let dbsize: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(dbsize, 62);

    // Real run, flag URL and a rate limit; human output.
    let o = tokio::task::spawn_blocking({
        let url = db.url.clone();
        move || bin(&["--redis-url", &url, "--max-ops-per-sec", "50000"], Some("redis://127.0.0.1:1/0"))
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("cache-cleanup: ok"), "{text}");
    assert!(text.contains("keys_deleted=31"), "{text}");
    assert!(text.contains("delete session:old:"), "{text}");
    let dbsize: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(dbsize, 31);
    assert!(c.exists::<_, bool>("session:new:0").await.unwrap());
    assert!(c.exists::<_, bool>("unrelated").await.unwrap());
}

#[tokio::test]
async fn sigterm_stops_between_batches_and_the_report_says_how_far_it_got() {
    let db = Redis::shared().await.fresh_db().await;
    let mut c = db.pool().get().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let total = 20_000usize;
    for chunk in (0..total).collect::<Vec<_>>().chunks(5000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.hset(format!("session:{i}"), "last_access", now - 2 * 86_400).ignore();
        }
        let _: () = pipe.query_async(&mut c).await.unwrap();
    }
    // Slow on purpose (2000 operations/s: ~20 s for the whole run), then SIGTERM once some
    // keys are gone.
    let child = Command::new(env!("CARGO_BIN_EXE_maint-cache-cleanup"))
        .args(["--redis-url", &db.url, "--max-ops-per-sec", "2000", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        let left: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
        if left < total {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = report["error"].as_str().unwrap();
    assert!(err.starts_with("cancelled on ") && err.contains("during rule sessions at SCAN cursor"), "{err}");
    let deleted = report["metrics"]["keys_deleted"].as_f64().unwrap() as usize;
    assert!(deleted > 0 && deleted < total, "{report}");
    let left: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(left, total - deleted, "the report counts exactly what was deleted");
}
