#![doc = include_str!("../README.md")]

mod backend;
mod config;
mod db;
mod error;
mod ident;
mod locks;
mod planner;
mod postgres;
mod task;

pub use backend::{
    DbBackend, InvalidIndex, Reason, ResolvedRule, RuleTarget, TableJob, TableOutcome, TableStats, TableWork,
};
pub use config::{Config, Order, RetentionConfig, RetentionRule, RetentionRuleConfig, Settings, Steps, parse_duration};
pub use db::{Db, RUN_LOCK_KEY, RunLock, RunLockAttempt, retry_pause};
pub use error::{Blocker, Error};
pub use ident::{qualified, quote_ident};
pub use locks::LockMode;
pub use planner::{
    InvalidIndexPlan, TablePlanOptions, count_expired_sql, delete_batch_sql, is_reindex_leftover, job_sql,
    plan_invalid_indexes, plan_tables, resolve_rule,
};
pub use postgres::PgBackend;
pub use task::{DatabaseOptimization, TASK_ID};

/// Re-exported because [`Db`] is built on it (and it re-exports `tokio_postgres`).
pub use deadpool_postgres;
