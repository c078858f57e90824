//! Capacity Planning (`capacity-planning`, monthly): size snapshots in the tool's own
//! schema, growth per day and days until the disk budget.
//!
//! - `task.rs`: the [`CapacityPlanning`](crate::CapacityPlanning) task, its samples and the
//!   forecast ([`forecast`](crate::forecast)).
//! - `config.rs`: `[capacity]` and its validation.
//! - `sql.rs`: sizes and the snapshots table on a live server ([`PgBackend`](crate::PgBackend)).

pub(crate) mod config;
pub(crate) mod sql;
pub(crate) mod task;
