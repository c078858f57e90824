//! Verify one large gzip backup from the local S3 server, side by side with the shell
//! pipeline a user would write: `curl URL | tee >(sha256sum) | gunzip | sha256sum`.
//! Reports wall times, their ratio, and our peak memory (VmHWM) during the verify.
//!
//! Run: `scripts/test-env cargo bench -p maint-backup --bench verify`
//! Size: `MAINT_BENCH_MB` megabytes of uncompressed log-like dump (default 1024).

use std::io::Write;
use std::time::Instant;

use maint_backup::object_store::path::Path;
use maint_backup::object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use maint_backup::{BackupEntry, Compression, MANIFEST_FORMAT_VERSION, Manifest, catalog, manifest_key, verify_one};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` builds and runs benches too: only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("skipped: run with `cargo bench`");
        return;
    }
    let mb: u64 = std::env::var("MAINT_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = std::env::temp_dir().join(format!("maint-verify-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let raw = dir.join("dump");
    // A log-like dump: compresses about as well as a pg_dump of text-heavy tables.
    let (dump_sha, dump_bytes) = {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&raw).unwrap());
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut line = Vec::with_capacity(200);
        f.write_all(b"PGDMP").unwrap();
        h.update(b"PGDMP");
        n += 5;
        while n < mb << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            line.clear();
            writeln!(
                line,
                "{}\t{:016x}\t/v1/vectors/{}\t{}\t{{\"score\": 0.{}}}",
                n / 97,
                x,
                x % 100_000,
                x % 977,
                x % 1_000_000
            )
            .unwrap();
            f.write_all(&line).unwrap();
            h.update(&line);
            n += line.len() as u64;
        }
        f.flush().unwrap();
        (hex(&h.finalize()), n)
    };
    let gz = dir.join("dump.gz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -6 -c {} > {}", raw.display(), gz.display()))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::remove_file(&raw).unwrap();

    let bucket = maint_testkit::S3::shared().await.fresh_bucket().await;
    let store = bucket.store();
    let key = "backups/2026/11/24/bench-20261124T020000000Z.dump.gz";
    let (stored_sha, stored_bytes) = {
        let mut up = WriteMultipart::new_with_chunk_size(store.put_multipart(&Path::from(key)).await.unwrap(), 8 << 20);
        let mut f = tokio::fs::File::open(&gz).await.unwrap();
        let mut h = Sha256::new();
        let mut n = 0u64;
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let r = f.read(&mut buf).await.unwrap();
            if r == 0 {
                break;
            }
            h.update(&buf[..r]);
            n += r as u64;
            up.wait_for_capacity(4).await.unwrap();
            up.write(&buf[..r]);
        }
        up.finish().await.unwrap();
        (hex(&h.finalize()), n)
    };
    std::fs::remove_dir_all(&dir).unwrap();
    let now = chrono::Utc::now();
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        key: key.into(),
        database: "bench".into(),
        server_version: "15".into(),
        compression: Compression::Gzip,
        layout: maint_backup::DumpLayout::PgDumpCompressed,
        started_at: now,
        finished_at: now,
        stored_bytes,
        stored_sha256: stored_sha.clone(),
        dump_bytes,
        dump_sha256: dump_sha.clone(),
        tables: Vec::new(),
    };
    store.put(&Path::from(manifest_key(key)), PutPayload::from(serde_json::to_vec(&manifest).unwrap())).await.unwrap();
    let entry: BackupEntry = catalog(&store, "backups").await.unwrap().remove(0);
    println!(
        "backup: {:.0} MiB stored (gzip -6), {:.0} MiB dump",
        stored_bytes as f64 / 1048576.0,
        dump_bytes as f64 / 1048576.0
    );

    // Ours. VmHWM is reset first (clear_refs 5), so the peak is the verify's own.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = vm_hwm_kib();
    let t = Instant::now();
    let result = verify_one(&store, &entry).await;
    let ours = t.elapsed().as_secs_f64();
    assert!(result.ok, "{result:?}");
    println!(
        "maint-backup verify: {ours:.2}s ({:.0} MB/s stored), peak RSS {} MiB (process, after reset; {} MiB before)",
        stored_bytes as f64 / 1e6 / ours,
        vm_hwm_kib() / 1024,
        base / 1024
    );

    // The shell pipeline.
    let url = format!("{}/{}/{key}", bucket.endpoint, bucket.bucket);
    let t = Instant::now();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; curl -sf '{url}' | tee >(sha256sum >&2) | gunzip | sha256sum"))
        .output()
        .unwrap();
    let shell = t.elapsed().as_secs_f64();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&dump_sha) && text.contains(&stored_sha), "the pipeline's sums: {text}");
    println!("curl | tee >(sha256sum) | gunzip | sha256sum: {shell:.2}s; ratio shell/ours = {:.2}x", shell / ours);
}
