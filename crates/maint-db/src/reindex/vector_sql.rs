//! The index inventory, recall measurement, build records and vector index rebuilds on a
//! live server. Each method serves the [`DbBackend`](crate::DbBackend) method of the same name.

use std::time::{Duration, Instant};

use crate::db::query_err;
use crate::postgres::{USER_SCHEMAS, size_sql, sized};
use crate::reindex::vector::{recall_at_k, search_values};
use crate::{
    BuildRecord, Error, IndexInfo, Latency, LockMode, PgBackend, RecallMeasurement, TupleCounters, VectorSettings,
    qualified, quote_ident,
};

/// The tool's tables in `schema`: `index_builds` and `recall_history` (created on first use).
async fn create_tool_tables(client: &deadpool_postgres::Object, schema: &str) -> Result<(), Error> {
    let s = quote_ident(schema);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s}; \
             CREATE TABLE IF NOT EXISTS {s}.index_builds ( \
               built_at timestamptz NOT NULL DEFAULT now(), index_name text NOT NULL, \
               n_tup_ins bigint NOT NULL, n_tup_upd bigint NOT NULL, n_tup_del bigint NOT NULL, \
               live_rows bigint NOT NULL, bytes bigint NOT NULL, seconds float8, \
               PRIMARY KEY (index_name, built_at)); \
             CREATE TABLE IF NOT EXISTS {s}.recall_history ( \
               measured_at timestamptz NOT NULL DEFAULT now(), index_name text NOT NULL, \
               parameter text NOT NULL, value int NOT NULL, k int NOT NULL, queries int NOT NULL, \
               recall float8 NOT NULL, index_p50_ms float8, index_p95_ms float8, \
               exact_p50_ms float8, exact_p95_ms float8, needed int, \
               PRIMARY KEY (index_name, measured_at))"
        ))
        .await
        .map_err(query_err(format!("create the tables of schema {s}")))
}

