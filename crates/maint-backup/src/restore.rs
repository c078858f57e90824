//! The restore test: `pg_restore` into a marked scratch database (streamed, or with
//! `--jobs` from a spooled file; index builds with their own `maintenance_work_mem` and
//! `max_parallel_maintenance_workers`), tables fingerprinted as soon as they are loaded,
//! compared with the manifest, the scratch database always dropped; and the cleanup of
//! crashed runs' leftovers.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use deadpool_postgres::tokio_postgres::Client;
use maint_core::Secret;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::create::{connector, spawn_error, tool_command};
use crate::verify::{decoder, load_manifest, open_object};
use crate::{Error, Mismatch, compare, fingerprint_like, fingerprint_table, quote_ident};

/// Scratch databases are named `maint_restore_<UTC time>_<pid>`.
pub const SCRATCH_PREFIX: &str = "maint_restore_";

/// How a scratch database's comment begins (`aindusdb-maint restore test of <key>; safe to
/// drop`): only a `maint_restore_*` database carrying it is ever dropped as a leftover.
pub const SCRATCH_MARKER: &str = "aindusdb-maint restore test of ";

/// What a restore test needs.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// A connection to the server that hosts the scratch database, with CREATEDB rights
    /// (`postgresql://user:pass@host/postgres`). Runs through different databases of one
    /// server see each other (see [`drop_leftovers`]).
    pub admin_url: Secret,
    /// The `pg_restore` to run, whatever the server's version; `None` picks it by the
    /// server's major under `client_root`.
    pub pg_restore: Option<PathBuf>,
    /// Where each major's clients are installed (`<root>/<major>/bin/`, Debian's layout):
    /// [`CLIENT_ROOT`](crate::CLIENT_ROOT) by default.
    pub client_root: PathBuf,
    /// `pg_restore --jobs`: 1 streams the dump from the store into `pg_restore` (no local
    /// file); more first spools the decompressed dump to a private temporary file (0600,
    /// under `TMPDIR`, removed at the end: it needs the dump's size in free space), since
    /// `pg_restore` runs jobs only from a seekable file.
    pub jobs: usize,
    /// `maintenance_work_mem` of the restore's sessions (index builds), as PostgreSQL writes
    /// it (`1GB`, `512MB`). `None`: [`DEFAULT_MAINTENANCE_WORK_MEM`] capped at a quarter of
    /// the server's memory, shared by the jobs (see [`maintenance_work_mem`]).
    pub maintenance_work_mem: Option<String>,
    /// `max_parallel_maintenance_workers` of the restore's sessions: 0 by default (the jobs
    /// build indexes side by side; a parallel build puts `maintenance_work_mem` in shared
    /// memory, `/dev/shm`, which containers cap at 64 MB unless told otherwise).
    pub max_parallel_maintenance_workers: u32,
}

/// `maintenance_work_mem` of a restore when none is configured (1 GiB), before the cap.
pub const DEFAULT_MAINTENANCE_WORK_MEM: u64 = 1 << 30;

/// `pg_restore` jobs when none are configured: one, streamed from the store (on 2 cores,
/// 2 jobs from a spooled file were slower: docs/backup.md).
pub const DEFAULT_RESTORE_JOBS: usize = 1;

impl RestoreOptions {
    /// The `pg_restore` of the server's major, [`DEFAULT_RESTORE_JOBS`] jobs, the default
    /// `maintenance_work_mem`, no parallel workers.
    pub fn new(admin_url: Secret) -> Self {
        RestoreOptions {
            admin_url,
            pg_restore: None,
            client_root: crate::CLIENT_ROOT.into(),
            jobs: DEFAULT_RESTORE_JOBS,
            maintenance_work_mem: None,
            max_parallel_maintenance_workers: 0,
        }
    }
}

