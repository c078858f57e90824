//! Index Rebuild's SQL: the catalog bloat estimates of tables and btree indexes,
//! `pgstattuple`, `REINDEX INDEX CONCURRENTLY` and the sessions a rebuild waits for. Each
//! method serves the [`DbBackend`](crate::DbBackend) method of the same name.

use crate::db::query_err;
use crate::postgres::{USER_SCHEMAS, size_sql, sized};
use crate::{BloatEstimate, BloatMeasurement, Error, LockMode, PgBackend, RelKind, index_waste, reindex_sql};

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

impl PgBackend {
    /// The schema `pgstattuple` is installed in, if it is.
    async fn pgstattuple_schema(&self) -> Result<Option<String>, Error> {
        self.extension_schema("pgstattuple").await
    }

    /// Sessions of this database holding a snapshot (`backend_xmin`): what a concurrent
    /// index build waits for in its last phase.
    pub(crate) async fn snapshot_holders(&self) -> Result<Vec<crate::Blocker>, Error> {
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

    pub(crate) async fn bloat_estimates(&self) -> Result<Vec<BloatEstimate>, Error> {
        sized(|exact| self.bloat_estimates_sized(exact)).await
    }

    pub(crate) async fn pgstattuple(&self, create: bool) -> Result<bool, Error> {
        self.extension("pgstattuple", create).await
    }

    pub(crate) async fn measure(&self, rel: &BloatEstimate) -> Result<BloatMeasurement, Error> {
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

    pub(crate) async fn reindex(&self, index: &BloatEstimate) -> Result<i64, Error> {
        let sql = reindex_sql(index);
        let run = self
            .db
            .retry_locked(&sql, Some((index.table_oid, LockMode::ShareUpdateExclusive)), || async {
                let client = self.db.client().await?;
                client.batch_execute(&sql).await.map_err(query_err(sql.clone()))
            })
            .await;
        self.rebuilt_size(run, &index.qualified()).await
    }

    /// What a `REINDEX INDEX CONCURRENTLY` of `index` (qualified) came to: the rebuilt
    /// index's size, or its failure; a lock timeout with nobody holding a lock on the table
    /// waited for transactions with older snapshots (the rebuild's last phase), so it names
    /// those.
    pub(crate) async fn rebuilt_size(&self, run: Result<(), Error>, index: &str) -> Result<i64, Error> {
        match run {
            Err(Error::LockTimeout { operation, attempts, blockers }) if blockers.is_empty() => {
                return Err(Error::LockTimeout { operation, attempts, blockers: self.snapshot_holders().await? });
            }
            other => other?,
        }
        // REINDEX CONCURRENTLY swaps in a new relation under the same name.
        let client = self.db.client().await?;
        let row = client
            .query_one("SELECT coalesce(pg_relation_size(to_regclass($1)), 0)", &[&index])
            .await
            .map_err(query_err("size of the rebuilt index"))?;
        Ok(row.get(0))
    }
}
