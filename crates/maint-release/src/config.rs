//! The maint-release configuration file (`[update]`, `[database]`, `[migrations]`,
//! `[docker]`, `[smoke]`, `[backup]`, `[audit]`, `[changes]`): its types, loading and
//! validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use maint_core::Secret;
use serde::{Deserialize, Serialize};

use crate::{
    ApprovalPolicy, DockerDeployer, DockerService, Error, HttpCheck, HttpChecks, Migrator, MigratorOptions,
    PgChangeStore, Phase, SmokeChecks, SmokeRunner, SmokeSuite, UpdateSettings,
};

/// The configuration of maint-release, as a binary reads it from TOML.
///
/// ```toml
/// [update]
/// workloads = ["api", "worker"]
/// image = "registry.example/aindusdb"
/// calendar = "/etc/maint/plan.yaml"
/// checks = [{ url = "http://aindusdb/health/ready" }]
///
/// [migrations]
/// dir = "/srv/aindusdb/migrations"
/// database_url = "postgresql://maint@db/aindusdb"
/// external_command = ["alembic", "upgrade", "head"]
/// lock_timeout_secs = 5            # an ALTER TABLE behind a long reader gives up, and is retried
///
/// [database]                       # the change store's and the audit log's sessions
/// statement_timeout_secs = 60
///
/// [changes]
/// database_url = "postgresql://maint@db/maint"
/// approvals = { high = 2, critical = 3 }
///
/// [backup]
/// store = "s3://backups/aindusdb"
/// database_url = "postgresql://maint@db/aindusdb"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The update.
    pub update: UpdateConfig,
    /// SQL migrations.
    pub migrations: MigrationsConfig,
    /// Change management.
    pub changes: ChangesConfig,
    /// The backup taken before an update.
    pub backup: BackupConfig,
    /// The Docker deployer.
    pub docker: DockerConfig,
    /// The audit record of every update.
    pub audit: AuditConfig,
    /// The smoke suite.
    pub smoke: SmokeConfig,
    /// Session limits of the change store and the audit log.
    pub database: DatabaseConfig,
}

/// Limits set on every PostgreSQL session of a pool as startup options (`-c lock_timeout=…
/// -c statement_timeout=…`, as maint-db's sessions), plus the connect timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// How long connecting may take (unless the URL sets `connect_timeout`).
    pub connect: Duration,
    /// `lock_timeout`.
    pub lock: Duration,
    /// `statement_timeout`.
    pub statement: Duration,
}

impl Default for SessionTimeouts {
    /// 10 s to connect, `lock_timeout` 5 s, `statement_timeout` 60 s.
    fn default() -> Self {
        SessionTimeouts {
            connect: Duration::from_secs(10),
            lock: Duration::from_secs(5),
            statement: Duration::from_secs(60),
        }
    }
}

/// `[database]`: the session limits of the change store and the audit log (their
/// statements are short: a lock or a statement that takes longer is a failure, not a
/// wait), and the connect timeout of the migrations' sessions too.
///
/// ```toml
/// [database]
/// connect_timeout_secs = 10
/// lock_timeout_secs = 5
/// statement_timeout_secs = 60
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// How long connecting may take, in seconds.
    pub connect_timeout_secs: f64,
    /// `lock_timeout`, in seconds.
    pub lock_timeout_secs: f64,
    /// `statement_timeout`, in seconds.
    pub statement_timeout_secs: f64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        let d = SessionTimeouts::default();
        DatabaseConfig {
            connect_timeout_secs: d.connect.as_secs_f64(),
            lock_timeout_secs: d.lock.as_secs_f64(),
            statement_timeout_secs: d.statement.as_secs_f64(),
        }
    }
}

impl DatabaseConfig {
    /// The validated limits (every one at least 1 ms: PostgreSQL reads 0 as "no limit").
    pub fn timeouts(&self) -> Result<SessionTimeouts, Error> {
        Ok(SessionTimeouts {
            connect: limit("database.connect_timeout_secs", self.connect_timeout_secs)?,
            lock: limit("database.lock_timeout_secs", self.lock_timeout_secs)?,
            statement: limit("database.statement_timeout_secs", self.statement_timeout_secs)?,
        })
    }
}

