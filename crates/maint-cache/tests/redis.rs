//! maint-cache against a real Redis 7 (maint-testkit).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use maint_cache::deadpool_redis::redis::{self, AsyncCommands};
use maint_cache::{
    Action, CacheBackend, CacheCleanup, Condition, Config, Error, Key, KeyAction, MemoryInfo, Observation, Outcome,
    Probe, RedisBackend, Rule, RuleConfig, SecurityFacts, Severity, check_security,
};
use maint_core::chrono::{Duration as ChronoDuration, SecondsFormat, Utc};
use maint_core::{Secret, Status, Task, TaskContext, TaskReport};
use maint_testkit::{Redis, TestRedis};

type Conn = maint_cache::deadpool_redis::Connection;

async fn conn(db: &TestRedis) -> Conn {
    db.pool().get().await.expect("test Redis connection")
}

fn config(db: &TestRedis, rules: &[Rule]) -> Config {
    Config {
        redis_url: Some(Secret::new(db.url.clone())),
        rules: rules.iter().map(RuleConfig::from).collect(),
        ..Config::default()
    }
}

async fn run(cfg: &Config, dry_run: bool) -> TaskReport {
    CacheCleanup::new(cfg).expect("valid config").run(&TaskContext::new(dry_run)).await
}

/// Every key with its DUMP (type, value, encoding: byte for byte) and whether it has a TTL.
async fn snapshot(c: &mut Conn) -> BTreeMap<Vec<u8>, (Vec<u8>, bool)> {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query_async(c).await.unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&k).query_async(c).await.unwrap();
        let ttl: i64 = c.pttl(&k).await.unwrap();
        out.insert(k, (dump, ttl >= 0));
    }
    out
}

fn ago(secs: i64) -> String {
    (Utc::now().timestamp() - secs).to_string()
}

