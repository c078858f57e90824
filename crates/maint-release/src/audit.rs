//! The audit log of updates: one record per real run (who, versions, change, window,
//! every step) in `public.maint_release_audit` ([`PgAuditLog`]).

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::error::query_err;

/// What an update did: who, from which version to which, under which change and window,
/// and every step with its result and duration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Who ran it.
    pub actor: String,
    /// The running version, when it was known.
    pub from_version: Option<String>,
    /// The target version.
    pub to_version: String,
    /// The change request.
    pub change_id: Option<String>,
    /// The change's maintenance window.
    pub change_window: Option<String>,
    /// `ok`, `warning`, `failed` or `skipped`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The report's items: one per step (`step`, `status`, `detail`, `duration_ms`).
    pub steps: Vec<serde_json::Value>,
}

/// Where update audit records go. Object safe.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync + Debug + 'static {
    /// Stores a record; returns its id.
    async fn record(&self, record: &AuditRecord) -> Result<i64, Error>;
}

/// [`AuditLog`] in a PostgreSQL table of the tool's own (created on first use):
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS public.maint_release_audit (
///     id            bigserial   PRIMARY KEY,
///     started_at    timestamptz NOT NULL,
///     finished_at   timestamptz NOT NULL,
///     actor         text        NOT NULL,
///     from_version  text,
///     to_version    text        NOT NULL,
///     change_id     text,
///     change_window text,
///     status        text        NOT NULL,
///     error         text,
///     steps         jsonb       NOT NULL
/// );
/// ```
#[derive(Debug, Clone)]
pub struct PgAuditLog {
    pool: Pool,
}

/// The audit table's name.
pub const AUDIT_TABLE: &str = "public.maint_release_audit";

impl PgAuditLog {
    /// An audit log over `pool`. No I/O happens here.
    pub fn new(pool: Pool) -> Self {
        PgAuditLog { pool }
    }
}

#[async_trait]
impl AuditLog for PgAuditLog {
    async fn record(&self, r: &AuditRecord) -> Result<i64, Error> {
        let mut client = self.pool.get().await.map_err(|e| Error::Connect {
            target: "the audit database".into(),
            source: match e {
                deadpool_postgres::PoolError::Backend(e) => Box::new(e),
                other => Box::new(other),
            },
        })?;
        let tx = client.transaction().await.map_err(query_err("BEGIN"))?;
        // Two first runs at once must not race on CREATE TABLE IF NOT EXISTS.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&crate::MIGRATION_LOCK_KEY])
            .await
            .map_err(query_err("lock the audit table creation"))?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
                id            bigserial   PRIMARY KEY,
                started_at    timestamptz NOT NULL,
                finished_at   timestamptz NOT NULL,
                actor         text        NOT NULL,
                from_version  text,
                to_version    text        NOT NULL,
                change_id     text,
                change_window text,
                status        text        NOT NULL,
                error         text,
                steps         jsonb       NOT NULL
            )"
        ))
        .await
        .map_err(query_err(format!("create {AUDIT_TABLE}")))?;
        let steps = serde_json::Value::Array(r.steps.clone()).to_string();
        let (started, finished) = (r.started_at.to_rfc3339(), r.finished_at.to_rfc3339());
        let id: i64 = tx
            .query_one(
                &format!(
                    "INSERT INTO {AUDIT_TABLE} (started_at, finished_at, actor, from_version, to_version, change_id, \
                     change_window, status, error, steps) VALUES ($1::text::timestamptz, $2::text::timestamptz, $3, $4, $5, $6, $7, \
                     $8, $9, $10::text::jsonb) \
                     RETURNING id"
                ),
                &[
                    &started,
                    &finished,
                    &r.actor,
                    &r.from_version,
                    &r.to_version,
                    &r.change_id,
                    &r.change_window,
                    &r.status,
                    &r.error,
                    &steps,
                ],
            )
            .await
            .map_err(query_err("record the update"))?
            .get(0);
        tx.commit().await.map_err(query_err("COMMIT"))?;
        Ok(id)
    }
}
