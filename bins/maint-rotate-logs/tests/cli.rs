//! The `maint-rotate-logs` binary: the contract (exit codes, one-line errors, --json,
//! --dry-run, --config with flags on top).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary, with its state (not under /var/lib) in a directory of the tests' own.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_maint-rotate-logs"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MAINT_LOGS_") {
            c.env_remove(k);
        }
    }
    c.env("MAINT_LOGS_STATE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("maint-rotate-logs-cli-state"));
    c
}

fn tdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("maint-rotate-logs-cli").join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_field() {
    let dir = tdir("bad");
    let log = dir.join("app.log");
    fs::write(&log, b"x\n").unwrap();
    let bad_toml = dir.join("bad.toml");
    fs::write(&bad_toml, "keep = \"many\"\n").unwrap();
    let l = log.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--path", l, "--level", "42"], "level"),
        (&["--path", l, "--mode", "sideways"], "mode"),
        (&["--path", l, "--compress", "rar"], "compress"),
        (&["--path", l, "--keep", "lots"], "keep"),
        (&["--path", l, "--keep", "0"], "keep"),
        (&["--path", l, "--max-total-bytes", "12Q"], "max-total-bytes"),
        (&["--path", l, "--signal", "SIGNOPE"], "signal"),
        (&["--path", l, "--archive-url", "::nope"], "archive_url"),
        (&["--path", l, "--owner", "no-such-user-here"], "owner"),
        (&[], "paths"),
        (&["--path", l, "--frobnicate"], "--frobnicate"),
        (&["--config", bad_toml.to_str().unwrap()], "config"),
        (&["--config", "/nonexistent/maint.toml"], "config"),
    ];
    for (args, field) in cases {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err}");
        assert!(err.starts_with("maint-rotate-logs: "), "{err}");
        assert!(err.contains(field), "{args:?}: {err} does not name {field}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(fs::read(&log).unwrap(), b"x\n");

    // two logs of one file name into one archive directory, found by globs: exit 2, naming both
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        fs::create_dir_all(d).unwrap();
        fs::write(d.join("app.log"), b"x\n").unwrap();
    }
    let (ga, gb) = (format!("{}/*.log", a.display()), format!("{}/*.log", b.display()));
    let archive_dir = dir.join("archive");
    let out = run(&["--path", &ga, "--path", &gb, "--archive-dir", archive_dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("maint-rotate-logs: paths: "), "{err}");
    for d in [&a, &b] {
        assert!(err.contains(&d.join("app.log").display().to_string()), "{err}");
        assert_eq!(fs::read(d.join("app.log")).unwrap(), b"x\n");
    }
    assert!(!archive_dir.exists());
}

