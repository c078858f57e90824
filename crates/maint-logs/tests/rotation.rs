//! Integration tests of maint-logs against real files, real writer processes, and the real
//! `gzip -t` / `zstd -t`. One test binary; writer and rotator child processes are this same
//! binary re-run with `MAINT_LOGS_TEST_CHILD` set (see `child_entry`).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use maint_core::{Status, Task, TaskContext, TaskReport};
use maint_logs::{Compression, Config, LogRotation, Mode, Naming, Retention, RotatingWriter, Truncate, parse_archive};

const CHILD_ENV: &str = "MAINT_LOGS_TEST_CHILD";

fn tdir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("maint-logs-tests").join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------- child processes

/// Entry point of the writer and rotator child processes. Run normally, it checks the
/// writer itself: every number from 0 to its count, once, in order.
#[test]
fn child_entry() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("writer") => writer_main(),
        Ok("rotator") => rotator_main(),
        Ok("spy") => spy_main(),
        _ => {
            let dir = tdir("writer-self-test");
            let log = dir.join("app.log");
            let mut w = Writer::start(&dir, &log, true, Some(5000));
            let count = w.stop();
            assert_eq!(count, 5000);
            let nums = numbers(&fs::read(&log).unwrap());
            assert!(nums.iter().copied().eq(0..5000), "the writer skipped or repeated a number");
        }
    }
}

fn writer_main() {
    use tokio::signal::unix::{SignalKind, signal};
    let log = PathBuf::from(std::env::var("LOG").unwrap());
    let append = std::env::var("APPEND").unwrap() == "1";
    let stop = PathBuf::from(std::env::var("STOP").unwrap());
    // LIMIT is the number after the last line written; START the first (0 by default).
    let limit: Option<u64> = std::env::var("LIMIT").ok().and_then(|s| s.parse().ok()).or(Some(20_000_000));
    let start: u64 = std::env::var("START").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    // SPLIT=1: each line in two write(2) calls, as a logger flushing a buffer mid-line does
    let split = std::env::var("SPLIT").is_ok_and(|s| s == "1");
    let reopen = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut hup = rt.block_on(async { signal(SignalKind::hangup()) }).unwrap();
    let flag = Arc::clone(&reopen);
    std::thread::spawn(move || {
        rt.block_on(async {
            while hup.recv().await.is_some() {
                flag.store(true, Ordering::SeqCst);
            }
        });
    });
    let open = || {
        if append {
            OpenOptions::new().create(true).append(true).open(&log).unwrap()
        } else {
            let mut f = OpenOptions::new().create(true).write(true).truncate(false).open(&log).unwrap();
            f.seek(SeekFrom::End(0)).unwrap();
            f
        }
    };
    let mut f = open();
    fs::write(std::env::var("PID_FILE").unwrap(), std::process::id().to_string()).unwrap();
    let mut n = start;
    loop {
        if reopen.swap(false, Ordering::SeqCst) {
            f = open();
        }
        if limit.is_some_and(|l| n >= l) || (n.is_multiple_of(128) && stop.exists()) {
            break;
        }
        // one write(2) per line, as loggers do (or two, SPLIT)
        let line = format!("{n:09}\n");
        if split {
            f.write_all(&line.as_bytes()[..4]).unwrap();
            f.write_all(&line.as_bytes()[4..]).unwrap();
        } else {
            f.write_all(line.as_bytes()).unwrap();
        }
        n += 1;
    }
    drop(f);
    fs::write(stop.with_extension("count"), n.to_string()).unwrap();
}

/// A writer child; killed when dropped (a failing test never leaves it running).
struct Writer {
    child: Child,
    limited: bool,
    stop: PathBuf,
    pid_file: PathBuf,
}

impl Writer {
    fn start(dir: &Path, log: &Path, append: bool, limit: Option<u64>) -> Writer {
        Writer::start_at(dir, log, append, limit, 0)
    }

    /// A writer whose first line is `start` (after lines another writer wrote before it).
    fn start_at(dir: &Path, log: &Path, append: bool, limit: Option<u64>, start: u64) -> Writer {
        Writer::start_with(dir, log, append, limit, start, false)
    }

    /// `split`: each line written in two `write(2)` calls (a reader may see half of it).
    fn start_with(dir: &Path, log: &Path, append: bool, limit: Option<u64>, start: u64, split: bool) -> Writer {
        let stop = dir.join("writer.stop");
        let pid_file = dir.join("writer.pid");
        let _ = fs::remove_file(&stop);
        let _ = fs::remove_file(&pid_file);
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "writer")
            .env("LOG", log)
            .env("APPEND", if append { "1" } else { "0" })
            .env("STOP", &stop)
            .env("PID_FILE", &pid_file)
            .env("START", start.to_string())
            .env("SPLIT", if split { "1" } else { "0" })
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(l) = limit {
            cmd.env("LIMIT", l.to_string());
        }
        let child = cmd.spawn().unwrap();
        let w = Writer { child, limited: limit.is_some(), stop, pid_file };
        // wait until it writes (pid file first, then lines)
        for _ in 0..2000 {
            if w.pid_file.exists() && fs::metadata(log).map(|m| m.len() > 0).unwrap_or(false) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        w
    }

    fn stop(&mut self) -> u64 {
        if let Ok(Some(_)) = self.child.try_wait() {
            return fs::read_to_string(self.stop.with_extension("count")).unwrap().trim().parse().unwrap();
        }
        if !self.limited {
            fs::write(&self.stop, b"stop").unwrap();
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "writer failed: {status}");
        fs::read_to_string(self.stop.with_extension("count")).unwrap().trim().parse().unwrap()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rotator_main() {
    let cfg: Config = serde_json::from_str(&std::env::var("CONFIG").unwrap()).unwrap();
    let crash = std::env::var("CRASH_AFTER").ok();
    let task = LogRotation::new(cfg).unwrap().crash_after(crash);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = rt.block_on(task.run(&TaskContext::new(false)));
    println!("REPORT {}", serde_json::to_string(&report).unwrap());
}

fn run_rotator_process(cfg: &Config, crash_after: Option<&str>) -> (bool, Option<TaskReport>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "rotator")
        .env("CONFIG", serde_json::to_string(&in_test_state(cfg)).unwrap());
    if let Some(s) = crash_after {
        cmd.env("CRASH_AFTER", s);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .find_map(|l| l.split_once("REPORT ").map(|(_, j)| j))
        .map(|j| serde_json::from_str::<TaskReport>(j).unwrap());
    if report.is_none() && crash_after.is_none() {
        panic!("rotator printed no report: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), report)
}

// ---------------------------------------------------------------- checks

fn decompress(path: &Path) -> Vec<u8> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".gz") {
        "gzip"
    } else if name.ends_with(".zst") {
        "zstd"
    } else {
        return fs::read(path).unwrap();
    };
    let t = Command::new(tool).arg("-t").arg("-q").arg(path).status().unwrap();
    assert!(t.success(), "{tool} -t {} failed", path.display());
    let out = Command::new(tool).arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success(), "{tool} -dc {} failed", path.display());
    out.stdout
}

/// The archives of `name` in `dir`, oldest first (dated: by time stamp and sequence).
fn archives(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (!n.starts_with('.')).then(|| parse_archive(name, &n).map(|k| (k, e.path()))).flatten()
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// Numbers of the lines, NUL bytes (holes left by writers without O_APPEND) removed, and
/// blank lines (copytruncate's stand-in for bytes archived already) skipped.
fn numbers(bytes: &[u8]) -> Vec<u64> {
    let clean: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0).collect();
    String::from_utf8(clean)
        .unwrap()
        .lines()
        .filter(|l| !l.bytes().all(|b| b == b' '))
        .map(|l| l.parse::<u64>().unwrap_or_else(|_| panic!("torn or garbled line {l:?}")))
        .collect()
}

/// All bytes: archives in order, then the live file.
fn all_bytes(dir: &Path, log: &Path) -> Vec<u8> {
    let name = log.file_name().unwrap().to_string_lossy().into_owned();
    let mut all = Vec::new();
    for a in archives(dir, &name) {
        all.extend(decompress(&a));
    }
    all.extend(fs::read(log).unwrap_or_default());
    all
}

fn assert_exactly_once(nums: &[u64], count: u64, ordered: bool) {
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for &n in nums {
        *seen.entry(n).or_default() += 1;
    }
    let dup: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).map(|(n, _)| *n).take(10).collect();
    assert!(dup.is_empty(), "duplicated lines: {dup:?}");
    let missing: Vec<_> = (0..count).filter(|n| !seen.contains_key(n)).take(10).collect();
    assert!(missing.is_empty(), "missing lines (of {count}): {missing:?}");
    assert_eq!(nums.len() as u64, count, "extra lines");
    if ordered {
        assert!(nums.windows(2).all(|w| w[0] < w[1]), "lines out of order");
    }
}

