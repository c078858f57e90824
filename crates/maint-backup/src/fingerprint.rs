use deadpool_postgres::tokio_postgres::GenericClient;
use deadpool_postgres::tokio_postgres::error::SqlState;
use serde::{Deserialize, Serialize};

use crate::Error;

/// How a table's rows are digested. Both sum a 64-bit hash per row (a sum, not a XOR, so
/// duplicate rows count), so the digest does not depend on row order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestMethod {
    /// `hashtextextended(row::text, 0)`: works for every type, but renders each row as text
    /// (costly for floats, arrays and timestamps). Manifests without a method used this.
    #[default]
    Text,
    /// `hash_record_extended(row, 0)` (PostgreSQL 14+): each column through its type's own
    /// hash function, no text rendering; about 2.7 times cheaper. Tables with a column type
    /// that has no hash function (`json`, `point`, pgvector's `vector`, …) fall back to text.
    Record,
}

impl DigestMethod {
    fn sql(self, table: &str) -> String {
        let hash = match self {
            DigestMethod::Text => "hashtextextended(t::text, 0)",
            DigestMethod::Record => "hash_record_extended(t, 0)",
        };
        format!("SELECT count(*), coalesce(sum({hash}::numeric), 0)::text FROM {table} AS t")
    }
}

/// A table's row count and an order-independent digest of its rows (see [`DigestMethod`]).
/// The 64-bit hashes are the ones hash partitioning relies on, so they are stable across
/// servers and versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFingerprint {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Rows.
    pub rows: i64,
    /// Digest (a decimal number).
    pub digest: String,
    /// How the digest was computed.
    #[serde(default)]
    pub method: DigestMethod,
}

/// A difference between two fingerprints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// `schema.table`.
    pub table: String,
    /// What differs.
    pub reason: String,
}

/// Quotes an identifier for SQL (`"my ""odd"" table"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every ordinary table outside the system schemas, as (schema, table), sorted.
async fn tables(client: &impl GenericClient) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
             ORDER BY 1, 2",
            &[],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn digest(
    client: &impl GenericClient,
    schema: String,
    table: String,
    method: DigestMethod,
) -> Result<TableFingerprint, Error> {
    let r = client.query_one(&method.sql(&format!("{}.{}", quote_ident(&schema), quote_ident(&table))), &[]).await?;
    Ok(TableFingerprint { schema, table, rows: r.get(0), digest: r.get(1), method })
}

/// Fingerprints every ordinary table outside the system schemas with the cheapest method
/// its column types allow. Runs in the client's current transaction, which must be open
/// (run it inside the dump's snapshot to match the dump): a table whose types have no hash
/// function is retried with the text method after a rollback to a savepoint.
pub async fn fingerprint(client: &impl GenericClient) -> Result<Vec<TableFingerprint>, Error> {
    let mut out = Vec::new();
    for (schema, table) in tables(client).await? {
        client.batch_execute("SAVEPOINT maint_fingerprint").await?;
        match digest(client, schema.clone(), table.clone(), DigestMethod::Record).await {
            Ok(fp) => out.push(fp),
            Err(Error::Postgres(e)) if e.code() == Some(&SqlState::UNDEFINED_FUNCTION) => {
                client.batch_execute("ROLLBACK TO SAVEPOINT maint_fingerprint").await?;
                out.push(digest(client, schema, table, DigestMethod::Text).await?);
            }
            Err(e) => return Err(e),
        }
        client.batch_execute("RELEASE SAVEPOINT maint_fingerprint").await?;
    }
    Ok(out)
}

/// Fingerprints one restored table the way its manifest entry was.
pub async fn fingerprint_table(
    client: &impl GenericClient,
    expected: &TableFingerprint,
) -> Result<TableFingerprint, Error> {
    digest(client, expected.schema.clone(), expected.table.clone(), expected.method).await
}

/// Completes the fingerprints of a restored copy: every table not in `done` is digested the
/// way its manifest entry was; tables the source does not have are listed with no digest.
pub async fn fingerprint_like(
    client: &impl GenericClient,
    expected: &[TableFingerprint],
    mut done: Vec<TableFingerprint>,
) -> Result<Vec<TableFingerprint>, Error> {
    for (schema, table) in tables(client).await? {
        if done.iter().any(|d| d.schema == schema && d.table == table) {
            continue;
        }
        let fp = match expected.iter().find(|e| e.schema == schema && e.table == table) {
            Some(e) => digest(client, schema, table, e.method).await?,
            None => TableFingerprint { schema, table, rows: 0, digest: String::new(), method: DigestMethod::Text },
        };
        done.push(fp);
    }
    Ok(done)
}

/// Compares the source's fingerprints (from the manifest) with a restored copy's.
pub fn compare(expected: &[TableFingerprint], actual: &[TableFingerprint]) -> Vec<Mismatch> {
    let name = |t: &TableFingerprint| format!("{}.{}", t.schema, t.table);
    let mut out = Vec::new();
    for e in expected {
        match actual.iter().find(|a| a.schema == e.schema && a.table == e.table) {
            None => out.push(Mismatch { table: name(e), reason: "missing after restore".into() }),
            Some(a) if a.rows != e.rows => out.push(Mismatch {
                table: name(e),
                reason: format!("{} rows after restore, {} in the source", a.rows, e.rows),
            }),
            Some(a) if a.digest != e.digest => {
                out.push(Mismatch { table: name(e), reason: "row contents differ (digest mismatch)".into() });
            }
            Some(_) => {}
        }
    }
    for a in actual {
        if !expected.iter().any(|e| e.schema == a.schema && e.table == a.table) {
            out.push(Mismatch { table: name(a), reason: "not in the source".into() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(table: &str, rows: i64, digest: &str) -> TableFingerprint {
        TableFingerprint {
            schema: "public".into(),
            table: table.into(),
            rows,
            digest: digest.into(),
            method: DigestMethod::Record,
        }
    }

    #[test]
    fn compare_names_the_table() {
        let src = [t("a", 1, "10"), t("b", 2, "20"), t("c", 3, "30")];
        let restored = [t("a", 1, "10"), t("b", 2, "21"), t("d", 0, "0")];
        let m = compare(&src, &restored);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], Mismatch { table: "public.b".into(), reason: "row contents differ (digest mismatch)".into() });
        assert_eq!(m[1].table, "public.c");
        assert_eq!(m[2], Mismatch { table: "public.d".into(), reason: "not in the source".into() });
        assert!(compare(&src, &src).is_empty());
    }

    #[test]
    fn quotes_hostile_names() {
        assert_eq!(quote_ident("we\"ird; DROP TABLE x"), "\"we\"\"ird; DROP TABLE x\"");
    }
}