#[test]
fn rotates_with_json_report_dry_run_and_exit_codes() {
    let dir = tdir("run");
    let log = dir.join("app.log");
    let content = "0123456789\n".repeat(1000);
    fs::write(&log, &content).unwrap();
    let l = log.to_str().unwrap();

    // dry run: a plan, nothing changed
    let out = run(&["--path", l, "--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let r = json(&out);
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["items"][0]["action"], "planned");
    assert_eq!(fs::read_to_string(&log).unwrap(), content);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);

    // config file (zstd) with a flag on top (gzip): the flag wins
    let cfg = dir.join("rotate.toml");
    fs::write(&cfg, format!("paths = [{l:?}]\ncompress = \"zstd\"\nmode = \"copytruncate\"\n")).unwrap();
    let out = run(&["--config", cfg.to_str().unwrap(), "--compress", "gzip", "--level", "9", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&out);
    for field in ["task", "status", "started_at", "duration_ms", "dry_run", "metrics", "items", "warnings", "error"] {
        assert!(r.get(field).is_some(), "missing {field}");
    }
    assert_eq!(r["task"], "log-rotation");
    assert_eq!(r["status"], "ok");
    for m in ["files_rotated", "bytes_in", "bytes_out", "files_deleted", "bytes_at_risk"] {
        assert!(r["metrics"][m].is_number(), "metric {m}");
    }
    assert_eq!(r["metrics"]["files_rotated"], 1.0);
    let archive = PathBuf::from(r["items"][0]["archives"][0].as_str().unwrap());
    assert!(archive.to_string_lossy().ends_with(".log.gz"), "{archive:?}");
    assert!(Command::new("gzip").arg("-t").arg(&archive).status().unwrap().success());
    let unpacked = Command::new("gzip").arg("-dc").arg(&archive).output().unwrap().stdout;
    // every whole line is archived; the live log keeps at most one blank line, in place of the
    // archived bytes short of a block (copytruncate with collapse-range)
    assert_eq!(unpacked, content.as_bytes());
    let rest = String::from_utf8(fs::read(&log).unwrap()).unwrap();
    assert!(rest.lines().count() <= 1 && rest.trim().is_empty(), "{rest:?}");

    // text output
    let out = run(&["--path", l, "--mode", "copytruncate"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("log-rotation: "), "{text}");

    // a directory as a log: the task fails, exit 1, and says which path
    let out = run(&["--path", dir.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert_eq!(r["status"], "failed");
    assert!(r["error"].as_str().unwrap().contains(dir.to_str().unwrap()));

    // a state directory others can write: the run fails (exit 1) and says why
    let open_state = dir.join("open-state");
    fs::create_dir_all(&open_state).unwrap();
    fs::set_permissions(&open_state, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = run(&["--path", l, "--state-dir", open_state.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let e = json(&out)["error"].as_str().unwrap().to_owned();
    assert!(e.contains("open-state") && e.contains("writable by group or others"), "{e}");

    // a glob matching nothing: warning, exit 0
    let out = run(&["--path", &format!("{}/*.nothing", dir.display()), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["status"], "warning");
}

/// `--archive-url s3://…` against the test env's S3 server, configured by the usual AWS
/// variables: the uploaded object is the archive, and real `gzip -t` / `gzip -dc` accept it.
#[tokio::test]
async fn uploads_each_archive_to_s3() {
    use maint_testkit::object_store::{ObjectStore, ObjectStoreExt};
    use maint_testkit::{ACCESS_KEY, REGION, S3, SECRET_KEY};
    let s3 = S3::shared().await;
    let bucket = s3.fresh_bucket().await;
    let dir = tdir("s3");
    let log = dir.join("api.log");
    let lines: String = (0..20_000).map(|i| format!("line {i} request_id={i:016x}\n")).collect();
    fs::write(&log, &lines).unwrap();
    let url = format!("s3://{}/aindusdb/logs", bucket.bucket);
    let out = bin()
        .env("AWS_ENDPOINT", &bucket.endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_ALLOW_HTTP", "true")
        .args(["--path", log.to_str().unwrap(), "--archive-url", &url, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["metrics"]["files_rotated"], 1.0);

    let store = bucket.store();
    let listed: Vec<_> = futures::TryStreamExt::try_collect(store.list(Some(&"aindusdb/logs".into()))).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let name = listed[0].location.filename().unwrap().to_owned();
    // under the host's name: hosts sharing the bucket never overwrite each other's archives
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(listed[0].location.to_string(), format!("aindusdb/logs/{}/{name}", host.trim()));
    assert!(name.starts_with("api-") && name.ends_with(".log.gz"), "{name}");
    let local = fs::read(dir.join(&name)).unwrap();
    let remote = store.get(&listed[0].location).await.unwrap().bytes().await.unwrap();
    assert_eq!(remote.as_ref(), local.as_slice(), "the uploaded object is the archive");
    let fetched = dir.join("fetched.gz");
    fs::write(&fetched, &remote).unwrap();
    assert!(Command::new("gzip").arg("-t").arg(&fetched).status().unwrap().success());
    let plain = Command::new("gzip").arg("-dc").arg(&fetched).output().unwrap();
    assert_eq!(plain.stdout, lines.as_bytes());
}
