//! Shared by every task: [`Db`], the pool whose sessions start with the configured
//! timeouts, lock-timeout retries that name the blockers, and the per-database run lock.

use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::time::Duration;

use deadpool_postgres::tokio_postgres;
use deadpool_postgres::tokio_postgres::config::Host;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use maint_core::Secret;

use crate::{Blocker, Error, LockMode, PgConnector, Settings};

/// The key of the session-level advisory lock that lets one maintenance run per
/// database go at a time (`pg_try_advisory_lock(30787877914043490)`, the bytes of "maintdb").
pub const RUN_LOCK_KEY: i64 = 0x006d_6169_6e74_6462;

/// SQLSTATE of "lock not available" (`lock_timeout` expired).
pub(crate) const LOCK_NOT_AVAILABLE: &str = "55P03";

/// A handle to one database: a deadpool-postgres pool whose every session carries
/// `lock_timeout`, `statement_timeout` (and `maintenance_work_mem` when configured)
/// as startup options, so no statement of ours can wait for a lock or run unbounded.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    pg: PgConnector,
    target: String,
    lock_attempts: u32,
    retry_backoff: Duration,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("target", &self.target).finish_non_exhaustive()
    }
}

/// `host:port/db` for messages, never the password.
pub(crate) fn describe(pg: &tokio_postgres::Config) -> String {
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "?".to_owned(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let db = pg.get_dbname().or(pg.get_user()).unwrap_or("?");
    format!("{host}:{port}/{db}")
}

/// A random fraction in `[0, 1)` without a random-number dependency.
fn jitter() -> f64 {
    let h = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    (h % 10_000) as f64 / 10_000.0
}

/// The pause before retry number `attempt` (1-based): `base * 2^(attempt-1)`, plus up to
/// 100% jitter so that several waiting runs do not retry in step.
pub fn retry_pause(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10));
    exp.mul_f64(1.0 + jitter())
}

/// Maps a driver error to [`Error::Query`] for `operation`.
pub(crate) fn query_err(operation: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let operation = operation.into();
    move |source| Error::Query { operation, source }
}

impl Db {
    /// A handle for a URL (`postgresql://...` or `key=value`, with libpq's `sslmode` and
    /// `sslrootcert`: [`PgConnector`]). No connection is made here; a URL that cannot be
    /// parsed is [`Error::Invalid`] for field `database_url`, and its text (with the
    /// password) is never repeated.
    pub fn connect(url: &Secret, settings: &Settings) -> Result<Db, Error> {
        let pg = PgConnector::new(url)?;
        if pg.config().get_hosts().is_empty() {
            return Err(Error::invalid("database_url", "no host (expected postgresql://user@host:port/db)"));
        }
        Db::from_connector(pg, settings)
    }

    /// A handle for a connector; the session options are added to its configuration.
    pub fn from_connector(mut connector: PgConnector, settings: &Settings) -> Result<Db, Error> {
        let pg = connector.config_mut();
        let mut options = pg.get_options().unwrap_or_default().to_owned();
        options.push_str(&format!(
            " -c lock_timeout={}ms -c statement_timeout={}ms",
            settings.lock_timeout.as_millis(),
            settings.statement_timeout.as_millis()
        ));
        if let Some(m) = &settings.maintenance_work_mem {
            options.push_str(&format!(" -c maintenance_work_mem={m}"));
        }
        pg.options(options.trim());
        if pg.get_application_name().is_none() {
            pg.application_name("maint-db");
        }
        let target = connector.target();
        let manager = Manager::from_config(
            connector.config().clone(),
            connector.tls(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        // The driver's connect_timeout covers the TCP connect only: a server that accepts and
        // never answers would hold `client()` forever without the pool's own limit.
        let limit = connector.config().get_connect_timeout().copied().unwrap_or(crate::DEFAULT_CONNECT_TIMEOUT);
        let pool = Pool::builder(manager)
            .max_size(settings.jobs + 1)
            .create_timeout(Some(limit))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::invalid("database_url", e.to_string()))?;
        Ok(Db {
            pool,
            pg: connector,
            target,
            lock_attempts: settings.lock_attempts,
            retry_backoff: settings.retry_backoff,
        })
    }

    /// `host:port/db`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The pool (each session has the timeouts set).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A pooled session.
    pub async fn client(&self) -> Result<Object, Error> {
        self.pool.get().await.map_err(|e| {
            let source: Box<dyn std::error::Error + Send + Sync> = match e {
                deadpool_postgres::PoolError::Backend(e) => Box::new(e),
                other => Box::new(other),
            };
            Error::Connect { target: self.target.clone(), source }
        })
    }

    /// Connects and runs `SELECT 1`: wrong password, unknown database, unreachable host.
    pub async fn ping(&self) -> Result<(), Error> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(query_err("SELECT 1"))?;
        Ok(())
    }

