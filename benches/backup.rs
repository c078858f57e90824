//! Backup and restore test on the AindusDB fixture, side by side with what an operator
//! would run by hand, in one run (figures in `docs/backup.md`):
//!
//! - `create` (pg_dump `--compress=0`, zstd on our side, into the local S3 server) against
//!   `pg_dump -Fc` to a local file: wall time, stored bytes, our peak RSS;
//! - the restore test (from S3, fingerprints compared, scratch dropped), with its defaults
//!   (1 job, streamed), with 2 jobs (from a spooled file) and with a parallel worker per
//!   index build, against a bare `pg_restore` of the `pg_dump -Fc` file into an empty
//!   database with the server's default settings.
//!
//! Run: `scripts/test-env cargo bench -p maint-benches --bench backup`
//! Size: `MAINT_BENCH_DOCS` documents (default 100000). No timing is asserted.

use std::path::PathBuf;
use std::time::Instant;

use maint_backup::{CLIENT_ROOT, CreateOptions, RestoreOptions, create, restore_test};
use maint_core::Secret;
use maint_testkit::{Postgres, S3, aindusdb};
use tokio_util::sync::CancellationToken;

/// Our peak resident set since the last [`reset_peak`] (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Resets `VmHWM` to the current RSS (Linux: `5` to `/proc/self/clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The client tool of the server's major (PostgreSQL 17, as `scripts/test-env` installs it).
fn tool(name: &str) -> PathBuf {
    PathBuf::from(CLIENT_ROOT).join("17/bin").join(name)
}

fn run(cmd: &mut std::process::Command) -> f64 {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    t.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    let docs: u32 = std::env::var("MAINT_BENCH_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let pg = Postgres::shared().await;
    let db = pg.fresh_database().await;
    let t = Instant::now();
    aindusdb::create(&db, docs).await;
    let client = db.pool().get().await.unwrap();
    let size: i64 = client.query_one("SELECT pg_database_size(current_database())", &[]).await.unwrap().get(0);
    println!("fixture: {docs} documents, {} MiB, cold build {:.1} s", size >> 20, t.elapsed().as_secs_f64());

    // create vs pg_dump -Fc to a local file
    let store = S3::shared().await.fresh_bucket().await.store();
    reset_peak();
    let t = Instant::now();
    let m = create(&store, &CreateOptions::new(Secret::new(db.url())), &CancellationToken::new()).await.unwrap();
    let ours = t.elapsed().as_secs_f64();
    let rss = peak_rss_mib();
    let dir = std::env::temp_dir().join(format!("maint-backup-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fixture.dump");
    let bare = run(std::process::Command::new(tool("pg_dump"))
        .args(["--format=custom", "--file"])
        .arg(&file)
        .args(["--dbname", &db.url()]));
    let bare_bytes = std::fs::metadata(&file).unwrap().len();
    println!(
        "create ({}, into S3): {ours:.2} s, {:.1} MiB stored ({:.1} MiB dump), peak RSS {rss:.0} MiB",
        m.compression,
        m.stored_bytes as f64 / 1048576.0,
        m.dump_bytes as f64 / 1048576.0
    );
    println!("pg_dump -Fc (local file): {bare:.2} s, {:.1} MiB", bare_bytes as f64 / 1048576.0);
    println!("create: {:.2}x faster, {:.3}x the bytes", bare / ours, m.stored_bytes as f64 / bare_bytes as f64);

    // bare pg_restore (the server's defaults) vs the restore test, with 2 jobs and with 1
    let empty = pg.fresh_database().await;
    let bare = run(std::process::Command::new(tool("pg_restore"))
        .args(["--no-owner", "--no-privileges", "--exit-on-error", "--dbname", &empty.url()])
        .arg(&file));
    std::fs::remove_dir_all(&dir).unwrap();
    println!("bare pg_restore (local file, server defaults, no checks): {bare:.2} s");
    // (jobs, parallel maintenance workers, maintenance_work_mem): the defaults; 2 jobs from
    // a spooled file; one parallel worker per index build, within the container's 64 MB
    // of /dev/shm.
    for (jobs, workers, mem) in [(1, 0, None), (2, 0, None), (1, 1, Some("48MB"))] {
        let mut opts = RestoreOptions::new(Secret::new(pg.url("postgres")));
        opts.jobs = jobs;
        opts.max_parallel_maintenance_workers = workers;
        opts.maintenance_work_mem = mem.map(str::to_owned);
        reset_peak();
        let t = Instant::now();
        let r = restore_test(&store, &m.key, &opts, &CancellationToken::new()).await.unwrap();
        let ours = t.elapsed().as_secs_f64();
        assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
        println!(
            "restore test, {jobs} job(s), {workers} parallel worker(s), maintenance_work_mem {} (from S3, {} tables \
             compared, scratch dropped): {ours:.2} s = {:.2}x bare ({:.2} s of fingerprints after pg_restore), \
             peak RSS {:.0} MiB",
            mem.unwrap_or("default"),
            r.tables_compared,
            ours / bare,
            r.fingerprint_seconds,
            peak_rss_mib()
        );
    }
}
