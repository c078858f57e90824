use std::fmt::Debug;

use async_trait::async_trait;
use serde::Serialize;

use crate::{
    BloatEstimate, BloatMeasurement, Blocker, Error, HealthSnapshot, RetentionRule, RunLockAttempt, SecuritySnapshot,
    SizeSample,
};

/// A table as seen in the catalog, without taking any lock on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableStats {
    /// `pg_class.oid`.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Size estimate from `relpages` (heap + TOAST), in bytes: reading the real size
    /// would take a lock that a blocked table would make us wait for.
    pub bytes: i64,
    /// `n_dead_tup`.
    pub dead_tuples: i64,
    /// `age(relfrozenxid)`.
    pub xid_age: i64,
    /// `vacuum_count` before the run.
    pub vacuum_count: i64,
    /// `analyze_count` before the run.
    pub analyze_count: i64,
}

/// What to do to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableWork {
    /// `VACUUM (SKIP_LOCKED[, ANALYZE][, FREEZE])`.
    Vacuum {
        /// With ANALYZE.
        analyze: bool,
        /// With FREEZE.
        freeze: bool,
    },
    /// `ANALYZE (SKIP_LOCKED)`.
    Analyze,
}

/// Why a table is in the plan where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `age(relfrozenxid)` at or above the wraparound threshold: first.
    Wraparound,
    /// Everything else, by the configured order.
    Routine,
}

/// One planned statement on one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableJob {
    /// The table.
    pub table: TableStats,
    /// What to run.
    pub work: TableWork,
    /// Why it is where it is.
    pub reason: Reason,
}

/// How one table job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TableOutcome {
    /// Done: the statistics counters moved.
    Done,
    /// `SKIP_LOCKED` skipped it: these sessions hold conflicting locks.
    Skipped {
        /// Who holds the locks.
        blockers: Vec<Blocker>,
    },
    /// The statement succeeded but the counters did not move and nobody holds a
    /// conflicting lock (no privilege, or the lock was released meanwhile).
    Unconfirmed,
    /// The table was dropped after planning.
    Vanished,
}

/// An invalid index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidIndex {
    /// Schema.
    pub schema: String,
    /// Index name.
    pub name: String,
    /// Its table.
    pub table: String,
    /// The table's oid.
    pub table_oid: u32,
    /// Size estimate from `relpages`.
    pub bytes: i64,
    /// A `CREATE INDEX`/`REINDEX` is running on the table right now.
    pub build_in_progress: bool,
}

/// What the catalog says about a retention rule's table and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleTarget {
    /// The named table's oid; `None` when there is no such table.
    pub oid: Option<u32>,
    /// The tables that hold its rows, each planned on its own (`DELETE FROM ONLY`): the
    /// named table unless it is partitioned, then every inheritance child and partition
    /// below it that is an ordinary table.
    pub tables: Vec<RetentionTable>,
    /// The column's type (`timestamp with time zone`); `None` when there is no such column.
    pub column_type: Option<String>,
    /// The cutoff as `timestamptz` text (now minus the rule's age).
    pub cutoff_tz: String,
    /// The same instant as `timestamp` text in the rule's time zone; `None` when the
    /// server does not know that zone.
    pub cutoff_local: Option<String>,
}

/// One table a retention rule deletes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionTable {
    /// `pg_class.oid`.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
}

/// A retention rule checked against the catalog, for one of its tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedRule {
    /// The rule.
    pub rule: RetentionRule,
    /// The table (the rule's own, or one of its children or partitions).
    pub table: RetentionTable,
    /// `timestamptz` or `timestamp` (dates compare with timestamps).
    pub cast: &'static str,
    /// The cutoff text for that cast.
    pub cutoff: String,
}

/// How a retention rule reaches its expired rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "scan", rename_all = "snake_case")]
pub enum RetentionScan {
    /// Few rows expire (the planner would find them through an index): batches of
    /// `LIMIT batch_size` rows by `ctid`.
    Rows,
    /// Many rows expire (the planner would read the whole table): the table is walked in
    /// ranges of `pages` pages (about `batch_size` rows each), `total` pages in all, each
    /// range one `DELETE` with a TID range scan, as fast per row as one big `DELETE`.
    Pages {
        /// Pages per statement.
        pages: u32,
        /// Pages of the table when the rule started.
        total: u32,
    },
}

/// A btree index that `amcheck` can verify (valid, ready, not temporary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BtreeIndex {
    /// `pg_class.oid` of the index.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Index name.
    pub name: String,
    /// Its table.
    pub table: String,
    /// The table's oid.
    pub table_oid: u32,
    /// Size from `relpages`.
    pub bytes: i64,
}

