#![doc = include_str!("../README.md")]

mod config;
mod create;
mod error;
mod fingerprint;
mod hashing;
mod ledger;
mod local;
mod manifest;
mod restore;
mod retention;
mod store;
mod task;
mod tools;
mod verify;

pub use config::{Compression, Config, DEFAULT_VERIFY_JOBS, open_store};
pub use create::{CreateOptions, create};
pub use error::Error;
pub use fingerprint::{
    DigestMethod, Mismatch, TableFingerprint, compare, fingerprint, fingerprint_like, fingerprint_table, quote_ident,
};
pub use ledger::{LEDGER_KEY, Ledger, LedgerEntry};
pub use manifest::{DumpLayout, MANIFEST_FORMAT_VERSION, Manifest};
pub use restore::{
    DEFAULT_MAINTENANCE_WORK_MEM, DEFAULT_RESTORE_JOBS, RestoreOptions, RestoreOutcome, SCRATCH_MARKER, SCRATCH_PREFIX,
    drop_leftovers, maintenance_work_mem, restore_test,
};
pub use retention::{Candidate, Decision, INCOMPLETE_GRACE, Retention, plan_retention};
pub use store::{BackupEntry, backup_key, catalog, day_prefix, key_database, key_time, manifest_key};
pub use task::{BackupVerification, prune_report, restore_report, verify_report};
pub use tools::CLIENT_ROOT;
pub use verify::{VerifyResult, verify_all, verify_one};

pub use deadpool_postgres::tokio_postgres;
pub use object_store;