/// A timeout of `v` seconds, at least 1 ms.
fn limit(field: &str, v: f64) -> Result<Duration, Error> {
    match secs(field, v)? {
        d if d.as_millis() == 0 => Err(Error::invalid(field, "must be at least 0.001: 0 would wait forever")),
        d => Ok(d),
    }
}

/// `[smoke]`: the smoke suite, run after the rollout (and before the update with
/// `pre_checks`); none without `base_url`.
///
/// ```toml
/// [smoke]
/// base_url = "http://aindusdb:8080"
/// suite = "/etc/maint/smoke.toml"   # default: the built-in AindusDB suite
/// token = "…"                        # ${token}; default: MAINT_SMOKE_TOKEN
/// variables = { tenant = "ops" }
/// pre_checks = true
/// junit = "/var/lib/maint/smoke-junit.xml"   # the latest run's JUnit XML
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmokeConfig {
    /// The service's base URL, as its clients reach it (the load balancer).
    pub base_url: Option<String>,
    /// A suite file (`.toml`, `.yaml`, `.json`); the built-in AindusDB suite when absent.
    pub suite: Option<PathBuf>,
    /// The bearer token, the variable `token`; the environment's `MAINT_SMOKE_TOKEN`
    /// when absent.
    pub token: Option<Secret>,
    /// More variables (`${name}`).
    pub variables: BTreeMap<String, String>,
    /// Run the suite on the running version before anything changes, too.
    pub pre_checks: bool,
    /// Write the JUnit XML of the latest suite run here.
    pub junit: Option<PathBuf>,
}

impl Default for SmokeConfig {
    fn default() -> Self {
        SmokeConfig {
            base_url: None,
            suite: None,
            token: None,
            variables: BTreeMap::new(),
            pre_checks: true,
            junit: None,
        }
    }
}

impl SmokeConfig {
    /// The suite to run: the file's, or the built-in one.
    pub fn load_suite(&self) -> Result<SmokeSuite, Error> {
        match &self.suite {
            Some(path) => SmokeSuite::from_path(path).map_err(|e| match e {
                Error::Invalid { field, message } => Error::invalid(format!("smoke.suite: {field}"), message),
                other => other,
            }),
            None => Ok(SmokeSuite::aindusdb()),
        }
    }

    /// The runner for `base_url` with the token and the variables.
    pub fn runner(&self, base_url: &str) -> Result<SmokeRunner, Error> {
        let mut runner = SmokeRunner::new(base_url)?;
        for (k, v) in &self.variables {
            runner = runner.variable(k, v);
        }
        let token = self
            .token
            .clone()
            .or_else(|| std::env::var("MAINT_SMOKE_TOKEN").ok().filter(|t| !t.trim().is_empty()).map(Secret::new));
        if let Some(t) = token {
            runner = runner.secret("token", t);
        } else if self.suite.is_none() {
            return Err(Error::invalid(
                "smoke.token",
                "the built-in suite needs a bearer token (smoke.token or MAINT_SMOKE_TOKEN)",
            ));
        }
        Ok(runner)
    }

    /// The suite as checks for the orchestrator, or `None` without `base_url`.
    pub fn checks(&self) -> Result<Option<SmokeChecks>, Error> {
        let Some(base) = self.base_url.as_deref() else { return Ok(None) };
        let checks = SmokeChecks::new(self.runner(base)?, self.load_suite()?)?;
        Ok(Some(match &self.junit {
            Some(path) => checks.with_junit(path),
            None => checks,
        }))
    }
}

/// `[audit]`: where update audit records go (table `public.maint_release_audit`); no
/// audit record when `database_url` is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The database.
    pub database_url: Option<Secret>,
}

