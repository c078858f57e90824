#![doc = include_str!("../README.md")]

mod analysis;
mod backend;
mod bloat;
mod capacity;
mod config;
mod connect;
mod db;
mod error;
mod findings;
mod ident;
mod integrity;
mod locks;
mod planner;
mod postgres;
mod task;

pub use analysis::{
    INDEX_REBUILD_ID, IndexRebuild, PERFORMANCE_ANALYSIS_ID, PG_SECURITY_AUDIT_ID, PerformanceAnalysis,
    PgSecurityAudit, pg_security_audit,
};
pub use backend::{
    BtreeIndex, DbBackend, IndexCheck, InvalidIndex, Reason, ResolvedRule, RetentionScan, RetentionTable, RuleTarget,
    TableJob, TableOutcome, TableStats, TableWork,
};
pub use bloat::{
    BloatEntry, BloatEstimate, BloatMeasurement, ReindexJob, RelKind, bloat_candidates, index_waste, needs_rebuild,
    plan_reindex, reindex_sql,
};
pub use capacity::{CAPACITY_PLANNING_ID, CapacityPlanning, Forecast, SizeKind, SizeSample, forecast};
pub use config::{
    AmcheckConfig, AnalysisConfig, AnalysisSettings, AuditConfig, BloatConfig, CapacityConfig, CapacitySettings,
    Config, Order, ReindexConfig, RetentionConfig, RetentionRule, RetentionRuleConfig, Settings, Steps, parse_duration,
    parse_size,
};
pub use connect::{DEFAULT_CONNECT_TIMEOUT, MakeRustlsConnect, PgConnector, SslMode, connect};
pub use db::{Db, LockHolder, RUN_LOCK_KEY, RunLock, RunLockAttempt, advisory_lock_holder, retry_pause};
pub use error::{Blocker, Error};
pub use findings::{
    ExtensionInfo, Finding, HbaRule, HealthFigures, HealthSnapshot, IndexUsage, ReplicaInfo, RoleInfo,
    SecuritySnapshot, SessionInfo, Severity, SlotInfo, TableScans, assess_health, audit_security,
};
pub use ident::{qualified, quote_ident};
pub use integrity::{INDEX_INTEGRITY_ID, IndexIntegrity, corrupt_index_finding};
pub use locks::LockMode;
pub use planner::{
    InvalidIndexPlan, TablePlanOptions, count_expired_sql, delete_batch_sql, delete_pages_sql, explain_expired_sql,
    is_reindex_leftover, job_sql, plan_invalid_indexes, plan_tables, resolve_rule,
};
pub use postgres::PgBackend;
pub use task::{DatabaseOptimization, TASK_ID};

/// Re-exported because [`Db`] is built on it (and it re-exports `tokio_postgres`).
pub use deadpool_postgres;