fn iso_ago(days: i64) -> String {
    (Utc::now() - ChronoDuration::days(days)).to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Old and fresh sessions, old and fresh VERITAS results, keys without TTL, unrelated keys.
async fn seed(c: &mut Conn) -> BTreeSet<Vec<u8>> {
    let mut expected_gone = BTreeSet::new();
    for i in 0..60 {
        let key = format!("session:old:{i}");
        let _: () = c.hset_multiple(&key, &[("last_access", ago(25 * 3600)), ("user", format!("u{i}"))]).await.unwrap();
        if i % 2 == 0 {
            let _: () = c.expire(&key, 3600 * 48).await.unwrap();
        }
        expected_gone.insert(key.into_bytes());
    }
    for i in 0..60 {
        let key = format!("session:fresh:{i}");
        let _: () = c.hset_multiple(&key, &[("last_access", ago(23 * 3600)), ("user", format!("u{i}"))]).await.unwrap();
    }
    for i in 0..40 {
        let key = format!("veritas:old:{i}");
        let _: () = c.hset_multiple(&key, &[("created_at", iso_ago(8)), ("result", "42".into())]).await.unwrap();
        expected_gone.insert(key.into_bytes());
        let key = format!("veritas:fresh:{i}");
        let _: () = c.hset_multiple(&key, &[("created_at", iso_ago(6)), ("result", "42".into())]).await.unwrap();
    }
    // Look like candidates but are not: wrong type, no field, unparseable time.
    let _: () = c.set("session:counter", 17).await.unwrap();
    let _: () = c.hset("session:nofield", "user", "x").await.unwrap();
    let _: () = c.hset("veritas:garbage", "created_at", "last tuesday").await.unwrap();
    // Keys without TTL and unrelated keys.
    for i in 0..50 {
        let _: () = c.set(format!("cache:nottl:{i}"), vec![b'x'; 100]).await.unwrap();
        let _: () = c.set_ex(format!("cache:ttl:{i}"), "v", 3600).await.unwrap();
        let _: () = c.rpush(format!("queue:{i}"), &["a", "b"]).await.unwrap();
    }
    let _: () = c.hset("sessions_index", "last_access", ago(90 * 86_400)).await.unwrap();
    expected_gone
}

#[tokio::test]
async fn seeded_keyspace_loses_exactly_the_expected_keys() {
    let db = Redis::shared().await.fresh_db().await;
    let mut c = conn(&db).await;
    let expected_gone = seed(&mut c).await;
    let before = snapshot(&mut c).await;

    // Dry run: the plan lists exactly the expected keys, and nothing changes.
    let cfg = Config { redis_url: Some(Secret::new(db.url.clone())), ..Config::default() };
    let plan = run(&cfg, true).await;
    assert_eq!(plan.status, Status::Warning, "{plan:?}"); // warns about the unreadable keys
    let planned: BTreeSet<Vec<u8>> =
        plan.items.iter().filter_map(|i| i["key"].as_str()).map(|k| k.as_bytes().to_vec()).collect();
    assert_eq!(planned, expected_gone);
    assert_eq!(snapshot(&mut c).await, before);

    let report = run(&cfg, false).await;
    assert_ne!(report.status, Status::Failed, "{report:?}");
    let after = snapshot(&mut c).await;
    let mut expected = before.clone();
    expected.retain(|k, _| !expected_gone.contains(k));
    assert_eq!(after, expected, "exactly the old sessions and old VERITAS results go, the rest is byte for byte equal");

    let m = &report.metrics;
    assert_eq!(m["keys_scanned"], 60.0 + 60.0 + 2.0 + 40.0 + 40.0 + 1.0);
    assert_eq!(m["keys_matched"], 100.0);
    assert_eq!(m["keys_deleted"], 100.0);
    assert_eq!(m["ttl_set"], 0.0);
    assert_eq!(m["keys_wrong_type"], 1.0);
    assert_eq!(m["keys_unreadable"], 2.0);
    assert!(m["memory_before_bytes"] > 0.0 && m["memory_after_bytes"] > 0.0, "{m:?}");
    assert_eq!(report.items.iter().filter(|i| i["outcome"] == "deleted").count(), 100);

    // A second run finds nothing more to do.
    let again = run(&cfg, false).await;
    assert_eq!(again.metrics["keys_deleted"], 0.0);
    assert_eq!(snapshot(&mut c).await, expected);
}

#[tokio::test]
async fn idle_keys_without_ttl_get_a_ttl_and_the_rest_stays() {
    let db = Redis::shared().await.fresh_db().await;
    let mut c = conn(&db).await;
    // Values are not small integers: Redis shares those objects (and their access time)
    // between keys when no LRU/LFU policy is set, so reading one would "touch" the others.
    for i in 0..20 {
        let _: () = c.set(format!("cache:nottl:{i}"), format!("v{i}")).await.unwrap();
        let _: () = c.set_ex(format!("cache:ttl:{i}"), format!("v{i}"), 3600).await.unwrap();
    }
    let _: () = c.set("cache:hot", "hot").await.unwrap();
    let _: () = c.set("other:nottl", "other").await.unwrap();
    // DUMP reads (touches) keys, so the snapshot comes before the idle wait.
    let before = snapshot(&mut c).await;
    // OBJECT IDLETIME has a 1 s resolution: wait long enough for every key to show 2+ s...
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // ...except one that is read just before the run.
    let _: String = c.get("cache:hot").await.unwrap();

    let rule = Rule {
        name: "backfill".into(),
        pattern: "cache:*".into(),
        condition: Condition::IdleWithoutTtl { idle_longer_than: Duration::from_secs(1) },
        action: Action::SetTtl(Duration::from_secs(86_400)),
    };
    let report = run(&config(&db, &[rule]), false).await;
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert_eq!(report.metrics["ttl_set"], 20.0, "{report:?}");
    assert_eq!(report.metrics["keys_deleted"], 0.0);
    for i in 0..20 {
        let ttl: i64 = c.ttl(format!("cache:nottl:{i}")).await.unwrap();
        assert!((86_000..=86_400).contains(&ttl), "cache:nottl:{i} ttl {ttl}");
    }
    let after = snapshot(&mut c).await;
    for (k, (dump, _)) in &before {
        assert_eq!(&after[k].0, dump, "values unchanged");
    }
    assert!(!after[&b"cache:hot".to_vec()].1, "a key read just now is not idle");
    assert!(!after[&b"other:nottl".to_vec()].1, "outside the pattern");
}

#[tokio::test]
async fn large_keys_are_reported_only() {
    let db = Redis::shared().await.fresh_db().await;
    let mut c = conn(&db).await;
    let _: () = c.set("blob:big", vec![b'x'; 100_000]).await.unwrap();
    let _: () = c.set("blob:small", "x").await.unwrap();
    let rule = Rule {
        name: "big".into(),
        pattern: "blob:*".into(),
        condition: Condition::LargerThan { bytes: 10_000 },
        action: Action::Report,
    };
    let before = snapshot(&mut c).await;
    let report = run(&config(&db, &[rule]), false).await;
    assert_eq!(report.metrics["keys_matched"], 1.0);
    assert_eq!(report.items[0]["key"], "blob:big");
    assert!(report.items[0]["reason"].as_str().unwrap().ends_with("bytes (> 10000)"));
    assert_eq!(snapshot(&mut c).await, before);
}

/// Refreshes some sessions between the read and the atomic delete: the worst interleaving,
/// every time.
#[derive(Debug)]
struct RefreshBetweenReadAndDelete {
    inner: RedisBackend,
    db: TestRedis,
    refresh: Vec<String>,
}

#[async_trait]
impl CacheBackend for RefreshBetweenReadAndDelete {
    fn node(&self) -> String {
        self.inner.node()
    }
    async fn scan(&self, cursor: u64, pattern: &str, count: u32) -> Result<(u64, Vec<Key>), Error> {
        self.inner.scan(cursor, pattern, count).await
    }
    async fn inspect(&self, keys: &[Key], probe: &Probe, ttl: bool) -> Result<Vec<Observation>, Error> {
        self.inner.inspect(keys, probe, ttl).await
    }
    async fn apply(&self, actions: &[KeyAction]) -> Result<Vec<Outcome>, Error> {
        let mut c = conn(&self.db).await;
        for a in actions.iter().filter(|a| self.refresh.iter().any(|k| k.as_bytes() == a.key)) {
            let _: () = c.hset(&a.key, "last_access", ago(0)).await.unwrap();
        }
        self.inner.apply(actions).await
    }
    async fn memory(&self) -> Result<MemoryInfo, Error> {
        self.inner.memory().await
    }
    async fn eviction_policy(&self) -> Result<Option<String>, Error> {
        self.inner.eviction_policy().await
    }
    async fn purge_memory(&self) -> Result<(), Error> {
        self.inner.purge_memory().await
    }
    async fn security_facts(&self) -> Result<SecurityFacts, Error> {
        self.inner.security_facts().await
    }
}

#[tokio::test]
async fn a_session_refreshed_after_it_was_read_survives() {
    // 32 keys per script call (standalone) and 1 (as on a cluster node).
    for keys_per_call in [32, 1] {
        refreshed_sessions_survive(keys_per_call).await;
    }
}

async fn refreshed_sessions_survive(keys_per_call: usize) {
    let db = Redis::shared().await.fresh_db().await;
    let mut c = conn(&db).await;
    for i in 0..300 {
        let _: () = c.hset(format!("session:{i}"), "last_access", ago(30 * 3600)).await.unwrap();
    }
    let refresh: Vec<String> = (0..300).step_by(3).map(|i| format!("session:{i}")).collect();
    let inner = RedisBackend::connect(&Secret::new(db.url.clone())).await.unwrap().with_keys_per_call(keys_per_call);
    let backend = RefreshBetweenReadAndDelete { inner, db: db.clone(), refresh: refresh.clone() };
    let cfg = config(&db, &[Rule::sessions()]);
    let task = CacheCleanup::with_backends(&cfg, vec![Arc::new(backend)]).unwrap();
    let report = task.run(&TaskContext::new(false)).await;
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert_eq!(report.metrics["keys_matched"], 300.0, "all 300 were old when read");
    assert_eq!(report.metrics["keys_kept_changed"], 100.0);
    assert_eq!(report.metrics["keys_deleted"], 200.0);
    for k in &refresh {
        assert!(c.exists::<_, bool>(k).await.unwrap(), "{k} was refreshed and must survive");
    }
    let left: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(left, 100);
}

#[tokio::test]
async fn sessions_refreshed_by_a_concurrent_client_are_never_deleted() {
    let db = Redis::shared().await.fresh_db().await;
    let mut c = conn(&db).await;
    for i in 0..5000 {
        let _: () = c.hset(format!("session:{i}"), "last_access", ago(30 * 3600)).await.unwrap();
    }
    // A client coming back: it refreshes its session only while it exists (a deleted
    // session is a logout, fine before the refresh), and records every successful refresh.
    let live: Vec<String> = (0..5000).step_by(10).map(|i| format!("session:{i}")).collect();
    let done = Arc::new(AtomicBool::new(false));
    let refresher = {
        let (db, live, done) = (db.clone(), live.clone(), done.clone());
        tokio::spawn(async move {
            let mut c = conn(&db).await;
            let touch = "if redis.call('EXISTS', KEYS[1]) == 1 then \
                         redis.call('HSET', KEYS[1], 'last_access', ARGV[1]) return 1 end return 0";
            let mut refreshed = BTreeSet::new();
            while !done.load(Ordering::Relaxed) {
                for k in &live {
                    let ok: i64 =
                        redis::cmd("EVAL").arg(touch).arg(1).arg(k).arg(ago(0)).query_async(&mut c).await.unwrap();
                    if ok == 1 {
                        refreshed.insert(k.clone());
                    }
                }
            }
            refreshed
        })
    };
    let mut cfg = config(&db, &[Rule::sessions()]);
    cfg.batch_size = 20;
    cfg.scan_count = 20;
    cfg.scan_count_max = 40;
    let report = run(&cfg, false).await;
    done.store(true, Ordering::Relaxed);
    let refreshed = refresher.await.unwrap();
    assert_eq!(report.error, None);
    assert!(!refreshed.is_empty());
    for k in &refreshed {
        assert!(c.exists::<_, bool>(k).await.unwrap(), "{k} was refreshed while it existed, then deleted");
    }
    assert_eq!(report.metrics["keys_deleted"] as usize + refreshed.len(), 5000, "{:?}", report.metrics);
}

#[tokio::test]
async fn unreachable_redis_and_wrong_password_fail_clearly_and_delete_nothing() {
    let unreachable = Config { redis_url: Some(Secret::new("redis://127.0.0.1:1/0")), ..Config::default() };
    let report = run(&unreachable, false).await;
    assert_eq!(report.status, Status::Failed);
    let err = report.error.unwrap();
    assert!(err.starts_with("cannot connect to Redis at 127.0.0.1:1/0: "), "{err}");
    assert!(!err.contains('\n'));

    let db = Redis::shared().await.fresh_db().await;
    let mut c = conn(&db).await;
    seed(&mut c).await;
    let before = snapshot(&mut c).await;
    let user = format!("maint-test-{}", db.db);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(">right-password")
        .arg("~*")
        .arg("+@all")
        .query_async(&mut c)
        .await
        .unwrap();
    let Redis { host, port, .. } = Redis::shared().await;
    let wrong = format!("redis://{user}:hunter2-wrong@{host}:{port}/{}", db.db);
    let report = run(&Config { redis_url: Some(Secret::new(wrong)), ..Config::default() }, false).await;
    assert_eq!(report.status, Status::Failed);
    let err = report.error.clone().unwrap();
    assert!(err.starts_with(&format!("cannot connect to Redis at {host}:{port}/{}: ", db.db)), "{err}");
    assert!(err.contains("WRONGPASS") || err.to_lowercase().contains("auth"), "{err}");
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("hunter2"), "{json}");
    assert_eq!(snapshot(&mut c).await, before);

    // The right password works.
    let right = format!("redis://{user}:right-password@{host}:{port}/{}", db.db);
    let report = run(&Config { redis_url: Some(Secret::new(right)), ..Config::default() }, false).await;
    assert_eq!(report.metrics["keys_deleted"], 100.0, "{report:?}");
}

