//! maint-notify against real peers: an HTTP server in the test plays Slack, Teams,
//! PagerDuty and a webhook receiver; aiosmtpd receives the email.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maint_core::{Secret, TaskReport};
use maint_notify::{Config, Delivery, Notification, Outcome, Severity, TEAMS_MAX_BYTES, verify};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    Hang(Duration),
}

#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

#[derive(Default)]
struct Peer {
    script: HashMap<String, VecDeque<Reply>>,
    received: Vec<Received>,
}

type Shared = Arc<Mutex<Peer>>;

async fn handle(State(peer): State<Shared>, Path(path): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let reply = {
        let mut p = peer.lock().unwrap();
        p.received.push(Received { path: path.clone(), headers, body, at: Instant::now() });
        p.script.get_mut(&path).and_then(VecDeque::pop_front).unwrap_or(Reply::Status(200))
    };
    match reply {
        Reply::Status(s) => (StatusCode::from_u16(s).unwrap(), "answer").into_response(),
        Reply::RetryAfter(s, secs) => {
            (StatusCode::from_u16(s).unwrap(), [("retry-after", secs.to_string())], "slow down").into_response()
        }
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            "late".into_response()
        }
    }
}

/// Starts the fake service on port 0.
async fn peer() -> (SocketAddr, Shared) {
    let shared = Shared::default();
    let app = Router::new().route("/{*path}", axum::routing::post(handle)).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, shared)
}

fn script(peer: &Shared, path: &str, replies: &[Reply]) {
    peer.lock().unwrap().script.insert(path.into(), replies.iter().copied().collect());
}

fn received(peer: &Shared, path: &str) -> Vec<Received> {
    peer.lock().unwrap().received.iter().filter(|r| r.path == path).cloned().collect()
}

fn config(targets: &[String]) -> Config {
    Config {
        targets: targets.iter().map(|t| Secret::new(t.as_str())).collect(),
        request_timeout_secs: 2.0,
        total_timeout_secs: 20.0,
        max_attempts: 4,
        min_backoff_ms: 10,
        max_backoff_secs: 5.0,
    }
}

fn json(r: &Received) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn alert() -> Notification {
    Notification::new("Backup verification failed", "2 of 14 backups did not restore", Severity::Error)
        .with_task("backup-verification")
        .with_event_key("backup-verification:2026-11-23")
        .with_field("failed", "2")
}

#[tokio::test]
async fn slack_gets_blocks_and_its_retry_after_is_honoured() {
    let (addr, p) = peer().await;
    script(&p, "services/T0/B0/SECRETTOKEN", &[Reply::RetryAfter(429, 1), Reply::Status(200)]);
    let d = config(&[format!("slack+http://{addr}/services/T0/B0/SECRETTOKEN")]).build().unwrap();
    let out = d.send(&alert()).await;
    assert_eq!(
        out[0],
        Delivery { target: "slack://127.0.0.1".into(), outcome: Outcome::Delivered, attempts: 2, error: None }
    );
    let got = received(&p, "services/T0/B0/SECRETTOKEN");
    assert_eq!(got.len(), 2);
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_millis(950), "Retry-After: 1 was not honoured: {waited:?}");
    let body = json(&got[1]);
    assert!(body["text"].as_str().unwrap().contains("[ERROR] Backup verification failed"));
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(body["blocks"][0]["text"]["text"], "Backup verification failed");
    assert_eq!(body["blocks"][2]["fields"][0]["text"], "*failed*\n2");
}

#[tokio::test]
async fn teams_gets_an_adaptive_card_within_28_kb_after_a_500() {
    let (addr, p) = peer().await;
    script(&p, "workflows/w1/triggers/manual/paths/invoke", &[Reply::Status(500)]);
    let d =
        config(&[format!("teams+http://{addr}/workflows/w1/triggers/manual/paths/invoke?api-version=1&sig=SIGSECRET")])
            .build()
            .unwrap();
    let mut n = alert();
    n.body = "line with \"quotes\" and ünïcødé\n".repeat(3000);
    let out = d.send(&n).await;
    assert_eq!((out[0].outcome, out[0].attempts), (Outcome::Delivered, 2));
    let got = received(&p, "workflows/w1/triggers/manual/paths/invoke");
    assert!(got[1].body.len() <= TEAMS_MAX_BYTES, "{} bytes", got[1].body.len());
    assert!(got[1].body.len() > TEAMS_MAX_BYTES - 2048, "cut too much: {} bytes", got[1].body.len());
    let card = json(&got[1]);
    assert_eq!(card["type"], "message");
    let att = &card["attachments"][0];
    assert_eq!(att["contentType"], "application/vnd.microsoft.card.adaptive");
    assert_eq!(att["content"]["type"], "AdaptiveCard");
    assert!(att["content"]["body"][1]["text"].as_str().unwrap().ends_with("(truncated)"));
}

