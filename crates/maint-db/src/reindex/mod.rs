//! Index Rebuild (`index-rebuild`, monthly): bloat estimated from the catalog, the top
//! candidates measured with `pgstattuple`, indexes over the `[reindex]` thresholds rebuilt
//! with `REINDEX INDEX CONCURRENTLY`, and the `_ccnew`/`_ccold` leftovers cleaned before
//! and after.
//!
//! - `task.rs`: the [`IndexRebuild`](crate::IndexRebuild) task.
//! - `config.rs`: `[bloat]` and `[reindex]`, and their validation.
//! - `bloat.rs`: estimates, measurements and the pure rebuild planner ([`plan_reindex`](crate::plan_reindex)).
//! - `sql.rs`: the bloat estimates, `pgstattuple` and `REINDEX` on a live server ([`PgBackend`](crate::PgBackend)).
//!
//! - `vector.rs`: the index inventory by access method, recall of vector indexes, and when
//!   a vector index is rebuilt ([`rebuild_reason`](crate::rebuild_reason)).
//! - `vector_sql.rs`: the inventory, recall measurement, build records and vector rebuilds on a live server.
//!
//! An index inventory (what kinds of index a database has, vector and text indexes
//! included, and how each kind is measured and rebuilt) belongs here: its types beside
//! `bloat.rs`, its catalog query in `sql.rs`, its report in `task.rs`.

pub(crate) mod bloat;
pub(crate) mod config;
pub(crate) mod sql;
pub(crate) mod task;
pub(crate) mod vector;
pub(crate) mod vector_sql;