fn assert_no_strays(dir: &Path) {
    let strays: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".rotating"))
        .collect();
    assert!(strays.is_empty(), "stray files: {strays:?}");
}

/// The config with its state in `state/` beside the first log, unless it names a state
/// location (the default, under /var/lib, is not for tests).
fn in_test_state(cfg: &Config) -> Config {
    let mut cfg = cfg.clone();
    if cfg.state_file.is_none()
        && cfg.state_dir.is_none()
        && let Some(p) = cfg.paths.first()
    {
        cfg.state_dir = Some(Path::new(p).parent().unwrap().join("state"));
    }
    cfg
}

/// Where [`in_test_state`] puts the state file of logs in `dir`.
fn state_file(dir: &Path) -> PathBuf {
    dir.join("state").join("state.json")
}

async fn rotate(cfg: &Config) -> TaskReport {
    LogRotation::new(in_test_state(cfg)).unwrap().run(&TaskContext::new(false)).await
}

fn methods(r: &TaskReport) -> Vec<String> {
    r.items.iter().filter_map(|i| i["method"].as_str().map(str::to_owned)).collect()
}

// ---------------------------------------------------------------- rotation under load

async fn rotate_under_load(
    name: &str,
    mode: Mode,
    append: bool,
    compress: Compression,
    truncate: Truncate,
) -> (Vec<u8>, u64, Vec<TaskReport>) {
    let dir = tdir(name);
    let log = dir.join("app.log");
    let mut writer = Writer::start(&dir, &log, append, None);
    let cfg = Config {
        paths: vec![log.display().to_string()],
        mode,
        compress,
        level: (compress != Compression::None).then_some(1),
        truncate,
        pid_file: Some(dir.join("writer.pid")),
        reopen_timeout_secs: 30.0,
        ..Config::default()
    };
    let mut reports = Vec::new();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let r = rotate(&cfg).await;
        assert_ne!(r.status, Status::Failed, "{r:?}");
        reports.push(r);
    }
    let count = writer.stop();
    assert_no_strays(&dir);
    let bytes = all_bytes(&dir, &log);
    (bytes, count, reports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_mode_under_a_fast_writer_keeps_every_line_once() {
    for append in [true, false] {
        let (bytes, count, reports) =
            rotate_under_load(&format!("rename-{append}"), Mode::Rename, append, Compression::Gzip, Truncate::Auto)
                .await;
        assert!(count > 10_000, "the writer wrote only {count} lines");
        assert!(reports.iter().all(|r| methods(r) == ["rename"] && r.metrics["files_rotated"] == 1.0));
        assert_exactly_once(&numbers(&bytes), count, true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_under_a_fast_writer_keeps_every_line_once() {
    for append in [true, false] {
        let (bytes, count, reports) = rotate_under_load(
            &format!("copytruncate-{append}"),
            Mode::Copytruncate,
            append,
            Compression::Zstd,
            Truncate::Auto,
        )
        .await;
        assert!(count > 10_000, "the writer wrote only {count} lines");
        let used: Vec<String> = reports.iter().flat_map(methods).collect();
        assert!(reports.iter().all(|r| r.metrics["files_rotated"] == 1.0));
        if used.iter().all(|m| m == "collapse-range") {
            assert!(reports.iter().all(|r| r.metrics["bytes_at_risk"] == 0.0));
            // Without O_APPEND the writer's offset leaves a hole (NULs) after each collapse;
            // no written byte is lost or doubled, and order holds either way.
            assert_exactly_once(&numbers(&bytes), count, true);
        } else {
            panic!("this test directory's filesystem has no collapse-range ({used:?}); run on ext4 or XFS");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_without_collapse_copies_the_tail_and_reports_exposure() {
    // Quiet writer: exactly once, nothing at risk.
    let dir = tdir("truncate-quiet");
    let log = dir.join("app.log");
    let cfg = Config {
        paths: vec![log.display().to_string()],
        mode: Mode::Copytruncate,
        truncate: Truncate::Truncate,
        ..Config::default()
    };
    let mut total = 0;
    for round in 0..3u64 {
        let mut w = Writer::start(&dir, &log, true, Some(3000));
        total += w.stop();
        let r = rotate(&cfg).await;
        assert_eq!(methods(&r), ["truncate"], "round {round}: {r:?}");
        assert_eq!(r.metrics["bytes_at_risk"], 0.0);
        assert_eq!(fs::metadata(&log).unwrap().len(), 0);
    }
    // the writer restarts its numbering each round
    let nums = numbers(&all_bytes(&dir, &log));
    assert_eq!(nums.len() as u64, total);
    for round in nums.chunks(3000) {
        assert!(round.iter().copied().eq(0..3000), "a round lost, doubled or reordered lines");
    }

    // Fast writer: no line doubled or torn; the tail carried across the truncate is reported.
    // (Uncompressed, so that a debug build copies faster than the writer writes.)
    let (bytes, count, reports) =
        rotate_under_load("truncate-busy", Mode::Copytruncate, true, Compression::None, Truncate::Truncate).await;
    assert!(reports.iter().any(|r| r.metrics["files_rotated"] == 1.0));
    let nums = numbers(&bytes);
    let mut sorted = nums.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), nums.len(), "a line was doubled");
    let at_risk: f64 = reports.iter().map(|r| r.metrics["bytes_at_risk"]).sum();
    assert!(at_risk > 0.0, "a busy writer always leaves a tail to carry");
    eprintln!(
        "truncate mode: {} of {count} lines lost in the fstat->ftruncate window; {at_risk} bytes carried in memory",
        count - nums.len() as u64
    );
}

// ---------------------------------------------------------------- crash safety

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_every_step_then_rerun_keeps_every_line_once() {
    let cases: &[(Mode, Truncate, &[&str])] = &[
        (
            Mode::Rename,
            Truncate::Auto,
            &["state-written", "renamed", "recreated", "writer-closed", "compressed", "archived", "source-removed"],
        ),
        (Mode::Copytruncate, Truncate::Auto, &["compressed", "state-written", "archived", "blanked", "source-removed"]),
        (
            Mode::Copytruncate,
            Truncate::Truncate,
            &["compressed", "state-written", "archived", "truncated", "source-removed"],
        ),
    ];
    for (mode, truncate, steps) in cases {
        for step in *steps {
            let dir = tdir(&format!("crash-{mode:?}-{truncate:?}-{step}"));
            let log = dir.join("app.log");
            // A busy writer for rename and collapse-range; the truncate fallback has a
            // documented window, so its writer stops before the crash.
            let busy = *truncate == Truncate::Auto;
            let mut writer = Writer::start(&dir, &log, true, if busy { None } else { Some(20_000) });
            let mut count = if busy { 0 } else { writer.stop() };
            let cfg = Config {
                paths: vec![log.display().to_string()],
                mode: *mode,
                truncate: *truncate,
                compress: Compression::Gzip,
                level: Some(1),
                pid_file: Some(dir.join("writer.pid")),
                reopen_timeout_secs: 30.0,
                ..Config::default()
            };
            std::thread::sleep(Duration::from_millis(30));
            let (ok, _) = run_rotator_process(&cfg, Some(step));
            assert!(!ok, "{mode:?}/{step}: the rotator should have died");
            let (ok, report) = run_rotator_process(&cfg, None);
            let report = report.unwrap();
            assert!(ok && report.status != Status::Failed, "{mode:?}/{step}: rerun failed: {report:?}");
            if busy {
                count = writer.stop();
            }
            let state: maint_logs::State = serde_json::from_slice(&fs::read(state_file(&dir)).unwrap()).unwrap();
            assert!(state.files.values().all(|f| f.pending.is_none()), "{mode:?}/{step}: {state:?}");
            assert_no_strays(&dir);
            assert_exactly_once(&numbers(&all_bytes(&dir, &log)), count, true);
        }
    }
}

#[test]
fn kill_9_during_compression_then_rerun_keeps_every_line_once() {
    for mode in [Mode::Rename, Mode::Copytruncate] {
        let dir = tdir(&format!("kill9-{mode:?}"));
        let log = dir.join("app.log");
        // a log big enough that compression (level 19 zstd) is still running when killed
        let mut w = Writer::start(&dir, &log, true, Some(1_500_000));
        let count = w.stop();
        let cfg = Config {
            paths: vec![log.display().to_string()],
            mode,
            compress: Compression::Zstd,
            level: Some(19),
            reopen_timeout_secs: 0.0,
            ..Config::default()
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "rotator")
            .env("CONFIG", serde_json::to_string(&in_test_state(&cfg)).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let tmp_exists =
            || fs::read_dir(&dir).unwrap().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".log.zst.tmp"));
        let mut seen = false;
        for _ in 0..20_000 {
            if tmp_exists() {
                seen = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(seen, "{mode:?}: the rotator finished before it could be killed mid-compression");
        Command::new("kill").arg("-9").arg(child.id().to_string()).status().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{mode:?}: the rotator was not killed");
        assert!(tmp_exists(), "{mode:?}: the half-written archive should be on disk after kill -9");
        let (ok, report) = run_rotator_process(&Config { level: Some(1), ..cfg.clone() }, None);
        let report = report.unwrap();
        assert!(ok && report.status != Status::Failed, "{mode:?}: {report:?}");
        assert_no_strays(&dir);
        assert_exactly_once(&numbers(&all_bytes(&dir, &log)), count, true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_mode_defers_compression_while_the_writer_holds_the_old_file() {
    let dir = tdir("rename-deferred");
    let log = dir.join("app.log");
    let mut writer = Writer::start(&dir, &log, true, None);
    // nobody tells the writer: it keeps writing to the renamed file
    let cfg = Config { paths: vec![log.display().to_string()], reopen_timeout_secs: 0.2, ..Config::default() };
    let r = rotate(&cfg).await;
    assert_eq!(r.items[0]["action"], "deferred", "{r:?}");
    assert!(r.warnings.iter().any(|w| w.contains("still writes")), "{r:?}");
    assert!(dir.join(".app.log.rotating").exists());
    let r = rotate(&cfg).await;
    assert_eq!(r.items[0]["action"], "deferred", "{r:?}");
    let count = writer.stop();
    // the writer is gone: the next run compresses what it wrote, then the log is empty
    let r = rotate(&cfg).await;
    assert_eq!(r.status, Status::Warning, "{r:?}");
    assert_eq!(r.metrics["files_rotated"], 1.0, "{r:?}");
    assert_no_strays(&dir);
    assert_exactly_once(&numbers(&all_bytes(&dir, &log)), count, true);
    let state: maint_logs::State = serde_json::from_slice(&fs::read(state_file(&dir)).unwrap()).unwrap();
    assert!(state.files[&log].pending.is_none());

    // with an interval, a second run soon after does not rotate again
    fs::write(&log, b"1\n").unwrap();
    let cfg = Config { interval_secs: Some(3600), ..cfg };
    let r = rotate(&cfg).await;
    assert_eq!(r.items[0]["action"], "skipped", "{r:?}");
    assert!(r.items[0]["reason"].as_str().unwrap().contains("interval 3600s"), "{r:?}");
    // unless max_size says so
    let r = rotate(&Config { max_size: Some(2), ..cfg }).await;
    assert_eq!(r.metrics["files_rotated"], 1.0, "{r:?}");
}

// ---------------------------------------------------------------- retention

fn set_age(path: &Path, days: f64) {
    let t = SystemTime::now() - Duration::from_secs_f64(days * 86_400.0);
    filetime::set_file_mtime(path, filetime::FileTime::from_system_time(t)).unwrap();
}

#[tokio::test]
async fn retention_by_count_age_and_bytes_never_deletes_the_new_archive() {
    let dir = tdir("retention");
    let log = dir.join("app.log");
    // ten old archives, one per day, 1000 bytes each; another log's archive alongside
    for day in 1..=10u32 {
        let p = dir.join(format!("app-202611{:02}-000000.log.gz", 24 - day));
        fs::write(&p, vec![b'x'; 1000]).unwrap();
        set_age(&p, f64::from(day));
    }
    let other = dir.join("other-20261101-000000.log.gz");
    fs::write(&other, b"other").unwrap();
    set_age(&other, 100.0);
    fs::write(&log, "line\n".repeat(100)).unwrap();
    let base = Config { paths: vec![log.display().to_string()], ..Config::default() };
    let remaining = || archives(&dir, "app.log").len();

    // dry run: plans, deletes nothing
    let cfg = Config { keep: Some(8), ..base.clone() };
    let r = LogRotation::new(in_test_state(&cfg)).unwrap().run(&TaskContext::new(true)).await;
    assert_eq!(r.items[0]["deleted"].as_array().unwrap().len(), 2);
    assert_eq!(remaining(), 10);
    assert_eq!(fs::read(&log).unwrap().len(), 500);

    // count: the new archive plus 7 newest old ones
    let r = rotate(&cfg).await;
    assert_eq!(r.metrics["files_rotated"], 1.0);
    assert_eq!(r.metrics["files_deleted"], 3.0);
    assert_eq!(remaining(), 8);
    assert!(dir.join("app-20261123-000000.log.gz").exists());
    assert!(!dir.join("app-20261116-000000.log.gz").exists());

    // age (5.5 days) and bytes (3500) together: age leaves 1..=5 + new, bytes keep new + 2
    fs::write(&log, "line\n".repeat(100)).unwrap();
    let cfg = Config { max_age_days: Some(5.5), max_total_bytes: Some(3500), ..base.clone() };
    let r = rotate(&cfg).await;
    let left: Vec<String> =
        archives(&dir, "app.log").iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    // age removes days 6 and 7; bytes keep the two new archives (~30 B each) and days 1-3
    assert_eq!(left.len(), 5, "{left:?} {r:?}");
    for day in ["21", "22", "23"] {
        assert!(left.contains(&format!("app-202611{day}-000000.log.gz")), "{left:?}");
    }
    assert!(other.exists(), "another log's archive was touched");

    // a limit smaller than the new archive still keeps it
    fs::write(&log, "line\n".repeat(100)).unwrap();
    let cfg = Config { max_total_bytes: Some(1), keep: Some(1), ..base.clone() };
    let r = rotate(&cfg).await;
    let produced: Vec<String> =
        r.items[0]["archives"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    assert_eq!(produced.len(), 1);
    assert_eq!(archives(&dir, "app.log"), [PathBuf::from(&produced[0])]);
    assert_eq!(decompress(Path::new(&produced[0])), "line\n".repeat(100).as_bytes());
}

// ---------------------------------------------------------------- bad input and edge cases

#[tokio::test]
async fn bad_input_fails_or_skips_cleanly_and_deletes_nothing() {
    let dir = tdir("bad-input");
    let log = dir.join("app.log");
    fs::write(&log, b"keep me\n").unwrap();
    let old = dir.join("app-20200101-000000.log.gz");
    fs::write(&old, b"old").unwrap();
    set_age(&old, 2000.0);

    // a directory given as a log: failed, named
    let sub = dir.join("logs.d");
    fs::create_dir(&sub).unwrap();
    let r =
        rotate(&Config { paths: vec![sub.display().to_string()], max_age_days: Some(1.0), ..Config::default() }).await;
    assert_eq!(r.status, Status::Failed);
    assert!(r.error.as_deref().unwrap().contains("logs.d"), "{r:?}");
    assert!(old.exists());

    // a missing file: skipped with missing_ok (the default), failed without
    let missing = dir.join("nope.log");
    let r = rotate(&Config { paths: vec![missing.display().to_string()], ..Config::default() }).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(r.items[0]["action"], "skipped");
    let r =
        rotate(&Config { paths: vec![missing.display().to_string()], missing_ok: false, ..Config::default() }).await;
    assert_eq!(r.status, Status::Failed);
    assert!(r.error.as_deref().unwrap().contains("nope.log"));

    // a glob that matches nothing: a warning, nothing done
    let r = rotate(&Config { paths: vec![format!("{}/*.nothing", dir.display())], ..Config::default() }).await;
    assert_eq!(r.status, Status::Warning);
    assert!(r.warnings[0].contains("no file matches"));

    // an archive directory that cannot be created: failed before touching the log
    let blocker = dir.join("blocker");
    fs::write(&blocker, b"").unwrap();
    for mode in [Mode::Rename, Mode::Copytruncate] {
        let r = rotate(&Config {
            paths: vec![log.display().to_string()],
            mode,
            archive_dir: Some(blocker.join("archives")),
            ..Config::default()
        })
        .await;
        assert_eq!(r.status, Status::Failed, "{r:?}");
        assert!(r.error.as_deref().unwrap().contains("archives"), "{r:?}");
        assert_eq!(fs::read(&log).unwrap(), b"keep me\n");
        assert!(!dir.join(".app.log.rotating").exists());
    }

    // bad values are refused with the field's name
    let bad = |cfg: Config| LogRotation::new(cfg).unwrap_err().to_string();
    let p = vec![log.display().to_string()];
    assert!(bad(Config { paths: vec![], ..Config::default() }).starts_with("paths:"));
    assert!(bad(Config { paths: p.clone(), level: Some(42), ..Config::default() }).starts_with("level:"));
    assert!(bad(Config { paths: p.clone(), keep: Some(0), ..Config::default() }).starts_with("keep:"));
    assert!(bad(Config { paths: p.clone(), signal: "NOPE".into(), ..Config::default() }).starts_with("signal:"));
    assert!(
        bad(Config { paths: p.clone(), archive_url: Some("not a url".into()), ..Config::default() })
            .starts_with("archive_url:")
    );
    assert!(bad(Config { paths: p, archive_dir: Some(blocker), ..Config::default() }).starts_with("archive_dir:"));
    assert!(old.exists());
    assert_eq!(fs::read(&log).unwrap(), b"keep me\n");
}

#[tokio::test]
async fn corrupt_state_file_is_set_aside_and_rotation_goes_on() {
    let dir = tdir("corrupt-state");
    let log = dir.join("app.log");
    fs::write(&log, b"0\n1\n").unwrap();
    fs::write(state_in(&dir), b"\x00garbage{").unwrap();
    let r = rotate(&Config { paths: vec![log.display().to_string()], ..Config::default() }).await;
    assert_eq!(r.status, Status::Warning, "{r:?}");
    assert!(r.warnings.iter().any(|w| w.contains("corrupt")));
    assert_eq!(r.metrics["files_rotated"], 1.0);
    assert!(
        fs::read_dir(dir.join("state"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
    );
    let state: maint_logs::State = serde_json::from_slice(&fs::read(state_file(&dir)).unwrap()).unwrap();
    assert!(state.files[&log].last_rotated.is_some());
}

#[tokio::test]
async fn numbered_naming_shifts_and_keeps_order() {
    let dir = tdir("numbered");
    let log = dir.join("app.log");
    let marker = dir.join("post-command.out");
    let cfg = Config {
        paths: vec![log.display().to_string()],
        naming: Naming::Numbered,
        keep: Some(3),
        post_command: Some(format!("echo rotated >> '{}'", marker.display())),
        ..Config::default()
    };
    for i in 0..5 {
        fs::write(&log, format!("{i}\n")).unwrap();
        let r = rotate(&cfg).await;
        assert_eq!(r.metrics["files_rotated"], 1.0);
        assert_eq!(r.status, Status::Ok, "{r:?}");
    }
    assert_eq!(fs::read_to_string(&marker).unwrap(), "rotated\n".repeat(5));
    // a pid file that is not there: a warning naming it; the rotation itself goes on
    fs::write(&log, b"5\n").unwrap();
    let r = rotate(&Config { pid_file: Some(dir.join("gone.pid")), post_command: None, ..cfg.clone() }).await;
    assert_eq!(r.status, Status::Warning);
    assert!(r.warnings.iter().any(|w| w.contains("gone.pid")), "{r:?}");
    assert_eq!(r.metrics["files_rotated"], 1.0);
    // a failing post command likewise
    fs::write(&log, b"6\n").unwrap();
    let r = rotate(&Config { post_command: Some("exit 3".into()), ..cfg.clone() }).await;
    assert!(r.warnings.iter().any(|w| w.contains("exit 3")), "{r:?}");
    assert_eq!(r.metrics["files_rotated"], 1.0);
    for (n, want) in [(1, "6\n"), (2, "5\n"), (3, "4\n")] {
        assert_eq!(decompress(&dir.join(format!("app.log.{n}.gz"))), want.as_bytes());
    }
    assert!(!dir.join("app.log.4.gz").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_files_by_glob_into_an_archive_dir_with_upload() {
    let dir = tdir("glob");
    let archive_dir = dir.join("archive");
    let bucket = dir.join("bucket");
    fs::create_dir_all(&bucket).unwrap();
    for i in 0..6 {
        fs::write(dir.join(format!("svc{i}.log")), format!("{i}\n").repeat(1000)).unwrap();
    }
    fs::write(dir.join("notes.txt"), b"not a log").unwrap();
    let cfg = Config {
        paths: vec![format!("{}/*.log", dir.display())],
        archive_dir: Some(archive_dir.clone()),
        compress: Compression::Zstd,
        archive_url: Some(format!("file://{}", bucket.display())),
        concurrency: 2,
        ..Config::default()
    };
    let r = rotate(&cfg).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert_eq!(r.metrics["files_rotated"], 6.0);
    assert_eq!(r.metrics["bytes_in"], 6.0 * 2000.0);
    for i in 0..6 {
        let a = archives(&archive_dir, &format!("svc{i}.log"));
        assert_eq!(a.len(), 1);
        assert_eq!(decompress(&a[0]), format!("{i}\n").repeat(1000).as_bytes());
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let uploaded = bucket.join(host.trim()).join(a[0].file_name().unwrap());
        assert_eq!(fs::read(uploaded).unwrap(), fs::read(&a[0]).unwrap());
        assert_eq!(fs::metadata(dir.join(format!("svc{i}.log"))).unwrap().len(), 0);
    }
    assert_eq!(fs::read(dir.join("notes.txt")).unwrap(), b"not a log");
    // a second run: the logs are empty (not_if_empty), archives are not rotated as logs
    let r = rotate(&Config { compress: Compression::None, archive_dir: None, archive_url: None, ..cfg }).await;
    assert_eq!(r.metrics["files_rotated"], 0.0, "{r:?}");
}

// ---------------------------------------------------------------- embedded writer

#[test]
fn rotating_make_writer_loses_nothing_across_rotations() {
    use tracing_subscriber::fmt::MakeWriter;
    let dir = tdir("make-writer");
    let log = dir.join("api.log");
    let w = RotatingWriter::builder(&log)
        .max_bytes(16 * 1024)
        .compression(Compression::Gzip, Some(1))
        .retention(Retention::default())
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..5000u64 {
                    let mut g = w.make_writer();
                    g.write_all(format!("{:09}\n", t * 1_000_000 + i).as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    w.shutdown();
    let a = archives(&dir, "api.log");
    assert!(a.len() > 5, "only {} archives", a.len());
    let mut nums = numbers(&all_bytes(&dir, &log));
    nums.sort_unstable();
    let want: Vec<u64> = (0..4u64).flat_map(|t| (0..5000).map(move |i| t * 1_000_000 + i)).collect();
    assert!(nums == want, "{} lines, expected {}", nums.len(), want.len());
    assert_no_strays(&dir);

    // through tracing_subscriber::fmt
    let dir = tdir("make-writer-tracing");
    let log = dir.join("svc.log");
    let w = RotatingWriter::builder(&log).max_bytes(4096).compression(Compression::Zstd, None).build().unwrap();
    let sub = tracing_subscriber::fmt().with_writer(w.clone()).with_ansi(false).finish();
    tracing::subscriber::with_default(sub, || {
        for i in 0..500 {
            tracing::info!(n = i, "event");
        }
    });
    w.shutdown();
    let text = String::from_utf8(all_bytes(&dir, &log)).unwrap();
    for i in 0..500 {
        assert_eq!(text.matches(&format!(" n={i}\n")).count(), 1, "event {i}");
    }

    // time trigger (every write, here) and retention: the three newest archives stay
    let dir = tdir("make-writer-retention");
    let log = dir.join("job.log");
    let w = RotatingWriter::builder(&log)
        .interval(Duration::ZERO)
        .retention(Retention { keep: Some(3), ..Retention::default() })
        .build()
        .unwrap();
    for i in 0..20 {
        w.make_writer().write_all(format!("{i:09}\n").as_bytes()).unwrap();
    }
    w.shutdown();
    let kept: Vec<u64> = archives(&dir, "job.log").iter().flat_map(|a| numbers(&decompress(a))).collect();
    assert_eq!(kept, [16, 17, 18]);
    assert_eq!(numbers(&fs::read(&log).unwrap()), [19]);
    assert_no_strays(&dir);
}

// ---------------------------------------------------------------- a hostile host

/// A state directory only this user can write (what the tool requires), inside the test's
/// directory; returns the state file's path.
fn state_in(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let s = dir.join("state");
    fs::create_dir_all(&s).unwrap();
    fs::set_permissions(&s, fs::Permissions::from_mode(0o700)).unwrap();
    s.join("state.json")
}

/// The report's item for `path`.
fn item<'a>(r: &'a TaskReport, path: &Path) -> &'a serde_json::Value {
    let p = path.display().to_string();
    r.items.iter().find(|i| i["path"] == p.as_str()).unwrap_or_else(|| panic!("no item for {p}: {r:?}"))
}

/// Content, mode, owner and mtime of a file, to show it was not touched.
fn fingerprint(path: &Path) -> (Vec<u8>, u32, u32, u32, SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).unwrap();
    (fs::read(path).unwrap(), m.mode(), m.uid(), m.gid(), m.modified().unwrap())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn symlinked_and_hard_linked_logs_are_refused_and_their_targets_untouched() {
    use std::os::unix::fs::PermissionsExt;
    for mode in [Mode::Rename, Mode::Copytruncate] {
        let dir = tdir(&format!("symlinked-{mode:?}"));
        let logs = dir.join("logs");
        let outside = dir.join("outside");
        fs::create_dir_all(&logs).unwrap();
        fs::create_dir_all(&outside).unwrap();
        // the targets: bigger than two blocks, so that copytruncate would collapse them
        let secret = outside.join("secret.txt");
        let secret2 = outside.join("secret2.txt");
        for s in [&secret, &secret2] {
            fs::write(s, "secret line\n".repeat(2000)).unwrap();
            fs::set_permissions(s, fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::os::unix::fs::symlink(&secret, logs.join("evil.log")).unwrap();
        fs::hard_link(&secret2, logs.join("hard.log")).unwrap();
        let app = logs.join("app.log");
        fs::write(&app, "0\n1\n".repeat(3000)).unwrap();
        let before = [fingerprint(&secret), fingerprint(&secret2)];
        let cfg = Config {
            paths: vec![format!("{}/*.log", logs.display())],
            mode,
            state_file: Some(state_in(&dir)),
            ..Config::default()
        };
        let r = rotate(&cfg).await;
        assert_eq!(item(&r, &app)["action"], "rotated", "{mode:?}: {r:?}");
        for (name, why) in [("evil.log", "symbolic link"), ("hard.log", "hard link")] {
            let it = item(&r, &logs.join(name));
            assert_eq!(it["action"], "skipped", "{mode:?} {name}: {r:?}");
            assert!(it["reason"].as_str().unwrap().contains(why), "{mode:?} {name}: {it}");
            assert!(r.warnings.iter().any(|w| w.contains(name) && w.contains(why)), "{mode:?} {name}: {r:?}");
            assert!(archives(&logs, name).is_empty(), "{mode:?}: {name} was archived");
        }
        // a dry run reports the refusals too
        let r = LogRotation::new(cfg.clone()).unwrap().run(&TaskContext::new(true)).await;
        for name in ["evil.log", "hard.log"] {
            assert_eq!(item(&r, &logs.join(name))["action"], "skipped", "dry run {mode:?} {name}: {r:?}");
        }
        // named literally, the symlink is refused all the same
        let evil = logs.join("evil.log");
        let r = rotate(&Config { paths: vec![evil.display().to_string()], ..cfg.clone() }).await;
        assert_eq!(item(&r, &evil)["action"], "skipped", "{mode:?}: {r:?}");
        assert!(r.warnings.iter().any(|w| w.contains("evil.log") && w.contains("symbolic link")), "{r:?}");

        assert_eq!([fingerprint(&secret), fingerprint(&secret2)], before, "{mode:?}: a target was changed");
        assert!(fs::symlink_metadata(&evil).unwrap().file_type().is_symlink());
        assert_eq!(names_in(&outside), ["secret.txt", "secret2.txt"]);
        // no archive anywhere holds the targets' bytes
        for e in fs::read_dir(&logs).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_file() && !["app.log", "hard.log"].contains(&name.as_str()) {
                assert!(!String::from_utf8_lossy(&decompress(&e.path())).contains("secret"), "{mode:?}: {name}");
            }
        }
    }
}

#[tokio::test]
async fn forged_pending_entries_are_rejected_and_nothing_outside_is_touched() {
    use maint_logs::{FileState, Pending, State};
    use std::os::unix::fs::MetadataExt;
    let dir = tdir("forged-state");
    let logs = dir.join("logs");
    let outside = dir.join("outside");
    fs::create_dir_all(&logs).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let victim_a = outside.join("victim-a.txt");
    let victim_b = outside.join("victim-b.txt");
    let exists = outside.join("exists.gz");
    let inside = logs.join("other.txt");
    for f in [&victim_a, &victim_b, &exists, &inside] {
        fs::write(f, format!("{} must stay\n", f.display())).unwrap();
    }
    let log = |n: &str| logs.join(n);
    for n in ["a.log", "b.log", "c.log", "d.log"] {
        fs::write(log(n), "0123456789\n".repeat(100)).unwrap();
    }
    let c = fs::read(log("c.log")).unwrap();
    let cm = fs::metadata(log("c.log")).unwrap();
    let passwd = Path::new("/etc/passwd");
    let passwd_before = fs::read(passwd).unwrap();
    let pending = [
        // outside the directories: a staging file to delete, an archive that "exists"
        ("a.log", Pending::Rename { staging: victim_a.clone(), archive: exists.clone() }),
        // outside: a staging file to compress and delete
        ("b.log", Pending::Rename { staging: victim_b.clone(), archive: outside.join("b-new.gz") }),
        // a literal /etc path as the archive: the log would lose its first bytes
        (
            "c.log",
            Pending::Copy {
                archive: passwd.to_owned(),
                dev: cm.dev(),
                ino: cm.ino(),
                len: 11,
                hash_len: 11,
                hash: xxhash_rust::xxh3::xxh3_64(&c[..11]),
                collapse: false,
            },
        ),
        // inside the directory, but not a name this tool makes
        ("d.log", Pending::Rename { staging: inside.clone(), archive: logs.join("d-20260101-000000.log.gz") }),
    ];
    let mut state = State::default();
    for (n, p) in &pending {
        state.files.insert(log(n), FileState { last_rotated: None, pending: Some(p.clone()) });
    }
    let state_file = state_in(&dir);
    fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    let before: Vec<_> = [&victim_a, &victim_b, &exists, &inside].iter().map(|p| fingerprint(p)).collect();
    let cfg = Config {
        paths: ["a.log", "b.log", "c.log", "d.log"].iter().map(|n| log(n).display().to_string()).collect(),
        // nothing rotates: only the pending entries are acted on
        min_size: 1 << 30,
        state_file: Some(state_file.clone()),
        ..Config::default()
    };
    let r = rotate(&cfg).await;
    let after: Vec<_> = [&victim_a, &victim_b, &exists, &inside].iter().map(|p| fingerprint(p)).collect();
    assert_eq!(after, before, "a file named by the forged state was touched: {r:?}");
    assert_eq!(names_in(&outside), ["exists.gz", "victim-a.txt", "victim-b.txt"], "{r:?}");
    assert_eq!(fs::read(passwd).unwrap(), passwd_before);
    assert_eq!(fs::read(log("c.log")).unwrap(), c, "c.log lost bytes to a forged entry");
    for (n, _) in &pending {
        assert!(
            r.warnings.iter().any(|w| w.contains(&log(n).display().to_string()) && w.contains("rejected")),
            "{n}: not reported: {r:?}"
        );
        assert_eq!(fs::read(log(n)).unwrap().len(), 1100, "{n}");
    }
    assert!(archives(&logs, "d.log").is_empty());
    let state: State = serde_json::from_slice(&fs::read(&state_file).unwrap()).unwrap();
    assert!(state.files.values().all(|f| f.pending.is_none()), "the forged entries stay: {state:?}");
}

/// A process that holds no log and records every SIGHUP it gets, until `STOP` exists (at
/// most a minute): a pid the rotator must never signal.
fn spy_main() {
    use tokio::signal::unix::{SignalKind, signal};
    let got = PathBuf::from(std::env::var("GOT").unwrap());
    let stop = PathBuf::from(std::env::var("STOP").unwrap());
    let ready = PathBuf::from(std::env::var("READY").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut hup = signal(SignalKind::hangup()).unwrap();
        fs::write(&ready, std::process::id().to_string()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !stop.exists() && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = hup.recv() => {
                    OpenOptions::new().create(true).append(true).open(&got).unwrap().write_all(b"HUP\n").unwrap();
                }
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    });
}

#[tokio::test]
async fn pid_files_holding_minus_one_zero_one_or_a_stranger_are_refused_and_nobody_is_signalled() {
    let dir = tdir("pid-file");
    let log = dir.join("app.log");
    let (got, stop, ready) = (dir.join("spy.got"), dir.join("spy.stop"), dir.join("spy.pid"));
    // the spy is in this process group: kill(0) and kill(-1) would reach it
    let mut spy = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "spy")
        .env("GOT", &got)
        .env("STOP", &stop)
        .env("READY", &ready)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..2000 {
        if fs::read_to_string(&ready).is_ok_and(|s| !s.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let spy_pid = fs::read_to_string(&ready).unwrap();
    let pid_file = dir.join("app.pid");
    let cfg = Config {
        paths: vec![log.display().to_string()],
        pid_file: Some(pid_file.clone()),
        reopen_timeout_secs: 0.0,
        state_file: Some(state_in(&dir)),
        ..Config::default()
    };
    for value in ["-1", "0", "1", spy_pid.trim()] {
        fs::write(&log, b"line\n").unwrap();
        fs::write(&pid_file, format!("{value}\n")).unwrap();
        let r = rotate(&cfg).await;
        std::thread::sleep(Duration::from_millis(200));
        assert!(!got.exists(), "pid file holding {value}: a signal reached the spy");
        assert!(
            r.warnings.iter().any(|w| w.contains("app.pid") && w.contains("not signalled")),
            "pid file holding {value}: no refusal reported: {r:?}"
        );
        assert_eq!(r.metrics["files_rotated"], 1.0, "{value}: {r:?}");
    }
    fs::write(&stop, b"").unwrap();
    spy.wait().unwrap();
}

#[tokio::test]
async fn temp_files_never_follow_symlinks_planted_at_the_old_names() {
    for mode in [Mode::Rename, Mode::Copytruncate] {
        let dir = tdir(&format!("planted-{mode:?}"));
        let outside = dir.join("outside");
        fs::create_dir_all(&outside).unwrap();
        let log = dir.join("app.log");
        fs::write(&log, "0123456789\n".repeat(2000)).unwrap();
        let state_file = state_in(&dir);
        // rename mode puts archives (and its probe) in an archive directory
        let archive_dir = (mode == Mode::Rename).then(|| dir.join("archive"));
        let adir = archive_dir.clone().unwrap_or_else(|| dir.clone());
        fs::create_dir_all(&adir).unwrap();
        let existing = outside.join("existing.txt");
        fs::write(&existing, b"must stay\n").unwrap();
        let missing = outside.join("created-through-a-link");
        let plant = [
            (adir.join(format!(".maint-logs-probe-{}.tmp", std::process::id())), &existing),
            (adir.join(".app.log.1.gz.tmp"), &missing),
            (dir.join("state").join(".state.json.tmp"), &existing),
        ];
        for (link, target) in &plant {
            std::os::unix::fs::symlink(target, link).unwrap();
        }
        let before = fingerprint(&existing);
        let cfg = Config {
            paths: vec![log.display().to_string()],
            mode,
            naming: Naming::Numbered,
            archive_dir,
            state_file: Some(state_file),
            ..Config::default()
        };
        let r = rotate(&cfg).await;
        assert_eq!(fingerprint(&existing), before, "{mode:?}: written through a planted link: {r:?}");
        assert!(!missing.exists(), "{mode:?}: a file was created through a planted link: {r:?}");
        assert_eq!(names_in(&outside), ["existing.txt"]);
        assert_eq!(r.metrics["files_rotated"], 1.0, "{mode:?}: {r:?}");
        let archive = adir.join("app.log.1.gz");
        assert!(fs::symlink_metadata(&archive).unwrap().file_type().is_file(), "{mode:?}");
        // every byte once: in the archive or the live log (whose blank line, copytruncate's
        // stand-in for bytes archived already, is not counted)
        let live: usize =
            fs::read_to_string(&log).unwrap().lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() + 1).sum();
        assert_eq!(decompress(&archive).len() + live, 22_000, "{mode:?}");
    }
}

#[tokio::test]
async fn archives_keep_the_logs_mode_and_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
    for mode in [Mode::Rename, Mode::Copytruncate] {
        for perm in [0o600, 0o640] {
            let dir = tdir(&format!("mode-owner-{mode:?}-{perm:o}"));
            let logs = dir.join("logs");
            fs::create_dir_all(&logs).unwrap();
            let log = logs.join("app.log");
            fs::write(&log, "0123456789\n".repeat(2000)).unwrap();
            fs::set_permissions(&log, fs::Permissions::from_mode(perm)).unwrap();
            // as root, logs owned by their writer (and the directory too, as deployed)
            let owned = chown(&log, Some(4242), Some(4243)).is_ok();
            if owned {
                chown(&logs, Some(4242), Some(4243)).unwrap();
            }
            let cfg = Config {
                paths: vec![log.display().to_string()],
                mode,
                state_file: Some(state_in(&dir)),
                ..Config::default()
            };
            let r = rotate(&cfg).await;
            assert_eq!(r.metrics["files_rotated"], 1.0, "{r:?}");
            let a = archives(&logs, "app.log");
            assert_eq!(a.len(), 1);
            let m = fs::metadata(&a[0]).unwrap();
            assert_eq!(m.mode() & 0o777, perm, "{mode:?}: archive mode {:o}", m.mode() & 0o777);
            if owned {
                assert_eq!((m.uid(), m.gid()), (4242, 4243), "{mode:?}: archive owner");
            }
        }
    }
}

#[test]
fn two_rotations_at_once_with_a_writer_keep_every_line_once() {
    for mode in [Mode::Rename, Mode::Copytruncate] {
        let dir = tdir(&format!("two-at-once-{mode:?}"));
        let log = dir.join("app.log");
        // a log long enough that the first rotation (zstd 19) is still compressing when the
        // second starts, and a writer appending all along
        let prefill = 400_000;
        Writer::start(&dir, &log, true, Some(prefill)).stop();
        let mut writer = Writer::start_at(&dir, &log, true, None, prefill);
        let cfg = Config {
            paths: vec![log.display().to_string()],
            mode,
            compress: Compression::Zstd,
            level: Some(19),
            pid_file: Some(dir.join("writer.pid")),
            reopen_timeout_secs: 30.0,
            state_file: Some(state_in(&dir)),
            ..Config::default()
        };
        let first = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "rotator")
            .env("CONFIG", serde_json::to_string(&cfg).unwrap())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let compressing =
            || fs::read_dir(&dir).unwrap().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".log.zst.tmp"));
        let mut seen = false;
        for _ in 0..20_000 {
            if compressing() {
                seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(seen, "{mode:?}: the first rotation never compressed");
        let (ok, second) = run_rotator_process(&Config { level: Some(1), ..cfg.clone() }, None);
        let second = second.unwrap();
        let out = first.wait_with_output().unwrap();
        let first: TaskReport = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.split_once("REPORT ").map(|(_, j)| serde_json::from_str(j).unwrap()))
            .unwrap();
        let count = writer.stop();
        assert!(ok, "{mode:?}: {second:?}");
        assert_eq!(first.metrics["files_rotated"], 1.0, "{mode:?}: {first:?}");
        assert_eq!(second.items[0]["action"], "skipped", "{mode:?}: {second:?}");
        let reason = second.items[0]["reason"].as_str().unwrap();
        assert!(reason.contains("another rotation"), "{mode:?}: {reason}");
        assert_no_strays(&dir);
        assert_exactly_once(&numbers(&all_bytes(&dir, &log)), count, true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_the_tail_round_keeps_every_line() {
    let dir = tdir("cancel-tail");
    let log = dir.join("app.log");
    let first = 300_000;
    Writer::start(&dir, &log, true, Some(first)).stop();
    let cfg = Config {
        paths: vec![log.display().to_string()],
        mode: Mode::Copytruncate,
        truncate: Truncate::Truncate,
        compress: Compression::Zstd,
        level: Some(19),
        state_file: Some(state_in(&dir)),
        ..Config::default()
    };
    let task = LogRotation::new(cfg.clone()).unwrap().cancel_at(Some("tail-read".into()));
    let run = tokio::spawn(async move { task.run(&TaskContext::new(false)).await });
    // while the first pass compresses (its length already taken), lines are added: the tail
    let compressing =
        || fs::read_dir(&dir).unwrap().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".log.zst.tmp"));
    for _ in 0..20_000 {
        if compressing() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(compressing(), "the rotation finished before the tail could be written");
    let extra = 2000;
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    for n in first..first + extra {
        f.write_all(format!("{n:09}\n").as_bytes()).unwrap();
    }
    drop(f);
    let r = run.await.unwrap();
    assert_eq!(r.status, Status::Failed, "the run was cancelled: {r:?}");
    assert_exactly_once(&numbers(&all_bytes(&dir, &log)), first + extra, true);
    // the next run finds nothing half done
    let r = rotate(&cfg).await;
    assert_ne!(r.status, Status::Failed, "{r:?}");
    assert_no_strays(&dir);
    assert_exactly_once(&numbers(&all_bytes(&dir, &log)), first + extra, true);
}

#[tokio::test]
async fn logs_of_another_owner_are_refused_unless_configured() {
    use std::os::unix::fs::{MetadataExt, chown};
    let dir = tdir("other-owner");
    let logs = dir.join("logs");
    fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    fs::write(&log, "0123456789\n".repeat(100)).unwrap();
    if chown(&log, Some(4242), Some(4242)).is_err() {
        eprintln!("not run: giving a file to another user needs root");
        return;
    }
    let before = fingerprint(&log);
    let cfg = Config { paths: vec![log.display().to_string()], state_file: Some(state_in(&dir)), ..Config::default() };
    // neither the directory's owner nor the runner: refused, untouched
    let r = rotate(&cfg).await;
    assert_eq!(item(&r, &log)["action"], "skipped", "{r:?}");
    assert!(r.warnings.iter().any(|w| w.contains("owned by uid 4242")), "{r:?}");
    assert_eq!(fingerprint(&log), before);
    // the configured owner (a uid, or a name from /etc/passwd) is accepted, and only it
    let r = rotate(&Config { owner: Some("4242".into()), ..cfg.clone() }).await;
    assert_eq!(r.metrics["files_rotated"], 1.0, "{r:?}");
    assert_eq!(fs::metadata(&log).unwrap().uid(), 4242, "the new log keeps its owner");
    fs::write(&log, b"again\n").unwrap();
    chown(&log, Some(0), None).unwrap();
    let r = rotate(&Config { owner: Some("root".into()), ..cfg.clone() }).await;
    assert_eq!(r.metrics["files_rotated"], 1.0, "root owns it now: {r:?}");
    fs::write(&log, b"and again\n").unwrap();
    chown(&log, Some(4242), None).unwrap();
    let r = rotate(&Config { owner: Some("root".into()), ..cfg.clone() }).await;
    assert!(r.warnings.iter().any(|w| w.contains("not by the configured owner 0")), "{r:?}");
    // the directory's owner is accepted by default
    chown(&logs, Some(4242), None).unwrap();
    let r = rotate(&cfg).await;
    assert_eq!(r.metrics["files_rotated"], 1.0, "{r:?}");
    let err = LogRotation::new(Config { owner: Some("no-such-user-here".into()), ..cfg }).unwrap_err();
    assert!(err.to_string().starts_with("owner:"), "{err}");
}

#[tokio::test]
async fn an_unsafe_state_directory_or_file_is_refused() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let dir = tdir("unsafe-state");
    let log = dir.join("app.log");
    let content = "0123456789\n".repeat(100);
    fs::write(&log, &content).unwrap();
    let outside = dir.join("outside.txt");
    fs::write(&outside, b"must stay\n").unwrap();
    let state_file = state_in(&dir);
    let state_dir = state_file.parent().unwrap().to_owned();
    let cfg =
        Config { paths: vec![log.display().to_string()], state_dir: Some(state_dir.clone()), ..Config::default() };
    let refused = |r: &TaskReport, why: &str| {
        assert_eq!(r.status, Status::Failed, "{r:?}");
        let e = r.error.as_deref().unwrap();
        assert!(e.contains("refusing") && e.contains(why), "{why}: {e}");
        assert_eq!(fs::read_to_string(&log).unwrap(), content, "{why}: the log was touched");
    };
    let chmod = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    chmod(&state_dir, 0o777);
    refused(&rotate(&cfg).await, "writable by group or others");
    chmod(&state_dir, 0o1733);
    refused(&rotate(&cfg).await, "writable by group or others");
    chmod(&state_dir, 0o700);
    std::os::unix::fs::symlink(&outside, &state_file).unwrap();
    refused(&rotate(&cfg).await, "a symbolic link");
    fs::remove_file(&state_file).unwrap();
    fs::write(&state_file, b"{}").unwrap();
    chmod(&state_file, 0o664);
    refused(&rotate(&cfg).await, "writable by group or others");
    chmod(&state_file, 0o600);
    if chown(&state_dir, Some(4242), None).is_ok() {
        refused(&rotate(&cfg).await, "owned by uid 4242");
        chown(&state_dir, Some(0), None).unwrap();
    }
    assert_eq!(fs::read(&outside).unwrap(), b"must stay\n");
    // a dry run reports it too, and a missing state directory is created private
    let r = LogRotation::new(Config { state_dir: Some(dir.join("new/state")), ..cfg.clone() })
        .unwrap()
        .run(&TaskContext::new(true))
        .await;
    assert_ne!(r.status, Status::Failed, "{r:?}");
    assert!(!dir.join("new").exists(), "a dry run created the state directory");
    let r = rotate(&Config { state_dir: Some(dir.join("new/state")), ..cfg }).await;
    assert_eq!(r.metrics["files_rotated"], 1.0, "{r:?}");
    assert_eq!(fs::metadata(dir.join("new/state")).unwrap().permissions().mode() & 0o777, 0o700);
}

// ---------------------------------------------------------------- whole lines in every file

/// What one file (an archive or the live log) holds when read on its own: the numbers of
/// its lines, how many blank lines, and every broken one (half a line at either end, a
/// NUL byte, an unterminated last line).
#[derive(Debug, Default)]
struct Lines {
    nums: Vec<u64>,
    blank: usize,
    broken: Vec<String>,
}

fn whole_lines(bytes: &[u8]) -> Lines {
    let mut out = Lines::default();
    let text = String::from_utf8_lossy(bytes);
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    if end < text.len() {
        out.broken.push(format!("unterminated {:?}", &text[end..]));
    }
    for l in text[..end].lines() {
        if l.bytes().all(|b| b == b' ') {
            out.blank += 1;
        } else if l.len() == 9 && l.bytes().all(|b| b.is_ascii_digit()) {
            out.nums.push(l.parse().unwrap());
        } else {
            out.broken.push(format!("{:?}", l.chars().take(40).collect::<String>()));
        }
    }
    out
}

fn produced(r: &TaskReport) -> Vec<PathBuf> {
    r.items
        .iter()
        .flat_map(|i| i["archives"].as_array().cloned().unwrap_or_default())
        .map(|a| PathBuf::from(a.as_str().unwrap()))
        .collect()
}

/// R1: copytruncate with collapse-range under a writer appending as fast as it can, each
/// line in two `write(2)` calls (so a rotation often finds the last line half written), 12
/// rotations: every archive and the live log, each read on its own, hold whole lines only
/// (a blank line allowed), no NUL; every number is in exactly one of them, in order; and
/// the archive names sort in rotation order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_archives_and_the_live_log_each_hold_whole_lines() {
    let dir = tdir("whole-lines");
    let log = dir.join("app.log");
    let mut writer = Writer::start_with(&dir, &log, true, None, 0, true);
    let cfg = Config {
        paths: vec![log.display().to_string()],
        mode: Mode::Copytruncate,
        compress: Compression::Zstd,
        level: Some(1),
        ..Config::default()
    };
    let mut made = Vec::new();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let r = rotate(&cfg).await;
        assert_ne!(r.status, Status::Failed, "{r:?}");
        assert_eq!(methods(&r), ["collapse-range"], "this test needs ext4 or XFS: {r:?}");
        made.extend(produced(&r));
    }
    let count = writer.stop();
    assert_no_strays(&dir);
    let names =
        |v: &[PathBuf]| v.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>();
    let mut sorted = names(&made);
    sorted.sort();
    let (mut all, mut broken, mut blank) = (Vec::new(), Vec::new(), 0);
    for f in made.iter().chain([&log]) {
        let l = whole_lines(&decompress(f));
        all.extend(l.nums);
        blank += l.blank;
        broken.extend(l.broken.into_iter().map(|b| format!("{}: {b}", f.file_name().unwrap().to_string_lossy())));
    }
    let mut seen = all.clone();
    seen.sort_unstable();
    seen.dedup();
    eprintln!(
        "whole lines: {} rotations, {} archives, {count} lines written, {} numbers readable in a single file, \
         {} broken lines, {blank} blank lines",
        12,
        made.len(),
        seen.len(),
        broken.len()
    );
    assert!(broken.is_empty(), "broken lines: {broken:?}");
    assert_exactly_once(&all, count, true);
    assert_eq!(sorted, names(&made), "archive names do not sort in rotation order");
    assert_eq!(archives(&dir, "app.log"), made, "parsed names do not order as rotated");
}

/// A half-written last line stays in the live log, whole once its writer finishes it; the
/// archive ends at the last whole line. Both ways copytruncate removes the archived bytes.
#[tokio::test]
async fn a_half_written_last_line_stays_in_the_live_log() {
    for truncate in [Truncate::Auto, Truncate::Truncate] {
        let dir = tdir(&format!("half-line-{truncate:?}"));
        let log = dir.join("app.log");
        // 1000 whole lines (10,000 bytes, not a multiple of a block) and half of the next
        let whole: String = (0..1000).map(|n| format!("{n:09}\n")).collect();
        fs::write(&log, format!("{whole}00000")).unwrap();
        let cfg =
            Config { paths: vec![log.display().to_string()], mode: Mode::Copytruncate, truncate, ..Config::default() };
        let r = rotate(&cfg).await;
        let want = if truncate == Truncate::Auto { "collapse-range" } else { "truncate" };
        assert_eq!(methods(&r), [want], "{r:?}");
        let a = archives(&dir, "app.log");
        assert_eq!(a.len(), 1, "{r:?}");
        assert_eq!(
            decompress(&a[0]),
            whole.as_bytes(),
            "{truncate:?}: the archive does not end at the last whole line"
        );
        OpenOptions::new().append(true).open(&log).unwrap().write_all(b"1000\n").unwrap();
        let live = fs::read(&log).unwrap();
        assert!(!live.contains(&0), "{truncate:?}: a NUL in the live log");
        let l = whole_lines(&live);
        assert!(l.broken.is_empty(), "{truncate:?}: {:?}", l.broken);
        assert_eq!(l.nums, [1000], "{truncate:?}");
        assert!(l.blank <= 1, "{truncate:?}: {} blank lines", l.blank);
        // and the next rotation takes the finished line
        let r = rotate(&cfg).await;
        assert_eq!(r.metrics["files_rotated"], 1.0, "{r:?}");
        let mut nums = Vec::new();
        for f in archives(&dir, "app.log").iter().chain([&log]) {
            let l = whole_lines(&decompress(f));
            assert!(l.broken.is_empty(), "{truncate:?} {}: {:?}", f.display(), l.broken);
            nums.extend(l.nums);
        }
        assert_exactly_once(&nums, 1001, true);
    }
}

// ---------------------------------------------------------------- archive names and places

/// M5: two logs of one file name whose archives would share a directory (or an upload
/// prefix) are refused, naming both; beside each log they rotate; upload keys name the host.
#[tokio::test]
async fn logs_of_one_name_into_one_archive_directory_or_bucket_are_refused() {
    let dir = tdir("name-clash");
    let (a, b) = (dir.join("a"), dir.join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let (la, lb) = (a.join("app.log"), b.join("app.log"));
    fs::write(&la, "a\n".repeat(100)).unwrap();
    fs::write(&lb, "b\n".repeat(100)).unwrap();
    let archive_dir = dir.join("archive");
    let bucket = dir.join("bucket");
    fs::create_dir_all(&bucket).unwrap();
    let cfg = Config {
        paths: vec![la.display().to_string(), lb.display().to_string()],
        archive_dir: Some(archive_dir.clone()),
        state_file: Some(state_in(&dir)),
        ..Config::default()
    };
    let names_both = |e: &str| e.contains(&la.display().to_string()) && e.contains(&lb.display().to_string());
    // literal paths: refused when the task is built (bad input)
    let err = LogRotation::new(cfg.clone()).unwrap_err();
    assert!(err.is_bad_input() && names_both(&err.to_string()), "{err}");
    // globs: refused before anything is touched
    let globbed =
        Config { paths: vec![format!("{}/*.log", a.display()), format!("{}/*.log", b.display())], ..cfg.clone() };
    let err = LogRotation::new(globbed.clone()).unwrap().check_targets().unwrap_err();
    assert!(err.is_bad_input() && names_both(&err.to_string()), "{err}");
    let r = rotate(&globbed).await;
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(names_both(r.error.as_deref().unwrap()), "{r:?}");
    assert_eq!(fs::read(&la).unwrap(), "a\n".repeat(100).as_bytes());
    assert_eq!(fs::read(&lb).unwrap(), "b\n".repeat(100).as_bytes());
    assert!(!archive_dir.exists(), "the archive directory was made: {r:?}");
    // one upload prefix: the same clash
    let url = format!("file://{}", bucket.display());
    let err =
        LogRotation::new(Config { archive_dir: None, archive_url: Some(url.clone()), ..cfg.clone() }).unwrap_err();
    assert!(err.is_bad_input() && names_both(&err.to_string()), "{err}");
    // beside each log, nothing shared: both rotate
    let r = rotate(&Config { archive_dir: None, ..cfg.clone() }).await;
    assert_eq!(r.metrics["files_rotated"], 2.0, "{r:?}");
    // upload keys carry the host name: two hosts never overwrite each other's archives
    fs::write(&la, b"again\n").unwrap();
    let r = rotate(&Config { paths: vec![la.display().to_string()], archive_url: Some(url), ..cfg.clone() }).await;
    assert_eq!(r.status, Status::Ok, "{r:?}");
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let archive = produced(&r)[0].clone();
    let key = bucket.join(&host).join(archive.file_name().unwrap());
    assert_eq!(fs::read(&key).unwrap(), fs::read(&archive).unwrap(), "no object at {}: {r:?}", key.display());
    let key = format!("/{host}/{}", archive.file_name().unwrap().to_string_lossy());
    assert!(r.items[0]["uploaded"][0].as_str().unwrap().ends_with(&key), "{r:?}");
}

/// An archive directory that is a symbolic link (planted in the writable log directory
/// before the tool creates it), someone else's, or writable by group or others is refused
/// before any log is touched; one this user owns and alone can write is used.
#[tokio::test]
async fn an_unsafe_archive_directory_is_refused() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let dir = tdir("unsafe-archive-dir");
    let (logs, outside) = (dir.join("logs"), dir.join("outside"));
    fs::create_dir_all(&logs).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let log = logs.join("app.log");
    let content = "0123456789\n".repeat(1000);
    let archive_dir = logs.join("archive");
    std::os::unix::fs::symlink(&outside, &archive_dir).unwrap();
    let cfg = Config {
        paths: vec![log.display().to_string()],
        archive_dir: Some(archive_dir.clone()),
        state_file: Some(state_in(&dir)),
        ..Config::default()
    };
    let refused = |r: &TaskReport, why: &str| {
        assert_eq!(r.status, Status::Failed, "{why}: {r:?}");
        let e = r.error.as_deref().unwrap();
        assert!(
            e.contains("refusing") && e.contains(&archive_dir.display().to_string()) && e.contains(why),
            "{why}: {e}"
        );
        assert_eq!(fs::read_to_string(&log).unwrap(), content, "{why}: the log was touched");
        assert!(names_in(&outside).is_empty(), "{why}: written through the link");
    };
    for mode in [Mode::Rename, Mode::Copytruncate] {
        fs::write(&log, &content).unwrap();
        let cfg = Config { mode, ..cfg.clone() };
        refused(&rotate(&cfg).await, "symbolic link");
        let dry = LogRotation::new(cfg).unwrap().run(&TaskContext::new(true)).await;
        refused(&dry, "symbolic link");
    }
    fs::remove_file(&archive_dir).unwrap();
    fs::create_dir(&archive_dir).unwrap();
    let chmod = |m: u32| fs::set_permissions(&archive_dir, fs::Permissions::from_mode(m)).unwrap();
    for m in [0o777, 0o1777, 0o775] {
        chmod(m);
        refused(&rotate(&cfg).await, "writable by group or others");
    }
    chmod(0o755);
    if chown(&archive_dir, Some(4242), None).is_ok() {
        refused(&rotate(&cfg).await, "owned by uid 4242");
        chown(&archive_dir, Some(0), None).unwrap();
    }
    let r = rotate(&cfg).await;
    assert_eq!(r.metrics["files_rotated"], 1.0, "{r:?}");
    assert_eq!(decompress(&archives(&archive_dir, "app.log")[0]), content.as_bytes());
    // created by the tool when missing: this user's, 0755
    fs::remove_dir_all(&archive_dir).unwrap();
    fs::write(&log, &content).unwrap();
    let r = rotate(&cfg).await;
    assert_eq!(r.metrics["files_rotated"], 1.0, "{r:?}");
    assert_eq!(fs::symlink_metadata(&archive_dir).unwrap().permissions().mode() & 0o7777, 0o755);
}
