//! PostgreSQL Security Audit (`pg-security-audit`): superuser and login roles, password
//! expiry, `trust` in `pg_hba.conf`, `password_encryption`, `ssl`, CREATE on schema public,
//! extensions no object depends on.
//!
//! - `task.rs`: the [`PgSecurityAudit`](crate::PgSecurityAudit) task and [`pg_security_audit`](crate::pg_security_audit).
//! - `config.rs`: `[audit]`.
//! - `audit.rs`: what the audit reads and the pure assessment ([`audit_security`](crate::audit_security)).
//! - `sql.rs`: the catalogs and settings it reads ([`PgBackend`](crate::PgBackend)).

pub(crate) mod audit;
pub(crate) mod config;
pub(crate) mod sql;
pub(crate) mod task;
