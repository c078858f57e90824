//! `create`: `pg_dump --format=custom --compress=0` in an exported snapshot, compressed once
//! (multi-threaded zstd by default) into a multipart upload, fingerprints taken in the same
//! snapshot with `row_security = off`, then a create-only manifest. Also the pieces the
//! restore test shares: the connector and the `PG*` environment of the client tools.

use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;

use async_compression::Level;
use async_compression::tokio::bufread::{GzipEncoder, ZstdEncoder};
use async_compression::zstd::CParameter;
use chrono::Utc;
use deadpool_postgres::tokio_postgres;
use maint_core::Secret;
use maint_db::{PgConnector, SslMode};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::hashing::{HashingReader, Progress, hex};
use crate::{Compression, DumpLayout, Error, MANIFEST_FORMAT_VERSION, Manifest, backup_key, fingerprint, manifest_key};

/// What `create` needs.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The source database (`postgresql://user:pass@host/db`). The password is handed to
    /// `pg_dump` through `PGPASSWORD`, never on its command line.
    pub database_url: Secret,
    /// Compression of the stored object (the only one: `pg_dump` runs with `--compress=0`).
    pub compression: Compression,
    /// The `pg_dump` to run, whatever the server's version; `None` picks it by the server's
    /// major under `client_root`.
    pub pg_dump: Option<PathBuf>,
    /// Where each major's clients are installed (`<root>/<major>/bin/`, Debian's layout):
    /// [`CLIENT_ROOT`](crate::CLIENT_ROOT) by default.
    pub client_root: PathBuf,
    /// Parts uploaded at once (each part is 8 MiB: memory stays bounded).
    pub upload_concurrency: usize,
}

impl CreateOptions {
    /// Zstd, the `pg_dump` of the server's major, 4 parts in flight.
    pub fn new(database_url: Secret) -> Self {
        CreateOptions {
            database_url,
            compression: Compression::default(),
            pg_dump: None,
            client_root: crate::CLIENT_ROOT.into(),
            upload_concurrency: 4,
        }
    }
}

const PART_SIZE: usize = 8 << 20;

/// The zstd level: on dumps of vector tables (floats rendered as text) level 2 is both
/// smaller and faster than 3 (docs/backup.md).
const ZSTD_LEVEL: i32 = 2;

/// At most this many zstd worker threads (each holds a few MiB of input and output).
const ZSTD_MAX_WORKERS: usize = 4;

/// Parses a connection string (`field` names it in errors): libpq's `sslmode` and
/// `sslrootcert` included, the password never repeated.
pub(crate) fn connector(url: &Secret, field: &str) -> Result<PgConnector, Error> {
    PgConnector::new(url).map_err(|e| match e {
        maint_db::Error::Invalid { message, .. } => Error::invalid(field, message),
        e => e.into(),
    })
}

/// A `pg_dump`/`pg_restore` command connected through the `PG*` environment variables
/// libpq reads, taken from the connector (URL or `key=value`), so no password ever reaches
/// the tool's command line (where `ps` shows it), however the caller wrote it. The tool
/// connects as our own session does: the same `sslmode`, `sslrootcert` (the system's roots
/// when `verify-ca`/`verify-full` name none) and `connect_timeout`.
pub(crate) fn tool_command(program: &std::path::Path, pg: &PgConnector) -> Command {
    let cfg = pg.config();
    let mut cmd = Command::new(program);
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSERVICE",
        "PGPASSFILE",
        "PGSSLMODE",
        "PGREQUIRESSL",
        "PGSSLROOTCERT",
        "PGCONNECT_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => {
            cmd.env("PGHOST", h);
        }
        Some(tokio_postgres::config::Host::Unix(p)) => {
            cmd.env("PGHOST", p);
        }
        None => {}
    }
    if let Some(port) = cfg.get_ports().first() {
        cmd.env("PGPORT", port.to_string());
    }
    if let Some(user) = cfg.get_user() {
        cmd.env("PGUSER", user);
    }
    if let Some(db) = cfg.get_dbname() {
        cmd.env("PGDATABASE", db);
    }
    if let Some(pw) = cfg.get_password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(pw).into_owned());
    }
    cmd.env("PGSSLMODE", pg.ssl_mode().as_str());
    match pg.root_cert() {
        Some(path) => {
            cmd.env("PGSSLROOTCERT", path);
        }
        None if matches!(pg.ssl_mode(), SslMode::VerifyCa | SslMode::VerifyFull) => {
            cmd.env("PGSSLROOTCERT", "system");
        }
        None => {}
    }
    if let Some(limit) = cfg.get_connect_timeout() {
        // whole seconds for libpq, where 0 would mean no limit
        cmd.env("PGCONNECT_TIMEOUT", limit.as_secs().max(1).to_string());
    }
    cmd.kill_on_drop(true).stderr(Stdio::piped());
    cmd
}

/// Collects a child's stderr (first 4 KiB) in the background.
pub(crate) fn stderr_of(child: &mut Child) -> tokio::task::JoinHandle<String> {
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let mut buf = Vec::new();
            let _ = e.read_to_end(&mut buf).await;
            s = String::from_utf8_lossy(&buf[..buf.len().min(4096)]).trim().replace('\n', " ");
        }
        s
    })
}