/// The `maintenance_work_mem` (bytes) each of `jobs` restore sessions gets: `configured`
/// (parsed by the server: `1GB`, `512MB`) as given; else [`DEFAULT_MAINTENANCE_WORK_MEM`]
/// capped at a quarter of the server's memory divided by the jobs, and never below
/// PostgreSQL's own default (64 MB). The server's memory is what this role can read of it:
/// `MemTotal` of `/proc/meminfo` (lowered to the cgroup's `memory.max` when set) through
/// `pg_read_file` (superusers, `pg_read_server_files`), else four times `shared_buffers`
/// (the usual quarter of the memory).
pub async fn maintenance_work_mem(admin: &Client, configured: Option<&str>, jobs: usize) -> Result<u64, Error> {
    if let Some(v) = configured {
        let bytes: i64 = admin
            .query_one("SELECT pg_size_bytes($1)", &[&v])
            .await
            .map_err(|e| Error::invalid("maintenance_work_mem", format!("{v:?}: {}", maint_core::one_line(&e))))?
            .get(0);
        return u64::try_from(bytes)
            .ok()
            .filter(|b| *b >= 1 << 20)
            .ok_or_else(|| Error::invalid("maintenance_work_mem", format!("{v:?} is less than 1MB")));
    }
    let read = |sql: &'static str| async move {
        admin.query_one(sql, &[]).await.ok().and_then(|r| r.get::<_, Option<String>>(0))
    };
    let meminfo = read("SELECT pg_read_file('/proc/meminfo')").await.and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    });
    let cgroup =
        read("SELECT pg_read_file('/sys/fs/cgroup/memory.max')").await.and_then(|m| m.trim().parse::<u64>().ok());
    let memory = match (meminfo, cgroup) {
        (Some(m), Some(c)) => m.min(c),
        (Some(m), None) => m,
        _ => {
            let shared: i64 =
                admin.query_one("SELECT pg_size_bytes(current_setting('shared_buffers'))", &[]).await?.get(0);
            u64::try_from(shared).unwrap_or(0) * 4
        }
    };
    Ok((memory / 4 / jobs.max(1) as u64).clamp(64 << 20, DEFAULT_MAINTENANCE_WORK_MEM))
}

/// Decompresses a backup into a private temporary file for `pg_restore --jobs`.
async fn spool(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    manifest: &crate::Manifest,
) -> Result<tempfile::NamedTempFile, Error> {
    let file = tempfile::Builder::new().prefix("maint-restore-").suffix(".dump").tempfile()?;
    let mut out = tokio::fs::File::from_std(file.reopen()?);
    let mut reader = decoder(manifest.compression, open_object(store, key).await?);
    feed(&mut reader, &mut out, key, manifest.dump_bytes).await?;
    tokio::io::AsyncWriteExt::flush(&mut out).await?;
    Ok(file)
}

/// The outcome of a restore test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreOutcome {
    /// The backup restored.
    pub key: String,
    /// The scratch database used (dropped again).
    pub scratch_database: String,
    /// Wall time of `pg_restore` plus the fingerprint comparison.
    pub seconds: f64,
    /// Of which after `pg_restore` ended: the fingerprints not taken while it ran (tables are
    /// fingerprinted as soon as it has loaded them, while it loads the next ones and builds
    /// indexes) and the comparison.
    pub fingerprint_seconds: f64,
    /// Tables compared.
    pub tables_compared: usize,
    /// Tables whose rows differ from the source.
    pub mismatches: Vec<Mismatch>,
    /// Scratch databases of crashed runs dropped before this one.
    pub leftovers_dropped: Vec<String>,
}

/// Drops the scratch databases of runs that are gone: a `maint_restore_*` database that
/// carries the [`SCRATCH_MARKER`] comment and whose run has no session left.
///
/// A run's admin session is named after its scratch database (`application_name`, set when
/// it connects, before the database exists) and lasts as long as the run. Every session of
/// the server, whatever database it is connected to and whoever it belongs to, shows its
/// `application_name` in `pg_stat_activity`, so every runner sees a live run, whichever
/// admin database each one uses (an advisory lock would be seen only in its own database).
/// A database without the marker is someone else's: it is left alone, with a log line.
pub async fn drop_leftovers(admin: &Client) -> Result<Vec<String>, Error> {
    let rows = admin
        .query(
            "SELECT d.datname,
                    starts_with(coalesce(shobj_description(d.oid, 'pg_database'), ''), $1),
                    EXISTS (SELECT FROM pg_stat_activity a WHERE a.application_name = d.datname)
             FROM pg_database d WHERE d.datname LIKE 'maint\\_restore\\_%' ORDER BY 1",
            &[&SCRATCH_MARKER],
        )
        .await?;
    let mut dropped = Vec::new();
    for row in rows {
        let (name, marked, live): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        if live {
            continue;
        }
        if !marked {
            tracing::warn!(database = %name, "left alone: it is not commented as a restore test's scratch database");
            continue;
        }
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name))).await?;
        tracing::warn!(database = %name, "dropped the scratch database of a run that did not finish");
        dropped.push(name);
    }
    Ok(dropped)
}

