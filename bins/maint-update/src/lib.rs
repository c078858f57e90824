//! The update procedure as a library: the `maint-update` configuration file, the deployer
//! it selects and the [`Updater`] built from it. The `maint-update` binary and `maint`'s
//! monthly System Updates task both use it, so the two never drift apart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use maint_core::chrono::Utc;
use maint_core::{Calendar, one_line};
use maint_release::maint_backup::{CreateOptions, open_store};
use maint_release::{
    AuditConfig, BackupConfig, ChangeStore, ChangesConfig, DatabaseConfig, Deployer, DockerConfig, Error,
    MigrationsConfig, PgAuditLog, Revision, SmokeConfig, StoreBackupGate, UpdateConfig, UpdateRequest, Updater,
    check_change_id, parse_version,
};
use serde::Deserialize;

/// What to update to, and how (the flags of `maint-update plan|run`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Target {
    /// The version to deploy (`1.5.0`, `v2.0.0`).
    #[arg(long)]
    pub to: String,
    /// The running version (default: read from the current revision's image tag).
    #[arg(long)]
    pub from: Option<String>,
    /// Allow a downgrade.
    #[arg(long)]
    pub force: bool,
    /// The change request that covers the update (`CR-12`); required for a major update.
    #[arg(long)]
    pub change: Option<String>,
    /// The image without its tag (overrides [update] image).
    #[arg(long, env = "MAINT_UPDATE_IMAGE")]
    pub image: Option<String>,
    /// The workloads to update (repeat; overrides [update] workloads).
    #[arg(long = "workload")]
    pub workloads: Vec<String>,
    /// Who runs the update, for the audit record (default: $USER).
    #[arg(long, env = "MAINT_ACTOR")]
    pub actor: Option<String>,
}

/// The `maint-update` configuration file (`--config`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct File {
    /// `[update]`: image, workloads, checks, timeouts, calendar.
    pub update: UpdateConfig,
    /// `[migrations]`: the SQL migrations and an external command.
    pub migrations: MigrationsConfig,
    /// `[changes]`: the change-request store.
    pub changes: ChangesConfig,
    /// `[backup]`: the pre-update backup gate.
    pub backup: BackupConfig,
    /// `[docker]`: services of the Docker deployer.
    pub docker: DockerConfig,
    /// `[kubernetes]`: the Kubernetes deployer (instead of `[docker]`).
    pub kubernetes: Option<maint_release_kube::KubeConfig>,
    /// `[audit]`: where each run is recorded.
    pub audit: AuditConfig,
    /// `[smoke]`: the smoke suite.
    pub smoke: SmokeConfig,
    /// `[notify]`: who hears about the update.
    pub notify: Option<maint_release::maint_notify::Config>,
    /// `[database]`: session limits of the change store and the audit log.
    pub database: DatabaseConfig,
}

/// The deployer used when none is configured ([docker] has no service): it can name
/// itself and nothing else, so only a plan (with `--from`) can run with it.
#[derive(Debug)]
struct NoDeployer;

const NO_DEPLOYER: &str =
    "no deployer configured (add [kubernetes], or [docker] services): only `plan` with --from works";

#[async_trait]
impl Deployer for NoDeployer {
    fn name(&self) -> String {
        "none".into()
    }
    async fn set_image(&self, _: &[String], _: &str) -> Result<(), Error> {
        Err(Error::Deploy(NO_DEPLOYER.into()))
    }
    async fn wait_rollout(&self, _: &[String], _: Duration) -> Result<(), Error> {
        Err(Error::Deploy(NO_DEPLOYER.into()))
    }
    async fn undo(&self, _: &[String]) -> Result<(), Error> {
        Err(Error::Deploy(NO_DEPLOYER.into()))
    }
    async fn history(&self, _: &str) -> Result<Vec<Revision>, Error> {
        Err(Error::Deploy(format!("cannot read the running version: {NO_DEPLOYER}")))
    }
}

/// Reads the configuration file (none: the defaults).
pub fn load(path: Option<&Path>) -> Result<File, Error> {
    maint_release::load_toml(path)
}

