//! Tests that cross crates, against real servers started by `maint-testkit`, the way
//! tokio keeps `tests-integration/`: the code is in `tests/tests/`, this library is empty.
//!
//! - `compat_pg15`: the oldest PostgreSQL major we claim (15, plain text): the backup
//!   round trip (create, verify, restore test) with the 15 client tools, and one database
//!   optimization run. Every other test runs on PostgreSQL 17 with pgvector over TLS.
//! - `aindusdb`: the maintenance tasks on the AindusDB fixture (`maint_testkit::aindusdb`):
//!   backup create, verify and restore test, optimization, index rebuild, amcheck, the
//!   security audit, the performance report and capacity planning with true sizes.
//! - `deploy`: what `deploy/` ships loads: Kubernetes objects strictly, every embedded config
//!   through `maint config-check`, systemd units through `systemd-analyze verify`, alert rules
//!   and both metrics textfiles through `promtool`, the dashboard's queries.
//! - `layout`: docs/architecture.md's crate diagram is the real dependency graph.