/// `[update]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateConfig {
    /// Workloads that get the new image.
    pub workloads: Vec<String>,
    /// The image without its tag.
    pub image: String,
    /// How long a rollout or an undo may take, in seconds.
    pub rollout_timeout_secs: u64,
    /// The maintenance plan (YAML or TOML), for change windows.
    pub calendar: Option<PathBuf>,
    /// Health/smoke checks (HTTP GET).
    pub checks: Vec<HttpCheck>,
    /// Free-space pre-checks: `[{ path = "/var/lib/docker", min_free_gib = 10 }]`.
    pub disk: Vec<DiskSpace>,
    /// Per-request timeout of a check, in seconds.
    pub check_timeout_secs: f64,
    /// Attempts per check.
    pub check_attempts: u32,
    /// Pause between two attempts, in seconds.
    pub check_pause_secs: f64,
}

/// One `[update] disk` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSpace {
    /// A path on the filesystem to check.
    pub path: PathBuf,
    /// The least free space, GiB.
    pub min_free_gib: f64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            workloads: vec!["api".into(), "worker".into()],
            image: String::new(),
            rollout_timeout_secs: 600,
            calendar: None,
            checks: Vec::new(),
            disk: Vec::new(),
            check_timeout_secs: 10.0,
            check_attempts: 3,
            check_pause_secs: 2.0,
        }
    }
}

fn secs(field: &str, v: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(v).map_err(|_| Error::invalid(field, format!("{v} is not a number of seconds")))
}

impl UpdateConfig {
    /// The orchestrator's settings.
    pub fn settings(&self) -> Result<UpdateSettings, Error> {
        if self.rollout_timeout_secs == 0 {
            return Err(Error::invalid("update.rollout_timeout_secs", "must be at least 1"));
        }
        if let Some(w) = self.workloads.iter().find(|w| w.trim().is_empty()) {
            return Err(Error::invalid("update.workloads", format!("empty workload name {w:?}")));
        }
        Ok(UpdateSettings {
            workloads: self.workloads.clone(),
            image_repository: self.image.trim().to_owned(),
            rollout_timeout: Duration::from_secs(self.rollout_timeout_secs),
        })
    }

    /// The free-space pre-checks.
    pub fn disk_checks(&self) -> Result<Vec<crate::DiskCheck>, Error> {
        self.disk
            .iter()
            .map(|d| {
                if !(d.min_free_gib.is_finite() && d.min_free_gib > 0.0) {
                    return Err(Error::invalid(
                        "update.disk.min_free_gib",
                        format!("{} is not a positive size", d.min_free_gib),
                    ));
                }
                Ok(crate::DiskCheck {
                    path: d.path.clone(),
                    min_free_bytes: (d.min_free_gib * 1024.0 * 1024.0 * 1024.0) as u64,
                })
            })
            .collect()
    }

    /// The HTTP checks, or `None` when none are configured.
    pub fn http_checks(&self) -> Result<Option<HttpChecks>, Error> {
        if self.checks.is_empty() {
            return Ok(None);
        }
        let checks = self
            .checks
            .iter()
            .map(|c| {
                if c.name.is_empty() {
                    HttpCheck { expect_status: c.expect_status, ..HttpCheck::get(&c.url) }
                } else {
                    c.clone()
                }
            })
            .collect();
        HttpChecks::new(
            checks,
            secs("update.check_timeout_secs", self.check_timeout_secs)?,
            self.check_attempts,
            secs("update.check_pause_secs", self.check_pause_secs)?,
        )
        .map(Some)
        .map_err(|e| match e {
            Error::Invalid { field, message } => Error::invalid(format!("update.{field}"), message),
            other => other,
        })
    }
}