/// Copies the decompressed dump into pg_restore (or its spool file), logging progress.
async fn feed(
    reader: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    stdin: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    key: &str,
    total: u64,
) -> std::io::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut progress = crate::hashing::Progress::new("restoring", key, Some(total));
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        progress.tick(total);
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        stdin.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// Reads `pg_restore --verbose`: it names each table (`processing data for table
/// "schema.table"`) before loading it. One job at a time, it prints its next step only once
/// that load has committed, so the table named before the next step line is complete; with
/// `--jobs` (`parallel`), the steps of the jobs interleave and a load is complete when the
/// leader prints `finished item <id> TABLE DATA <table>`. The index in `tables` of each
/// complete table is sent. Returns the error lines (the info lines left out), for the
/// message of a failed restore.
fn watch_restore(
    child: &mut tokio::process::Child,
    tables: &[crate::TableFingerprint],
    loaded: tokio::sync::mpsc::UnboundedSender<usize>,
    parallel: bool,
) -> tokio::task::JoinHandle<String> {
    use tokio::io::AsyncBufReadExt;
    let names: Vec<(String, String)> =
        tables.iter().map(|t| (format!("{}.{}", t.schema, t.table), t.table.clone())).collect();
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let mut errors = String::new();
        let Some(stderr) = stderr else { return errors };
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut loading: Vec<usize> = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            // Only pg_restore's own step lines mean it moved on; a server NOTICE or a
            // warning printed during a COPY does not.
            let step = line
                .strip_prefix("pg_restore: ")
                .is_some_and(|rest| !["warning", "error", "detail", "hint"].iter().any(|p| rest.starts_with(p)));
            let finished = line
                .strip_prefix("pg_restore: finished item ")
                .and_then(|l| l.split_once(" TABLE DATA "))
                .map(|(_, table)| table);
            if parallel {
                if let Some(table) = finished {
                    // two loading tables of the same name (other schemas) are left for the end
                    let mut hits = loading.iter().enumerate().filter(|(_, i)| names[**i].1 == table);
                    if let (Some((at, _)), None) = (hits.next(), hits.next()) {
                        let _ = loaded.send(loading.remove(at));
                    }
                }
            } else if step && let Some(i) = loading.pop() {
                let _ = loaded.send(i);
            }
            if let Some(name) =
                line.strip_prefix("pg_restore: processing data for table \"").and_then(|l| l.strip_suffix('"'))
            {
                // a name two tables print alike (dots in names) is left for the end
                let mut hits = names.iter().enumerate().filter(|(_, n)| n.0 == name);
                if let (Some((i, _)), None) = (hits.next(), hits.next()) {
                    loading.push(i);
                }
            } else if (!line.starts_with("pg_restore: ") || line.contains("error") || line.contains("warning"))
                && errors.len() < 4096
            {
                errors.push_str(line.trim());
                errors.push(' ');
            }
        }
        errors.trim_end().to_owned()
    })
}