#[tokio::test]
async fn pagerduty_resolve_closes_its_own_trigger_and_a_400_is_not_retried() {
    let (addr, p) = peer().await;
    let d = config(&[format!("pagerduty+http://R0UTINGKEY42@{addr}/v2/enqueue")]).build().unwrap();
    let trigger = alert();
    assert_eq!(d.send(&trigger).await[0].outcome, Outcome::Delivered);
    assert_eq!(d.send(&trigger.clone().resolve()).await[0].outcome, Outcome::Delivered);
    let other = alert().with_event_key("backup-verification:2026-11-24");
    assert_eq!(d.send(&other).await[0].outcome, Outcome::Delivered);
    let got: Vec<_> = received(&p, "v2/enqueue").iter().map(json).collect();
    assert_eq!(got[0]["event_action"], "trigger");
    assert_eq!(got[1]["event_action"], "resolve");
    assert_eq!(got[0]["routing_key"], "R0UTINGKEY42");
    assert_eq!(got[0]["dedup_key"], got[1]["dedup_key"], "resolve must close the same alert");
    assert_ne!(got[0]["dedup_key"], got[2]["dedup_key"]);
    assert_eq!(got[0]["payload"]["severity"], "error");
    assert_eq!(got[0]["payload"]["component"], "backup-verification");
    assert_eq!(got[0]["payload"]["custom_details"]["failed"], "2");

    script(&p, "v2/enqueue", &[Reply::Status(400)]);
    let out = d.send(&trigger).await;
    assert_eq!((out[0].outcome, out[0].attempts), (Outcome::Failed, 1));
    assert!(out[0].error.as_deref().unwrap().starts_with("HTTP 400"), "{out:?}");
}

#[tokio::test]
async fn webhook_receiver_verifies_the_signature_and_rejects_tampering_and_replays() {
    let (addr, p) = peer().await;
    let d = config(&[format!("webhook+http://{addr}/hooks/maint?secret={WHSEC}")]).build().unwrap();
    assert_eq!(d.send(&alert()).await[0].outcome, Outcome::Delivered);
    let got = &received(&p, "hooks/maint")[0];
    let h = |k: &str| got.headers.get(k).unwrap().to_str().unwrap().to_owned();
    let (id, ts, sig) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
    assert!(id.starts_with("msg_") && sig.starts_with("v1,"));
    let now = chrono::Utc::now().timestamp();
    assert_eq!(verify(WHSEC, &id, &ts, &sig, &got.body, now), Ok(()));
    let n: Notification = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(n, alert());
    let mut tampered = got.body.to_vec();
    tampered[10] ^= 1;
    assert!(verify(WHSEC, &id, &ts, &sig, &tampered, now).is_err());
    assert!(verify(WHSEC, &id, &ts, &sig, &got.body, now + 301).is_err(), "outside the 5-minute window");
    assert!(verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &id, &ts, &sig, &got.body, now).is_err());
}

#[tokio::test]
async fn a_hanging_target_times_out_and_does_not_hold_up_the_others() {
    let (addr, p) = peer().await;
    script(&p, "hang", &[Reply::Hang(Duration::from_secs(30)); 4]);
    let mut cfg = config(&[
        format!("webhook+http://{addr}/hang?secret={WHSEC}"),
        format!("slack+http://{addr}/services/ok"),
        "slack+http://127.0.0.1:9/services/refused".into(),
    ]);
    cfg.request_timeout_secs = 0.3;
    cfg.max_attempts = 2;
    let started = Instant::now();
    let out = cfg.build().unwrap().send(&alert()).await;
    assert_eq!((out[0].outcome, out[0].attempts), (Outcome::Failed, 2));
    assert_eq!(out[0].error.as_deref(), Some("timed out"));
    assert_eq!(out[1].outcome, Outcome::Delivered);
    assert_eq!((out[2].outcome, out[2].attempts), (Outcome::Failed, 2));
    assert!(out[2].error.as_deref().unwrap().starts_with("request failed"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(25), "the 30 s hang was not cut short");

    // The overall timeout caps all attempts together.
    script(&p, "hang", &[Reply::Hang(Duration::from_secs(30)); 50]);
    cfg.max_attempts = 50;
    cfg.total_timeout_secs = 1.0;
    let out = cfg.build().unwrap().send(&alert()).await;
    assert_eq!(out[0].error.as_deref(), Some("gave up after 1s"));
    assert!(out[0].attempts >= 2);
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server() {
    let dir = std::env::temp_dir().join(format!("maint-notify-mail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let python = std::env::var("MAINT_TEST_SMTP_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let mut server = tokio::process::Command::new(&python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&dir)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python} -m aiosmtpd ({e}); run scripts/test-env"));
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            up = true;
            break;
        }
        if let Ok(Some(status)) = server.try_wait() {
            panic!("aiosmtpd exited with {status}; is python3-aiosmtpd installed? run scripts/test-env");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "aiosmtpd did not listen on {port}");
    let url = format!("smtp://127.0.0.1:{port}?tls=none&from=maint@example.com&to=ops@example.com,dba@example.com");
    let out = config(&[url]).build().unwrap().send(&alert()).await;
    assert_eq!(out[0].outcome, Outcome::Delivered, "{out:?}");
    let mut mails = Vec::new();
    for entry in std::fs::read_dir(dir.join("new")).unwrap() {
        mails.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.contains("Subject: [ERROR] Backup verification failed"), "{mail}");
    assert!(mail.contains("To: ops@example.com, dba@example.com"), "{mail}");
    assert!(mail.contains("2 of 14 backups did not restore"), "{mail}");
    server.kill().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Captures everything tracing writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One global subscriber for the whole test binary: a thread-local default can miss events
/// whose callsites other test threads registered first, and a global capture also checks
/// that no other test logged a secret.
fn capture() -> &'static Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        capture
    })
}

