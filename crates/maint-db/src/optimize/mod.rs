//! Database Optimization (`database-optimization`, weekly): retention in batches,
//! `VACUUM`/`ANALYZE` per table with `SKIP_LOCKED` (wraparound first), and the cleanup of
//! invalid `_ccnew`/`_ccold` indexes that a failed `REINDEX CONCURRENTLY` leaves.
//!
//! - `task.rs`: the [`DatabaseOptimization`](crate::DatabaseOptimization) task.
//! - `config.rs`: its settings (steps, order, wraparound, `[retention]`) and their validation.
//! - `plan.rs`: the catalog types and the pure planner (tables, invalid indexes, retention SQL).
//! - `sql.rs`: its SQL on a live server ([`PgBackend`](crate::PgBackend)).

pub(crate) mod config;
pub(crate) mod plan;
pub(crate) mod sql;
pub(crate) mod task;
