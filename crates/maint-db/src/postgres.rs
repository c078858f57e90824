//! [`PgBackend`]: the [`DbBackend`] on a real server. Each task's SQL lives in its own
//! module (`optimize/sql.rs`, `reindex/sql.rs`, `performance/sql.rs`, `security/sql.rs`,
//! `capacity/sql.rs`, `integrity/sql.rs`) as methods of [`PgBackend`]; here are the
//! trait impl that calls them and the catalog SQL several tasks share (user schemas,
//! sizes that never wait for a lock, extensions).

use async_trait::async_trait;

use crate::db::{LOCK_NOT_AVAILABLE, query_err};
use crate::{
    BloatEstimate, BloatMeasurement, BtreeIndex, Db, DbBackend, Error, HealthSnapshot, IndexCheck, IndexInfo,
    InvalidIndex, RecallMeasurement, ResolvedRule, RetentionRule, RetentionScan, RuleTarget, RunLockAttempt,
    SecuritySnapshot, SizeSample, TableJob, TableOutcome, TableStats, VectorSettings,
};

/// User relations only (`n` is `pg_namespace`).
pub(crate) const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
     AND n.nspname NOT LIKE 'pg\\_temp%'";

/// The relations of this database someone holds or awaits ACCESS EXCLUSIVE on: a size
/// function would wait for them until `lock_timeout`. Evaluated once per query (a hashed subplan).
const BUSY: &str = "(SELECT l.relation FROM pg_locks l WHERE l.mode = 'AccessExclusiveLock' \
     AND l.relation IS NOT NULL AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))";

/// The size of a relation now, and whether it is only its `relpages` estimate: two SQL
/// expressions, `bytes` and `estimated`. `size` reads the relation `oid` of table `table`
/// (`pg_relation_size(c.oid)`, ...), `estimate` is the `relpages` figure in bytes. The
/// estimate is used when `exact` is false (a size function hit `lock_timeout`), when the
/// relation or its table is locked ACCESS EXCLUSIVE (reading it would wait), and when it
/// vanished meanwhile.
pub(crate) fn size_sql(exact: bool, size: &str, oid: &str, table: &str, estimate: &str) -> (String, String) {
    let busy = if exact { format!("({oid} IN {BUSY} OR {table} IN {BUSY})") } else { "true".into() };
    (format!("CASE WHEN {busy} THEN {estimate} ELSE coalesce({size}, {estimate}) END"), busy)
}

/// Runs `run` with exact sizes, and again with the `relpages` estimates when a size
/// function hit `lock_timeout` (a relation locked after the check in [`size_sql`]).
pub(crate) async fn sized<T, F, Fut>(run: F) -> Result<T, Error>
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    match run(true).await {
        Err(e) if e.sqlstate() == Some(LOCK_NOT_AVAILABLE) => run(false).await,
        other => other,
    }
}

/// [`DbBackend`] on a real server through a [`Db`].
#[derive(Debug, Clone)]
pub struct PgBackend {
    pub(crate) db: Db,
}

impl PgBackend {
    /// Wraps a handle.
    pub fn new(db: Db) -> Self {
        PgBackend { db }
    }

    /// The handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The schema extension `name` is installed in, if it is.
    pub(crate) async fn extension_schema(&self, name: &str) -> Result<Option<String>, Error> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
                 WHERE e.extname = $1",
                &[&name],
            )
            .await
            .map_err(query_err(format!("look up extension {name}")))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Whether extension `name` is installed; with `create`, installs it first when missing.
    pub(crate) async fn extension(&self, name: &str, create: bool) -> Result<bool, Error> {
        if self.extension_schema(name).await?.is_some() {
            return Ok(true);
        }
        if !create {
            return Ok(false);
        }
        let client = self.db.client().await?;
        let sql = format!("CREATE EXTENSION IF NOT EXISTS {}", crate::quote_ident(name));
        client.batch_execute(&sql).await.map_err(query_err(sql.clone()))?;
        Ok(true)
    }
}

/// Each method but `lock_run` calls the inherent method of the same name, defined with
/// its task's SQL (`PgBackend::tables` is the inherent one: an inherent method comes
/// before a trait method).
#[async_trait]
impl DbBackend for PgBackend {
    async fn lock_run(&self) -> Result<RunLockAttempt, Error> {
        self.db.try_lock_run().await
    }

    // Database Optimization (`optimize::sql`).
    async fn database_size(&self) -> Result<i64, Error> {
        PgBackend::database_size(self).await
    }

    async fn tables(&self) -> Result<Vec<TableStats>, Error> {
        PgBackend::tables(self).await
    }

