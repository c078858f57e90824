//! Compression of a large, realistic log, side by side with `gzip -6`, in one run.
//!
//! `cargo bench -p maint-logs --bench compress` (size: `MAINT_LOGS_BENCH_MB`, default 500).
//! Each measurement is a full rotation by the `log-rotation` task (rename hand-off,
//! streaming compression, fsync, verification by decompression, rename), against
//! `gzip -6 -c log > log.gz` which neither fsyncs nor verifies. Prints ratios and the
//! peak RSS of each run (each rotation runs in a process of its own).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use maint_core::{Task, TaskContext};
use maint_logs::{Compression, Config, LogRotation};

fn main() {
    // `cargo test --all-targets` builds and runs benches too: only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    let mb: u64 = std::env::var("MAINT_LOGS_BENCH_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(500);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("maint-logs-bench");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let master = dir.join("master.log");
    generate(&master, mb << 20);
    let size = fs::metadata(&master).unwrap().len();
    println!("input: {} ({:.0} MiB of generated API/VERITAS logs)", master.display(), size as f64 / 1048576.0);

    // gzip -6 (the tool a user would use instead)
    let out = dir.join("gzip.gz");
    let t = Instant::now();
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -6 -c '{}' > '{}'", master.display(), out.display()))
        .status()
        .unwrap();
    assert!(st.success());
    let gzip_secs = t.elapsed().as_secs_f64();
    let gzip_size = fs::metadata(&out).unwrap().len();
    fs::remove_file(&out).unwrap();
    println!(
        "gzip -6:                 {gzip_secs:7.2} s  {:7.1} MB/s  out {:>11} B  ratio {:.3}",
        mb_s(size, gzip_secs),
        gzip_size,
        gzip_size as f64 / size as f64
    );

    // zstd -3, for the size comparison
    let out = dir.join("zstd.zst");
    let t = Instant::now();
    let st = Command::new("zstd").args(["-3", "-q", "-f", "-o"]).arg(&out).arg(&master).status().unwrap();
    assert!(st.success());
    let zstd_secs = t.elapsed().as_secs_f64();
    let zstd_size = fs::metadata(&out).unwrap().len();
    fs::remove_file(&out).unwrap();
    println!(
        "zstd -3 (CLI):           {zstd_secs:7.2} s  {:7.1} MB/s  out {:>11} B  ratio {:.3}",
        mb_s(size, zstd_secs),
        zstd_size,
        zstd_size as f64 / size as f64
    );

    let rt = runtime();
    // one compression (the verification overlaps it), and what the verification alone costs
    for (c, level) in [(Compression::Gzip, 6), (Compression::Zstd, 3)] {
        let archive = dir.join(format!("split{}", c.extension()));
        let cancel = maint_core::tokio_util::sync::CancellationToken::new();
        let codec = maint_logs::Codec::new(c, level).spread_over(1);
        let src = File::open(&master).unwrap();
        let t = Instant::now();
        let staged =
            rt.block_on(maint_logs::compress_verified(&src, &master, 0, None, &archive, codec, &cancel)).unwrap();
        let total = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let p = staged.packed;
        rt.block_on(maint_logs::verify(staged.path(), c, p.bytes_in, p.hash, &cancel)).unwrap();
        let verify = t.elapsed().as_secs_f64();
        drop(staged); // removes the temporary file
        println!("  {c:?} level {level}: {total:.2} s (verification overlapped; alone it takes {verify:.2} s)");
    }
    for (label, c, level) in [
        ("gzip level 6", Compression::Gzip, 6),
        ("zstd level 3", Compression::Zstd, 3),
        ("zstd level 1", Compression::Zstd, 1),
    ] {
        let (secs, out_size, rss) = measure(&dir, &master, 1, c, level);
        println!(
            "maint-logs {label}:   {secs:7.2} s  {:7.1} MB/s  out {out_size:>11} B  ratio {:.3}  | {:.2}x faster than gzip -6, size {:+.1}%, peak RSS {rss} MiB",
            mb_s(size, secs),
            out_size as f64 / size as f64,
            gzip_secs / secs,
            (out_size as f64 / gzip_size as f64 - 1.0) * 100.0,
        );
    }
    for c in [Compression::Gzip, Compression::Zstd] {
        let level = if c == Compression::Gzip { 6 } else { 3 };
        let (one, _, _) = measure(&dir, &master, 1, c, level);
        let (two, _, rss) = measure(&dir, &master, 2, c, level);
        println!(
            "two files at once ({c:?}): {two:7.2} s vs one file {one:7.2} s: ratio {:.2} (1.0 = perfect), peak RSS {rss} MiB",
            two / one
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

const CHILD: &str = "MAINT_LOGS_BENCH_CHILD";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Runs one rotation in a fresh process of this bench, so that its peak RSS is its own
/// (an allocator keeps what earlier runs freed); returns wall time, bytes out, peak RSS.
fn measure(dir: &Path, master: &Path, n: usize, c: Compression, level: i32) -> (f64, u64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("--bench")
        .env(CHILD, format!("{n}|{c:?}|{level}|{}|{}", dir.display(), master.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<&str> = text.split_whitespace().collect();
    (v[0].parse().unwrap(), v[1].parse().unwrap(), v[2].parse().unwrap())
}

fn child(spec: &str) {
    let v: Vec<&str> = spec.split('|').collect();
    let c = v[1].to_lowercase().parse().unwrap();
    let (secs, out, rss) =
        rotate(&runtime(), Path::new(v[3]), Path::new(v[4]), v[0].parse().unwrap(), c, v[2].parse().unwrap());
    println!("{secs} {out} {rss}");
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// Rotates `n` logs (copies of the master: a log with several hard links is refused) at
/// once; returns wall time, bytes out, peak RSS.
fn rotate(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    master: &Path,
    n: usize,
    c: Compression,
    level: i32,
) -> (f64, u64, u64) {
    let work = dir.join("work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).unwrap();
    let logs: Vec<PathBuf> = (0..n).map(|i| work.join(format!("svc{i}.log"))).collect();
    for l in &logs {
        fs::copy(master, l).unwrap();
    }
    let task = LogRotation::new(Config {
        state_dir: Some(work.join("state")),
        paths: logs.iter().map(|p| p.display().to_string()).collect(),
        compress: c,
        level: Some(level),
        concurrency: 2,
        reopen_timeout_secs: 0.0,
        ..Config::default()
    })
    .unwrap();
    let t = Instant::now();
    let r = rt.block_on(task.run(&TaskContext::new(false)));
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.metrics["files_rotated"], n as f64, "{r:?}");
    let rss = peak_rss_mib();
    let out = r.metrics["bytes_out"] as u64 / n as u64;
    fs::remove_dir_all(&work).unwrap();
    (secs, out, rss)
}

fn peak_rss_mib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// Writes `bytes` of log lines shaped like the service's: timestamps, levels, modules,
/// request ids, paths, latencies, the occasional error with a longer message.
fn generate(path: &Path, bytes: u64) {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let paths = [
        "/v1/vectors/search",
        "/v1/vectors",
        "/v1/veritas/verify",
        "/v1/health",
        "/v1/collections/{id}",
        "/v1/auth/token",
    ];
    let methods = ["GET", "POST", "GET", "GET", "PUT", "DELETE"];
    let modules = [
        "aindusdb_api::http",
        "aindusdb_core::index::hnsw",
        "veritas::engine",
        "aindusdb_core::storage::pg",
        "aindusdb_api::auth",
    ];
    let mut written = 0u64;
    let mut ts = 1_795_000_000_000_000u64; // microseconds
    while written < bytes {
        ts += next() % 5000;
        let r = next();
        let line = match r % 100 {
            0..=79 => format!(
                "{} INFO {} request_id={:016x} method={} path={} status={} latency_ms={}.{} user_id={} bytes={}\n",
                stamp(ts),
                modules[0],
                next(),
                methods[(r >> 8) as usize % methods.len()],
                paths[(r >> 16) as usize % paths.len()],
                [200, 200, 200, 201, 204, 400, 404, 500][(r >> 24) as usize % 8],
                (r >> 32) % 400,
                (r >> 40) % 10,
                (r >> 44) % 5000,
                (r >> 20) % 65536
            ),
            80..=94 => format!(
                "{} DEBUG {} collection=c{} ef_search={} candidates={} distance=cosine took_us={}\n",
                stamp(ts),
                modules[1 + (r as usize >> 8) % 3],
                (r >> 12) % 200,
                [64, 128, 256][(r >> 20) as usize % 3],
                (r >> 24) % 10000,
                (r >> 36) % 100000
            ),
            _ => format!(
                "{} ERROR {} request_id={:016x} error=\"calculation {} failed verification: expected {} got {} (tolerance 1e-9)\" retry={}\n",
                stamp(ts),
                modules[2],
                next(),
                (r >> 8) % 1_000_000,
                (r >> 16) % 100_000,
                (r >> 30) % 100_000,
                r % 3
            ),
        };
        w.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
    }
    w.flush().unwrap();
}

fn stamp(us: u64) -> String {
    let dt = maint_core::chrono::DateTime::from_timestamp_micros(us as i64).unwrap_or_default();
    dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}
