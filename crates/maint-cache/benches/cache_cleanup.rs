//! Cache cleanup side by side with what a user would do instead, on one Redis.
//!
//! ```sh
//! scripts/test-env cargo bench -p maint-cache --bench cache_cleanup
//! MAINT_BENCH_KEYS=200000 scripts/test-env cargo bench -p maint-cache --bench cache_cleanup
//! ```
//!
//! Each approach gets a fresh database with N `session:*` hashes, half older than 24 h, plus
//! a concurrent client doing GET in a loop on its own thread and connection, recording its
//! worst and 99th-percentile latency while the approach runs:
//! - `maint-cache`: the library's default rules (SCAN + atomic EVALSHA check-and-UNLINK);
//! - `keys+per-key`: the old script: `KEYS session:*`, then per key `HGET` and `DEL`;
//! - `redis-cli|xargs`: `redis-cli --scan --pattern 'session:*' | xargs redis-cli unlink`
//!   (inside the container; no condition, so it deletes the fresh sessions too).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use maint_cache::deadpool_redis::redis;
use maint_cache::{CacheCleanup, Config};
use maint_core::{Secret, Task, TaskContext};
use maint_testkit::{Redis, TestRedis};

struct Outcome {
    name: &'static str,
    wall: Duration,
    examined: u64,
    deleted: u64,
    worst: Duration,
    p99: Duration,
    server_busy: Duration,
}

async fn connection(url: &str) -> redis::aio::MultiplexedConnection {
    // No reply timeout: KEYS on a million keys takes longer than redis-rs's default 500 ms.
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    redis::Client::open(url).unwrap().get_multiplexed_async_connection_with_config(&cfg).await.unwrap()
}

async fn seed(db: &TestRedis, n: u64) {
    let mut c = connection(&db.url).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut i = 0;
    while i < n {
        let mut pipe = redis::pipe();
        for j in i..(i + 10_000).min(n) {
            let last = if j % 2 == 0 { now - 2 * 86_400 } else { now - 600 };
            pipe.cmd("HSET").arg(format!("session:{j}")).arg("last_access").arg(last).arg("user").arg(j).ignore();
        }
        let _: () = pipe.query_async(&mut c).await.unwrap();
        i += 10_000;
    }
    let _: () = redis::cmd("SET").arg("probe").arg("x").query_async(&mut c).await.unwrap();
}

/// A client on its own thread: GET in a loop until stopped; returns its latencies.
fn start_probe(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let mut c = connection(&url).await;
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _: Option<String> = redis::cmd("GET").arg("probe").query_async(&mut c).await.unwrap();
                lat.push(t.elapsed());
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            lat
        })
    })
}

/// Server time spent per command so far (`INFO commandstats`, all databases, microseconds).
async fn command_usec(url: &str) -> std::collections::BTreeMap<String, u64> {
    let mut c = connection(url).await;
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(&mut c).await.unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let usec = rest.split("usec=").nth(1)?.split(',').next()?.parse().ok()?;
            Some((name.to_owned(), usec))
        })
        .collect()
}

async fn measure<F, Fut>(name: &'static str, n: u64, approach: F) -> Outcome
where
    F: FnOnce(TestRedis) -> Fut,
    Fut: std::future::Future<Output = (u64, u64)>,
{
    let db = Redis::shared().await.fresh_db().await;
    seed(&db, n).await;
    let stop = Arc::new(AtomicBool::new(false));
    let probe = start_probe(db.url.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = command_usec(&db.url).await;
    let t = Instant::now();
    let (examined, deleted) = approach(db.clone()).await;
    let wall = t.elapsed();
    let after = command_usec(&db.url).await;
    let mut spent: Vec<(String, u64)> =
        after.iter().map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0)))).collect();
    spent.sort_by_key(|e| std::cmp::Reverse(e.1));
    spent.retain(|(_, v)| *v > 0);
    let breakdown: Vec<String> = spent.iter().take(6).map(|(k, v)| format!("{k} {:.2}s", *v as f64 / 1e6)).collect();
    if !breakdown.is_empty() {
        eprintln!("{name}: server time by command (script internals counted twice): {}", breakdown.join(", "));
    }
    // Commands called from a script count twice (in EVALSHA and on their own): an upper bound.
    let top: u64 = spent.iter().map(|(_, v)| v).sum();
    let server_busy = Duration::from_micros(top);
    stop.store(true, Ordering::Relaxed);
    let mut lat = probe.join().unwrap();
    lat.sort();
    let worst = lat.last().copied().unwrap_or_default();
    let p99 = lat.get(lat.len() * 99 / 100).copied().unwrap_or_default();
    let mut c = connection(&db.url).await;
    let _: () = redis::cmd("FLUSHDB").arg("ASYNC").query_async(&mut c).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // let the background free finish
    Outcome { name, wall, examined, deleted, worst, p99, server_busy }
}