/// `[migrations]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationsConfig {
    /// The directory of `V<version>__<name>.sql` files; no migrations when absent.
    pub dir: Option<PathBuf>,
    /// The database.
    pub database_url: Option<Secret>,
    /// Schema of the history table.
    pub schema: String,
    /// Name of the history table.
    pub table: String,
    /// How long to wait for another runner, in seconds.
    pub lock_wait_secs: u64,
    /// `lock_timeout` of the runner's session, in seconds: how long a statement waits
    /// for a table lock before it gives up (and is tried again).
    pub lock_timeout_secs: f64,
    /// Attempts of a migration that hit `lock_timeout`, in all.
    pub lock_attempts: u32,
    /// Base pause before a retry, in seconds (doubled each time, plus jitter).
    pub retry_backoff_secs: f64,
    /// `statement_timeout` of the runner's session, in seconds.
    pub statement_timeout_secs: f64,
    /// A command run inside the migration lock (`["alembic", "upgrade", "head"]`).
    pub external_command: Vec<String>,
    /// The phase of the external command.
    pub external_phase: Phase,
    /// How long the external command may run, in seconds; it is killed after.
    pub external_timeout_secs: f64,
}

impl Default for MigrationsConfig {
    fn default() -> Self {
        let o = MigratorOptions::new("");
        MigrationsConfig {
            dir: None,
            database_url: None,
            schema: o.schema,
            table: o.table,
            lock_wait_secs: o.lock_wait.as_secs(),
            lock_timeout_secs: o.lock_timeout.as_secs_f64(),
            lock_attempts: o.lock_attempts,
            retry_backoff_secs: o.retry_backoff.as_secs_f64(),
            statement_timeout_secs: o.statement_timeout.as_secs_f64(),
            external_command: Vec::new(),
            external_phase: Phase::Expand,
            external_timeout_secs: o.external_timeout.as_secs_f64(),
        }
    }
}

impl MigrationsConfig {
    /// The runner's options, or `None` when no directory is configured.
    pub fn options(&self) -> Result<Option<MigratorOptions>, Error> {
        let Some(dir) = &self.dir else {
            if !self.external_command.is_empty() {
                return Err(Error::invalid("migrations.dir", "required with external_command"));
            }
            return Ok(None);
        };
        if !dir.is_dir() {
            return Err(Error::invalid("migrations.dir", format!("{} is not a directory", dir.display())));
        }
        if self.database_url.as_ref().is_none_or(|u| u.expose().is_empty()) {
            return Err(Error::invalid("migrations.database_url", "required with migrations.dir"));
        }
        Ok(Some(MigratorOptions {
            dir: dir.clone(),
            schema: self.schema.clone(),
            table: self.table.clone(),
            lock_wait: Duration::from_secs(self.lock_wait_secs),
            lock_timeout: limit("migrations.lock_timeout_secs", self.lock_timeout_secs)?,
            lock_attempts: self.lock_attempts,
            retry_backoff: secs("migrations.retry_backoff_secs", self.retry_backoff_secs)?,
            statement_timeout: limit("migrations.statement_timeout_secs", self.statement_timeout_secs)?,
            external_command: self.external_command.clone(),
            external_phase: self.external_phase,
            external_timeout: limit("migrations.external_timeout_secs", self.external_timeout_secs)?,
        }))
    }

    /// The runner, over a pool whose sessions have its `lock_timeout` and
    /// `statement_timeout` and `database`'s connect timeout; `None` without a directory.
    pub fn migrator(&self, database: &DatabaseConfig) -> Result<Option<Migrator>, Error> {
        let Some(opts) = self.options()? else { return Ok(None) };
        let url = self.database_url.as_ref().ok_or_else(|| Error::invalid("migrations.database_url", "required"))?;
        let timeouts = SessionTimeouts {
            connect: database.timeouts()?.connect,
            lock: opts.lock_timeout,
            statement: opts.statement_timeout,
        };
        Migrator::new(pg_pool(url.expose(), "migrations.database_url", &timeouts)?, opts).map(Some)
    }
}

/// `[changes]`: change requests in PostgreSQL (schema `maint_change`, created on first use).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChangesConfig {
    /// The database that holds the change requests.
    pub database_url: Option<Secret>,
    /// Approvals needed per risk.
    pub approvals: ApprovalPolicy,
}

