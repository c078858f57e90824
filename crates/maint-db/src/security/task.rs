//! PostgreSQL Security Audit (`pg-security-audit`, the PostgreSQL half of the security
//! audit): the task, and [`pg_security_audit`](crate::pg_security_audit) for one database.

use std::sync::Arc;

use async_trait::async_trait;
use maint_core::{Impact, Task, TaskContext, TaskReport, one_line};

use crate::findings::report_findings;
use crate::run::connect;
use crate::{Config, Db, DbBackend, Error, Finding, PgBackend, Settings, audit_security};

/// The task name of the PostgreSQL half of the security audit.
pub const PG_SECURITY_AUDIT_ID: &str = "pg-security-audit";

/// The PostgreSQL findings of the security audit for one database: superuser and login
/// roles, passwords that never expire (when required), `trust` lines in `pg_hba.conf`,
/// `password_encryption`, `ssl`, CREATE on schema public for PUBLIC, extensions that no
/// object depends on (info). Most severe first.
pub async fn pg_security_audit(db: &Db, audit: &crate::AuditConfig) -> Result<Vec<Finding>, Error> {
    let snapshot = PgBackend::new(db.clone()).security().await?;
    Ok(audit_security(&snapshot, audit))
}

/// The PostgreSQL half of the security audit as a task (`pg-security-audit`, impact none).
#[derive(Debug, Clone)]
pub struct PgSecurityAudit {
    settings: Settings,
    backend: Arc<dyn DbBackend>,
}

impl PgSecurityAudit {
    /// Validates the configuration and prepares a pool (no I/O yet). The URL is required.
    pub fn new(config: &Config) -> Result<Self, Error> {
        let (settings, backend) = connect(config)?;
        Ok(Self::with_backend(settings, backend))
    }

    /// A task over any backend (tests use a mock).
    pub fn with_backend(settings: Settings, backend: Arc<dyn DbBackend>) -> Self {
        PgSecurityAudit { settings, backend }
    }

    /// The findings, most severe first.
    pub async fn findings(&self) -> Result<Vec<Finding>, Error> {
        let snapshot = self.backend.security().await?;
        Ok(audit_security(&snapshot, &self.settings.audit))
    }
}

#[async_trait]
impl Task for PgSecurityAudit {
    fn name(&self) -> &str {
        PG_SECURITY_AUDIT_ID
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(PG_SECURITY_AUDIT_ID, ctx.dry_run);
        match self.findings().await {
            Ok(findings) => report_findings(&mut report, &findings),
            Err(e) => {
                report.fail(one_line(&e));
            }
        }
        report.finish()
    }
}

#[cfg(test)]
mod tests {
    use maint_core::Status;

    use super::*;
    use crate::backend::MockDbBackend;

    #[tokio::test]
    async fn the_security_audit_fails_clearly_when_the_server_does_not_answer() {
        let mut mock = MockDbBackend::new();
        mock.expect_security().times(1).returning(|| Err(Error::invalid("database_url", "no host")));
        let task = PgSecurityAudit::with_backend(Settings::default(), Arc::new(mock));
        assert_eq!(task.name(), "pg-security-audit");
        let report = task.run(&TaskContext::new(false)).await;
        assert_eq!((report.status, report.error.as_deref()), (Status::Failed, Some("database_url: no host")));
    }
}
