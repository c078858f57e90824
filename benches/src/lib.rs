//! Benchmarks across crates on the AindusDB fixture (`maint_testkit::aindusdb`), each side
//! by side with what an operator would run by hand, in one run: the code is in
//! `benches/*.rs`, this library is empty.
//!
//! - `backup`: `maint-backup create` into the local S3 server against `pg_dump -Fc` to a
//!   local file, and the restore test against a bare `pg_restore` into an empty database.