/// What `bt_index_check` said about one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IndexCheck {
    /// No problem found.
    Ok,
    /// amcheck raised `index_corrupted` (XX002) or `data_corrupted` (XX001).
    Corrupt {
        /// The SQLSTATE.
        sqlstate: String,
        /// The server's message, with its detail when there is one.
        message: String,
    },
    /// The index was dropped after it was listed.
    Vanished,
}

/// The I/O a maintenance run needs. Object safe; [`PgBackend`](crate::PgBackend)
/// implements it on a [`Db`](crate::Db), tests mock it.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DbBackend: Send + Sync + Debug + 'static {
    /// Tries the run lock.
    async fn lock_run(&self) -> Result<RunLockAttempt, Error>;
    /// `pg_database_size(current_database())`.
    async fn database_size(&self) -> Result<i64, Error>;
    /// Ordinary tables and materialized views outside the system schemas.
    async fn tables(&self) -> Result<Vec<TableStats>, Error>;
    /// Runs one job (with lock retries).
    async fn maintain(&self, job: &TableJob) -> Result<TableOutcome, Error>;
    /// Invalid indexes outside the system schemas.
    async fn invalid_indexes(&self) -> Result<Vec<InvalidIndex>, Error>;
    /// `DROP INDEX CONCURRENTLY IF EXISTS` (with lock retries).
    async fn drop_index(&self, index: &InvalidIndex) -> Result<(), Error>;
    /// Looks a retention rule up in the catalog.
    async fn rule_target(&self, rule: &RetentionRule) -> Result<RuleTarget, Error>;
    /// Counts the rows a rule would delete.
    async fn count_expired(&self, rule: &ResolvedRule) -> Result<u64, Error>;
    /// Deletes at most `limit` expired rows in one statement; returns how many.
    async fn delete_batch(&self, rule: &ResolvedRule, limit: u64) -> Result<u64, Error>;
    /// Chooses how to walk a rule's expired rows for batches of `batch_size` rows.
    async fn retention_scan(&self, rule: &ResolvedRule, batch_size: u64) -> Result<RetentionScan, Error>;
    /// Deletes the expired rows of pages `from..to` in one statement; returns how many.
    async fn delete_pages(&self, rule: &ResolvedRule, from: u32, to: u32) -> Result<u64, Error>;
    /// Catalog bloat estimates of user tables and valid btree indexes, against their
    /// sizes now (the `relpages` estimate for a relation locked ACCESS EXCLUSIVE).
    async fn bloat_estimates(&self) -> Result<Vec<BloatEstimate>, Error>;
    /// Whether `pgstattuple` is installed; with `create`, installs it first when missing.
    async fn pgstattuple(&self, create: bool) -> Result<bool, Error>;
    /// Measures one relation with `pgstattuple_approx` or `pgstatindex` (with lock retries).
    async fn measure(&self, relation: &BloatEstimate) -> Result<BloatMeasurement, Error>;
    /// `REINDEX INDEX CONCURRENTLY` (with lock retries); returns the index size after.
    async fn reindex(&self, index: &BloatEstimate) -> Result<i64, Error>;
    /// Whether `amcheck` is installed; with `create`, installs it first when missing.
    async fn amcheck(&self, create: bool) -> Result<bool, Error>;
    /// Valid, ready, non-temporary btree indexes of user tables, and of the system
    /// catalogs and TOAST tables too when `catalogs`.
    async fn btree_indexes(&self, catalogs: bool) -> Result<Vec<BtreeIndex>, Error>;
    /// `bt_index_check` on one index (with lock retries); corruption is an `Ok` answer.
    async fn check_index(&self, index: &BtreeIndex, heapallindexed: bool) -> Result<IndexCheck, Error>;
    /// Reads the statistics views for the health analysis.
    async fn health(&self) -> Result<HealthSnapshot, Error>;
    /// Reads roles, `pg_hba_file_rules` and settings for the security audit.
    async fn security(&self) -> Result<SecuritySnapshot, Error>;
    /// Sizes now: the database (`pg_database_size`), and the `top` largest tables and
    /// indexes (`pg_table_size`, `pg_relation_size`; the `relpages` estimate, marked, for
    /// a relation locked ACCESS EXCLUSIVE).
    async fn current_sizes(&self, top: usize) -> Result<Vec<SizeSample>, Error>;
    /// Stores samples in `<schema>.size_snapshots` (creating it on first use) and deletes
    /// snapshots older than `keep`.
    async fn record_sizes(&self, schema: &str, samples: &[SizeSample], keep: std::time::Duration) -> Result<(), Error>;
    /// Snapshots of the last `window` (empty when none were ever recorded).
    async fn size_history(&self, schema: &str, window: std::time::Duration) -> Result<Vec<SizeSample>, Error>;
}
