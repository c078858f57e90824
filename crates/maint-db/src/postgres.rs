use async_trait::async_trait;

use crate::db::{LOCK_NOT_AVAILABLE, query_err};
use crate::{
    BloatEstimate, BloatMeasurement, BtreeIndex, Db, DbBackend, Error, ExtensionInfo, HbaRule, HealthSnapshot,
    IndexCheck, IndexUsage, InvalidIndex, LockMode, RelKind, ReplicaInfo, ResolvedRule, RetentionRule, RetentionScan,
    RetentionTable, RoleInfo, RuleTarget, RunLockAttempt, SecuritySnapshot, SessionInfo, SizeKind, SizeSample,
    SlotInfo, TableJob, TableOutcome, TableScans, TableStats, TableWork, count_expired_sql, delete_batch_sql,
    delete_pages_sql, explain_expired_sql, index_waste, job_sql, qualified, reindex_sql,
};

/// SQLSTATE of "insufficient privilege".
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// User relations only (`n` is `pg_namespace`).
const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
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
fn size_sql(exact: bool, size: &str, oid: &str, table: &str, estimate: &str) -> (String, String) {
    let busy = if exact { format!("({oid} IN {BUSY} OR {table} IN {BUSY})") } else { "true".into() };
    (format!("CASE WHEN {busy} THEN {estimate} ELSE coalesce({size}, {estimate}) END"), busy)
}

/// Runs `run` with exact sizes, and again with the `relpages` estimates when a size
/// function hit `lock_timeout` (a relation locked after the check in [`size_sql`]).
async fn sized<T, F, Fut>(run: F) -> Result<T, Error>
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    match run(true).await {
        Err(e) if e.sqlstate() == Some(LOCK_NOT_AVAILABLE) => run(false).await,
        other => other,
    }
}

/// The catalog estimate of table bloat: the pages the rows would need (tuple header 24
/// bytes, data width from `pg_stats` aligned to 8, a 4-byte line pointer, the table's
/// fillfactor) against the heap's size now ([`size_sql`]), with the row count scaled to it
/// by the density `reltuples / relpages` as the planner does. Tables never analyzed or
/// vacuumed (no statistics, `relpages` 0) estimate 0.
fn table_bloat_sql(exact: bool) -> String {
    let (bytes, _) = size_sql(exact, "pg_relation_size(t.oid)", "t.oid", "t.oid", "(t.rp * t.bs)::bigint");
    format!(
        "WITH t AS ( \
           SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.reltuples::numeric AS tuples, \
             c.relpages::numeric AS rp, current_setting('block_size')::numeric AS bs, \
             coalesce((regexp_match(array_to_string(c.reloptions, ','), 'fillfactor=([0-9]+)'))[1]::numeric, 100) AS ff, \
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0))::numeric AS width, \
             bool_or(s.avg_width IS NULL) AS missing \
           FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
           LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname \
           WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' AND {USER_SCHEMAS} \
           GROUP BY 1, 2, 3, 4, 5, 6, 7), \
         r AS (SELECT t.*, ({bytes})::numeric AS bytes FROM t), \
         p AS (SELECT r.*, ceil(bytes / bs) AS pages, CASE WHEN rp > 0 THEN tuples / rp * ceil(bytes / bs) END AS rows FROM r) \
         SELECT oid, schema, name, name, oid, bytes::bigint, \
           CASE WHEN rows IS NULL OR tuples < 0 OR (missing AND tuples > 0) THEN 0 \
                ELSE greatest(0, pages - ceil(rows * (28 + ceil(width / 8) * 8) / ((bs - 24) * ff / 100))) * bs \
           END::bigint \
         FROM p"
    )
}

