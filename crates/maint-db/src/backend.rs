//! The I/O every task goes through: one object-safe trait ([`DbBackend`]) so the tasks run
//! on a real server ([`PgBackend`](crate::PgBackend)) or a mock. Its methods are grouped by
//! calendar task; the types they take and return live in each task's module.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::{
    BloatEstimate, BloatMeasurement, BtreeIndex, Error, HealthSnapshot, IndexCheck, IndexInfo, InvalidIndex,
    RecallMeasurement, ResolvedRule, RetentionRule, RetentionScan, RuleTarget, RunLockAttempt, SecuritySnapshot,
    SizeSample, TableJob, TableOutcome, TableStats, VectorSettings,
};

/// The I/O a maintenance run needs, grouped by calendar task. Object safe;
/// [`PgBackend`](crate::PgBackend) implements it on a [`Db`](crate::Db) with each task's
/// SQL in that task's module, tests mock it.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DbBackend: Send + Sync + Debug + 'static {
    /// Tries the run lock.
    async fn lock_run(&self) -> Result<RunLockAttempt, Error>;
    // Database Optimization (`optimize::sql`).
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
    // Index Rebuild (`reindex::sql`).
    /// Catalog bloat estimates of user tables and valid btree indexes, against their
    /// sizes now (the `relpages` estimate for a relation locked ACCESS EXCLUSIVE).
    async fn bloat_estimates(&self) -> Result<Vec<BloatEstimate>, Error>;
    /// Whether `pgstattuple` is installed; with `create`, installs it first when missing.
    async fn pgstattuple(&self, create: bool) -> Result<bool, Error>;
    /// Measures one relation with `pgstattuple_approx` or `pgstatindex` (with lock retries).
    async fn measure(&self, relation: &BloatEstimate) -> Result<BloatMeasurement, Error>;
    /// `REINDEX INDEX CONCURRENTLY` (with lock retries); returns the index size after.
    async fn reindex(&self, index: &BloatEstimate) -> Result<i64, Error>;
    /// Every index of the user tables, whatever its access method, with the last build
    /// recorded in `<schema>.index_builds` (`reindex::vector_sql`).
    async fn index_inventory(&self, schema: &str) -> Result<Vec<IndexInfo>, Error>;
    /// Recall@k of a vector index against the exact search, in one read-only repeatable
    /// read transaction under `vector.recall_timeout`.
    async fn measure_recall(&self, index: &IndexInfo, settings: &VectorSettings) -> Result<RecallMeasurement, Error>;
    /// Stores a measurement in `<schema>.recall_history` (creating it on first use);
    /// returns the recall measured before it, if any.
    async fn record_recall(&self, schema: &str, measurement: &RecallMeasurement) -> Result<Option<f64>, Error>;
    /// Records a build of `index` (the table's counters now) in `<schema>.index_builds`.
    async fn record_index_build(&self, schema: &str, index: &IndexInfo, seconds: f64) -> Result<(), Error>;
    /// `maintenance_work_mem` of our sessions, in bytes.
    async fn maintenance_work_mem(&self) -> Result<i64, Error>;
    /// `REINDEX INDEX CONCURRENTLY` with `maintenance_work_mem` = `memory` bytes and
    /// `workers` parallel maintenance workers (with lock retries), its progress logged every
    /// `progress`; returns the index size after.
    async fn rebuild_index(
        &self,
        index: &IndexInfo,
        memory: i64,
        workers: Option<u32>,
        progress: std::time::Duration,
    ) -> Result<i64, Error>;
    // Index Integrity (`integrity::sql`).
    /// Whether `amcheck` is installed; with `create`, installs it first when missing.
    async fn amcheck(&self, create: bool) -> Result<bool, Error>;
    /// Valid, ready, non-temporary btree indexes of user tables, and of the system
    /// catalogs and TOAST tables too when `catalogs`.
    async fn btree_indexes(&self, catalogs: bool) -> Result<Vec<BtreeIndex>, Error>;
    /// `bt_index_check` on one index (with lock retries); corruption is an `Ok` answer.
    async fn check_index(&self, index: &BtreeIndex, heapallindexed: bool) -> Result<IndexCheck, Error>;
    // Performance Analysis (`performance::sql`).
    /// Reads the statistics views for the health analysis.
    async fn health(&self) -> Result<HealthSnapshot, Error>;
    // PostgreSQL Security Audit (`security::sql`).
    /// Reads roles, `pg_hba_file_rules` and settings for the security audit.
    async fn security(&self) -> Result<SecuritySnapshot, Error>;
    // Capacity Planning (`capacity::sql`).
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
