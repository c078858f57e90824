//! The migration runner ([`Migrator`]): the history table, the advisory lock, lock and
//! statement timeouts with retries, dry run, and the external command under the lock.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::tokio_postgres::{self, error::SqlState};
use deadpool_postgres::{ClientWrapper, Object, Pool};
use maint_core::TaskContext;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::error::query_err;
use crate::{AppliedMigration, Error, Migration, MigrationPlan, Phase, load_dir, plan_migrations, split_statements};

/// The key of the session-level advisory lock every migration runner takes before it
/// reads or writes the history table: the bytes of "mrelease" (`0x6d72656c65617365`).
/// Advisory locks are per database, so runners on different databases never wait for
/// each other.
pub const MIGRATION_LOCK_KEY: i64 = 0x6d72_656c_6561_7365;

/// How the runner is set up (see [`crate::MigrationsConfig`] for the serde form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigratorOptions {
    /// The directory of `V<version>__<name>.sql` files.
    pub dir: PathBuf,
    /// Schema of the history table.
    pub schema: String,
    /// Name of the history table.
    pub table: String,
    /// How long to wait for another runner's lock before giving up.
    pub lock_wait: Duration,
    /// `lock_timeout` of the runner's session: how long a statement waits for a table
    /// lock (an `ALTER TABLE` behind a long reader) before it gives up, so that the
    /// queries queued behind it can go on. Short: the attempt is retried.
    pub lock_timeout: Duration,
    /// Attempts of a migration (or, without a transaction, of a statement) that hit
    /// `lock_timeout`, in all.
    pub lock_attempts: u32,
    /// Base pause before a retry; doubled each time, plus up to 100% jitter.
    pub retry_backoff: Duration,
    /// `statement_timeout` of the runner's session.
    pub statement_timeout: Duration,
    /// A command run inside the same lock, after the SQL files of its phase (for
    /// services that keep their own migrations: `["alembic", "upgrade", "head"]`).
    pub external_command: Vec<String>,
    /// The phase the external command belongs to.
    pub external_phase: Phase,
    /// How long the external command may run; it is killed (with its children) after.
    pub external_timeout: Duration,
}

impl MigratorOptions {
    /// Defaults: table `public.maint_release_migrations`, wait 10 minutes for another
    /// runner, `lock_timeout` 5 s tried 5 times from a 1 s backoff, `statement_timeout`
    /// 1 hour, no external command (1 hour when there is one).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        MigratorOptions {
            dir: dir.into(),
            schema: "public".into(),
            table: "maint_release_migrations".into(),
            lock_wait: Duration::from_secs(600),
            lock_timeout: Duration::from_secs(5),
            lock_attempts: 5,
            retry_backoff: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(3600),
            external_command: Vec::new(),
            external_phase: Phase::Expand,
            external_timeout: Duration::from_secs(3600),
        }
    }
}

/// One migration the run applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedStep {
    /// The version.
    pub version: String,
    /// The name.
    pub name: String,
    /// How long it took.
    pub duration_ms: u64,
}

/// What a run did (or, in a dry run, would do) for one phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationOutcome {
    /// The phase.
    pub phase: Phase,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Migrations applied, in order (empty in a dry run).
    pub applied: Vec<AppliedStep>,
    /// Migrations a dry run would apply (`V3__add_email`).
    pub planned: Vec<String>,
    /// Applied versions whose file is gone.
    pub missing_files: Vec<String>,
    /// The external command, if one ran (or would run).
    pub external: Option<String>,
    /// Whether another runner held the lock when we asked (we waited for it).
    pub waited_for_lock: bool,
}

/// Runs a phase of schema migrations. The orchestrator holds an `Arc<dyn SchemaMigrations>`
/// so that its tests can replace the database.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SchemaMigrations: Send + Sync + std::fmt::Debug + 'static {
    /// Applies (or with `ctx.dry_run`, lists) the pending migrations of `phase`.
    async fn migrate(&self, phase: Phase, ctx: &TaskContext) -> Result<MigrationOutcome, Error>;
}