/// The catalog estimate of btree index bloat: index tuples (8-byte header, key width from
/// the table's `pg_stats`, or the index's own for expressions, aligned to 8, a 4-byte
/// line pointer) at the index's fillfactor (90 by default) plus the metapage, against the
/// index's size now, with the row count scaled to it as for tables ([`table_bloat_sql`]).
fn index_bloat_sql(exact: bool) -> String {
    let (bytes, _) = size_sql(exact, "pg_relation_size(i.oid)", "i.oid", "i.toid", "(i.rp * i.bs)::bigint");
    // The statistics of each index column are looked up by one equality (the table's
    // column, or the index's own for an expression), so the join can hash.
    format!(
        "WITH st AS MATERIALIZED ( \
           SELECT schemaname, tablename, attname, null_frac, avg_width FROM pg_stats \
           WHERE schemaname NOT IN ('pg_catalog', 'information_schema')), \
         cols AS ( \
           SELECT ci.oid, n.nspname AS nsp, ci.relname AS name, ct.relname AS tbl, ct.oid AS toid, \
             ci.reltuples, ci.relpages, ci.reloptions, \
             CASE WHEN ta.attname IS NULL THEN ci.relname ELSE ct.relname END AS stable, \
             coalesce(ta.attname, a.attname) AS satt \
           FROM pg_index x \
           JOIN pg_class ci ON ci.oid = x.indexrelid \
           JOIN pg_class ct ON ct.oid = x.indrelid \
           JOIN pg_namespace n ON n.oid = ci.relnamespace \
           JOIN pg_am am ON am.oid = ci.relam AND am.amname = 'btree' \
           JOIN pg_attribute a ON a.attrelid = ci.oid AND a.attnum > 0 \
           LEFT JOIN pg_attribute ta ON ta.attrelid = ct.oid AND ta.attnum = x.indkey[a.attnum - 1] AND ta.attnum > 0 \
           WHERE x.indisvalid AND x.indisready AND ct.relkind IN ('r', 'm') AND ct.relpersistence <> 't' \
             AND {USER_SCHEMAS}), \
         i AS ( \
           SELECT c.oid, c.nsp::text AS schema, c.name::text AS name, c.tbl::text AS tbl, c.toid, \
             c.reltuples::numeric AS tuples, c.relpages::numeric AS rp, current_setting('block_size')::numeric AS bs, \
             coalesce((regexp_match(array_to_string(c.reloptions, ','), 'fillfactor=([0-9]+)'))[1]::numeric, 90) AS ff, \
             sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0))::numeric AS width, \
             bool_or(s.avg_width IS NULL) AS missing \
           FROM cols c LEFT JOIN st s ON s.schemaname = c.nsp AND s.tablename = c.stable AND s.attname = c.satt \
           GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9), \
         r AS (SELECT i.*, ({bytes})::numeric AS bytes FROM i), \
         p AS (SELECT r.*, ceil(bytes / bs) AS pages, CASE WHEN rp > 0 THEN tuples / rp * ceil(bytes / bs) END AS rows FROM r) \
         SELECT oid, schema, name, tbl, toid, bytes::bigint, \
           CASE WHEN rows IS NULL OR tuples < 0 OR (missing AND tuples > 0) THEN 0 \
                ELSE greatest(0, pages - 1 - ceil(rows * (12 + ceil(width / 8) * 8) / ((bs - 40) * ff / 100))) * bs \
           END::bigint, \
           NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = p.oid AND k.contype = 'x') \
             AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index x WHERE x.relid = p.toid) \
         FROM p"
    )
}

/// SQLSTATE of "index corrupted" (raised by amcheck).
const INDEX_CORRUPTED: &str = "XX002";
/// SQLSTATE of "data corrupted".
const DATA_CORRUPTED: &str = "XX001";

/// SQLSTATE of "undefined table".
const UNDEFINED_TABLE: &str = "42P01";

/// SQLSTATE of "invalid parameter value" (an unknown time zone).
const INVALID_PARAMETER_VALUE: &str = "22023";

/// [`DbBackend`] on a real server through a [`Db`].
#[derive(Debug, Clone)]
pub struct PgBackend {
    db: Db,
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

    /// The schema `pgstattuple` is installed in, if it is.
    async fn pgstattuple_schema(&self) -> Result<Option<String>, Error> {
        self.extension_schema("pgstattuple").await
    }

    /// The schema extension `name` is installed in, if it is.
    async fn extension_schema(&self, name: &str) -> Result<Option<String>, Error> {
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
    async fn extension(&self, name: &str, create: bool) -> Result<bool, Error> {
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

    /// Sessions of this database holding a snapshot (`backend_xmin`): what a concurrent
    /// index build waits for in its last phase.
    async fn snapshot_holders(&self) -> Result<Vec<crate::Blocker>, Error> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT pid, coalesce(state, ''), left(coalesce(query, ''), 200) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL \
                   AND backend_type = 'client backend' AND coalesce(application_name, '') <> 'maint-db' \
                 ORDER BY xact_start NULLS LAST, pid",
                &[],
            )
            .await
            .map_err(query_err("list snapshot holders"))?;
        Ok(rows
            .iter()
            .map(|r| crate::Blocker { pid: r.get(0), mode: "snapshot".into(), state: r.get(1), query: r.get(2) })
            .collect())
    }