impl ChangesConfig {
    /// The store, when `database_url` is set (errors name `changes.database_url`), its
    /// sessions limited by `database`.
    pub fn store(&self, database: &DatabaseConfig) -> Result<Option<PgChangeStore>, Error> {
        let Some(url) = &self.database_url else { return Ok(None) };
        PgChangeStore::from_url(url.expose(), "changes.database_url", &database.timeouts()?).map(Some)
    }
}

/// `[backup]`: where the pre-update backup goes; no backup step when `store` is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// `s3://bucket/prefix` or `file:///path` (as maint-backup).
    pub store: Option<String>,
    /// The database to dump.
    pub database_url: Option<Secret>,
    /// A backup younger than this (hours) that verifies is enough.
    pub max_age_hours: u64,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { store: None, database_url: None, max_age_hours: 24 }
    }
}

/// `[docker]`: the services run as containers on the local Docker engine
/// (`DOCKER_HOST` or the default socket).
///
/// ```toml
/// [docker]
/// readiness_timeout_secs = 60
/// services = [{ name = "api", replicas = 3, port = 8080, readiness_path = "/health/ready" }]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// The services; the Docker deployer is used when there is at least one.
    pub services: Vec<DockerService>,
    /// How long a new container may take to answer its readiness endpoint, in seconds.
    pub readiness_timeout_secs: u64,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig { services: Vec::new(), readiness_timeout_secs: 60 }
    }
}

impl DockerConfig {
    /// The Docker deployer, or `None` when no service is configured.
    pub fn deployer(&self) -> Result<Option<DockerDeployer>, Error> {
        if self.services.is_empty() {
            return Ok(None);
        }
        if self.readiness_timeout_secs == 0 {
            return Err(Error::invalid("docker.readiness_timeout_secs", "must be at least 1"));
        }
        DockerDeployer::connect_local(self.services.clone(), Duration::from_secs(self.readiness_timeout_secs)).map(Some)
    }
}

/// Reads a TOML configuration file (none: the defaults); a bad file is an error naming it.
pub fn load_toml<T: serde::de::DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, Error> {
    let Some(path) = path else { return Ok(T::default()) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid("--config", format!("cannot read {}: {e}", path.display())))?;
    maint_core::parse_toml(&text, path).map_err(|e| Error::invalid(e.field, e.message))
}