    /// Runs `f` and, when it fails with SQLSTATE 55P03 (`lock_timeout`), tries again after
    /// [`retry_pause`], up to `lock_attempts` times in all. When it gives up, the error names
    /// the sessions holding a lock on `relation` (an oid) that conflicts with `mode`.
    pub async fn retry_locked<T, F, Fut>(
        &self,
        operation: &str,
        relation: Option<(u32, LockMode)>,
        mut f: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if e.sqlstate() == Some(LOCK_NOT_AVAILABLE) => {
                    if attempt >= self.lock_attempts {
                        let blockers = match relation {
                            Some((oid, mode)) => self.blockers(oid, mode).await.unwrap_or_default(),
                            None => Vec::new(),
                        };
                        return Err(Error::LockTimeout {
                            operation: operation.to_owned(),
                            attempts: attempt,
                            blockers,
                        });
                    }
                    tokio::time::sleep(retry_pause(self.retry_backoff, attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sessions holding a granted lock on relation `oid` that conflicts with `mode`.
    ///
    /// `pg_blocking_pids()` only answers while a session is waiting; with `lock_timeout`
    /// and `SKIP_LOCKED` we never wait, so the same answer is computed from `pg_locks`
    /// and PostgreSQL's lock conflict table ([`LockMode::conflicts_with`]).
    pub async fn blockers(&self, oid: u32, mode: LockMode) -> Result<Vec<Blocker>, Error> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT l.pid, l.mode, coalesce(a.state, ''), left(coalesce(a.query, ''), 200) \
                 FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'relation' AND l.relation = $1 AND l.granted \
                   AND l.pid <> pg_backend_pid() \
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 ORDER BY l.pid",
                &[&oid],
            )
            .await
            .map_err(query_err("list lock holders"))?;
        let mut out: Vec<Blocker> = Vec::new();
        for row in rows {
            let held: String = row.get(1);
            let conflicts = LockMode::from_pg_name(&held).is_some_and(|h| mode.conflicts_with(h));
            let pid: i32 = row.get(0);
            if conflicts && !out.iter().any(|b| b.pid == pid) {
                out.push(Blocker { pid, mode: held, state: row.get(2), query: row.get(3) });
            }
        }
        Ok(out)
    }

    /// Tries the run lock ([`RUN_LOCK_KEY`]) on a session of its own, outside the pool,
    /// so it lives exactly as long as the returned [`RunLock`] (or this process).
    pub async fn try_lock_run(&self) -> Result<RunLockAttempt, Error> {
        let client = self.pg.connect().await?;
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&RUN_LOCK_KEY])
            .await
            .map_err(query_err("pg_try_advisory_lock"))?
            .get(0);
        if got {
            return Ok(RunLockAttempt::Acquired(RunLock { client: Some(client) }));
        }
        let holder = advisory_lock_holder(&client, RUN_LOCK_KEY)
            .await
            .map_err(query_err("find the run lock holder"))?
            .map(|h| h.pid);
        Ok(RunLockAttempt::Busy { holder })
    }
}

/// A session holding a session-level advisory lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Its backend pid.
    pub pid: i32,
    /// Its `application_name` (may be empty).
    pub application: String,
    /// Its client address, or `local` for a Unix socket.
    pub client: String,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({} from {})", self.pid, self.application, self.client)
    }
}

/// Who holds the session advisory lock `key` in the current database (`None`: nobody this
/// role can see). The one query behind every "a run is in progress, held by …" message.
pub async fn advisory_lock_holder(
    client: &tokio_postgres::Client,
    key: i64,
) -> Result<Option<LockHolder>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT l.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local') \
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.classid::bigint = ($1::bigint >> 32) AND l.objid::bigint = ($1::bigint & 4294967295) \
               AND l.objsubid = 1 LIMIT 1",
            &[&key],
        )
        .await?;
    Ok(row.map(|r| LockHolder { pid: r.get(0), application: r.get(1), client: r.get(2) }))
}

/// The outcome of [`Db::try_lock_run`].
#[derive(Debug)]
pub enum RunLockAttempt {
    /// We hold the run lock.
    Acquired(RunLock),
    /// Another session holds it: a run is in progress.
    Busy {
        /// The pid holding it, when it could be seen.
        holder: Option<i32>,
    },
}

/// The held run lock. Dropping it closes its session, which releases the lock;
/// [`RunLock::release`] does so explicitly and at once.
pub struct RunLock {
    client: Option<tokio_postgres::Client>,
}

impl fmt::Debug for RunLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLock").field("session", &self.client.is_some()).finish()
    }
}

impl RunLock {
    /// A lock that holds nothing, for backends without a server (tests).
    pub fn detached() -> Self {
        RunLock { client: None }
    }

    /// Unlocks and closes the session.
    pub async fn release(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&RUN_LOCK_KEY]).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maint_core::one_line;

    #[test]
    fn the_run_lock_key_is_the_documented_number() {
        assert_eq!(RUN_LOCK_KEY, 30_787_877_914_043_490);
        assert_eq!(&RUN_LOCK_KEY.to_be_bytes()[1..], b"maintdb");
    }

    #[test]
    fn retry_pause_doubles_with_at_most_full_jitter() {
        let base = Duration::from_millis(100);
        for attempt in 1..=4u32 {
            let p = retry_pause(base, attempt);
            let floor = base * (1 << (attempt - 1));
            assert!(p >= floor && p < floor * 2, "attempt {attempt}: {p:?}");
        }
    }

    #[test]
    fn urls_are_checked_without_echoing_the_password() {
        let s = Settings::default();
        let err = Db::connect(&Secret::new("postgresql://u:hunter2@host:notaport/db"), &s).unwrap_err();
        let msg = one_line(&err);
        assert!(msg.starts_with("database_url: "), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        let db = Db::connect(&Secret::new("postgresql://u:hunter2@db.example:6543/app"), &s).unwrap();
        assert_eq!(db.target(), "db.example:6543/app");
        assert!(!format!("{db:?}").contains("hunter2"));
        let opts = db.pg.config().get_options().unwrap();
        assert!(opts.contains("-c lock_timeout=5000ms") && opts.contains("-c statement_timeout=3600000ms"), "{opts}");
    }
}