    async fn counters(&self, oid: u32) -> Result<Option<(i64, i64)>, Error> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                "SELECT coalesce(vacuum_count, 0), coalesce(analyze_count, 0) FROM pg_stat_all_tables WHERE relid = $1",
                &[&oid],
            )
            .await
            .map_err(query_err("read pg_stat_all_tables"))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// The bloat estimates, with sizes now (`exact`) or from `relpages` ([`size_sql`]).
    async fn bloat_estimates_sized(&self, exact: bool) -> Result<Vec<BloatEstimate>, Error> {
        let mut client = self.db.client().await?;
        // The catalog row estimates are poor (a handful of rows), which makes the planner
        // pick nested loops over pg_stats: quadratic in the number of columns. Hash joins
        // keep the estimate of 1,000 indexes in tens of milliseconds.
        let tx = client.transaction().await.map_err(query_err("BEGIN"))?;
        tx.batch_execute("SET LOCAL enable_nestloop = off").await.map_err(query_err("SET LOCAL enable_nestloop"))?;
        let mut out = Vec::new();
        for (kind, sql) in [(RelKind::Table, table_bloat_sql(exact)), (RelKind::Index, index_bloat_sql(exact))] {
            let rows = tx.query(&sql, &[]).await.map_err(query_err("estimate bloat"))?;
            out.extend(rows.iter().map(|r| BloatEstimate {
                kind,
                oid: r.get(0),
                schema: r.get(1),
                name: r.get(2),
                table: r.get(3),
                table_oid: r.get(4),
                bytes: r.get(5),
                bloat_bytes: r.get(6),
                reindexable: kind == RelKind::Index && r.get::<_, bool>(7),
            }));
        }
        tx.commit().await.map_err(query_err("COMMIT"))?;
        Ok(out)
    }
}

#[async_trait]
impl DbBackend for PgBackend {
    async fn lock_run(&self) -> Result<RunLockAttempt, Error> {
        self.db.try_lock_run().await
    }

    async fn database_size(&self) -> Result<i64, Error> {
        let client = self.db.client().await?;
        let row = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .map_err(query_err("pg_database_size"))?;
        Ok(row.get(0))
    }

    async fn tables(&self) -> Result<Vec<TableStats>, Error> {
        let client = self.db.client().await?;
        // relpages, not pg_table_size(): the latter takes ACCESS SHARE on the table, and
        // a table locked by someone else would make the whole plan wait. Only the order
        // of the plan depends on it.
        let rows = client
            .query(
                "SELECT c.oid, n.nspname::text, c.relname::text, \
                   (c.relpages::bigint + coalesce(t.relpages, 0)::bigint) * current_setting('block_size')::bigint, \
                   coalesce(s.n_dead_tup, 0), age(c.relfrozenxid)::bigint, \
                   coalesce(s.vacuum_count, 0), coalesce(s.analyze_count, 0) \
                 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
                 LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid \
                 WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%'",
                &[],
            )
            .await
            .map_err(query_err("list tables"))?;
        Ok(rows
            .iter()
            .map(|r| TableStats {
                oid: r.get(0),
                schema: r.get(1),
                name: r.get(2),
                bytes: r.get(3),
                dead_tuples: r.get(4),
                xid_age: r.get(5),
                vacuum_count: r.get(6),
                analyze_count: r.get(7),
            })
            .collect())
    }

    async fn maintain(&self, job: &TableJob) -> Result<TableOutcome, Error> {
        let sql = job_sql(job);
        let run = self
            .db
            .retry_locked(&sql, Some((job.table.oid, LockMode::ShareUpdateExclusive)), || async {
                let client = self.db.client().await?;
                client.batch_execute(&sql).await.map_err(query_err(sql.clone()))
            })
            .await;
        match run {
            Err(e) if e.sqlstate() == Some(UNDEFINED_TABLE) => return Ok(TableOutcome::Vanished),
            Err(Error::LockTimeout { blockers, .. }) => return Ok(TableOutcome::Skipped { blockers }),
            other => other?,
        }
        // SKIP_LOCKED skips with only a WARNING notice; the statistics counters tell
        // whether the work happened (PostgreSQL 15+ updates them at once).
        let Some((vacuums, analyzes)) = self.counters(job.table.oid).await? else {
            return Ok(TableOutcome::Vanished);
        };
        let done = match job.work {
            TableWork::Vacuum { .. } => vacuums > job.table.vacuum_count,
            TableWork::Analyze => analyzes > job.table.analyze_count,
        };
        if done {
            return Ok(TableOutcome::Done);
        }
        let blockers = self.db.blockers(job.table.oid, LockMode::ShareUpdateExclusive).await?;
        Ok(if blockers.is_empty() { TableOutcome::Unconfirmed } else { TableOutcome::Skipped { blockers } })
    }

