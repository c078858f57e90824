//! What a Slack 429 storm of 20 messages costs: a local server plays a Slack webhook that
//! accepts one message per second and answers 429 + `Retry-After: 1` to anything faster.
//! Side by side, in one run: maint-notify (rate limited, the default), maint-notify with
//! the limiter opened up (so every 429 goes through retry + Retry-After), and a shell loop
//! of `curl -X POST` (what the old scripts did).
//!
//! Run: `cargo bench -p maint-notify --bench slack_storm`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maint_core::Secret;
use maint_notify::{Config, Notification, Outcome, Severity};

#[derive(Default)]
struct Slack {
    last_accepted: Option<Instant>,
    accepted: u32,
    limited: u32,
}

async fn webhook(State(s): State<Arc<Mutex<Slack>>>) -> Response {
    let mut s = s.lock().expect("lock");
    let now = Instant::now();
    if s.last_accepted.is_some_and(|t| now - t < Duration::from_millis(1000)) {
        s.limited += 1;
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "rate_limited").into_response();
    }
    s.last_accepted = Some(now);
    s.accepted += 1;
    "ok".into_response()
}

async fn server() -> (String, Arc<Mutex<Slack>>) {
    let state = Arc::new(Mutex::new(Slack::default()));
    let app = Router::new().route("/services/T/B/X", axum::routing::post(webhook)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("{addr}/services/T/B/X"), state)
}

async fn ours(rate: Option<u32>) -> (Duration, usize, u32) {
    let (url, state) = server().await;
    let query = rate.map(|r| format!("?rate={r}")).unwrap_or_default();
    let cfg = Config {
        targets: vec![Secret::new(format!("slack+http://{url}{query}"))],
        max_attempts: 30,
        total_timeout_secs: 120.0,
        ..Config::default()
    };
    let d = Arc::new(cfg.build().expect("config"));
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let d = d.clone();
        set.spawn(async move { d.send(&Notification::new(format!("message {i}"), "", Severity::Warning)).await });
    }
    let mut delivered = 0;
    while let Some(r) = set.join_next().await {
        delivered += r.expect("join").iter().filter(|d| d.outcome == Outcome::Delivered).count();
    }
    let limited = state.lock().expect("lock").limited;
    (started.elapsed(), delivered, limited)
}

async fn curl_loop() -> (Duration, u32, u32) {
    let (url, state) = server().await;
    let script = format!(
        "for i in $(seq 1 20); do curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
         -d \"{{\\\"text\\\":\\\"message $i\\\"}}\" http://{url}; done"
    );
    let started = Instant::now();
    let status = tokio::process::Command::new("sh").arg("-c").arg(script).status().await.expect("sh");
    assert!(status.success());
    let s = state.lock().expect("lock");
    (started.elapsed(), s.accepted, s.limited)
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` builds and runs benches too: only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    let (t, delivered, limited) = ours(None).await;
    println!(
        "maint-notify (1/s limiter): 20 messages in {:.2}s, delivered {delivered}/20, 429s seen {limited}",
        t.as_secs_f64()
    );
    let base = t;
    let (t, delivered, limited) = ours(Some(1000)).await;
    println!(
        "maint-notify (no limiter, retry + Retry-After): {:.2}s ({:.2}x), delivered {delivered}/20, 429s seen {limited}",
        t.as_secs_f64(),
        t.as_secs_f64() / base.as_secs_f64()
    );
    let (t, accepted, limited) = curl_loop().await;
    println!(
        "curl loop (old script): {:.2}s ({:.2}x), delivered {accepted}/20, lost to 429 {limited}",
        t.as_secs_f64(),
        t.as_secs_f64() / base.as_secs_f64()
    );
}
