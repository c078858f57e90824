//! Capacity Planning's SQL: sizes now, and the snapshots table in the tool's own schema.
//! Each method serves the [`DbBackend`](crate::DbBackend) method of the same name.

use crate::db::query_err;
use crate::postgres::{USER_SCHEMAS, size_sql, sized};
use crate::{Error, PgBackend, SizeKind, SizeSample, qualified};

impl PgBackend {
    pub(crate) async fn current_sizes(&self, top: usize) -> Result<Vec<SizeSample>, Error> {
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

    pub(crate) async fn record_sizes(
        &self,
        schema: &str,
        samples: &[SizeSample],
        keep: std::time::Duration,
    ) -> Result<(), Error> {
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

    pub(crate) async fn size_history(
        &self,
        schema: &str,
        window: std::time::Duration,
    ) -> Result<Vec<SizeSample>, Error> {
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