#[tokio::test]
async fn cleanup_over_tls_checks_the_server_against_the_configured_ca() {
    let server = Redis::shared().await;
    let db = server.fresh_db().await;
    let mut c = conn(&db).await;
    seed(&mut c).await;
    let before = snapshot(&mut c).await;
    let user = format!("maint-tls-{}", db.db);
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(">tls-hunter2")
        .arg("~*")
        .arg("+@all")
        .query_async(&mut c)
        .await
        .unwrap();
    let url = db.tls_url.replacen("rediss://", &format!("rediss://{user}:tls-hunter2@"), 1);
    let tls = |ca_file: Option<std::path::PathBuf>| Config {
        redis_url: Some(Secret::new(url.clone())),
        ca_file,
        ..Config::default()
    };
    let node = format!("localhost:{}/{}", server.tls_port, db.db);

    // A certificate from another CA, or from one the system does not trust, is refused.
    for ca_file in [Some(server.other_ca()), None] {
        let report = run(&tls(ca_file.clone()), false).await;
        assert_eq!(report.status, Status::Failed, "{ca_file:?}");
        let err = report.error.clone().unwrap();
        assert!(err.starts_with(&format!("cannot connect to Redis at {node}: ")), "{err}");
        assert!(err.to_lowercase().contains("certificate"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("hunter2") && !json.contains("rediss://"), "{json}");
    }
    assert_eq!(snapshot(&mut c).await, before);

    // With the test CA, the cleanup runs over TLS.
    let report = run(&tls(Some(server.ca())), false).await;
    assert_eq!(report.error, None, "{report:?}");
    assert_eq!(report.metrics["keys_deleted"], 100.0, "{report:?}");
}

#[tokio::test]
async fn malformed_rules_are_rejected_before_connecting() {
    let text = r#"
        redis_url = "redis://127.0.0.1:1/0"
        [[rules]]
        pattern = "session:*"
        condition = "field_older_than"
        field = "last_access"
        field_type = "unix_seconds"
        older_than = "one day"
        action = "delete"
    "#;
    let cfg: Config = toml::from_str(text).unwrap();
    let err = CacheCleanup::new(&cfg).unwrap_err();
    assert_eq!(err.exit_code(), maint_core::ExitCode::BadInput);
    assert!(err.to_string().starts_with("rules[0].older_than: "), "{err}");
}

#[tokio::test]
async fn scripts_are_reloaded_after_a_script_flush() {
    let db = Redis::shared().await.fresh_db().await;
    let mut c = conn(&db).await;
    let _: () = c.hset("session:x", "last_access", ago(90_000)).await.unwrap();
    let backend = RedisBackend::connect(&Secret::new(db.url.clone())).await.unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut c).await.unwrap();
    let task = CacheCleanup::with_backends(&config(&db, &[Rule::sessions()]), vec![Arc::new(backend)]).unwrap();
    let report = task.run(&TaskContext::new(false)).await;
    assert_eq!(report.metrics["keys_deleted"], 1.0, "{report:?}");
}

