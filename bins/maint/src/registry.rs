//! Which implementation runs each of the twelve calendar tasks.

use std::sync::Arc;

use maint_core::{Error, Task, one_line};

use crate::config::MaintConfig;

/// A calendar task as the registry can provide it.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// Ready to run.
    Ready(Arc<dyn Task>),
    /// Cannot run here; the reason is reported and the task is skipped.
    Unavailable(String),
}

/// The `[backup]` store, when one is configured.
fn backup_store(cfg: &MaintConfig) -> Result<Option<Arc<dyn maint_backup::object_store::ObjectStore>>, Error> {
    cfg.backup
        .store
        .as_deref()
        .map(|url| maint_backup::open_store(url).map_err(|e| Error::invalid("backup.store", one_line(&e))))
        .transpose()
}

/// Builds the implementation of a task id. A configuration that is present but wrong is
/// an error (exit 2); a missing section only makes that task unavailable.
pub(crate) fn build(id: &str, cfg: &MaintConfig) -> Result<Slot, Error> {
    let slot = match id {
        "database-optimization" => match &cfg.database.url {
            None => Slot::Unavailable("no database configured ([database] url or MAINT_DATABASE_URL)".into()),
            Some(_) => Slot::Ready(Arc::new(
                maint_db::DatabaseOptimization::new(&cfg.database)
                    .map_err(|e| Error::invalid("database", one_line(&e)))?,
            )),
        },
        "backup-verification" => match backup_store(cfg)? {
            None => Slot::Unavailable("no backup store configured ([backup] store or MAINT_BACKUP_STORE)".into()),
            Some(store) => Slot::Ready(Arc::new(maint_backup::BackupVerification {
                store,
                jobs: cfg.backup.verify_jobs(),
                rolling_days: cfg.backup.rolling_days,
                restore: cfg.backup.restore_options(),
            })),
        },
        "log-rotation" => {
            if cfg.logs.paths.is_empty() {
                Slot::Unavailable("no log files configured ([logs] paths)".into())
            } else {
                Slot::Ready(Arc::new(
                    maint_logs::LogRotation::new(cfg.logs.clone()).map_err(|e| Error::invalid("logs", one_line(&e)))?,
                ))
            }
        }
        "security-scan" | "full-security-audit" => {
            let pg = match &cfg.database.url {
                None => None,
                Some(_) => Some(
                    maint_db::PgSecurityAudit::new(&cfg.database)
                        .map_err(|e| Error::invalid("database", one_line(&e)))?,
                ),
            };
            let id = if id == "security-scan" { "security-scan" } else { "full-security-audit" };
            let sec = &cfg.security;
            let mut findings = crate::security::audit(cfg);
            if id == "full-security-audit" {
                findings.extend(crate::security::audit_files(cfg));
            }
            Slot::Ready(Arc::new(crate::security::SecurityScan {
                id,
                findings,
                pg,
                redis: cfg
                    .redis_url()
                    .filter(|_| sec.redis)
                    .map(|url| (url.clone(), cfg.cache.mode, cfg.cache.ca_file.clone())),
                tls_endpoints: crate::security::tls_endpoints(cfg),
                cert_warn_days: sec.cert_warn_days,
                fail_from: sec.fail_from()?,
            }))
        }
        "index-rebuild" | "performance-analysis" | "capacity-planning" => match &cfg.database.url {
            None => Slot::Unavailable("no database configured ([database] url or MAINT_DATABASE_URL)".into()),
            Some(_) => {
                let bad = |e: maint_db::Error| Error::invalid("database", one_line(&e));
                let task: Arc<dyn Task> = match id {
                    "index-rebuild" => Arc::new(maint_db::IndexRebuild::new(&cfg.database).map_err(bad)?),
                    "performance-analysis" => Arc::new(maint_db::PerformanceAnalysis::new(&cfg.database).map_err(bad)?),
                    _ => Arc::new(maint_db::CapacityPlanning::new(&cfg.database).map_err(bad)?),
                };
                Slot::Ready(task)
            }
        },
        "cache-cleanup" => {
            let mut cache = cfg.cache.clone();
            if cache.redis_url.is_none() {
                cache.redis_url.clone_from(&cfg.health.redis_url);
            }
            match cache.redis_url {
                None => Slot::Unavailable("no Redis configured ([cache] redis_url or MAINT_REDIS_URL)".into()),
                Some(_) => Slot::Ready(Arc::new(
                    maint_cache::CacheCleanup::new(&cache).map_err(|e| Error::invalid("cache", one_line(&e)))?,
                )),
            }
        }
        "health-checks" => {
            let mut health = cfg.health_config();
            health.store = backup_store(cfg)?;
            Slot::Ready(Arc::new(maint_health::HealthChecks::new(health)))
        }
        "metrics-collection" => {
            let mut collect = cfg.collect_config();
            if collect.redis_url.is_none() {
                collect.redis_url.clone_from(&cfg.health.redis_url);
            }
            collect.store = backup_store(cfg)?;
            Slot::Ready(Arc::new(maint_health::MetricsCollection::new(collect)))
        }
        "system-updates" => match &cfg.system_updates {
            None => Slot::Unavailable(
                "no update planned ([system_updates] config = the maint-update file, to = the version)".into(),
            ),
            Some(section) => Slot::Ready(Arc::new(crate::updates::SystemUpdates::new(section)?)),
        },
        other => Slot::Unavailable(format!("{other} has no implementation in this version yet")),
    };
    Ok(slot)
}
