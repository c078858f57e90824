#![doc = include_str!("../README.md")]

mod backend;
mod capacity;
mod config;
mod connect;
mod db;
mod error;
mod findings;
mod ident;
mod integrity;
mod locks;
mod optimize;
mod performance;
mod postgres;
mod reindex;
mod run;
mod security;

// Shared plumbing: the connection, sessions and locks, the `[database]` section, the
// backend trait and its PostgreSQL implementation, the findings type.
pub use backend::DbBackend;
pub use config::{Config, Settings, parse_duration, parse_size};
pub use connect::{DEFAULT_CONNECT_TIMEOUT, MakeRustlsConnect, PgConnector, SslMode, connect};
pub use db::{Db, LockHolder, RUN_LOCK_KEY, RunLock, RunLockAttempt, advisory_lock_holder, retry_pause};
pub use error::{Blocker, Error};
pub use ident::{qualified, quote_ident};
pub use locks::LockMode;
pub use maint_core::{Finding, Severity};
pub use postgres::PgBackend;

// Database Optimization (`database-optimization`).
pub use optimize::config::{Order, RetentionConfig, RetentionRule, RetentionRuleConfig, Steps};
pub use optimize::plan::{
    InvalidIndex, InvalidIndexPlan, Reason, ResolvedRule, RetentionScan, RetentionTable, RuleTarget, TableJob,
    TableOutcome, TablePlanOptions, TableStats, TableWork, count_expired_sql, delete_batch_sql, delete_pages_sql,
    explain_expired_sql, is_reindex_leftover, job_sql, plan_invalid_indexes, plan_tables, resolve_rule,
};
pub use optimize::task::{DatabaseOptimization, TASK_ID};

// Index Rebuild (`index-rebuild`).
pub use reindex::bloat::{
    BloatEntry, BloatEstimate, BloatMeasurement, ReindexJob, RelKind, bloat_candidates, index_waste, needs_rebuild,
    plan_reindex, reindex_sql,
};
pub use reindex::config::{BloatConfig, ReindexConfig, VectorConfig, VectorSettings};
pub use reindex::task::{INDEX_REBUILD_ID, IndexRebuild};
pub use reindex::vector::{
    BuildRecord, IndexInfo, Latency, RecallMeasurement, SinceBuild, TupleCounters, build_memory, rebuild_reason,
    recall_at_k, recall_finding, recommended_lists, search_values,
};

// Performance Analysis (`performance-analysis`).
pub use performance::config::{AnalysisConfig, AnalysisSettings};
pub use performance::health::{
    HealthFigures, HealthSnapshot, IndexUsage, ReplicaInfo, SessionInfo, SlotInfo, TableScans, assess_health,
};
pub use performance::task::{PERFORMANCE_ANALYSIS_ID, PerformanceAnalysis};

// PostgreSQL Security Audit (`pg-security-audit`).
pub use security::audit::{ExtensionInfo, HbaRule, RoleInfo, SecuritySnapshot, audit_security};
pub use security::config::AuditConfig;
pub use security::task::{PG_SECURITY_AUDIT_ID, PgSecurityAudit, pg_security_audit};

// Capacity Planning (`capacity-planning`).
pub use capacity::config::{CapacityConfig, CapacitySettings};
pub use capacity::task::{CAPACITY_PLANNING_ID, CapacityPlanning, Forecast, SizeKind, SizeSample, forecast};

// Index Integrity (`index-integrity`).
pub use integrity::config::AmcheckConfig;
pub use integrity::sql::{BtreeIndex, IndexCheck};
pub use integrity::task::{INDEX_INTEGRITY_ID, IndexIntegrity, corrupt_index_finding};

/// Re-exported because [`Db`] is built on it (and it re-exports `tokio_postgres`).
pub use deadpool_postgres;