#[tokio::test]
async fn security_check_of_the_test_server() {
    let db = Redis::shared().await.fresh_db().await;
    let backend = RedisBackend::connect(&Secret::new(db.url.clone())).await.unwrap();
    let facts = backend.security_facts().await.unwrap();
    // The test server is open on purpose: no password, protected-mode off on 0.0.0.0; it
    // serves TLS on a second port (tls-port 6380), so there is no tls-off finding. DEBUG is
    // disabled by Redis 7's default enable-debug-command no.
    assert_eq!(facts.default_user_nopass, Some(true), "{facts:?}");
    assert_eq!(facts.protected_mode, Some(false), "{facts:?}");
    assert_eq!(facts.bind.as_deref(), Some(&["0.0.0.0".to_owned()][..]));
    assert_eq!(facts.tls, Some(true));
    let debug = facts.commands.iter().find(|c| c.command == "DEBUG").unwrap();
    assert_eq!(debug.default_user_allowed, Some(false));
    let findings = check_security(&backend).await.unwrap();
    let ids: Vec<(&str, Severity)> = findings.iter().map(|f| (f.check.as_str(), f.severity)).collect();
    assert_eq!(
        ids,
        vec![
            ("default-user-nopass", Severity::Critical),
            ("dangerous-command-config", Severity::High),
            ("dangerous-command-flushall", Severity::High),
            ("protected-mode-off", Severity::High),
        ],
        "{facts:?}"
    );
}