    async fn maintain(&self, job: &TableJob) -> Result<TableOutcome, Error> {
        PgBackend::maintain(self, job).await
    }

    async fn invalid_indexes(&self) -> Result<Vec<InvalidIndex>, Error> {
        PgBackend::invalid_indexes(self).await
    }

    async fn drop_index(&self, index: &InvalidIndex) -> Result<(), Error> {
        PgBackend::drop_index(self, index).await
    }

    async fn rule_target(&self, rule: &RetentionRule) -> Result<RuleTarget, Error> {
        PgBackend::rule_target(self, rule).await
    }

    async fn count_expired(&self, rule: &ResolvedRule) -> Result<u64, Error> {
        PgBackend::count_expired(self, rule).await
    }

    async fn delete_batch(&self, rule: &ResolvedRule, limit: u64) -> Result<u64, Error> {
        PgBackend::delete_batch(self, rule, limit).await
    }

    async fn retention_scan(&self, rule: &ResolvedRule, batch_size: u64) -> Result<RetentionScan, Error> {
        PgBackend::retention_scan(self, rule, batch_size).await
    }

    async fn delete_pages(&self, rule: &ResolvedRule, from: u32, to: u32) -> Result<u64, Error> {
        PgBackend::delete_pages(self, rule, from, to).await
    }

    // Index Rebuild (`reindex::sql`).
    async fn bloat_estimates(&self) -> Result<Vec<BloatEstimate>, Error> {
        PgBackend::bloat_estimates(self).await
    }

    async fn pgstattuple(&self, create: bool) -> Result<bool, Error> {
        PgBackend::pgstattuple(self, create).await
    }

    async fn measure(&self, relation: &BloatEstimate) -> Result<BloatMeasurement, Error> {
        PgBackend::measure(self, relation).await
    }

    async fn reindex(&self, index: &BloatEstimate) -> Result<i64, Error> {
        PgBackend::reindex(self, index).await
    }

    async fn index_inventory(&self, schema: &str) -> Result<Vec<IndexInfo>, Error> {
        PgBackend::index_inventory(self, schema).await
    }

    async fn measure_recall(&self, index: &IndexInfo, settings: &VectorSettings) -> Result<RecallMeasurement, Error> {
        PgBackend::measure_recall(self, index, settings).await
    }

    async fn record_recall(&self, schema: &str, measurement: &RecallMeasurement) -> Result<Option<f64>, Error> {
        PgBackend::record_recall(self, schema, measurement).await
    }

    async fn record_index_build(&self, schema: &str, index: &IndexInfo, seconds: f64) -> Result<(), Error> {
        PgBackend::record_index_build(self, schema, index, seconds).await
    }

    async fn maintenance_work_mem(&self) -> Result<i64, Error> {
        PgBackend::maintenance_work_mem(self).await
    }

    async fn rebuild_index(
        &self,
        index: &IndexInfo,
        memory: i64,
        workers: Option<u32>,
        progress: std::time::Duration,
    ) -> Result<i64, Error> {
        PgBackend::rebuild_index(self, index, memory, workers, progress).await
    }

    // Index Integrity (`integrity::sql`).
    async fn amcheck(&self, create: bool) -> Result<bool, Error> {
        PgBackend::amcheck(self, create).await
    }

    async fn btree_indexes(&self, catalogs: bool) -> Result<Vec<BtreeIndex>, Error> {
        PgBackend::btree_indexes(self, catalogs).await
    }

    async fn check_index(&self, index: &BtreeIndex, heapallindexed: bool) -> Result<IndexCheck, Error> {
        PgBackend::check_index(self, index, heapallindexed).await
    }

    // Performance Analysis (`performance::sql`).
    async fn health(&self) -> Result<HealthSnapshot, Error> {
        PgBackend::health(self).await
    }

    // PostgreSQL Security Audit (`security::sql`).
    async fn security(&self) -> Result<SecuritySnapshot, Error> {
        PgBackend::security(self).await
    }

    // Capacity Planning (`capacity::sql`).
    async fn current_sizes(&self, top: usize) -> Result<Vec<SizeSample>, Error> {
        PgBackend::current_sizes(self, top).await
    }

    async fn record_sizes(&self, schema: &str, samples: &[SizeSample], keep: std::time::Duration) -> Result<(), Error> {
        PgBackend::record_sizes(self, schema, samples, keep).await
    }

    async fn size_history(&self, schema: &str, window: std::time::Duration) -> Result<Vec<SizeSample>, Error> {
        PgBackend::size_history(self, schema, window).await
    }
}