/// The deployer: [kubernetes] when the section is there, else the [docker] services.
pub async fn deployer(file: &File, dry_run: bool) -> Result<Arc<dyn Deployer>, Error> {
    Ok(match (&file.kubernetes, file.docker.deployer()?) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid("kubernetes", "configure [kubernetes] or [docker] services, not both"));
        }
        (Some(k), None) => Arc::new(k.deployer().await?),
        (None, Some(d)) => Arc::new(d),
        // Refused before anything happens: without a deployer a real run could not roll
        // out, nor roll back.
        (None, None) if !dry_run => return Err(Error::invalid("deployer", NO_DEPLOYER)),
        (None, None) => Arc::new(NoDeployer),
    })
}

/// Builds the orchestrator and its request from the file and the target: the deployer, the
/// migrations, checks, smoke suite, backup gate, audit log, notifications, calendar and the
/// change request (loaded here: an unknown id stops everything).
pub async fn prepare(mut file: File, target: Target, dry_run: bool) -> Result<(Updater, UpdateRequest), Error> {
    let to = parse_version("--to", &target.to)?;
    let from = target.from.as_deref().map(|f| parse_version("--from", f)).transpose()?;
    if let Some(image) = target.image {
        file.update.image = image;
    }
    if !target.workloads.is_empty() {
        file.update.workloads = target.workloads;
    }
    if file.update.image.trim().is_empty() {
        return Err(Error::invalid("--image", "required (flag, MAINT_UPDATE_IMAGE or [update] image in --config)"));
    }
    let deployer = deployer(&file, dry_run).await?;
    let mut updater = Updater::new(deployer, file.update.settings()?)?;
    if let Some(migrator) = file.migrations.migrator(&file.database)? {
        updater = updater.with_migrations(Arc::new(migrator));
    }
    updater = updater.with_disk_checks(file.update.disk_checks()?);
    if let Some(checks) = file.update.http_checks()? {
        updater = updater.with_checks(Arc::new(checks));
    }
    if let Some(suite) = file.smoke.checks()? {
        updater = updater.with_smoke(Arc::new(suite), file.smoke.pre_checks);
    }
    if let Some(store) = &file.backup.store {
        let url = file
            .backup
            .database_url
            .clone()
            .ok_or_else(|| Error::invalid("backup.database_url", "required with backup.store"))?;
        let store = open_store(store).map_err(|e| Error::invalid("backup.store", one_line(&e)))?;
        let max_age = Duration::from_secs(file.backup.max_age_hours.saturating_mul(3600));
        updater = updater.with_backup(Arc::new(StoreBackupGate::new(store, CreateOptions::new(url), max_age)));
    }
    if let Some(url) = &file.audit.database_url {
        let pool = maint_release::pg_pool(url.expose(), "audit.database_url", &file.database.timeouts()?)?;
        updater = updater.with_audit(Arc::new(PgAuditLog::new(pool)));
    }
    if let Some(n) = file.notify.as_ref().filter(|n| !n.targets.is_empty()) {
        updater = updater.with_notify(n.build().map_err(|e| Error::invalid("notify", one_line(&e)))?);
    }
    let calendar = file
        .update
        .calendar
        .as_ref()
        .map(|p| Calendar::from_path(p).map_err(|e| Error::invalid("update.calendar", one_line(&e))))
        .transpose()?;
    // The change is loaded here (an unknown id stops everything); a real run moves it
    // to in_progress, then completed, failed or rolled_back, through the store.
    let change = match &target.change {
        None => None,
        Some(id) => {
            check_change_id("--change", id)?;
            let store = file
                .changes
                .store(&file.database)?
                .ok_or_else(|| Error::invalid("changes.database_url", "required with --change"))?;
            let change = store.load(id).await?;
            updater = updater.with_changes(Arc::new(store));
            Some(change)
        }
    };
    let actor = target.actor.or_else(|| std::env::var("USER").ok()).filter(|a| !a.trim().is_empty());
    let req = UpdateRequest { to: Some(to), from, force: target.force, change, calendar, now: Some(Utc::now()), actor };
    Ok((updater, req))
}