/// Restores a backup into a fresh scratch database with `pg_restore` (fed from the object
/// stream, or with `--jobs` from a spooled file; `maintenance_work_mem` and
/// `max_parallel_maintenance_workers` through `PGOPTIONS`), fingerprints every table there
/// as soon as it is loaded and compares with the manifest. The scratch database is always
/// dropped: on success, failure and cancellation (and, after a crash, by the next run).
pub async fn restore_test(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    opts: &RestoreOptions,
    cancel: &CancellationToken,
) -> Result<RestoreOutcome, Error> {
    let manifest = load_manifest(store, key).await?.map_err(|m| Error::invalid("backup", format!("{key}: {m}")))?;
    let name = format!("{SCRATCH_PREFIX}{}_{}", Utc::now().format("%Y%m%d%H%M%S%3f"), std::process::id());
    let server = connector(&opts.admin_url, "admin_url")?;
    // This session, named after the scratch database, marks the run as live (drop_leftovers).
    let mut admin = server.clone();
    admin.config_mut().application_name(&name);
    let admin = admin.connect().await?;
    let (major, version) = crate::tools::server_version(&admin).await?;
    let pg_restore = crate::tools::pick("pg_restore", opts.pg_restore.as_deref(), &opts.client_root, major, &version)?;
    let mut scratch_pg = server;
    scratch_pg.config_mut().dbname(&name);
    let jobs = opts.jobs.max(1);
    let work_mem = maintenance_work_mem(&admin, opts.maintenance_work_mem.as_deref(), jobs).await?;
    let pgoptions = format!(
        "-c maintenance_work_mem={}kB -c max_parallel_maintenance_workers={}",
        work_mem / 1024,
        opts.max_parallel_maintenance_workers
    );
    let leftovers_dropped = drop_leftovers(&admin).await?;
    admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name))).await?;
    let started = Instant::now();
    let work = async {
        // The key can hold anything: the server quotes it (%L), whatever its settings.
        let comment = format!("{SCRATCH_MARKER}{key}; safe to drop");
        let sql: String = admin
            .query_one("SELECT format('COMMENT ON DATABASE %I IS %L', $1::text, $2::text)", &[&name, &comment])
            .await?
            .get(0);
        admin.batch_execute(&sql).await?;
        let (tx, mut loaded) = tokio::sync::mpsc::unbounded_channel();
        let restore = async {
            let spooled = if jobs > 1 { Some(spool(store, key, &manifest).await?) } else { None };
            let mut cmd = tool_command(&pg_restore, &scratch_pg);
            // pg_restore wants -d; the scratch name (ours, plain) carries no credentials.
            cmd.args([
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--no-password",
                "--verbose",
                "--dbname",
                &name,
            ])
            .env("PGOPTIONS", &pgoptions)
            .stdout(Stdio::null());
            match &spooled {
                Some(file) => cmd.arg(format!("--jobs={jobs}")).arg(file.path()).stdin(Stdio::null()),
                None => cmd.stdin(Stdio::piped()),
            };
            let mut child = cmd.spawn().map_err(|e| spawn_error("pg_restore", &e))?;
            let stderr = watch_restore(&mut child, &manifest.tables, tx, spooled.is_some());
            let copied = match child.stdin.take() {
                Some(mut stdin) => {
                    let mut reader = decoder(manifest.compression, open_object(store, key).await?);
                    feed(&mut reader, &mut stdin, key, manifest.dump_bytes).await.map(drop)
                }
                None => Ok(()),
            };
            let status = child.wait().await?;
            if !status.success() {
                return Err(Error::Tool {
                    tool: "pg_restore",
                    message: format!("{status}: {}", stderr.await.unwrap_or_default()),
                });
            }
            copied?;
            Ok(())
        };
        // Tables pg_restore has finished loading, fingerprinted while it goes on.
        let early = async {
            let scratch = scratch_pg.connect().await?;
            // Every row, whatever the restored policies say (see fingerprint_table).
            scratch.batch_execute("SET row_security = off").await?;
            let mut done = Vec::new();
            while let Some(i) = loaded.recv().await {
                done.push(fingerprint_table(&scratch, &manifest.tables[i]).await?);
            }
            Ok::<_, Error>((scratch, done))
        };
        let (restored, early) = tokio::join!(restore, early);
        restored?;
        let (scratch, done) = early?;
        let fingerprinting = Instant::now();
        let restored = fingerprint_like(&scratch, &manifest.tables, done).await?;
        Ok::<_, Error>((compare(&manifest.tables, &restored), fingerprinting.elapsed().as_secs_f64()))
    };
    let result = tokio::select! {
        r = work => r,
        () = cancel.cancelled() => Err(Error::Cancelled),
    };
    let seconds = started.elapsed().as_secs_f64();
    let dropped = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name))).await;
    let (mismatches, fingerprint_seconds) = result?;
    dropped?;
    Ok(RestoreOutcome {
        key: key.to_owned(),
        scratch_database: name,
        seconds,
        fingerprint_seconds,
        tables_compared: manifest.tables.len(),
        mismatches,
        leftovers_dropped,
    })
}
