//! Performance Analysis (`performance-analysis`, weekly, read-only): connections, long and
//! idle-in-transaction sessions, blocked locks, cache hit ratio, wraparound,
//! unused/duplicate/invalid indexes, sequential scans, replication slots and lag, and the
//! catalog's bloat estimates, each finding with a severity and an action.
//!
//! - `task.rs`: the [`PerformanceAnalysis`](crate::PerformanceAnalysis) task.
//! - `config.rs`: `[analysis]`, its thresholds and their validation.
//! - `health.rs`: what the statistics views say and the pure assessment ([`assess_health`](crate::assess_health)).
//! - `sql.rs`: the statistics views it reads ([`PgBackend`](crate::PgBackend)).
//!
//! An index inventory (what kinds of index a database has, vector and text indexes
//! included) belongs here and in `reindex/`: its figures in `health.rs`, its
//! catalog query in `sql.rs`.

pub(crate) mod config;
pub(crate) mod health;
pub(crate) mod sql;
pub(crate) mod task;