fn container_of(port: u16) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["ps", "--filter", "label=maint-testkit=1", "--format", "{{.ID}} {{.Ports}}"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&format!(":{port}->6379")))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
}

fn main() {
    // `cargo test --all-targets` builds and runs benches too: only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    let n: u64 = std::env::var("MAINT_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let only = std::env::var("MAINT_BENCH_ONLY").unwrap_or_default();
    let wanted = move |name: &str| only.is_empty() || name.starts_with(only.as_str());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let server = Redis::shared().await;
        let mut results = Vec::new();

        // Idle baseline: the probe alone.
        results.push(
            measure("(probe alone)", 0, |_| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                (0, 0)
            })
            .await,
        );

        results.push(
            measure("maint-cache", n, |db| async move {
                let cfg = Config { redis_url: Some(Secret::new(db.url.clone())), ..Config::default() };
                let report = CacheCleanup::new(&cfg).unwrap().run(&TaskContext::new(false)).await;
                assert_eq!(report.error, None, "{:?}", report.warnings);
                (report.metrics["keys_scanned"] as u64, report.metrics["keys_deleted"] as u64)
            })
            .await,
        );

        if wanted("keys") {
            results.push(
                measure("keys+per-key (old script)", n, |db| async move {
                    let mut c = connection(&db.url).await;
                    let keys: Vec<String> = redis::cmd("KEYS").arg("session:*").query_async(&mut c).await.unwrap();
                    let cutoff =
                        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 86_400;
                    let mut deleted = 0;
                    for k in &keys {
                        let last: Option<u64> =
                            redis::cmd("HGET").arg(k).arg("last_access").query_async(&mut c).await.unwrap();
                        if last.is_some_and(|l| l < cutoff) {
                            let d: u64 = redis::cmd("DEL").arg(k).query_async(&mut c).await.unwrap();
                            deleted += d;
                        }
                    }
                    (keys.len() as u64, deleted)
                })
                .await,
            );
        }

        match container_of(server.port).filter(|_| wanted("redis-cli")) {
            Some(id) => results.push(
                measure("redis-cli --scan | xargs unlink", n, |db| async move {
                    let script = format!(
                        "redis-cli -n {db} --scan --pattern 'session:*' | xargs redis-cli -n {db} unlink > /dev/null; \
                         redis-cli -n {db} dbsize",
                        db = db.db
                    );
                    let out = tokio::process::Command::new("docker")
                        .args(["exec", &id, "sh", "-c", &script])
                        .output()
                        .await
                        .unwrap();
                    let left: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
                    (n, (n + 1).saturating_sub(left))
                })
                .await,
            ),
            None => eprintln!("redis-cli comparison not run (MAINT_BENCH_ONLY, or no test container found)"),
        }

        let ours = results.iter().find(|r| r.name == "maint-cache").map(|r| r.wall.as_secs_f64()).unwrap_or(1.0);
        println!("\n{n} session keys, half older than 24 h; a concurrent client GETs every 200 us\n");
        println!(
            "{:<34} {:>9} {:>14} {:>9} {:>13} {:>11} {:>9} {:>14}",
            "approach",
            "wall s",
            "keys exam./s",
            "deleted",
            "worst lat ms",
            "p99 lat ms",
            "time/ours",
            "server s (max)"
        );
        for r in &results {
            let secs = r.wall.as_secs_f64();
            println!(
                "{:<34} {:>9.2} {:>14.0} {:>9} {:>13.2} {:>11.2} {:>9.2} {:>14.2}",
                r.name,
                secs,
                if secs > 0.0 { r.examined as f64 / secs } else { 0.0 },
                r.deleted,
                r.worst.as_secs_f64() * 1000.0,
                r.p99.as_secs_f64() * 1000.0,
                secs / ours,
                r.server_busy.as_secs_f64()
            );
        }
    });
}
