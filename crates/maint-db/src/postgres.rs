use async_trait::async_trait;

use crate::db::query_err;
use crate::{
    Db, DbBackend, Error, InvalidIndex, LockMode, ResolvedRule, RetentionRule, RuleTarget, RunLockAttempt, TableJob,
    TableOutcome, TableStats, TableWork, count_expired_sql, delete_batch_sql, job_sql, qualified,
};

/// SQLSTATE of "undefined table".
const UNDEFINED_TABLE: &str = "42P01";

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
        // relpages, not pg_total_relation_size(): the latter locks the table, and a
        // table locked by someone else would make the whole plan wait.
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
        let row = client
            .query_one(
                "WITH cut AS (SELECT now() - make_interval(secs => $3) AS at) \
                 SELECT c.oid, a.atttypid::regtype::text, \
                        (SELECT at::text FROM cut), (SELECT at::timestamp::text FROM cut), \
                        coalesce(c.relkind = 'p', false) \
                 FROM (SELECT 1) one \
                 LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace) \
                   ON n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') \
                 LEFT JOIN pg_attribute a \
                   ON a.attrelid = c.oid AND a.attname = $4 AND a.attnum > 0 AND NOT a.attisdropped",
                &[&rule.schema, &rule.table, &rule.older_than.as_secs_f64(), &rule.column],
            )
            .await
            .map_err(query_err("look up a retention table"))?;
        let column_type: Option<String> = row.get(1);
        Ok(RuleTarget {
            oid: row.get(0),
            partitioned: row.get(4),
            column_type,
            cutoff_tz: row.get(2),
            cutoff_local: row.get(3),
        })
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
            .retry_locked(&sql, Some((rule.oid, LockMode::RowExclusive)), || async {
                let client = self.db.client().await?;
                client.execute(&sql, &[&rule.cutoff, &limit]).await.map_err(query_err(sql.clone()))
            })
            .await
    }
}