/// The SQL migration runner on PostgreSQL (tokio-postgres through deadpool-postgres).
///
/// The history table (created on first run, inside the lock):
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS public.maint_release_migrations (
///     version       text        PRIMARY KEY,   -- normalized: "1.2"
///     name          text        NOT NULL,
///     phase         text        NOT NULL CHECK (phase IN ('expand', 'contract')),
///     checksum      text        NOT NULL,      -- hex SHA-256 of the file's bytes
///     transactional boolean     NOT NULL,
///     applied_at    timestamptz NOT NULL DEFAULT now(),
///     applied_by    text        NOT NULL DEFAULT current_user,
///     duration_ms   bigint      NOT NULL
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Migrator {
    pool: Pool,
    opts: MigratorOptions,
    table: String,
}

impl Migrator {
    /// A runner over `pool`. No I/O happens here. Refuses a zero timeout (PostgreSQL
    /// reads 0 as "wait forever") and zero attempts, naming the configuration field.
    pub fn new(pool: Pool, opts: MigratorOptions) -> Result<Self, Error> {
        if opts.schema.is_empty() || opts.table.is_empty() {
            return Err(Error::invalid("migrations.table", "schema and table must not be empty"));
        }
        for (field, d) in [
            ("migrations.lock_timeout_secs", opts.lock_timeout),
            ("migrations.statement_timeout_secs", opts.statement_timeout),
            ("migrations.external_timeout_secs", opts.external_timeout),
        ] {
            if d.as_millis() == 0 {
                return Err(Error::invalid(field, "must be at least 1 ms: 0 would wait forever"));
            }
        }
        if opts.lock_attempts == 0 {
            return Err(Error::invalid("migrations.lock_attempts", "must be at least 1"));
        }
        let table = maint_db::qualified(&opts.schema, &opts.table);
        Ok(Migrator { pool, opts, table })
    }

    /// The history table, quoted (`"public"."maint_release_migrations"`).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// A session of our own, detached from the pool: when it is dropped (even by a
    /// cancelled future) the connection closes and the advisory lock goes with it. Its
    /// `lock_timeout` and `statement_timeout` are ours, whatever the pool's.
    async fn session(&self) -> Result<ClientWrapper, Error> {
        let obj = self.pool.get().await.map_err(|e| {
            let source: Box<dyn std::error::Error + Send + Sync> = match e {
                deadpool_postgres::PoolError::Backend(e) => Box::new(e),
                other => Box::new(other),
            };
            Error::Connect { target: "the migrations database".into(), source }
        })?;
        let client = Object::take(obj);
        self.limit(&client).await?;
        Ok(client)
    }

    /// Sets the session's `lock_timeout` and `statement_timeout` (again before each
    /// migration: a file that sets its own changes them for itself only).
    async fn limit(&self, client: &ClientWrapper) -> Result<(), Error> {
        client
            .batch_execute(&format!(
                "SET lock_timeout = {}; SET statement_timeout = {}",
                self.opts.lock_timeout.as_millis(),
                self.opts.statement_timeout.as_millis()
            ))
            .await
            .map_err(query_err("set lock_timeout and statement_timeout"))
    }

    /// After a failed attempt of migration `m`: when it hit `lock_timeout` and attempts
    /// are left, waits [`maint_db::retry_pause`] and counts the attempt (the caller tries
    /// again); otherwise the error to stop with.
    async fn retry_after(&self, e: Error, m: &Migration, attempt: &mut u32, ctx: &TaskContext) -> Result<(), Error> {
        let lock_timeout = |source: &tokio_postgres::Error| source.code() == Some(&SqlState::LOCK_NOT_AVAILABLE);
        match e {
            Error::MigrationFailed { source, statement, transactional, .. }
                if lock_timeout(&source) && *attempt >= self.opts.lock_attempts =>
            {
                return Err(Error::MigrationLockTimeout {
                    version: m.version_text(),
                    name: m.name.clone(),
                    transactional,
                    statement,
                    attempts: *attempt,
                    lock_timeout: self.opts.lock_timeout,
                    source,
                });
            }
            Error::MigrationFailed { ref source, .. } if lock_timeout(source) => {}
            other => return Err(other),
        }
        tracing::warn!(
            version = %m.version, name = %m.name,
            "lock not available within lock_timeout {:?}: attempt {}/{}, trying again",
            self.opts.lock_timeout, attempt, self.opts.lock_attempts
        );
        tokio::select! {
            () = ctx.cancel.cancelled() => return Err(Error::Cancelled),
            () = tokio::time::sleep(maint_db::retry_pause(self.opts.retry_backoff, *attempt)) => {}
        }
        *attempt += 1;
        Ok(())
    }

    /// The history, oldest first; empty when the table does not exist yet.
    pub async fn applied(&self) -> Result<Vec<AppliedMigration>, Error> {
        let client = self.session().await?;
        read_history(&client, &self.table).await
    }

    /// Compares the directory with the history for `phase` (no lock, no writes).
    pub async fn plan(&self, phase: Phase) -> Result<MigrationPlan, Error> {
        let files = load_dir(&self.opts.dir)?;
        plan_migrations(&files, &self.applied().await?, phase)
    }

    /// Applies the pending migrations of `phase`, each in its own transaction unless
    /// marked `-- maint:no-transaction`, holding [`MIGRATION_LOCK_KEY`] for the whole run
    /// (waiting up to `lock_wait` for another runner), then runs the external command of
    /// the phase inside the same lock. Refuses to start when an applied file changed.
    /// With `ctx.dry_run`, lists what it would do and changes nothing.
    pub async fn run(&self, phase: Phase, ctx: &TaskContext) -> Result<MigrationOutcome, Error> {
        let files = load_dir(&self.opts.dir)?;
        let external = (!self.opts.external_command.is_empty() && self.opts.external_phase == phase)
            .then(|| self.opts.external_command.join(" "));
        let mut outcome = MigrationOutcome { phase, dry_run: ctx.dry_run, external, ..MigrationOutcome::default() };
        let mut client = self.session().await?;
        if ctx.dry_run {
            let plan = plan_migrations(&files, &read_history(&client, &self.table).await?, phase)?;
            outcome.planned = plan.pending.iter().map(|m| format!("V{}__{}", m.version, m.name)).collect();
            outcome.missing_files = plan.missing_files;
            return Ok(outcome);
        }
        outcome.waited_for_lock = self.lock(&client, ctx).await?;
        let result = self.apply_locked(&mut client, &files, phase, ctx, &mut outcome).await;
        let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
        result.map(|()| outcome)
    }

    /// Takes the advisory lock, polling so that the wait is bounded and cancellable.
    /// Returns whether it had to wait.
    async fn lock(&self, client: &ClientWrapper, ctx: &TaskContext) -> Result<bool, Error> {
        let started = Instant::now();
        let mut waited = false;
        loop {
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
                .await
                .map_err(query_err("pg_try_advisory_lock"))?
                .get(0);
            if got {
                return Ok(waited);
            }
            waited = true;
            if started.elapsed() >= self.opts.lock_wait {
                let holder = maint_db::advisory_lock_holder(client, MIGRATION_LOCK_KEY)
                    .await
                    .map_err(query_err("find the migration lock holder"))?
                    .map(|h| h.pid);
                return Err(Error::LockBusy { holder, waited: started.elapsed() });
            }
            tokio::select! {
                () = ctx.cancel.cancelled() => return Err(Error::Cancelled),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    async fn apply_locked(
        &self,
        client: &mut ClientWrapper,
        files: &[Migration],
        phase: Phase,
        ctx: &TaskContext,
        outcome: &mut MigrationOutcome,
    ) -> Result<(), Error> {
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    version       text        PRIMARY KEY,
                    name          text        NOT NULL,
                    phase         text        NOT NULL CHECK (phase IN ('expand', 'contract')),
                    checksum      text        NOT NULL,
                    transactional boolean     NOT NULL,
                    applied_at    timestamptz NOT NULL DEFAULT now(),
                    applied_by    text        NOT NULL DEFAULT current_user,
                    duration_ms   bigint      NOT NULL
                )",
                self.table
            ))
            .await
            .map_err(query_err(format!("create {}", self.table)))?;
        // Read the history only now, inside the lock: a runner that waited sees what the
        // other one applied.
        let plan = plan_migrations(files, &read_history(client, &self.table).await?, phase)?;
        outcome.missing_files = plan.missing_files;
        let insert = format!(
            "INSERT INTO {} (version, name, phase, checksum, transactional, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            self.table
        );
        for m in &plan.pending {
            if ctx.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let started = Instant::now();
            let failed = |statement: usize| {
                let (version, name, transactional) = (m.version_text(), m.name.clone(), m.transactional);
                move |source| Error::MigrationFailed { version, name, transactional, statement, source }
            };
            let row =
                |ms: i64| (m.version_text(), m.name.clone(), phase.as_str(), m.checksum.clone(), m.transactional, ms);
            // A statement that hits lock_timeout is tried again: the whole migration in a
            // transaction (rolled back), or the one statement without.
            self.limit(client).await?;
            let mut attempt = 1;
            if m.transactional {
                loop {
                    let tx = client.transaction().await.map_err(query_err("BEGIN"))?;
                    if let Err(e) = tx.batch_execute(&m.sql).await.map_err(failed(1)) {
                        drop(tx);
                        self.retry_after(e, m, &mut attempt, ctx).await?;
                        continue;
                    }
                    let ms = started.elapsed().as_millis() as i64;
                    let (v, n, p, c, t, ms) = row(ms);
                    tx.execute(&insert, &[&v, &n, &p, &c, &t, &ms]).await.map_err(query_err("record the migration"))?;
                    tx.commit().await.map_err(failed(1))?;
                    break;
                }
            } else {
                for (i, statement) in split_statements(&m.sql).iter().enumerate() {
                    while let Err(e) = client.batch_execute(statement).await.map_err(failed(i + 1)) {
                        self.retry_after(e, m, &mut attempt, ctx).await?;
                    }
                }
                let (v, n, p, c, t, ms) = row(started.elapsed().as_millis() as i64);
                client.execute(&insert, &[&v, &n, &p, &c, &t, &ms]).await.map_err(query_err("record the migration"))?;
            }
            tracing::info!(version = %m.version, name = %m.name, "migration applied");
            outcome.applied.push(AppliedStep {
                version: m.version_text(),
                name: m.name.clone(),
                duration_ms: started.elapsed().as_millis() as u64,
            });
        }
        if outcome.external.is_some() {
            // A cancelled run drops the command's future, which kills its process group.
            tokio::select! {
                r = run_external(&self.opts.external_command, self.opts.external_timeout) => r?,
                () = ctx.cancel.cancelled() => return Err(Error::Cancelled),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SchemaMigrations for Migrator {
    async fn migrate(&self, phase: Phase, ctx: &TaskContext) -> Result<MigrationOutcome, Error> {
        self.run(phase, ctx).await
    }
}

async fn read_history(client: &ClientWrapper, table: &str) -> Result<Vec<AppliedMigration>, Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(query_err("look up the history table"))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(&format!("SELECT version, name, phase, checksum FROM {table} ORDER BY applied_at, version"), &[])
        .await
        .map_err(query_err(format!("read {table}")))?;
    Ok(rows
        .into_iter()
        .map(|r| AppliedMigration {
            version: r.get(0),
            name: r.get(1),
            phase: if r.get::<_, &str>(2) == "contract" { Phase::Contract } else { Phase::Expand },
            checksum: r.get(3),
        })
        .collect())
}

/// Kills a process group when dropped, unless disarmed: the external command and every
/// process it started, when it runs past its timeout or the run is cancelled.
struct KillGroup(Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Runs the external migration command in a process group of its own; its stdout and
/// stderr are captured, and a failure reports the exit status and the end of stderr. Past
/// `timeout` the group is killed and the error names the command and the timeout.
async fn run_external(argv: &[String], timeout: Duration) -> Result<(), Error> {
    let command = argv.join(" ");
    let (program, args) = argv.split_first().ok_or_else(|| Error::invalid("migrations.external_command", "empty"))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("MAINT_MIGRATION_LOCK_KEY", MIGRATION_LOCK_KEY.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::External { command: command.clone(), message: format!("cannot start: {e}") })?;
    let mut group = KillGroup(child.id());
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let finished = tokio::time::timeout(timeout, async {
        let read_out = async {
            if let Some(s) = out.as_mut() {
                let _ = s.read_to_end(&mut o).await;
            }
        };
        let read_err = async {
            if let Some(s) = err.as_mut() {
                let _ = s.read_to_end(&mut e).await;
            }
        };
        tokio::join!(read_out, read_err);
        child.wait().await
    })
    .await;
    let Ok(status) = finished else {
        drop(group);
        let _ = child.kill().await;
        return Err(Error::External {
            command,
            message: format!("timed out after {timeout:?} (migrations.external_timeout_secs) and was killed"),
        });
    };
    group.0 = None;
    let status = status.map_err(|e| Error::External { command: command.clone(), message: e.to_string() })?;
    if !String::from_utf8_lossy(&o).trim().is_empty() {
        tracing::info!(command = %command, "{}", String::from_utf8_lossy(&o).trim());
    }
    if status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&e);
    let tail: String = stderr.trim().chars().rev().take(500).collect::<Vec<_>>().into_iter().rev().collect();
    Err(Error::External { command, message: format!("{status}: {}", tail.replace('\n', " ")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_key_spells_mrelease() {
        assert_eq!(&MIGRATION_LOCK_KEY.to_be_bytes(), b"mrelease");
        assert_eq!(maint_db::quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    /// Whether process `pid` is gone (or a zombie waiting for its parent).
    fn gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn an_external_command_past_its_timeout_is_killed_with_its_children_and_reported() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let pidfile = std::env::temp_dir().join(format!("maint-release-external-{}-{nanos}.pid", std::process::id()));
        // The shell starts a child that would outlive it, and waits for it.
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let argv: Vec<String> = vec!["sh".into(), "-c".into(), script.clone()];
        let err = tokio::time::timeout(Duration::from_secs(30), run_external(&argv, Duration::from_millis(300)))
            .await
            .expect("the command ran past its timeout and was never stopped")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "external migration command `sh -c {script}` failed: timed out after 300ms \
                 (migrations.external_timeout_secs) and was killed"
            )
        );
        let child = std::fs::read_to_string(&pidfile).unwrap();
        let child = child.trim();
        for _ in 0..500 {
            if gone(child) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(gone(child), "the command's child {child} was killed too");
        std::fs::remove_file(pidfile).unwrap();
    }

    #[tokio::test]
    async fn an_external_command_failure_names_the_command_and_its_stderr() {
        let argv: Vec<String> = ["sh", "-c", "echo boom >&2; exit 3"].map(str::to_owned).to_vec();
        let minute = Duration::from_secs(60);
        let err = run_external(&argv, minute).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("external migration command `sh -c echo boom >&2; exit 3` failed:"), "{msg}");
        assert!(msg.contains("boom") && msg.contains('3'), "{msg}");
        run_external(&["true".to_owned()], minute).await.unwrap();
        let missing = run_external(&["/nonexistent/alembic".to_owned()], minute).await.unwrap_err();
        assert!(missing.to_string().contains("cannot start"), "{missing}");
    }
}
