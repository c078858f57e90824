//! One `maint run` at a time: a PostgreSQL advisory lock when a database is configured
//! (works across machines: many CronJob pods, one runner), otherwise a file lock.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use maint_core::{Error, Secret, one_line};
use maint_db::deadpool_postgres::tokio_postgres::{self, Client};

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

/// Creates the directory of the lock file (and of the daemon state next to it) if missing,
/// and refuses one that others could use to replace or plant files: owned by another user,
/// or group/world-writable without the sticky bit.
pub(crate) fn private_dir(lock_file: &Path) -> Result<(), Error> {
    match lock_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => maint_core::ensure_private_dir(dir),
        None => maint_core::check_private_dir(Path::new(".")),
    }
}

/// Takes the run lock, or says who holds it. The lock file is opened without following a
/// symlink and without truncating, and must be the runner's own regular file.
pub(crate) async fn acquire(database: Option<&Secret>, lock_file: &Path) -> Result<Result<RunLock, String>, Error> {
    let connected = match database {
        Some(url) => match maint_db::connect(url).await {
            Ok(c) => Some(c),
            Err(maint_db::Error::Invalid { message, .. }) => return Err(Error::invalid("database.url", message)),
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
        Some(client) => {
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
            private_dir(lock_file)?;
            let mut file = maint_core::open_private(lock_file)?;
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
                Err(TryLockError::Error(source)) => Err(Error::io("lock", lock_file)(source)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::PathBuf;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("maint-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Another user could replace the lock file or forge the daemon state in a directory
    /// everyone can write: refused (exit 1), naming the directory and why.
    #[tokio::test]
    async fn a_lock_directory_others_can_write_is_refused() {
        let dir = scratch("open");
        let locks = dir.join("locks");
        std::fs::create_dir(&locks).unwrap();
        std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = acquire(None, &locks.join("run.lock")).await.unwrap_err();
        let msg = one_line(&err);
        assert!(msg.contains(&locks.display().to_string()) && msg.contains("writable"), "{msg}");
        assert_eq!(err.exit_code(), maint_core::ExitCode::Failed);
        // With the sticky bit (like /tmp) others cannot replace our files: accepted.
        std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(matches!(acquire(None, &locks.join("run.lock")).await, Ok(Ok(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A symlink planted at the lock file's path is not followed: its target keeps its content.
    #[tokio::test]
    async fn a_symlink_at_the_lock_file_is_not_followed() {
        let dir = scratch("link");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let lock = dir.join("run.lock");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        let err = acquire(None, &lock).await.unwrap_err();
        let msg = one_line(&err);
        assert!(msg.contains(&lock.display().to_string()) && msg.contains("symbolic link"), "{msg}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A lock directory (or lock file) owned by another user is refused. Only root can give
    /// a directory away: run as another user, the test says so and checks nothing.
    #[tokio::test]
    async fn a_lock_directory_owned_by_another_user_is_refused() {
        let dir = scratch("owner");
        let locks = dir.join("locks");
        std::fs::create_dir(&locks).unwrap();
        if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&dir).unwrap()) != 0 {
            eprintln!("not root: cannot give a directory to another user; checked as root in CI");
            std::fs::remove_dir_all(&dir).unwrap();
            return;
        }
        std::os::unix::fs::chown(&locks, Some(65534), None).unwrap();
        let err = acquire(None, &locks.join("run.lock")).await.unwrap_err();
        let msg = one_line(&err);
        assert!(msg.contains(&locks.display().to_string()) && msg.contains("owned by uid 65534"), "{msg}");
        // A lock file another user created in our directory is refused too.
        std::os::unix::fs::chown(&locks, Some(0), None).unwrap();
        std::fs::write(locks.join("run.lock"), "").unwrap();
        std::os::unix::fs::chown(locks.join("run.lock"), Some(65534), None).unwrap();
        let msg = one_line(&acquire(None, &locks.join("run.lock")).await.unwrap_err());
        assert!(msg.contains("run.lock") && msg.contains("owned by uid 65534"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A database that accepts the connection and never answers: the run falls back to the
    /// file lock at the URL's `connect_timeout` (it waited forever).
    #[tokio::test]
    async fn a_database_that_never_answers_falls_back_to_the_file_lock() {
        let port = maint_testkit::silent_server();
        let dir = scratch("silent");
        let url = Secret::new(format!("postgresql://maint:pw@127.0.0.1:{port}/postgres?connect_timeout=2"));
        let got = tokio::time::timeout(std::time::Duration::from_secs(30), acquire(Some(&url), &dir.join("run.lock")))
            .await
            .expect("gave up within 30 s");
        assert!(matches!(got, Ok(Ok(RunLock::File { .. }))), "{got:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A database URL that cannot be used is bad input (exit 2), named without its value.
    #[tokio::test]
    async fn a_bad_database_url_is_bad_input() {
        let dir = scratch("badurl");
        let url = Secret::new("postgresql://maint:hunter2@127.0.0.1:9/postgres?sslmode=verify");
        let err = acquire(Some(&url), &dir.join("run.lock")).await.unwrap_err();
        let msg = one_line(&err);
        assert_eq!(err.exit_code(), maint_core::ExitCode::BadInput, "{msg}");
        assert!(msg.starts_with("database.url: sslmode `verify` is not one of") && !msg.contains("hunter2"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