pub(crate) fn spawn_error(tool: &'static str, e: &std::io::Error) -> Error {
    let message = if e.kind() == std::io::ErrorKind::NotFound {
        "not found (install the PostgreSQL client tools)".to_owned()
    } else {
        e.to_string()
    };
    Error::Tool { tool, message }
}

/// Dumps a database into the store: `pg_dump --format=custom` in an exported snapshot,
/// streamed through compression into a multipart upload (memory bounded, no local file),
/// then a create-only manifest with sizes, hashes and per-table fingerprints taken in
/// the same snapshot. Returns the manifest.
pub async fn create(
    store: &Arc<dyn ObjectStore>,
    opts: &CreateOptions,
    cancel: &CancellationToken,
) -> Result<Manifest, Error> {
    let pg = connector(&opts.database_url, "database_url")?;
    let client = pg.connect().await?;
    // row_security off, as pg_dump runs: a policy that would hide rows is an error, never
    // a short fingerprint.
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL row_security = off").await?;
    let (major, version) = crate::tools::server_version(&client).await?;
    let pg_dump = crate::tools::pick("pg_dump", opts.pg_dump.as_deref(), &opts.client_root, major, &version)?;
    crate::fingerprint::check_row_security(&client).await?;
    let row = client
        .query_one("SELECT pg_export_snapshot(), current_database(), current_setting('server_version')", &[])
        .await?;
    let (snapshot, database, server_version): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    let started_at = Utc::now();
    let key = backup_key(&database, started_at, opts.compression);
    let path = Path::from(key.as_str());
    for existing in [path.clone(), Path::from(manifest_key(&key))] {
        match store.head(&existing).await {
            Ok(_) => return Err(Error::Exists(key)),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }

    let mut cmd = tool_command(&pg_dump, &pg);
    // Uncompressed: the one compression is ours, multi-threaded (pg_dump's is one thread).
    cmd.args(["--format=custom", "--compress=0", "--no-password", &format!("--snapshot={snapshot}")])
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| spawn_error("pg_dump", &e))?;
    let stderr = stderr_of(&mut child);
    let stdout = child.stdout.take().ok_or_else(|| Error::Tool { tool: "pg_dump", message: "no stdout".into() })?;

    let upload = async {
        let mut writer = WriteMultipart::new_with_chunk_size(store.put_multipart(&path).await?, PART_SIZE);
        let mut raw = HashingReader::new(stdout);
        let pumped = pump(&mut raw, opts, &mut writer, cancel).await;
        if pumped.is_err() {
            // pg_dump may be blocked on a full pipe nobody reads any more: stop it, or
            // `wait` never returns and the upload is never aborted.
            let _ = child.start_kill();
        }
        let status = child.wait().await;
        let ok = match (&pumped, status) {
            (Ok(_), Ok(s)) if s.success() => Ok(()),
            (Err(_), _) => Ok(()),
            (_, Ok(s)) => {
                Err(Error::Tool { tool: "pg_dump", message: format!("{s}: {}", stderr.await.unwrap_or_default()) })
            }
            (_, Err(e)) => Err(Error::Io(e)),
        };
        match pumped.and_then(|stored| ok.map(|()| stored)) {
            Ok(stored) => {
                writer.finish().await?;
                Ok((stored, raw.bytes(), raw.hex()))
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    };
    let (uploaded, tables) = tokio::join!(upload, fingerprint(&client));
    let _ = client.batch_execute("COMMIT").await;
    drop(client);
    let ((stored_bytes, stored_sha256), dump_bytes, dump_sha256) = uploaded?;
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        key: key.clone(),
        database,
        server_version,
        compression: opts.compression,
        layout: DumpLayout::PgDumpZ0,
        started_at,
        finished_at: Utc::now(),
        stored_bytes,
        stored_sha256,
        dump_bytes,
        dump_sha256,
        tables: tables?,
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::invalid("manifest", e.to_string()))?;
    let put = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
    match store.put_opts(&Path::from(manifest_key(&key)), PutPayload::from(body), put).await {
        Ok(_) => Ok(manifest),
        Err(object_store::Error::AlreadyExists { .. }) => Err(Error::Exists(key)),
        Err(e) => Err(e.into()),
    }
}

/// Reads the dump, compresses it, hashes and uploads the stored bytes.
async fn pump<R: AsyncRead + Unpin + Send>(
    raw: &mut HashingReader<R>,
    opts: &CreateOptions,
    writer: &mut WriteMultipart,
    cancel: &CancellationToken,
) -> Result<(u64, String), Error> {
    let mut reader: Pin<Box<dyn AsyncRead + Send + '_>> = match opts.compression {
        Compression::None => Box::pin(raw),
        Compression::Gzip => Box::pin(GzipEncoder::new(BufReader::new(raw))),
        Compression::Zstd => {
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(ZSTD_MAX_WORKERS);
            let params = [CParameter::nb_workers(workers as u32), CParameter::job_size(4 << 20)];
            Box::pin(ZstdEncoder::with_quality_and_params(BufReader::new(raw), Level::Precise(ZSTD_LEVEL), &params))
        }
    };
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut progress = Progress::new("uploading", "the dump", None);
    loop {
        progress.tick(bytes);
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
        writer.wait_for_capacity(opts.upload_concurrency.max(1)).await?;
        writer.write(&buf[..n]);
    }
    Ok((bytes, hex(&hasher.finalize())))
}
