//! The Security Scan and the Full Security Audit: maint's own configuration (secrets in a
//! world-readable file, notifications and stores over plain HTTP), the TLS certificates of
//! the configured HTTPS endpoints, the Redis security check (maint-cache) and the
//! PostgreSQL audit (maint-db).

use std::os::unix::fs::PermissionsExt;

use async_trait::async_trait;
use maint_core::chrono::{DateTime, TimeDelta, Utc};
use maint_core::{Finding, Impact, Severity, Task, TaskContext, TaskReport, one_line};
use serde::Deserialize;

use crate::config::MaintConfig;

/// The Full Security Audit's extra checks: the files maint trusts or writes. A world-writable
/// plan lets anyone schedule downtime; a world-writable directory (without the sticky bit)
/// holding the run lock, the metrics or the snapshots lets anyone replace them.
pub(crate) fn audit_files(cfg: &MaintConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Ok(meta) = std::fs::metadata(&cfg.calendar)
        && meta.permissions().mode() & 0o002 != 0
    {
        out.push(Finding::new(
            "calendar-permissions",
            Severity::High,
            cfg.calendar.display().to_string(),
            format!("the plan {} is world-writable: anyone can move or add a downtime window", cfg.calendar.display()),
            "chmod o-w the plan (and own it by the maintenance user)",
        ));
    }
    let mut dirs: Vec<&std::path::Path> = [
        Some(cfg.lock_file.as_path()),
        cfg.metrics_textfile.as_deref(),
        cfg.collect.textfile.as_deref(),
        cfg.collect.snapshots.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(std::path::Path::parent)
    .collect();
    dirs.extend(cfg.logs.archive_dir.as_deref());
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o1002 == 0o002
        {
            out.push(Finding::new(
                "directory-permissions",
                Severity::Medium,
                dir.display().to_string(),
                format!(
                    "{} is world-writable without the sticky bit: its files can be replaced by anyone",
                    dir.display()
                ),
                "give maint a directory of its own (mode 750 or stricter)",
            ));
        }
    }
    out
}

/// `[security]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SecuritySection {
    /// Findings of this severity or worse fail the task (`never`: report only).
    pub(crate) fail_on: String,
    /// Certificates expiring within this many days are findings (high within 7, critical
    /// when expired).
    pub(crate) cert_warn_days: u32,
    /// HTTPS endpoints whose certificates are checked (`https://…` or `host:port`), besides
    /// the service URL and the https notification targets.
    pub(crate) tls_endpoints: Vec<String>,
    /// Run the Redis security check on the Redis of `[cache]` / `[health]`.
    pub(crate) redis: bool,
}

impl Default for SecuritySection {
    fn default() -> Self {
        SecuritySection { fail_on: "high".into(), cert_warn_days: 21, tls_endpoints: Vec::new(), redis: true }
    }
}

impl SecuritySection {
    /// The severity from which findings fail the task (`fail_on`; `never`: none).
    pub(crate) fn fail_from(&self) -> Result<Option<Severity>, maint_core::Error> {
        if self.fail_on == "never" {
            return Ok(None);
        }
        self.fail_on.parse().map(Some).map_err(|m: String| maint_core::Error::invalid("security.fail_on", m))
    }

    /// Checks `fail_on` and the endpoints, naming the field.
    pub(crate) fn validate(&self) -> Result<(), maint_core::Error> {
        self.fail_from()?;
        for (i, e) in self.tls_endpoints.iter().enumerate() {
            let host_port = !e.contains("://")
                && e.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && !h.contains('@') && p.parse::<u16>().is_ok());
            if maint_health::https_endpoint(e).is_none() && !host_port {
                // the value is not repeated: it could be a URL with credentials
                return Err(maint_core::Error::invalid(
                    format!("security.tls_endpoints[{i}]"),
                    "neither an https:// URL nor host:port",
                ));
            }
        }
        Ok(())
    }
}

/// `host:port` of every HTTPS endpoint the configuration talks to (never their URLs, which
/// may carry tokens): `[security] tls_endpoints`, the service, https notification targets,
/// an https `AWS_ENDPOINT` for an S3 store.
pub(crate) fn tls_endpoints(cfg: &MaintConfig) -> Vec<String> {
    let mut out: Vec<String> = cfg
        .security
        .tls_endpoints
        .iter()
        .map(|e| maint_health::https_endpoint(e).unwrap_or_else(|| e.clone()))
        .collect();
    out.extend(cfg.health.service_url.as_deref().and_then(maint_health::https_endpoint));
    for t in &cfg.notify.targets {
        let url = t.expose();
        let Some((scheme, rest)) = url.split_once("://") else { continue };
        let (kind, transport) = scheme.split_once('+').unwrap_or((scheme, "https"));
        if transport == "https" && matches!(kind, "slack" | "teams" | "webhook") {
            out.extend(maint_health::https_endpoint(&format!("https://{rest}")));
        }
    }
    if cfg.backup.store.as_deref().is_some_and(|s| s.starts_with("s3://"))
        && let Ok(endpoint) = std::env::var("AWS_ENDPOINT")
    {
        out.extend(maint_health::https_endpoint(&endpoint));
    }
    out.sort();
    out.dedup();
    out
}

