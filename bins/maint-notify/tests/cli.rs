//! Runs the `maint-notify` binary against a local HTTP peer.

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;

fn maint_notify(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maint-notify"));
    cmd.args(args).env_remove("MAINT_NOTIFY_TARGETS").env_remove("MAINT_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run maint-notify");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_reports_json_and_exits_by_outcome() {
    let seen: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/services/T/B/CLISECRET",
        axum::routing::post(move |body: Bytes| async move {
            s.lock().unwrap().push(body);
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let target = format!("slack+http://{addr}/services/T/B/CLISECRET");
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        maint_notify(
            &["--title", "disk 91% full", "--severity", "warning", "--field", "host=db1", "--json"],
            &[("MAINT_NOTIFY_TARGETS", &format!("{target} log://stderr"))],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["task"], "notify");
    assert_eq!(report["status"], "ok");
    assert_eq!(report["metrics"]["notifications_delivered"], 2.0);
    assert_eq!(report["items"][0]["target"], "slack://127.0.0.1");
    assert!(!out.contains("CLISECRET"));
    let body: serde_json::Value = serde_json::from_slice(&seen.lock().unwrap()[0]).unwrap();
    assert_eq!(body["blocks"][0]["text"]["text"], "disk 91% full");

    // A refused target: exit 1, one line per target on stdout. The config file's retry
    // settings apply; --target replaces its targets.
    let cfg = std::env::temp_dir().join(format!("maint-notify-cli-{}.toml", std::process::id()));
    std::fs::write(&cfg, "[notify]\ntargets = [\"log://\"]\nmax_attempts = 2\nmin_backoff_ms = 10\n").unwrap();
    let path = cfg.to_str().unwrap().to_owned();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        maint_notify(&["--title", "t", "--config", &path, "--target", "slack+http://127.0.0.1:9/services/x"], &[])
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(out.starts_with("FAILED    slack://127.0.0.1 (2 attempt(s)): request failed"), "{out}");
    std::fs::remove_file(cfg).unwrap();
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let (code, out, err) = maint_notify(&["--title", "t", "--target", "slack://hooks.slack.com"], &[]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(
        err.trim(),
        "maint-notify: target #1 (slack://…): no webhook path (expected slack://hooks.slack.com/services/T…/B…/…)"
    );
    let (code, _, err) = maint_notify(&["--title", "t", "--severity", "loud"], &[]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = maint_notify(&["--title", "t", "--config", "/nonexistent.toml"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /nonexistent.toml"), "{err}");
}