/// A connection pool for a PostgreSQL URL whose every session has `timeouts` (startup
/// options, through maint-db's connector; the URL's own `options` and `connect_timeout`
/// are kept). A bad URL is an error naming `field` (the driver's message never contains
/// the password, and the URL itself is not repeated). No connection is made here.
pub fn pg_pool(url: &str, field: &str, timeouts: &SessionTimeouts) -> Result<deadpool_postgres::Pool, Error> {
    let bad = |e: &(dyn std::error::Error + 'static)| Error::invalid(field, maint_core::one_line(e));
    // maint-db's connector: libpq's sslmode/sslrootcert (the driver alone refuses verify-full).
    let mut connector =
        maint_db::PgConnector::with_connect_timeout(&maint_core::Secret::new(url.to_owned()), timeouts.connect)
            .map_err(|e| bad(&e))?;
    let pg = connector.config_mut();
    if pg.get_hosts().is_empty() {
        // libpq's default: the local socket.
        for dir in ["/run/postgresql", "/var/run/postgresql", "/tmp"] {
            pg.host_path(dir);
        }
    }
    if pg.get_application_name().is_none() {
        pg.application_name("maint-release");
    }
    let settings = maint_db::Settings {
        jobs: 4,
        lock_timeout: timeouts.lock,
        statement_timeout: timeouts.statement,
        ..maint_db::Settings::default()
    };
    maint_db::Db::from_connector(connector, &settings).map(|db| db.pool().clone()).map_err(|e| bad(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example_and_names_bad_fields() {
        let dir = std::env::temp_dir();
        let text = format!(
            r#"
            [update]
            workloads = ["api", "worker"]
            image = "registry.example/aindusdb"
            checks = [{{ url = "http://aindusdb/health/ready" }}, {{ name = "live", url = "http://aindusdb/health/live", expect_status = 204 }}]
            [migrations]
            dir = "{}"
            database_url = "postgresql://maint:pw@db/aindusdb"
            external_command = ["alembic", "upgrade", "head"]
            [changes]
            database_url = "postgresql://maint:pw@db/maint"
            approvals = {{ high = 3 }}
            "#,
            dir.display()
        );
        let cfg: Config = toml::from_str(&text).unwrap();
        assert_eq!(cfg.update.settings().unwrap().image_repository, "registry.example/aindusdb");
        let checks = cfg.update.http_checks().unwrap().unwrap();
        assert_eq!(checks.checks()[0].name, "/health/ready");
        assert_eq!(checks.checks()[1].expect_status, 204);
        let opts = cfg.migrations.options().unwrap().unwrap();
        assert_eq!(opts.external_command, ["alembic", "upgrade", "head"]);
        assert_eq!(opts.table, "maint_release_migrations");
        assert_eq!(cfg.changes.approvals, ApprovalPolicy { high: 3, ..ApprovalPolicy::default() });
        assert!(cfg.changes.store(&cfg.database).unwrap().is_some());
        assert!(Config::default().changes.store(&cfg.database).unwrap().is_none());
        assert!(!format!("{cfg:?}").contains("pw@"), "the database URL is a secret");

        let field = |e: Error| match e {
            Error::Invalid { field, .. } => field,
            other => panic!("{other}"),
        };
        let bad: Config = toml::from_str("[update]\nchecks = [{ url = \"ftp://x\" }]").unwrap();
        assert_eq!(field(bad.update.http_checks().unwrap_err()), "update.checks[0].url");
        let bad: Config = toml::from_str("[migrations]\ndir = \"/nonexistent/dir\"").unwrap();
        assert_eq!(field(bad.migrations.options().unwrap_err()), "migrations.dir");
        let bad: Config = toml::from_str(&format!("[migrations]\ndir = \"{}\"", dir.display())).unwrap();
        assert_eq!(field(bad.migrations.options().unwrap_err()), "migrations.database_url");
        assert!(toml::from_str::<Config>("[update]\nworkload = []").is_err(), "unknown fields are refused");
        assert_eq!(Config::default().migrations.options().unwrap(), None);
        assert!(Config::default().docker.deployer().unwrap().is_none());
        let bad: Config = toml::from_str(
            "[docker]\nservices = [{ name = \"api\", replicas = 0, port = 80, readiness_path = \"/\" }]",
        )
        .unwrap();
        assert_eq!(field(bad.docker.deployer().unwrap_err()), "docker.services[0]");
    }

    /// The change store, migrations and audit log take libpq's TLS settings (the driver's own
    /// parser refused `sslmode=verify-full` and `sslrootcert`).
    #[test]
    fn pools_take_libpq_tls_settings() {
        let ca =
            std::env::var("MAINT_TEST_CA").expect("MAINT_TEST_CA is not set; run the tests through scripts/test-env");
        let url = format!("postgresql://maint:pw@db.internal/aindusdb?sslmode=verify-full&sslrootcert={ca}");
        pg_pool(&url, "changes.database_url", &SessionTimeouts::default()).unwrap();
        let e = pg_pool(
            "postgresql://maint:pw@db.internal/x?sslmode=bogus",
            "changes.database_url",
            &SessionTimeouts::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("changes.database_url:") && !e.contains("pw@"), "{e}");
    }

    #[test]
    fn every_database_session_has_bounded_waits_and_zero_is_refused() {
        let field = |e: Error| match e {
            Error::Invalid { field, .. } => field,
            other => panic!("{other}"),
        };
        let dir = std::env::temp_dir();
        let opts = MigrationsConfig {
            dir: Some(dir.clone()),
            database_url: Some(Secret::new("postgresql://maint@db/aindusdb")),
            ..MigrationsConfig::default()
        };
        let o = opts.options().unwrap().unwrap();
        assert_eq!(
            (o.lock_timeout, o.lock_attempts, o.statement_timeout, o.external_timeout),
            (Duration::from_secs(5), 5, Duration::from_secs(3600), Duration::from_secs(3600))
        );
        assert_eq!(Config::default().database.timeouts().unwrap(), SessionTimeouts::default());
        let cfg: Config = toml::from_str(&format!(
            "[migrations]\ndir = \"{}\"\ndatabase_url = \"postgresql://maint@db/aindusdb\"\nlock_timeout_secs = 0.5\n\
             lock_attempts = 2\nexternal_timeout_secs = 90\n[database]\nstatement_timeout_secs = 10",
            dir.display()
        ))
        .unwrap();
        let o = cfg.migrations.options().unwrap().unwrap();
        assert_eq!((o.lock_timeout, o.lock_attempts), (Duration::from_millis(500), 2));
        assert_eq!(o.external_timeout, Duration::from_secs(90));
        assert_eq!(cfg.database.timeouts().unwrap().statement, Duration::from_secs(10));
        assert!(cfg.migrations.migrator(&cfg.database).unwrap().is_some());
        for (key, expected) in [
            ("lock_timeout_secs = 0", "migrations.lock_timeout_secs"),
            ("statement_timeout_secs = 0", "migrations.statement_timeout_secs"),
            ("external_timeout_secs = 0", "migrations.external_timeout_secs"),
            ("retry_backoff_secs = -1", "migrations.retry_backoff_secs"),
        ] {
            let bad: MigrationsConfig = toml::from_str(&format!(
                "dir = \"{}\"\ndatabase_url = \"postgresql://maint@db/x\"\n{key}",
                dir.display()
            ))
            .unwrap();
            assert_eq!(field(bad.options().unwrap_err()), expected, "{key}");
        }
        let bad = MigrationsConfig { lock_attempts: 0, ..opts };
        assert_eq!(field(bad.migrator(&DatabaseConfig::default()).unwrap_err()), "migrations.lock_attempts");
        for key in ["connect_timeout_secs", "lock_timeout_secs", "statement_timeout_secs"] {
            let bad: DatabaseConfig = toml::from_str(&format!("{key} = 0")).unwrap();
            assert_eq!(field(bad.timeouts().unwrap_err()), format!("database.{key}"));
        }
        let bad = pg_pool("postgresql://u:secret@h:notaport/db", "audit.database_url", &SessionTimeouts::default());
        let err = bad.unwrap_err();
        assert!(err.to_string().starts_with("audit.database_url: ") && !err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn the_smoke_section_defaults_to_the_builtin_suite_with_a_token() {
        let field = |e: Error| match e {
            Error::Invalid { field, .. } => field,
            other => panic!("{other}"),
        };
        assert!(Config::default().smoke.checks().unwrap().is_none(), "no suite without a base URL");
        let cfg: Config =
            toml::from_str("[smoke]\nbase_url = \"http://aindusdb:8080\"\ntoken = \"t0k\"\npre_checks = false")
                .unwrap();
        let checks = cfg.smoke.checks().unwrap().unwrap();
        assert_eq!(checks.suite().name, "aindusdb");
        assert!(!cfg.smoke.pre_checks);
        assert!(!format!("{cfg:?}").contains("t0k"), "the token is a secret");
        let bad: Config = toml::from_str("[smoke]\nbase_url = \"ftp://x\"\ntoken = \"t\"").unwrap();
        assert_eq!(field(bad.smoke.checks().unwrap_err()), "smoke.base_url");
        let bad: Config = toml::from_str("[smoke]\nbase_url = \"http://x\"\nsuite = \"/nonexistent.toml\"").unwrap();
        assert!(field(bad.smoke.checks().unwrap_err()).starts_with("smoke.suite: /nonexistent.toml"));
    }
}
