//! `maint.toml`: one file nesting each crate's configuration.

use std::path::{Path, PathBuf};

use maint_core::{Error, Secret};
use serde::Deserialize;

/// The whole configuration of `maint`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MaintConfig {
    /// The maintenance plan (YAML or TOML), relative to the working directory.
    pub(crate) calendar: PathBuf,
    /// The run lock when no database is configured; the daemon's state sits next to it.
    /// Its directory must be the runner's own (default: [`maint_core::runtime_dir`]).
    pub(crate) lock_file: PathBuf,
    /// Longest time one task may take.
    pub(crate) task_timeout_secs: u64,
    /// Prometheus textfile (node_exporter textfile collector) to write after each run.
    pub(crate) metrics_textfile: Option<PathBuf>,
    /// Notification targets and retry policy.
    pub(crate) notify: maint_notify::Config,
    /// PostgreSQL maintenance (its `url` is also where the run lock lives).
    pub(crate) database: maint_db::Config,
    /// Backups.
    pub(crate) backup: maint_backup::Config,
    /// Health checks (the database and the store come from their own sections).
    pub(crate) health: maint_health::HealthConfig,
    /// Metrics collection (database, Redis and store come from their own sections).
    pub(crate) collect: maint_health::CollectConfig,
    /// Log rotation.
    pub(crate) logs: maint_logs::Config,
    /// Redis cleanup (its `redis_url` defaults to `[health] redis_url`).
    pub(crate) cache: maint_cache::Config,
    /// The Security Scan and the Full Security Audit.
    pub(crate) security: crate::security::SecuritySection,
    /// The update the monthly System Updates task carries out (none: it is skipped).
    pub(crate) system_updates: Option<crate::updates::SystemUpdatesSection>,
    /// The file this was read from.
    #[serde(skip)]
    pub(crate) source: Option<PathBuf>,
}

impl Default for MaintConfig {
    fn default() -> Self {
        MaintConfig {
            calendar: "deploy/maintenance.yaml".into(),
            lock_file: maint_core::runtime_dir().join("run.lock"),
            task_timeout_secs: 1800,
            metrics_textfile: None,
            notify: maint_notify::Config::default(),
            database: maint_db::Config::default(),
            backup: maint_backup::Config::default(),
            health: maint_health::HealthConfig::default(),
            collect: maint_health::CollectConfig::default(),
            logs: maint_logs::Config::default(),
            cache: maint_cache::Config::default(),
            security: crate::security::SecuritySection::default(),
            system_updates: None,
            source: None,
        }
    }
}

impl MaintConfig {
    /// `[health]`, checking the `[database]` database when it names none.
    pub(crate) fn health_config(&self) -> maint_health::HealthConfig {
        let mut h = self.health.clone();
        if h.database_url.is_none() {
            h.database_url.clone_from(&self.database.url);
        }
        h
    }

    /// `[collect]`, reading the `[database]` database when it names none.
    pub(crate) fn collect_config(&self) -> maint_health::CollectConfig {
        let mut c = self.collect.clone();
        if c.database_url.is_none() {
            c.database_url.clone_from(&self.database.url);
        }
        c
    }

    /// The Redis of `[cache]`, or else of `[health]`.
    pub(crate) fn redis_url(&self) -> Option<&Secret> {
        self.cache.redis_url.as_ref().or(self.health.redis_url.as_ref())
    }

    /// Reads the file (if any), then applies `MAINT_*` environment overrides.
    pub(crate) fn load(path: Option<&Path>) -> Result<Self, Error> {
        let mut cfg = match path {
            None => MaintConfig::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| Error::Read { path: p.to_owned(), source })?;
                let mut cfg: MaintConfig = maint_core::parse_toml(&text, p)?;
                cfg.source = Some(p.to_owned());
                cfg
            }
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("MAINT_CALENDAR") {
            cfg.calendar = v.into();
        }
        if let Some(v) = env("MAINT_DATABASE_URL") {
            cfg.database.url = Some(Secret::new(v));
        }
        if let Some(v) = env("MAINT_BACKUP_STORE") {
            cfg.backup.store = Some(v);
        }
        if let Some(v) = env("MAINT_RESTORE_ADMIN_URL") {
            cfg.backup.admin_url = Some(Secret::new(v));
        }
        if let Some(v) = env("MAINT_NOTIFY_TARGETS") {
            cfg.notify.targets = v.split_whitespace().map(Secret::new).collect();
        }
        if let Some(v) = env("MAINT_REDIS_URL") {
            cfg.health.redis_url = Some(Secret::new(v));
        }
        if let Some(v) = env("MAINT_SERVICE_URL") {
            cfg.health.service_url = Some(v);
        }
        if let Some(v) = env("MAINT_METRICS_TEXTFILE") {
            cfg.metrics_textfile = Some(v.into());
        }
        if cfg.task_timeout_secs == 0 {
            return Err(Error::invalid("task_timeout_secs", "must be positive"));
        }
        cfg.backup.validate().map_err(|e| match e {
            maint_backup::Error::Invalid { field, message } => Error::invalid(field, message),
            other => Error::invalid("backup", maint_core::one_line(&other)),
        })?;
        cfg.security.validate()?;
        cfg.collect.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_parses_and_bad_keys_are_named() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/maint.toml"));
        let cfg = MaintConfig::load(Some(path)).unwrap();
        assert_eq!(cfg.backup.rolling_days, Some(7));
        assert_eq!(cfg.notify.targets.len(), 1);
        let dir = std::env::temp_dir().join(format!("maint-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "task_timeout_secs = 10\n[backup]\nstroe = \"s3://x\"\n").unwrap();
        let err = MaintConfig::load(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("unknown field `stroe`"), "{err}");
        std::fs::write(&bad, "[backup]\nclient_dir = \"/usr/lib/postgresql/17/bin\"\nrestore_jobs = 0\n").unwrap();
        let err = MaintConfig::load(Some(&bad)).unwrap_err().to_string();
        assert_eq!(err, "backup.restore_jobs: must be at least 1");
        std::fs::write(&bad, "[collect]\npushgateway = \"pushgw:9091\"\n").unwrap();
        let err = MaintConfig::load(Some(&bad)).unwrap_err().to_string();
        assert_eq!(err, "collect.pushgateway: not an http(s) URL");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