/// Judges a certificate's remaining validity.
pub(crate) fn certificate_finding(
    info: &maint_health::CertificateInfo,
    now: DateTime<Utc>,
    warn_days: u32,
) -> Option<Finding> {
    let left = info.not_after - now;
    let days = left.num_days();
    let (severity, what) = if left <= TimeDelta::zero() {
        (Severity::Critical, format!("expired on {}", info.not_after.format("%Y-%m-%d")))
    } else if days < 7 {
        (Severity::High, format!("expires in {days} day(s), on {}", info.not_after.format("%Y-%m-%d")))
    } else if days < i64::from(warn_days) {
        (Severity::Medium, format!("expires in {days} days, on {}", info.not_after.format("%Y-%m-%d")))
    } else {
        return None;
    };
    Some(Finding::new(
        "tls-certificate",
        severity,
        info.endpoint.clone(),
        format!("the certificate of {} ({}) {what}", info.endpoint, info.subject),
        "renew the certificate (and check that its renewal is automated)",
    ))
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
            out.push(Finding::new(
                "config-permissions",
                Severity::High,
                path.display().to_string(),
                format!("{} holds secrets and is world-readable (mode {:o})", path.display(), mode & 0o777),
                "chmod 600 the file, or move the secrets to environment variables (MAINT_*)",
            ));
        } else if has_secrets && mode & 0o040 != 0 {
            out.push(Finding::new(
                "config-permissions",
                Severity::Low,
                path.display().to_string(),
                format!("{} holds secrets and is group-readable (mode {:o})", path.display(), mode & 0o777),
                "make sure the group is only the maintenance user's",
            ));
        }
    }
    for (i, t) in cfg.notify.targets.iter().enumerate() {
        let url = t.expose();
        let kind = url.split("://").next().unwrap_or("");
        if kind.ends_with("+http") || (kind.starts_with("smtp") && url.contains("tls=none")) {
            out.push(Finding::new(
                "notification-transport",
                Severity::Medium,
                format!("notify.targets[{i}]"),
                format!("notify target #{} ({}) is sent without TLS", i + 1, kind),
                "use the https (or STARTTLS/TLS) form of the target",
            ));
        }
    }
    if cfg.backup.store.as_deref().is_some_and(|s| s.starts_with("s3://"))
        && std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
    {
        out.push(Finding::new(
            "store-transport",
            Severity::Medium,
            "backup.store",
            "AWS_ALLOW_HTTP=true: backups may travel without TLS",
            "use an https endpoint for the backup store",
        ));
    }
    out
}

/// The Security Scan (weekly) and the Full Security Audit (monthly): the configuration
/// audit, TLS certificate expiry, the Redis check when a Redis is configured, and
/// maint-db's PostgreSQL audit when a database is.
#[derive(Debug)]
pub(crate) struct SecurityScan {
    pub(crate) id: &'static str,
    pub(crate) findings: Vec<Finding>,
    pub(crate) pg: Option<maint_db::PgSecurityAudit>,
    pub(crate) redis: Option<(maint_core::Secret, maint_cache::Mode, Option<std::path::PathBuf>)>,
    pub(crate) tls_endpoints: Vec<String>,
    pub(crate) cert_warn_days: u32,
    /// Findings of this severity or worse fail the task; `None`: never.
    pub(crate) fail_from: Option<Severity>,
}

