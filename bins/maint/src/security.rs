//! Checks of maint's own configuration, part of the Security Scan and the Full Security
//! Audit: secrets in a world-readable file, notifications and stores over plain HTTP.

use std::os::unix::fs::PermissionsExt;

use async_trait::async_trait;
use maint_core::{Impact, Task, TaskContext, TaskReport};
use serde::Serialize;

use crate::config::MaintConfig;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Finding {
    pub(crate) check: &'static str,
    /// `high`, `medium` or `low`.
    pub(crate) severity: &'static str,
    pub(crate) detail: String,
    pub(crate) action: &'static str,
}

/// Audits the configuration as loaded (file permissions, transports). Pure apart from
/// reading the config file's mode.
pub(crate) fn audit(cfg: &MaintConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let has_secrets = cfg.database.url.is_some()
        || cfg.backup.admin_url.is_some()
        || cfg.health.redis_url.is_some()
        || !cfg.notify.targets.is_empty();
    if let Some(path) = &cfg.source
        && let Ok(meta) = std::fs::metadata(path)
    {
        let mode = meta.permissions().mode();
        if has_secrets && mode & 0o004 != 0 {
            out.push(Finding {
                check: "config-permissions",
                severity: "high",
                detail: format!("{} holds secrets and is world-readable (mode {:o})", path.display(), mode & 0o777),
                action: "chmod 600 the file, or move the secrets to environment variables (MAINT_*)",
            });
        } else if has_secrets && mode & 0o040 != 0 {
            out.push(Finding {
                check: "config-permissions",
                severity: "low",
                detail: format!("{} holds secrets and is group-readable (mode {:o})", path.display(), mode & 0o777),
                action: "make sure the group is only the maintenance user's",
            });
        }
    }
    for (i, t) in cfg.notify.targets.iter().enumerate() {
        let url = t.expose();
        let kind = url.split("://").next().unwrap_or("");
        if kind.ends_with("+http") || (kind.starts_with("smtp") && url.contains("tls=none")) {
            out.push(Finding {
                check: "notification-transport",
                severity: "medium",
                detail: format!("notify target #{} ({}) is sent without TLS", i + 1, kind),
                action: "use the https (or STARTTLS/TLS) form of the target",
            });
        }
    }
    if cfg.backup.store.as_deref().is_some_and(|s| s.starts_with("s3://"))
        && std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
    {
        out.push(Finding {
            check: "store-transport",
            severity: "medium",
            detail: "AWS_ALLOW_HTTP=true: backups may travel without TLS".into(),
            action: "use an https endpoint for the backup store",
        });
    }
    out
}

/// The Security Scan (weekly) and the Full Security Audit (monthly): the configuration
/// audit plus, when a database is configured, maint-db's PostgreSQL audit.
#[derive(Debug)]
pub(crate) struct SecurityScan {
    pub(crate) id: &'static str,
    pub(crate) findings: Vec<Finding>,
    pub(crate) pg: Option<maint_db::PgSecurityAudit>,
}

#[async_trait]
impl Task for SecurityScan {
    fn name(&self) -> &str {
        self.id
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(self.name(), ctx.dry_run);
        for f in &self.findings {
            report.item(f);
            report.warn(format!("{} ({}): {}; {}", f.check, f.severity, f.detail, f.action));
        }
        let high = self.findings.iter().filter(|f| f.severity == "high").count();
        report.metric("findings", self.findings.len() as f64).metric("findings_high", high as f64);
        let mut errors = Vec::new();
        if high > 0 {
            errors.push(format!("{high} high-severity configuration finding(s)"));
        }
        match &self.pg {
            Some(pg) => {
                let r = pg.run(ctx).await;
                for (k, v) in r.metrics {
                    report.metric(format!("pg_{k}"), v);
                }
                report.items.extend(r.items);
                report.warnings.extend(r.warnings);
                if let Some(e) = r.error {
                    errors.push(format!("PostgreSQL audit: {e}"));
                }
            }
            None => {
                report.warn("no database configured: the PostgreSQL audit did not run");
            }
        }
        report.warn("the Redis security check and TLS certificate expiry are not wired in yet");
        if !errors.is_empty() {
            report.fail(errors.join("; "));
        }
        report.finish()
    }
}

#[cfg(test)]
mod tests {
    use maint_core::Secret;

    use super::*;

    #[test]
    fn world_readable_secrets_and_plain_http_are_findings() {
        let dir = std::env::temp_dir().join(format!("maint-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("maint.toml");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cfg = MaintConfig { source: Some(path.clone()), ..MaintConfig::default() };
        assert!(audit(&cfg).is_empty(), "no secrets, nothing to say");
        cfg.database.url = Some(Secret::new("postgresql://maint:pw@db/x"));
        cfg.notify.targets =
            vec![Secret::new("slack+http://relay/services/x"), Secret::new("slack://hooks.slack.com/services/x")];
        let f = audit(&cfg);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!((f[0].check, f[0].severity), ("config-permissions", "high"));
        assert_eq!((f[1].check, f[1].severity), ("notification-transport", "medium"));
        assert!(!format!("{f:?}").contains("pw@"), "findings never carry secrets");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(audit(&cfg).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
