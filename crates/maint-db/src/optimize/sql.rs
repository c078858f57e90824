//! Database Optimization's SQL: the database size, the tables and their statistics
//! counters, `VACUUM`/`ANALYZE`, invalid indexes and `DROP INDEX CONCURRENTLY`, and the
//! retention rules' catalog look-ups, counts and batched deletes. Each method serves the
//! [`DbBackend`](crate::DbBackend) method of the same name.

use crate::db::query_err;
use crate::{
    Error, InvalidIndex, LockMode, PgBackend, ResolvedRule, RetentionRule, RetentionScan, RetentionTable, RuleTarget,
    TableJob, TableOutcome, TableStats, TableWork, count_expired_sql, delete_batch_sql, delete_pages_sql,
    explain_expired_sql, job_sql, qualified,
};

/// SQLSTATE of "undefined table".
const UNDEFINED_TABLE: &str = "42P01";

/// SQLSTATE of "invalid parameter value" (an unknown time zone).
const INVALID_PARAMETER_VALUE: &str = "22023";

impl PgBackend {
    pub(crate) async fn database_size(&self) -> Result<i64, Error> {
        let client = self.db.client().await?;
        let row = client
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .map_err(query_err("pg_database_size"))?;
        Ok(row.get(0))
    }

    pub(crate) async fn tables(&self) -> Result<Vec<TableStats>, Error> {
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

    pub(crate) async fn maintain(&self, job: &TableJob) -> Result<TableOutcome, Error> {
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

    pub(crate) async fn invalid_indexes(&self) -> Result<Vec<InvalidIndex>, Error> {
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

    pub(crate) async fn drop_index(&self, index: &InvalidIndex) -> Result<(), Error> {
        let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", qualified(&index.schema, &index.name));
        self.db
            .retry_locked(&sql, Some((index.table_oid, LockMode::ShareUpdateExclusive)), || async {
                let client = self.db.client().await?;
                client.batch_execute(&sql).await.map_err(query_err(sql.clone()))
            })
            .await
    }

    pub(crate) async fn rule_target(&self, rule: &RetentionRule) -> Result<RuleTarget, Error> {
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

    pub(crate) async fn count_expired(&self, rule: &ResolvedRule) -> Result<u64, Error> {
        let sql = count_expired_sql(rule);
        let client = self.db.client().await?;
        let row = client.query_one(&sql, &[&rule.cutoff]).await.map_err(query_err(sql.clone()))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    pub(crate) async fn delete_batch(&self, rule: &ResolvedRule, limit: u64) -> Result<u64, Error> {
        let sql = delete_batch_sql(rule);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .retry_locked(&sql, Some((rule.table.oid, LockMode::RowExclusive)), || async {
                let client = self.db.client().await?;
                client.execute(&sql, &[&rule.cutoff, &limit]).await.map_err(query_err(sql.clone()))
            })
            .await
    }

    pub(crate) async fn retention_scan(&self, rule: &ResolvedRule, batch_size: u64) -> Result<RetentionScan, Error> {
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

    pub(crate) async fn delete_pages(&self, rule: &ResolvedRule, from: u32, to: u32) -> Result<u64, Error> {
        let sql = delete_pages_sql(rule);
        let (from, to) = (i64::from(from), i64::from(to));
        self.db
            .retry_locked(&sql, Some((rule.table.oid, LockMode::RowExclusive)), || async {
                let client = self.db.client().await?;
                client.execute(&sql, &[&rule.cutoff, &from, &to]).await.map_err(query_err(sql.clone()))
            })
            .await
    }
}