impl SecurityScan {
    /// Redis findings of every node the cleanup would scan.
    async fn redis_findings(
        url: &maint_core::Secret,
        mode: maint_cache::Mode,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Vec<Finding>, String> {
        let nodes =
            maint_cache::RedisBackend::connect_all_with_ca(url, mode, ca_file).await.map_err(|e| one_line(&e))?;
        let mut out = Vec::new();
        for node in nodes {
            for mut f in maint_cache::check_security(node.as_ref()).await.map_err(|e| one_line(&e))? {
                f.check = format!("redis-{}", f.check);
                out.push(f);
            }
        }
        Ok(out)
    }
}

/// A PostgreSQL audit finding, named as the scan's own: `postgresql-<check>`.
fn pg_finding(mut f: Finding) -> Finding {
    f.check = format!("postgresql-{}", f.check);
    f
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
        let mut findings = self.findings.clone();
        let mut errors = Vec::new();
        let mut certificates = 0;
        for endpoint in &self.tls_endpoints {
            match maint_health::certificate_expiry(endpoint, std::time::Duration::from_secs(10)).await {
                Ok(info) => {
                    certificates += 1;
                    findings.extend(certificate_finding(&info, Utc::now(), self.cert_warn_days));
                }
                Err(e) => {
                    report.warn(format!("TLS certificate not checked: {e}"));
                }
            }
        }
        report.metric("certificates_checked", f64::from(certificates));
        match &self.redis {
            Some((url, mode, ca_file)) => match Self::redis_findings(url, *mode, ca_file.as_deref()).await {
                Ok(f) => findings.extend(f),
                Err(e) => errors.push(format!("Redis security check: {e}")),
            },
            None => {
                report.warn("no Redis configured: the Redis security check did not run");
            }
        }
        match &self.pg {
            Some(pg) => match pg.findings().await {
                Ok(pg_findings) => findings.extend(pg_findings.into_iter().map(pg_finding)),
                Err(e) => errors.push(format!("PostgreSQL audit: {}", one_line(&e))),
            },
            None => {
                report.warn("no database configured: the PostgreSQL audit did not run");
            }
        }
        Finding::sort(&mut findings);
        for f in &findings {
            report.item(f);
            report.warn(format!("{} ({}): {} {}; {}", f.check, f.severity, f.subject, f.message, f.action));
        }
        report.metric("findings", findings.len() as f64);
        for severity in Severity::ALL {
            let n = findings.iter().filter(|f| f.severity == severity).count();
            report.metric(format!("findings_{severity}"), n as f64);
        }
        if let Some(from) = self.fail_from {
            let failing = findings.iter().filter(|f| f.severity >= from).count();
            if failing > 0 {
                errors.push(format!("{failing} finding(s) of severity {from} or worse"));
            }
        }
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
        assert_eq!((f[0].check.as_str(), f[0].severity), ("config-permissions", Severity::High));
        assert_eq!((f[1].check.as_str(), f[1].severity), ("notification-transport", Severity::Medium));
        assert!(!format!("{f:?}").contains("pw@"), "findings never carry secrets");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(audit(&cfg).len(), 1);

        // The full audit's file checks: a world-writable plan and metrics directory.
        let plan = dir.join("plan.yaml");
        std::fs::write(&plan, "").unwrap();
        let metrics = dir.join("metrics");
        std::fs::create_dir_all(&metrics).unwrap();
        cfg.calendar.clone_from(&plan);
        cfg.metrics_textfile = Some(metrics.join("maint.prom"));
        assert!(audit_files(&cfg).is_empty());
        std::fs::set_permissions(&plan, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::set_permissions(&metrics, std::fs::Permissions::from_mode(0o777)).unwrap();
        let f = audit_files(&cfg);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!((f[0].check.as_str(), f[0].severity), ("calendar-permissions", Severity::High));
        assert_eq!((f[1].check.as_str(), f[1].severity), ("directory-permissions", Severity::Medium));
        std::fs::set_permissions(&metrics, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(audit_files(&cfg).len(), 1, "the sticky bit (like /tmp) protects the files");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn certificates_close_to_expiry_are_findings() {
        let now = Utc::now();
        let cert = |days: i64| maint_health::CertificateInfo {
            endpoint: "api.internal:443".into(),
            subject: "CN=api.internal".into(),
            not_after: now + TimeDelta::days(days) + TimeDelta::hours(1),
        };
        assert_eq!(certificate_finding(&cert(-3), now, 21).unwrap().severity, Severity::Critical);
        assert_eq!(certificate_finding(&cert(2), now, 21).unwrap().severity, Severity::High);
        let f = certificate_finding(&cert(10), now, 21).unwrap();
        assert_eq!((f.check.as_str(), f.severity), ("tls-certificate", Severity::Medium));
        assert!(f.message.contains("api.internal:443") && f.message.contains("expires in 10 days"), "{f:?}");
        assert_eq!(certificate_finding(&cert(30), now, 21), None);
        assert_eq!(certificate_finding(&cert(10), now, 7), None);
    }

    #[test]
    fn tls_endpoints_come_from_the_config_without_their_secrets() {
        let mut cfg = MaintConfig::default();
        cfg.security.tls_endpoints = vec!["https://grafana.internal:3000/login".into(), "db.internal:5432".into()];
        cfg.health.service_url = Some("https://aindusdb.internal".into());
        cfg.notify.targets = vec![
            Secret::new("slack://hooks.slack.com/services/T/B/SECRET"),
            Secret::new("slack+http://relay.internal/services/x"),
            Secret::new("webhook+https://hooks.example.com:8443/h?secret=whsec_x"),
        ];
        assert_eq!(
            tls_endpoints(&cfg),
            [
                "aindusdb.internal:443",
                "db.internal:5432",
                "grafana.internal:3000",
                "hooks.example.com:8443",
                "hooks.slack.com:443"
            ]
        );
        assert!(cfg.security.validate().is_ok());
        cfg.security.tls_endpoints.push("http://user:token@grafana.internal/".into());
        let err = cfg.security.validate().unwrap_err().to_string();
        assert!(err.starts_with("security.tls_endpoints[2]: ") && !err.contains("token"), "{err}");
        cfg.security.tls_endpoints.pop();
        cfg.security.fail_on = "severe".into();
        assert!(cfg.security.validate().unwrap_err().to_string().contains("security.fail_on"));
    }
}