impl PgBackend {
    pub(crate) async fn index_inventory(&self, schema: &str) -> Result<Vec<IndexInfo>, Error> {
        let client = self.db.client().await?;
        let rows = sized(|exact| {
            let (bytes, estimated) = size_sql(
                exact,
                "pg_relation_size(ci.oid)",
                "ci.oid",
                "ct.oid",
                "ci.relpages::bigint * current_setting('block_size')::bigint",
            );
            let sql = format!(
                "SELECT ci.oid, n.nspname::text, ci.relname::text, ct.relname::text, ct.oid, am.amname::text, \
                   {bytes}, {estimated}, coalesce(ci.reloptions, '{{}}')::text[], opc.opcname::text, \
                   (SELECT o.oprname::text FROM pg_amop ao JOIN pg_operator o ON o.oid = ao.amopopr \
                     WHERE ao.amopfamily = opc.opcfamily AND ao.amoppurpose = 'o' ORDER BY ao.amopstrategy LIMIT 1), \
                   pg_get_indexdef(ci.oid, 1, true), format_type(ia.atttypid, ia.atttypmod), x.indkey[0] > 0, \
                   CASE WHEN ty.typname IN ('vector', 'halfvec', 'sparsevec', 'bit') AND ia.atttypmod > 0 \
                        THEN ia.atttypmod END, \
                   s.null_frac::float8, pg_get_expr(x.indpred, x.indrelid), x.indisvalid, \
                   coalesce(st.n_live_tup, 0), coalesce(st.n_tup_ins, 0), coalesce(st.n_tup_upd, 0), \
                   coalesce(st.n_tup_del, 0) \
                 FROM pg_index x \
                 JOIN pg_class ci ON ci.oid = x.indexrelid AND ci.relkind = 'i' \
                 JOIN pg_class ct ON ct.oid = x.indrelid \
                 JOIN pg_namespace n ON n.oid = ci.relnamespace \
                 JOIN pg_am am ON am.oid = ci.relam \
                 LEFT JOIN pg_opclass opc ON opc.oid = x.indclass[0] \
                 LEFT JOIN pg_attribute ia ON ia.attrelid = ci.oid AND ia.attnum = 1 \
                 LEFT JOIN pg_type ty ON ty.oid = ia.atttypid \
                 LEFT JOIN pg_attribute ta ON ta.attrelid = ct.oid AND ta.attnum = x.indkey[0] AND x.indkey[0] > 0 \
                 LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = ct.relname AND s.attname = ta.attname \
                 LEFT JOIN pg_stat_all_tables st ON st.relid = ct.oid \
                 WHERE ct.relpersistence <> 't' AND {USER_SCHEMAS} \
                 ORDER BY 2, 4, 3"
            );
            let client = &client;
            async move { client.query(&sql, &[]).await.map_err(query_err("read the index inventory")) }
        })
        .await?;
        let builds_table = qualified(schema, "index_builds");
        let has_builds: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&builds_table])
            .await
            .map_err(query_err("look up the builds table"))?
            .get(0);
        let builds = if has_builds {
            client
                .query(
                    &format!(
                        "SELECT DISTINCT ON (index_name) index_name, extract(epoch FROM built_at)::float8, n_tup_ins, \
                           n_tup_upd, n_tup_del, live_rows, bytes FROM {builds_table} ORDER BY index_name, built_at DESC"
                    ),
                    &[],
                )
                .await
                .map_err(query_err(format!("read {builds_table}")))?
        } else {
            Vec::new()
        };
        Ok(rows
            .iter()
            .map(|r| {
                let mut ix = IndexInfo {
                    oid: r.get(0),
                    schema: r.get(1),
                    name: r.get(2),
                    table: r.get(3),
                    table_oid: r.get(4),
                    method: r.get(5),
                    bytes: r.get(6),
                    estimated: r.get(7),
                    options: r.get(8),
                    opclass: r.get(9),
                    operator: r.get(10),
                    key: r.get(11),
                    key_type: r.get::<_, Option<String>>(12).unwrap_or_default(),
                    key_is_column: r.get(13),
                    dimensions: r.get(14),
                    null_frac: r.get(15),
                    predicate: r.get(16),
                    valid: r.get(17),
                    live_rows: r.get(18),
                    counters: TupleCounters { inserted: r.get(19), updated: r.get(20), deleted: r.get(21) },
                    build: None,
                };
                let name = ix.qualified();
                ix.build = builds.iter().find(|b| b.get::<_, String>(0) == name).map(|b| BuildRecord {
                    at: b.get(1),
                    counters: TupleCounters { inserted: b.get(2), updated: b.get(3), deleted: b.get(4) },
                    rows: b.get(5),
                    bytes: b.get(6),
                });
                ix
            })
            .collect())
    }

    pub(crate) async fn measure_recall(&self, ix: &IndexInfo, s: &VectorSettings) -> Result<RecallMeasurement, Error> {
        let name = ix.qualified();
        let (Some(op), Some((parameter, default))) = (ix.operator.as_deref(), ix.search_parameter()) else {
            return Err(Error::invalid("vector", format!("{name} is not a vector index with an ordering operator")));
        };
        let table = ix.qualified_table();
        let key = &ix.key;
        let filter = match &ix.predicate {
            Some(p) => format!("({key}) IS NOT NULL AND ({p})"),
            None => format!("({key}) IS NOT NULL"),
        };
        let ty = &ix.key_type;
        let approx_sql = format!(
            "SELECT (({key}) {op} $1::text::{ty})::float8 FROM {table} WHERE {filter} ORDER BY ({key}) {op} $1::text::{ty} LIMIT $2"
        );
        // An ORDER BY over a subquery with OFFSET 0 cannot be answered by the index: exact.
        let exact_sql = format!(
            "SELECT d FROM (SELECT (({key}) {op} $1::text::{ty})::float8 AS d FROM {table} WHERE {filter} OFFSET 0) s \
             ORDER BY d LIMIT $2"
        );
        let op_err = |what: &str| query_err(format!("{what} ({name})"));
        let mut client = self.db.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(deadpool_postgres::tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(op_err("BEGIN"))?;
        let timeout_ms = s.recall_timeout.as_millis().max(1);
        tx.batch_execute(&format!("SET LOCAL statement_timeout = {timeout_ms}")).await.map_err(op_err("SET LOCAL"))?;
        let sample: Vec<String> = tx
            .query(
                &format!("SELECT ({key})::text FROM {table} WHERE {filter} ORDER BY random() LIMIT $1"),
                &[&i64::from(s.sample)],
            )
            .await
            .map_err(op_err("sample stored vectors"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let value: i64 = tx
            .query_one("SELECT current_setting($1, true)", &[&parameter])
            .await
            .map_err(op_err("read the search parameter"))?
            .get::<_, Option<String>>(0)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default);
        let k = i64::from(s.k);
        // Through the index: the planner must not prefer a scan and a sort on a small table.
        let through_index = "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off";
        tx.batch_execute(through_index).await.map_err(op_err("SET LOCAL"))?;
        let approx = tx.prepare(&approx_sql).await.map_err(op_err("prepare the index search"))?;
        if let Some(q) = sample.first() {
            let plan: Vec<String> = tx
                .query(&format!("EXPLAIN {approx_sql}"), &[q, &k])
                .await
                .map_err(op_err("EXPLAIN the index search"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let plan = plan.join("\n");
            if !plan.contains(&quote_ident(&ix.name)) && !plan.contains(&format!(" {} ", ix.name)) {
                return Err(Error::invalid("vector", format!("the planner does not search {name} through it: {plan}")));
            }
        }
        let run = |stmt: deadpool_postgres::tokio_postgres::Statement| {
            let (tx, sample) = (&tx, &sample);
            async move {
                let mut dists = Vec::with_capacity(sample.len());
                let mut ms = Vec::with_capacity(sample.len());
                for q in sample {
                    let t = Instant::now();
                    let rows = tx.query(&stmt, &[q, &k]).await?;
                    ms.push(t.elapsed().as_secs_f64() * 1000.0);
                    dists.push(rows.iter().map(|r| r.get::<_, f64>(0)).collect::<Vec<_>>());
                }
                Ok::<_, deadpool_postgres::tokio_postgres::Error>((dists, ms))
            }
        };
        let (found, index_ms) = run(approx.clone()).await.map_err(op_err("search through the index"))?;
        tx.batch_execute("SET LOCAL enable_seqscan = on").await.map_err(op_err("SET LOCAL"))?;
        let exact = tx.prepare(&exact_sql).await.map_err(op_err("prepare the exact search"))?;
        let (truth, exact_ms) = run(exact).await.map_err(op_err("exact search"))?;
        let recall = recall_at_k(&found, &truth);
        let mut needed = (recall >= s.target).then_some(value);
        let mut tried = Vec::new();
        if needed.is_none() {
            tx.batch_execute(through_index).await.map_err(op_err("SET LOCAL"))?;
            let ceiling = if ix.method == "ivfflat" { ix.option("lists").unwrap_or(100) } else { s.ef_search_ceiling };
            for v in search_values(value, ceiling) {
                tx.batch_execute(&format!("SET LOCAL {parameter} = {v}")).await.map_err(op_err("SET LOCAL"))?;
                let (found, _) = run(approx.clone()).await.map_err(op_err("search through the index"))?;
                let r = recall_at_k(&found, &truth);
                tried.push((v, r));
                if r >= s.target {
                    needed = Some(v);
                    break;
                }
            }
        }
        tx.rollback().await.map_err(op_err("ROLLBACK"))?;
        Ok(RecallMeasurement {
            index: name,
            parameter: parameter.into(),
            value,
            k: s.k,
            queries: u32::try_from(sample.len()).unwrap_or(u32::MAX),
            recall,
            index_latency: Latency::of(&index_ms),
            exact_latency: Latency::of(&exact_ms),
            needed,
            tried,
        })
    }

    pub(crate) async fn record_recall(&self, schema: &str, m: &RecallMeasurement) -> Result<Option<f64>, Error> {
        let client = self.db.client().await?;
        create_tool_tables(&client, schema).await?;
        let table = qualified(schema, "recall_history");
        let previous = client
            .query_opt(
                &format!("SELECT recall FROM {table} WHERE index_name = $1 ORDER BY measured_at DESC LIMIT 1"),
                &[&m.index],
            )
            .await
            .map_err(query_err(format!("read {table}")))?
            .map(|r| r.get(0));
        let int = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (index_name, parameter, value, k, queries, recall, index_p50_ms, index_p95_ms, \
                       exact_p50_ms, exact_p95_ms, needed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ),
                &[
                    &m.index,
                    &m.parameter,
                    &int(m.value),
                    &int(i64::from(m.k)),
                    &int(i64::from(m.queries)),
                    &m.recall,
                    &m.index_latency.p50_ms,
                    &m.index_latency.p95_ms,
                    &m.exact_latency.p50_ms,
                    &m.exact_latency.p95_ms,
                    &m.needed.map(int),
                ],
            )
            .await
            .map_err(query_err(format!("record recall in {table}")))?;
        Ok(previous)
    }

    pub(crate) async fn record_index_build(&self, schema: &str, ix: &IndexInfo, seconds: f64) -> Result<(), Error> {
        let client = self.db.client().await?;
        create_tool_tables(&client, schema).await?;
        let table = qualified(schema, "index_builds");
        client
            .execute(
                &format!(
                    "INSERT INTO {table} (index_name, n_tup_ins, n_tup_upd, n_tup_del, live_rows, bytes, seconds) \
                     SELECT $1, n_tup_ins, n_tup_upd, n_tup_del, n_live_tup, \
                       coalesce(pg_relation_size(to_regclass($1)), 0), $3 \
                     FROM pg_stat_all_tables WHERE relid = $2"
                ),
                &[&ix.qualified(), &ix.table_oid, &seconds],
            )
            .await
            .map_err(query_err(format!("record the build of {} in {table}", ix.qualified())))?;
        Ok(())
    }

    /// `maintenance_work_mem` of our sessions, in bytes.
    pub(crate) async fn maintenance_work_mem(&self) -> Result<i64, Error> {
        let client = self.db.client().await?;
        let row = client
            .query_one(
                "SELECT setting::bigint * CASE unit WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 ELSE 1 END \
                 FROM pg_settings WHERE name = 'maintenance_work_mem'",
                &[],
            )
            .await
            .map_err(query_err("read maintenance_work_mem"))?;
        Ok(row.get(0))
    }

    pub(crate) async fn rebuild_index(
        &self,
        ix: &IndexInfo,
        memory: i64,
        workers: Option<u32>,
        progress: Duration,
    ) -> Result<i64, Error> {
        let name = ix.qualified();
        let sql = format!("REINDEX INDEX CONCURRENTLY {name}");
        let mut set = format!("SET maintenance_work_mem = '{}kB'", (memory / 1024).max(1024));
        if let Some(w) = workers {
            set += &format!("; SET max_parallel_maintenance_workers = {w}");
        }
        let run = self
            .db
            .retry_locked(&sql, Some((ix.table_oid, LockMode::ShareUpdateExclusive)), || async {
                let client = self.db.client().await?;
                let pid: i32 = client
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await
                    .map_err(query_err("pg_backend_pid()"))?
                    .get(0);
                client.batch_execute(&set).await.map_err(query_err(set.clone()))?;
                let watcher = tokio::spawn(watch_progress(self.db.clone(), pid, name.clone(), progress));
                let outcome = client.batch_execute(&sql).await.map_err(query_err(sql.clone()));
                watcher.abort();
                // The session goes back to the pool: back to its startup settings.
                let _ =
                    client.batch_execute("RESET maintenance_work_mem; RESET max_parallel_maintenance_workers").await;
                outcome
            })
            .await;
        self.rebuilt_size(run, &name).await
    }
}

/// Logs the progress of the index build of backend `pid` every `every`
/// (`pg_stat_progress_create_index`: phase, tuples or blocks done of total, time left).
async fn watch_progress(db: crate::Db, pid: i32, index: String, every: Duration) {
    let started = Instant::now();
    let Ok(client) = db.client().await else { return };
    loop {
        tokio::time::sleep(every).await;
        let Ok(Some(r)) = client
            .query_opt(
                "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total \
                 FROM pg_stat_progress_create_index WHERE pid = $1",
                &[&pid],
            )
            .await
        else {
            continue;
        };
        let (phase, td, tt, bd, bt): (String, i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let (done, total) = if tt > 0 { (td, tt) } else { (bd, bt) };
        let elapsed = started.elapsed().as_secs_f64();
        let left = (done > 0 && total > done).then(|| elapsed * (total - done) as f64 / done as f64);
        tracing::info!(
            index = %index, phase = %phase, done, total, elapsed_s = elapsed.round(),
            left_s = left.map(f64::round), "index build in progress"
        );
    }
}
