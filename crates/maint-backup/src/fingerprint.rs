use deadpool_postgres::tokio_postgres::GenericClient;
use serde::{Deserialize, Serialize};

use crate::Error;

/// A table's row count and an order-independent digest of its rows: the sum of the first
/// `hashtextextended(row::text, 0)` over all rows (a sum, not a XOR, so duplicate rows count).
/// That 64-bit hash is the one hash partitioning relies on, so it is stable across servers
/// and versions, and it costs a fraction of md5.
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

/// Fingerprints every ordinary table outside the system schemas, in the client's current
/// transaction (run it inside the dump's snapshot to match the dump).
pub async fn fingerprint(client: &impl GenericClient) -> Result<Vec<TableFingerprint>, Error> {
    let tables = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
             ORDER BY 1, 2",
            &[],
        )
        .await?;
    let mut out = Vec::with_capacity(tables.len());
    for row in tables {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        let sql = format!(
            "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text \
             FROM {}.{} AS t",
            quote_ident(&schema),
            quote_ident(&table)
        );
        let r = client.query_one(&sql, &[]).await?;
        out.push(TableFingerprint { schema, table, rows: r.get(0), digest: r.get(1) });
    }
    Ok(out)
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
        TableFingerprint { schema: "public".into(), table: table.into(), rows, digest: digest.into() }
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
