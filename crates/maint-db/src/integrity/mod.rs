//! Index Integrity (`index-integrity`): `amcheck`'s `bt_index_check` over btree indexes
//! (created only when configured), each under the same timeouts; a corrupt index is a
//! critical finding and fails the run.
//!
//! - `task.rs`: the [`IndexIntegrity`](crate::IndexIntegrity) task and [`corrupt_index_finding`](crate::corrupt_index_finding).
//! - `config.rs`: `[amcheck]`.
//! - `sql.rs`: the indexes it checks and `bt_index_check` on a live server ([`PgBackend`](crate::PgBackend)).

pub(crate) mod config;
pub(crate) mod sql;
pub(crate) mod task;