    async fn invalid_indexes(&self) -> Result<Vec<InvalidIndex>, Error> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text, t.relname::text, t.oid, \
                   c.relpages::bigint * current_setting('block_size')::bigint, \
                   EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.relid = t.oid) \
                 FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_class t ON t.oid = i.indrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE NOT i.indisvalid \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' \
                 ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(query_err("list invalid indexes"))?;
        Ok(rows
            .iter()
            .map(|r| InvalidIndex {
                schema: r.get(0),
                name: r.get(1),
                table: r.get(2),
                table_oid: r.get(3),
                bytes: r.get(4),
                build_in_progress: r.get(5),
            })
            .collect())
    }

    async fn drop_index(&self, index: &InvalidIndex) -> Result<(), Error> {
        let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", qualified(&index.schema, &index.name));
        self.db
            .retry_locked(&sql, Some((index.table_oid, LockMode::ShareUpdateExclusive)), || async {
                let client = self.db.client().await?;
                client.batch_execute(&sql).await.map_err(query_err(sql.clone()))
            })
            .await
    }

    async fn rule_target(&self, rule: &RetentionRule) -> Result<RuleTarget, Error> {
        let client = self.db.client().await?;
        let secs = rule.older_than.as_secs_f64();
        let row = client
            .query_one(
                "SELECT c.oid, a.atttypid::regtype::text, (now() - make_interval(secs => $3))::text \
                 FROM (SELECT 1) one \
                 LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace) \
                   ON n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') \
                 LEFT JOIN pg_attribute a \
                   ON a.attrelid = c.oid AND a.attname = $4 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&rule.schema, &rule.table, &secs, &rule.column],
            )
            .await
            .map_err(query_err("look up a retention table"))?;
        let oid: Option<u32> = row.get(0);
        // The table itself and every inheritance child and partition below it, each to be
        // deleted from on its own: ordinary tables only (a partitioned table has no rows
        // of its own, a foreign table no ctid), not other sessions' temporary tables.
        let tables = match oid {
            None => Vec::new(),
            Some(oid) => client
                .query(
                    "WITH RECURSIVE tree(oid) AS ( \
                       SELECT $1::oid UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid) \
                     SELECT c.oid, n.nspname::text, c.relname::text \
                     FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind = 'r' AND c.relpersistence <> 't' \
                     ORDER BY c.oid <> $1, n.nspname, c.relname",
                    &[&oid],
                )
                .await
                .map_err(query_err("list the children and partitions of a retention table"))?
                .iter()
                .map(|r| RetentionTable { oid: r.get(0), schema: r.get(1), name: r.get(2) })
                .collect(),
        };
        // "Now" in the rule's zone, for `timestamp` and `date` columns, whatever this
        // session's TimeZone; a zone the server does not know is the rule's error.
        let cutoff_local = match client
            .query_one("SELECT ((now() - make_interval(secs => $1)) AT TIME ZONE $2)::text", &[&secs, &rule.timezone])
            .await
        {
            Ok(r) => Some(r.get(0)),
            Err(e) if e.code().map(|c| c.code()) == Some(INVALID_PARAMETER_VALUE) => None,
            Err(e) => return Err(query_err("compute a retention cutoff")(e)),
        };
        Ok(RuleTarget { oid, tables, column_type: row.get(1), cutoff_tz: row.get(2), cutoff_local })
    }

    async fn count_expired(&self, rule: &ResolvedRule) -> Result<u64, Error> {
        let sql = count_expired_sql(rule);
        let client = self.db.client().await?;
        let row = client.query_one(&sql, &[&rule.cutoff]).await.map_err(query_err(sql.clone()))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn delete_batch(&self, rule: &ResolvedRule, limit: u64) -> Result<u64, Error> {
        let sql = delete_batch_sql(rule);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .retry_locked(&sql, Some((rule.table.oid, LockMode::RowExclusive)), || async {
                let client = self.db.client().await?;
                client.execute(&sql, &[&rule.cutoff, &limit]).await.map_err(query_err(sql.clone()))
            })
            .await
    }

    async fn retention_scan(&self, rule: &ResolvedRule, batch_size: u64) -> Result<RetentionScan, Error> {
        let client = self.db.client().await?;
        // TID range scans exist from PostgreSQL 14 on.
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(query_err("server_version_num"))?
            .get(0);
        if version < 140_000 {
            return Ok(RetentionScan::Rows);
        }
        let sql = explain_expired_sql(rule);
        let plan = client.query(&sql, &[&rule.cutoff]).await.map_err(query_err(sql.clone()))?;
        let seq = plan.iter().any(|r| r.get::<_, String>(0).contains("Seq Scan"));
        if !seq {
            return Ok(RetentionScan::Rows);
        }
        // The size now (relpages may be stale) and the rows per page from the statistics.
        let row = client
            .query_one(
                "SELECT (pg_relation_size(oid) / current_setting('block_size')::bigint)::bigint, \
                   CASE WHEN relpages > 0 AND reltuples > 0 THEN reltuples / relpages ELSE 100 END::float8 \
                 FROM pg_class WHERE oid = $1",
                &[&rule.table.oid],
            )
            .await
            .map_err(query_err("size of a retention table"))?;
        let (total, per_page): (i64, f64) = (row.get(0), row.get(1));
        let pages = (batch_size as f64 / per_page.max(1.0)).ceil().clamp(1.0, f64::from(u32::MAX));
        Ok(RetentionScan::Pages { pages: pages as u32, total: u32::try_from(total).unwrap_or(u32::MAX) })
    }

    async fn delete_pages(&self, rule: &ResolvedRule, from: u32, to: u32) -> Result<u64, Error> {
        let sql = delete_pages_sql(rule);
        let (from, to) = (i64::from(from), i64::from(to));
        self.db
            .retry_locked(&sql, Some((rule.table.oid, LockMode::RowExclusive)), || async {
                let client = self.db.client().await?;
                client.execute(&sql, &[&rule.cutoff, &from, &to]).await.map_err(query_err(sql.clone()))
            })
            .await
    }

    async fn bloat_estimates(&self) -> Result<Vec<BloatEstimate>, Error> {
        sized(|exact| self.bloat_estimates_sized(exact)).await
    }

    async fn pgstattuple(&self, create: bool) -> Result<bool, Error> {
        self.extension("pgstattuple", create).await
    }

    async fn amcheck(&self, create: bool) -> Result<bool, Error> {
        self.extension("amcheck", create).await
    }

    async fn btree_indexes(&self, catalogs: bool) -> Result<Vec<BtreeIndex>, Error> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT ci.oid, n.nspname::text, ci.relname::text, ct.relname::text, ct.oid, \
                       ci.relpages::bigint * current_setting('block_size')::bigint \
                     FROM pg_index x \
                     JOIN pg_class ci ON ci.oid = x.indexrelid \
                     JOIN pg_class ct ON ct.oid = x.indrelid \
                     JOIN pg_namespace n ON n.oid = ci.relnamespace \
                     JOIN pg_am am ON am.oid = ci.relam AND am.amname = 'btree' \
                     WHERE x.indisvalid AND x.indisready AND x.indislive AND ci.relpersistence <> 't' \
                       AND ($1 OR ({USER_SCHEMAS})) AND n.nspname NOT LIKE 'pg\\_temp%' \
                       AND n.nspname NOT LIKE 'pg\\_toast\\_temp%' \
                     ORDER BY 2, 3"
                ),
                &[&catalogs],
            )
            .await
            .map_err(query_err("list btree indexes"))?;
        Ok(rows
            .iter()
            .map(|r| BtreeIndex {
                oid: r.get(0),
                schema: r.get(1),
                name: r.get(2),
                table: r.get(3),
                table_oid: r.get(4),
                bytes: r.get(5),
            })
            .collect())
    }

    async fn check_index(&self, index: &BtreeIndex, heapallindexed: bool) -> Result<IndexCheck, Error> {
        let schema = self
            .extension_schema("amcheck")
            .await?
            .ok_or_else(|| Error::invalid("amcheck", "the amcheck extension is not installed"))?;
        let sql = format!("SELECT {}.bt_index_check($1::oid::regclass, $2)", crate::quote_ident(&schema));
        let operation = format!("bt_index_check {}", qualified(&index.schema, &index.name));
        let run = self
            .db
            .retry_locked(&operation, Some((index.table_oid, LockMode::AccessShare)), || async {
                let client = self.db.client().await?;
                client.execute(&sql, &[&index.oid, &heapallindexed]).await.map_err(query_err(operation.clone()))
            })
            .await;
        let Err(err) = run else { return Ok(IndexCheck::Ok) };
        if let Error::Query { source, .. } = &err
            && let Some(db) = source.as_db_error()
            && matches!(db.code().code(), INDEX_CORRUPTED | DATA_CORRUPTED)
        {
            let message = match db.detail() {
                Some(d) => format!("{} ({d})", db.message()),
                None => db.message().to_owned(),
            };
            return Ok(IndexCheck::Corrupt { sqlstate: db.code().code().to_owned(), message });
        }
        // Dropped since it was listed: "could not open relation with OID".
        let client = self.db.client().await?;
        let exists = client
            .query_opt("SELECT 1 FROM pg_class WHERE oid = $1", &[&index.oid])
            .await
            .map_err(query_err("look up an index"))?
            .is_some();
        if exists { Err(err) } else { Ok(IndexCheck::Vanished) }
    }

    async fn measure(&self, rel: &BloatEstimate) -> Result<BloatMeasurement, Error> {
        let schema = self
            .pgstattuple_schema()
            .await?
            .ok_or_else(|| Error::invalid("bloat", "the pgstattuple extension is not installed"))?;
        let ext = crate::quote_ident(&schema);
        let name = rel.qualified();
        let sql = match rel.kind {
            RelKind::Table => format!(
                "SELECT table_len, (approx_free_space + dead_tuple_len)::bigint FROM {ext}.pgstattuple_approx($1::oid::regclass)"
            ),
            RelKind::Index => format!(
                "SELECT index_size, leaf_pages, deleted_pages, avg_leaf_density, current_setting('block_size')::bigint \
                 FROM {ext}.pgstatindex($1::oid::regclass)"
            ),
        };
        let operation = format!("measure {name}");
        let row = self
            .db
            .retry_locked(&operation, Some((rel.table_oid, LockMode::AccessShare)), || async {
                let client = self.db.client().await?;
                client.query_one(&sql, &[&rel.oid]).await.map_err(query_err(operation.clone()))
            })
            .await?;
        Ok(match rel.kind {
            RelKind::Table => BloatMeasurement { bytes: row.get(0), bloat_bytes: row.get(1), leaf_density: None },
            RelKind::Index => {
                let (leaf, deleted, density, bs): (i64, i64, f64, i64) =
                    (row.get(1), row.get(2), row.get(3), row.get(4));
                BloatMeasurement {
                    bytes: row.get(0),
                    bloat_bytes: index_waste(bs, leaf, deleted, density),
                    leaf_density: (leaf > 0 && density.is_finite()).then_some(density),
                }
            }
        })
    }

    async fn reindex(&self, index: &BloatEstimate) -> Result<i64, Error> {
        let sql = reindex_sql(index);
        let run = self
            .db
            .retry_locked(&sql, Some((index.table_oid, LockMode::ShareUpdateExclusive)), || async {
                let client = self.db.client().await?;
                client.batch_execute(&sql).await.map_err(query_err(sql.clone()))
            })
            .await;
        match run {
            // Nobody holds a lock on the table: the rebuild waited for transactions with
            // older snapshots (its last phase), so name those.
            Err(Error::LockTimeout { operation, attempts, blockers }) if blockers.is_empty() => {
                return Err(Error::LockTimeout { operation, attempts, blockers: self.snapshot_holders().await? });
            }
            other => other?,
        }
        // REINDEX CONCURRENTLY swaps in a new relation under the same name.
        let client = self.db.client().await?;
        let row = client
            .query_one("SELECT coalesce(pg_relation_size(to_regclass($1)), 0)", &[&index.qualified()])
            .await
            .map_err(query_err("size of the rebuilt index"))?;
        Ok(row.get(0))
    }

    async fn health(&self) -> Result<HealthSnapshot, Error> {
        let client = self.db.client().await?;
        let q = |what: &'static str| query_err(format!("read {what}"));
        let settings = client
            .query_one(
                "SELECT current_setting('max_connections')::bigint, \
                   current_setting('superuser_reserved_connections')::bigint, \
                   (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
                   coalesce((SELECT blks_hit FROM pg_stat_database WHERE datname = current_database()), 0), \
                   coalesce((SELECT blks_read FROM pg_stat_database WHERE datname = current_database()), 0), \
                   current_setting('autovacuum_freeze_max_age')::bigint",
                &[],
            )
            .await
            .map_err(q("settings and pg_stat_database"))?;
        let sessions = client
            .query(
                "SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''), coalesce(state, ''), \
                   extract(epoch FROM now() - query_start)::float8, extract(epoch FROM now() - state_change)::float8, \
                   pg_blocking_pids(pid), left(coalesce(query, ''), 200) \
                 FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = current_database() \
                 ORDER BY pid",
                &[],
            )
            .await
            .map_err(q("pg_stat_activity"))?;
        let ages = client
            .query(
                "SELECT datname::text, age(datfrozenxid)::bigint FROM pg_database WHERE datallowconn ORDER BY 1",
                &[],
            )
            .await
            .map_err(q("pg_database"))?;
        let indexes = sized(|exact| {
            let (bytes, estimated) = size_sql(
                exact,
                "pg_relation_size(ci.oid)",
                "ci.oid",
                "ct.oid",
                "ci.relpages::bigint * current_setting('block_size')::bigint",
            );
            let sql = format!(
                "SELECT n.nspname::text, ci.relname::text, ct.relname::text, {bytes}, coalesce(s.idx_scan, 0), \
                   x.indisunique OR x.indisprimary OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid), \
                   x.indisvalid, \
                   concat_ws('|', x.indrelid::text, ci.relam::text, x.indkey::text, x.indclass::text, \
                     x.indcollation::text, coalesce(pg_get_expr(x.indexprs, x.indrelid), ''), \
                     coalesce(pg_get_expr(x.indpred, x.indrelid), '')), {estimated} \
                 FROM pg_index x \
                 JOIN pg_class ci ON ci.oid = x.indexrelid \
                 JOIN pg_class ct ON ct.oid = x.indrelid \
                 JOIN pg_namespace n ON n.oid = ci.relnamespace \
                 LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = x.indexrelid \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
                 ORDER BY 1, 2"
            );
            let client = &client;
            async move { client.query(&sql, &[]).await.map_err(q("pg_index")) }
        })
        .await?;
        let tables = client
            .query(
                "SELECT schemaname::text, relname::text, coalesce(n_live_tup, 0), coalesce(seq_scan, 0), \
                   coalesce(seq_tup_read, 0), coalesce(idx_scan, 0) \
                 FROM pg_stat_user_tables ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(q("pg_stat_user_tables"))?;
        let slots = client
            .query(
                "SELECT slot_name::text, slot_type, active, \
                   CASE WHEN pg_is_in_recovery() OR restart_lsn IS NULL THEN NULL \
                        ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END \
                 FROM pg_replication_slots ORDER BY 1",
                &[],
            )
            .await
            .map_err(q("pg_replication_slots"))?;
        let replicas = client
            .query(
                "SELECT coalesce(application_name, ''), extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication",
                &[],
            )
            .await
            .map_err(q("pg_stat_replication"))?;
        Ok(HealthSnapshot {
            max_connections: settings.get(0),
            reserved_connections: settings.get(1),
            connections: settings.get(2),
            blocks_hit: settings.get(3),
            blocks_read: settings.get(4),
            freeze_max_age: settings.get(5),
            sessions: sessions
                .iter()
                .map(|r| SessionInfo {
                    pid: r.get(0),
                    user: r.get(1),
                    application: r.get(2),
                    state: r.get(3),
                    query_seconds: r.get(4),
                    state_seconds: r.get(5),
                    blocked_by: r.get(6),
                    query: r.get(7),
                })
                .collect(),
            database_xid_ages: ages.iter().map(|r| (r.get(0), r.get(1))).collect(),
            indexes: indexes
                .iter()
                .map(|r| IndexUsage {
                    schema: r.get(0),
                    name: r.get(1),
                    table: r.get(2),
                    bytes: r.get(3),
                    scans: r.get(4),
                    enforces: r.get(5),
                    valid: r.get(6),
                    signature: r.get(7),
                    estimated: r.get(8),
                })
                .collect(),
            tables: tables
                .iter()
                .map(|r| TableScans {
                    schema: r.get(0),
                    name: r.get(1),
                    live_rows: r.get(2),
                    seq_scans: r.get(3),
                    seq_rows_read: r.get(4),
                    idx_scans: r.get(5),
                })
                .collect(),
            slots: slots
                .iter()
                .map(|r| SlotInfo { name: r.get(0), slot_type: r.get(1), active: r.get(2), retained_bytes: r.get(3) })
                .collect(),
            replicas: replicas.iter().map(|r| ReplicaInfo { name: r.get(0), replay_lag_seconds: r.get(1) }).collect(),
        })
    }

    async fn security(&self) -> Result<SecuritySnapshot, Error> {
        let client = self.db.client().await?;
        let roles = client
            .query(
                "SELECT rolname::text, rolsuper, rolcanlogin, \
                   CASE WHEN rolvaliduntil IS NULL OR rolvaliduntil = 'infinity' THEN NULL ELSE rolvaliduntil::text END \
                 FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1",
                &[],
            )
            .await
            .map_err(query_err("read pg_roles"))?;
        let hba = match client
            .query(
                "SELECT line_number, coalesce(type, ''), coalesce(database, '{}'), coalesce(user_name, '{}'), address, \
                   coalesce(auth_method, '') \
                 FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number",
                &[],
            )
            .await
        {
            Ok(rows) => Some(
                rows.iter()
                    .map(|r| HbaRule {
                        line: r.get(0),
                        kind: r.get(1),
                        databases: r.get(2),
                        users: r.get(3),
                        address: r.get(4),
                        method: r.get(5),
                    })
                    .collect(),
            ),
            Err(e) if e.code().map(|c| c.code()) == Some(INSUFFICIENT_PRIVILEGE) => None,
            Err(e) => return Err(query_err("read pg_hba_file_rules")(e)),
        };
        let row = client
            .query_one(
                "SELECT current_setting('password_encryption'), current_setting('ssl') = 'on', \
                   CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') \
                        THEN has_schema_privilege('public', 'public', 'CREATE') ELSE false END",
                &[],
            )
            .await
            .map_err(query_err("read security settings"))?;
        // Extensions, and the user objects outside any extension (tables and their columns,
        // indexes, views, defaults, constraints, triggers, functions, types, policies) that
        // depend on one of their members ('e' links a member to its extension). Operator
        // family entries (pg_amop, pg_amproc) are the extension's own plumbing: not counted.
        let extensions = client
            .query(
                "SELECT e.extname::text, e.extversion, n.nspname::text, \
                   (SELECT count(DISTINCT (u.classid, u.objid)) FROM pg_depend m \
                    JOIN pg_depend u ON u.refclassid = m.classid AND u.refobjid = m.objid AND u.deptype IN ('n', 'a') \
                      AND u.classid IN ('pg_class'::regclass, 'pg_rewrite'::regclass, 'pg_attrdef'::regclass, \
                        'pg_constraint'::regclass, 'pg_trigger'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass, \
                        'pg_policy'::regclass) \
                    WHERE m.refclassid = 'pg_extension'::regclass AND m.refobjid = e.oid AND m.deptype = 'e' \
                      AND NOT EXISTS (SELECT 1 FROM pg_depend x \
                        WHERE x.classid = u.classid AND x.objid = u.objid AND x.deptype = 'e')) \
                 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1",
                &[],
            )
            .await
            .map_err(query_err("read pg_extension"))?;
        Ok(SecuritySnapshot {
            extensions: extensions
                .iter()
                .map(|r| ExtensionInfo { name: r.get(0), version: r.get(1), schema: r.get(2), dependents: r.get(3) })
                .collect(),
            roles: roles
                .iter()
                .map(|r| RoleInfo { name: r.get(0), superuser: r.get(1), login: r.get(2), valid_until: r.get(3) })
                .collect(),
            hba,
            password_encryption: row.get(0),
            ssl: row.get(1),
            public_schema_create: row.get(2),
        })
    }

    async fn current_sizes(&self, top: usize) -> Result<Vec<SizeSample>, Error> {
        let client = self.db.client().await?;
        let top = i64::try_from(top).unwrap_or(i64::MAX);
        // A table with its TOAST, free space and visibility maps; an index on its own.
        let rows = sized(|exact| {
            let (bytes, estimated) = size_sql(
                exact,
                "CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) END",
                "c.oid",
                "coalesce(x.indrelid, c.oid)",
                "(c.relpages::bigint + coalesce(t.relpages, 0)::bigint) * current_setting('block_size')::bigint",
            );
            let sql = format!(
                "WITH now AS (SELECT extract(epoch FROM now())::float8 AS at), \
                 rel AS ( \
                   SELECT CASE WHEN c.relkind = 'i' THEN 'index' ELSE 'table' END AS kind, \
                     n.nspname::text AS schema, c.relname::text AS name, {bytes} AS bytes, {estimated} AS estimated \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                   LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
                   LEFT JOIN pg_index x ON x.indexrelid = c.oid \
                   WHERE c.relkind IN ('r', 'm', 'i') AND c.relpersistence <> 't' AND {USER_SCHEMAS}), \
                 ranked AS (SELECT *, row_number() OVER (PARTITION BY kind ORDER BY bytes DESC, schema, name) AS r FROM rel) \
                 SELECT 'database', '', current_database()::text, pg_database_size(current_database()), \
                   (SELECT at FROM now), false \
                 UNION ALL \
                 SELECT kind, schema, name, bytes, (SELECT at FROM now), estimated FROM ranked WHERE r <= $1"
            );
            let (client, top) = (&client, &top);
            async move { client.query(&sql, &[top]).await.map_err(query_err("read sizes")) }
        })
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let kind = SizeKind::parse(r.get(0))?;
                let (schema, name): (String, String) = (r.get(1), r.get(2));
                let name = if kind == SizeKind::Database { name } else { qualified(&schema, &name) };
                Some(SizeSample { kind, name, bytes: r.get(3), at: r.get(4), estimated: r.get(5) })
            })
            .collect())
    }

    async fn record_sizes(&self, schema: &str, samples: &[SizeSample], keep: std::time::Duration) -> Result<(), Error> {
        let table = qualified(schema, "size_snapshots");
        let client = self.db.client().await?;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; \
                 CREATE TABLE IF NOT EXISTS {table} ( \
                   taken_at timestamptz NOT NULL, \
                   kind text NOT NULL CHECK (kind IN ('database', 'table', 'index')), \
                   name text NOT NULL, \
                   bytes bigint NOT NULL, \
                   PRIMARY KEY (kind, name, taken_at))",
                schema = crate::quote_ident(schema)
            ))
            .await
            .map_err(query_err(format!("create {table}")))?;
        let at = samples.first().map_or(0.0, |s| s.at);
        let kinds: Vec<&str> = samples.iter().map(|s| s.kind.as_str()).collect();
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        let bytes: Vec<i64> = samples.iter().map(|s| s.bytes).collect();
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (taken_at, kind, name, bytes) \
                     SELECT to_timestamp($1), k, n, b FROM unnest($2::text[], $3::text[], $4::bigint[]) AS u(k, n, b) \
                     ON CONFLICT DO NOTHING"
                ),
                &[&at, &kinds, &names, &bytes],
            )
            .await
            .map_err(query_err(format!("record sizes in {table}")))?;
        client
            .execute(
                &format!("DELETE FROM {table} WHERE taken_at < now() - make_interval(secs => $1)"),
                &[&keep.as_secs_f64()],
            )
            .await
            .map_err(query_err(format!("delete old snapshots from {table}")))?;
        Ok(())
    }

    async fn size_history(&self, schema: &str, window: std::time::Duration) -> Result<Vec<SizeSample>, Error> {
        let table = qualified(schema, "size_snapshots");
        let client = self.db.client().await?;
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map_err(query_err("look up the snapshots table"))?
            .get(0);
        if !exists {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT kind, name, bytes, extract(epoch FROM taken_at)::float8 FROM {table} \
                     WHERE taken_at >= now() - make_interval(secs => $1) ORDER BY taken_at"
                ),
                &[&window.as_secs_f64()],
            )
            .await
            .map_err(query_err(format!("read {table}")))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(SizeSample {
                    kind: SizeKind::parse(r.get(0))?,
                    name: r.get(1),
                    bytes: r.get(2),
                    at: r.get(3),
                    estimated: false,
                })
            })
            .collect())
    }
}
