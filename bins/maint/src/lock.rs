//! One `maint run` at a time: a PostgreSQL advisory lock when a database is configured
//! (works across machines: many CronJob pods, one runner), otherwise a file lock.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use maint_core::{Error, Secret, one_line};
use maint_db::deadpool_postgres::tokio_postgres::{self, Client, NoTls};

/// `maintrun` as a big-endian i64; differs from maint-db's own lock so the database task
/// can still take that one inside a run.
pub(crate) const RUN_LOCK_KEY: i64 = 0x6d61_696e_7472_756e;

/// A held run lock; released on drop (the session or the file closes).
#[derive(Debug)]
pub(crate) enum RunLock {
    /// The session holding `pg_advisory_lock(RUN_LOCK_KEY)`.
    Postgres {
        /// Kept open for the whole run.
        _session: Client,
    },
    /// The locked file.
    File {
        /// Kept open (and locked) for the whole run.
        _file: File,
    },
}

/// Takes the run lock, or says who holds it.
pub(crate) async fn acquire(database: Option<&Secret>, lock_file: &Path) -> Result<Result<RunLock, String>, Error> {
    let connected = match database {
        Some(url) => match tokio_postgres::connect(url.expose(), NoTls).await {
            Ok(c) => Some(c),
            Err(e) => {
                // A database outage must not stop the tasks that do not need it.
                tracing::warn!(
                    "cannot reach the database for the run lock ({}); using {}",
                    one_line(&e),
                    lock_file.display()
                );
                None
            }
        },
        None => None,
    };
    match connected {
        Some((client, conn)) => {
            tokio::spawn(conn);
            let got = async {
                client.batch_execute("SET application_name = 'maint run'").await?;
                client.query_one("SELECT pg_try_advisory_lock($1)", &[&RUN_LOCK_KEY]).await.map(|r| r.get::<_, bool>(0))
            }
            .await;
            let got = match got {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!(
                        "cannot take the database run lock ({}); using {}",
                        one_line(&e),
                        lock_file.display()
                    );
                    return Box::pin(acquire(None, lock_file)).await;
                }
            };
            if got {
                return Ok(Ok(RunLock::Postgres { _session: client }));
            }
            let pg_err = |e: tokio_postgres::Error| Error::invalid("database.url", one_line(&e));
            let holder = maint_db::advisory_lock_holder(&client, RUN_LOCK_KEY)
                .await
                .map_err(pg_err)?
                .map_or_else(|| "another session".into(), |h| h.to_string());
            Ok(Err(format!("another maint run holds the database run lock: {holder}")))
        }
        None => {
            if let Some(dir) = lock_file.parent() {
                std::fs::create_dir_all(dir).map_err(|source| Error::Read { path: dir.to_owned(), source })?;
            }
            let mut file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(lock_file)
                .map_err(|source| Error::Read { path: lock_file.to_owned(), source })?;
            match file.try_lock() {
                Ok(()) => {
                    file.set_len(0)
                        .and_then(|()| file.rewind())
                        .and_then(|()| writeln!(file, "{}", std::process::id()))
                        .ok();
                    Ok(Ok(RunLock::File { _file: file }))
                }
                Err(TryLockError::WouldBlock) => {
                    let mut pid = String::new();
                    let _ = file.read_to_string(&mut pid);
                    Ok(Err(format!("another maint run holds {} (pid {})", lock_file.display(), pid.trim())))
                }
                Err(TryLockError::Error(source)) => Err(Error::Read { path: lock_file.to_owned(), source }),
            }
        }
    }
}