/// A Redis Cluster of three masters (slots split in three), started next to the shared
/// server. Cluster mode must find all three with CLUSTER NODES and clean each: the seed node
/// through the URL's address, the others at the address they announce.
#[tokio::test]
async fn cluster_mode_scans_every_master() {
    use testcontainers::core::{ContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{ContainerAsync, GenericImage, ImageExt};

    let spec = std::env::var("MAINT_TEST_REDIS_IMAGE").ok().filter(|s| !s.is_empty()).unwrap_or("redis:7".into());
    let (name, tag) = spec.rsplit_once(':').filter(|(_, t)| !t.contains('/')).unwrap_or((spec.as_str(), "latest"));
    let mut nodes: Vec<(ContainerAsync<GenericImage>, String, redis::aio::MultiplexedConnection)> = Vec::new();
    for _ in 0..3 {
        let container = GenericImage::new(name, tag)
            .with_exposed_port(ContainerPort::Tcp(6379))
            .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
            .with_cmd(["redis-server", "--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .with_label("maint-testkit", "1")
            .start()
            .await
            .expect("start a cluster-enabled Redis (run scripts/test-env)");
        let inspect = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container.id()])
            .output()
            .expect("docker inspect");
        let ip = String::from_utf8_lossy(&inspect.stdout).split_whitespace().next().expect("a container IP").to_owned();
        let client = redis::Client::open(format!("redis://{ip}:6379").as_str()).unwrap();
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        nodes.push((container, ip, conn));
    }
    let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
    let first_ip = nodes[0].1.clone();
    for (i, (_, _, c)) in nodes.iter_mut().enumerate() {
        let (from, to) = ranges[i];
        let _: () = redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(from).arg(to).query_async(c).await.unwrap();
        if i > 0 {
            let _: () = redis::cmd("CLUSTER").arg("MEET").arg(&first_ip).arg(6379).query_async(c).await.unwrap();
        }
    }
    for _ in 0..200 {
        let mut ok = 0;
        for (_, _, c) in nodes.iter_mut() {
            let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(c).await.unwrap();
            let masters: String = redis::cmd("CLUSTER").arg("NODES").query_async(c).await.unwrap();
            if info.contains("cluster_state:ok") && masters.matches("master").count() == 3 {
                ok += 1;
            }
        }
        if ok == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 300 sessions, each written to the master owning its slot; half old.
    let mut per_node = [0usize; 3];
    for i in 0..300 {
        let key = format!("session:{i}");
        let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key).query_async(&mut nodes[0].2).await.unwrap();
        let n = ranges.iter().position(|(f, t)| (*f..=*t).contains(&slot)).unwrap();
        per_node[n] += 1;
        let age = if i % 2 == 0 { 90_000 } else { 60 };
        let _: () = nodes[n].2.hset(&key, "last_access", ago(age)).await.unwrap();
    }
    assert!(per_node.iter().all(|&n| n > 50), "keys spread over the three masters: {per_node:?}");

    // The seed is the first node through its mapped port, as a client outside Docker sees it.
    let port = nodes[0].0.get_host_port_ipv4(6379).await.unwrap();
    let host = nodes[0].0.get_host().await.unwrap().to_string();
    let cfg = Config {
        redis_url: Some(Secret::new(format!("redis://{host}:{port}"))),
        mode: maint_cache::Mode::Cluster,
        rules: vec![RuleConfig::from(&Rule::sessions())],
        ..Config::default()
    };
    let report = run(&cfg, false).await;
    assert_eq!(report.status, Status::Ok, "{report:?}");
    assert_eq!(report.metrics["nodes"], 3.0);
    assert_eq!(report.metrics["keys_scanned"], 300.0);
    assert_eq!(report.metrics["keys_deleted"], 150.0);
    let mut left = 0;
    for (_, _, c) in nodes.iter_mut() {
        let n: usize = redis::cmd("DBSIZE").query_async(c).await.unwrap();
        left += n;
    }
    assert_eq!(left, 150);
    for i in (1..300).step_by(2) {
        let key = format!("session:{i}");
        let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(&key).query_async(&mut nodes[0].2).await.unwrap();
        let n = ranges.iter().position(|(f, t)| (*f..=*t).contains(&slot)).unwrap();
        assert!(nodes[n].2.exists::<_, bool>(&key).await.unwrap(), "{key} is fresh and must stay");
    }
}