#[tokio::test]
async fn no_secret_reaches_logs_errors_or_reports() {
    let capture = capture();
    let (addr, p) = peer().await;
    for path in ["services/T0/B0/SLACKSECRET", "workflows/TEAMSSECRET", "v2/enqueue", "hooks/HOOKSECRET"] {
        script(&p, path, &[Reply::Status(500), Reply::RetryAfter(429, 0), Reply::Status(503)]);
    }
    let secrets = [
        "SLACKSECRET",
        "TEAMSSECRET",
        "SIGSECRET",
        "PDROUTINGSECRET",
        "HOOKSECRET",
        WHSEC,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "SMTPPASSWORD",
    ];
    let mut cfg = config(&[
        format!("slack+http://{addr}/services/T0/B0/SLACKSECRET"),
        format!("teams+http://{addr}/workflows/TEAMSSECRET?sig=SIGSECRET"),
        format!("pagerduty+http://PDROUTINGSECRET@{addr}/v2/enqueue"),
        format!("webhook+http://{addr}/hooks/HOOKSECRET?secret={WHSEC}"),
        "smtp://maint:SMTPPASSWORD@127.0.0.1:9?tls=none&from=m@example.com&to=o@example.com".into(),
        "slack+http://127.0.0.1:9/services/T0/B0/SLACKSECRET".into(),
    ]);
    cfg.max_attempts = 3;
    let d = cfg.build().unwrap();
    let mut report = TaskReport::begin("security-scan", false);
    let out = d.notify_report(&alert(), &mut report).await;
    assert!(out.iter().all(|d| d.outcome == Outcome::Failed), "{out:?}");
    let report = report.finish();
    assert_eq!(report.warnings.len(), 6);

    let mut everything = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(everything.contains("retrying"), "the capture saw the retries: {everything}");
    everything += &serde_json::to_string(&report).unwrap();
    everything += &serde_json::to_string(&out).unwrap();
    everything += &format!("{d:?} {cfg:?}");
    let bad = Config { targets: vec![Secret::new("slack+ftp://h/SLACKSECRET")], ..Config::default() };
    everything += &bad.build().unwrap_err().to_string();
    for s in secrets {
        assert!(!everything.contains(s), "secret {s} leaked: {everything}");
    }
}

/// A destination that answers every POST with a redirect to `/caught` on the same server,
/// and records what reaches `/caught` (method, path and `Referer`).
async fn redirecting(status: u16) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let caught: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = caught.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/caught/{*rest}",
            axum::routing::any(move |uri: axum::http::Uri, headers: HeaderMap| async move {
                let referer = headers.get("referer").map(|v| v.to_str().unwrap_or("?").to_owned()).unwrap_or_default();
                seen.lock().unwrap().push(format!("{uri} referer={referer}"));
                "thanks"
            }),
        )
        .fallback(move || async move {
            (StatusCode::from_u16(status).unwrap(), [("location", format!("http://{addr}/caught/it"))], "moved")
        });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, caught)
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    for status in [301, 302, 303, 307, 308] {
        let (addr, caught) = redirecting(status).await;
        let d = config(&[
            format!("slack+http://{addr}/services/T0/B0/SLACKSECRET"),
            format!("teams+http://{addr}/workflows/TEAMSSECRET?sig=SIGSECRET"),
            format!("pagerduty+http://PDROUTINGSECRET@{addr}/v2/enqueue"),
            format!("webhook+http://{addr}/hooks/HOOKSECRET?secret={WHSEC}"),
        ])
        .build()
        .unwrap();
        let out = d.send(&alert()).await;
        for delivery in &out {
            assert_eq!((delivery.outcome, delivery.attempts), (Outcome::Failed, 1), "{status}: {out:?}");
            assert_eq!(
                delivery.error.as_deref(),
                Some(format!("redirected (HTTP {status}) to 127.0.0.1, not followed").as_str()),
                "{out:?}"
            );
        }
        assert!(caught.lock().unwrap().is_empty(), "{status} was followed: {:?}", caught.lock().unwrap());
        let everything = serde_json::to_string(&out).unwrap();
        for secret in ["SLACKSECRET", "TEAMSSECRET", "SIGSECRET", "PDROUTINGSECRET", "HOOKSECRET", WHSEC] {
            assert!(!everything.contains(secret), "{secret} leaked: {everything}");
        }
    }
}
