use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use deadpool_postgres::tokio_postgres::{self, Client, NoTls};
use maint_core::Secret;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::create::{spawn_error, stderr_of, tool_command};
use crate::verify::{decoder, load_manifest, open_object};
use crate::{Error, Mismatch, compare, fingerprint, quote_ident};

/// Scratch databases are named `maint_restore_<UTC time>_<pid>`; the prefix marks them
/// as safe to drop.
pub const SCRATCH_PREFIX: &str = "maint_restore_";

/// What a restore test needs.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// A connection to the server that hosts the scratch database, with CREATEDB rights
    /// (`postgresql://user:pass@host/postgres`). Use the same URL for every run: live runs
    /// are recognised by an advisory lock taken in that database.
    pub admin_url: Secret,
    /// The `pg_restore` to run.
    pub pg_restore: PathBuf,
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
    /// Tables compared.
    pub tables_compared: usize,
    /// Tables whose rows differ from the source.
    pub mismatches: Vec<Mismatch>,
    /// Scratch databases of crashed runs dropped before this one.
    pub leftovers_dropped: Vec<String>,
}

async fn connect(url: &str) -> Result<Client, Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Drops scratch databases whose run is gone (nobody holds their advisory lock).
pub async fn drop_leftovers(admin: &Client) -> Result<Vec<String>, Error> {
    let rows =
        admin.query("SELECT datname FROM pg_database WHERE datname LIKE 'maint\\_restore\\_%' ORDER BY 1", &[]).await?;
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let free: bool = admin.query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&name]).await?.get(0);
        if !free {
            continue; // a live run owns it
        }
        let result = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name))).await;
        admin.query_one("SELECT pg_advisory_unlock(hashtext($1))", &[&name]).await?;
        result?;
        tracing::warn!(database = %name, "dropped the scratch database of a run that did not finish");
        dropped.push(name);
    }
    Ok(dropped)
}

/// Copies the decompressed dump into pg_restore, logging progress.
async fn feed(
    reader: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    stdin: &mut tokio::process::ChildStdin,
    key: &str,
) -> std::io::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut progress = crate::hashing::Progress::new("restoring", key);
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

fn with_database(url: &str, db: &str) -> Result<String, Error> {
    let mut u = url::Url::parse(url).map_err(|e| Error::invalid("admin_url", format!("not a URL: {e}")))?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

/// Restores a backup into a fresh scratch database with `pg_restore` fed from the object
/// stream, fingerprints every table there and compares with the manifest. The scratch
/// database is always dropped: on success, failure and cancellation (and, after a crash,
/// by the next run).
pub async fn restore_test(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    opts: &RestoreOptions,
    cancel: &CancellationToken,
) -> Result<RestoreOutcome, Error> {
    let manifest = load_manifest(store, key).await?.map_err(|m| Error::invalid("backup", format!("{key}: {m}")))?;
    let admin = connect(opts.admin_url.expose()).await?;
    let leftovers_dropped = drop_leftovers(&admin).await?;
    let name = format!("{SCRATCH_PREFIX}{}_{}", Utc::now().format("%Y%m%d%H%M%S%3f"), std::process::id());
    admin.query_one("SELECT pg_advisory_lock(hashtext($1))", &[&name]).await?;
    admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name))).await?;
    let started = Instant::now();
    let work = async {
        admin
            .batch_execute(&format!(
                "COMMENT ON DATABASE {} IS 'aindusdb-maint restore test of {}; safe to drop'",
                quote_ident(&name),
                key.replace('\'', "''")
            ))
            .await?;
        let scratch_url = with_database(opts.admin_url.expose(), &name)?;
        let mut cmd = tool_command(&opts.pg_restore, &scratch_url)?;
        // pg_restore wants -d; the scratch name (ours, plain) carries no credentials.
        cmd.args(["--no-owner", "--no-privileges", "--exit-on-error", "--no-password", "--dbname", &name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| spawn_error("pg_restore", &e))?;
        let stderr = stderr_of(&mut child);
        let mut stdin =
            child.stdin.take().ok_or_else(|| Error::Tool { tool: "pg_restore", message: "no stdin".into() })?;
        let mut reader = decoder(manifest.compression, open_object(store, key).await?);
        let copied = feed(&mut reader, &mut stdin, key).await;
        drop(stdin);
        let status = child.wait().await?;
        if !status.success() {
            return Err(Error::Tool {
                tool: "pg_restore",
                message: format!("{status}: {}", stderr.await.unwrap_or_default()),
            });
        }
        copied?;
        let scratch = connect(&scratch_url).await?;
        let restored = fingerprint(&scratch).await?;
        Ok::<_, Error>(compare(&manifest.tables, &restored))
    };
    let result = tokio::select! {
        r = work => r,
        () = cancel.cancelled() => Err(Error::Cancelled),
    };
    let seconds = started.elapsed().as_secs_f64();
    let dropped = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name))).await;
    let _ = admin.query_one("SELECT pg_advisory_unlock(hashtext($1))", &[&name]).await;
    let mismatches = result?;
    dropped?;
    Ok(RestoreOutcome {
        key: key.to_owned(),
        scratch_database: name,
        seconds,
        tables_compared: manifest.tables.len(),
        mismatches,
        leftovers_dropped,
    })
}
