#![doc = include_str!("../README.md")]

mod backend;
mod config;
mod error;
mod executor;
mod planner;
mod redis;
mod rule;
mod security;

pub use backend::{
    CacheBackend, Change, CommandExposure, Key, KeyAction, MemoryInfo, Observation, Outcome, Probe, Recheck,
    SecurityFacts, TTL_NOT_READ,
};
pub use config::{Config, DEFAULT_REDIS_URL, Mode, RuleConfig, Settings};
pub use error::Error;
pub use executor::{CacheCleanup, TASK_ID, Totals, run_cleanup};
pub use planner::{AdaptiveCount, BatchPlan, Decision, key_text, needs_ttl, parse_instant, plan, probe_for};
pub use redis::{RedisBackend, parse_cluster_masters, parse_info_memory};
pub use rule::{Action, Condition, FieldFormat, Rule, format_duration, parse_duration};
pub use security::{Finding, Severity, assess, check_security};

/// Re-exported because [`RedisBackend`] is built on it (and it re-exports `redis`).
pub use deadpool_redis;
