//! Tests that cross crates, against real servers started by `maint-testkit`, the way
//! tokio keeps `tests-integration/`: the code is in `tests/tests/`, this library is empty.
//!
//! - `compat_pg15`: the oldest PostgreSQL major we claim (15, plain text): the backup
//!   round trip (create, verify, restore test) with the 15 client tools, and one database
//!   optimization run. Every other test runs on PostgreSQL 17 with pgvector over TLS.
