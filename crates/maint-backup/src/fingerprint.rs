//! Data fingerprints: per table a row count and an order-independent digest (the sum of a
//! 64-bit hash per row), read with `row_security = off` so policies never hide rows, and
//! their comparison between the source and a restored copy.

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

/// Quotes an identifier for SQL (`"my ""odd"" table"`): maint-db's, the one quoting.
pub use maint_db::quote_ident;

/// Every ordinary table outside the system schemas (only those with row-level security
/// enabled when `row_security`), as (schema, table), sorted.
async fn tables(client: &impl GenericClient, row_security: bool) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
             AND (c.relrowsecurity OR NOT $1) ORDER BY 1, 2",
            &[&row_security],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Maps the server's refusal to read a table with `row_security = off` ("query would be
/// affected by row-level security policy", 42501) to [`Error::RowSecurity`].
fn row_security(e: Error, schema: &str, table: &str) -> Error {
    match e {
        Error::Postgres(pg)
            if pg.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
                && pg.as_db_error().is_some_and(|d| d.message().contains("row-level security")) =>
        {
            Error::RowSecurity { table: format!("{schema}.{table}") }
        }
        e => e,
    }
}

/// Checks that the session can read every row of every table with row-level security:
/// run with `row_security = off` (as `pg_dump` and the fingerprints run), where the server
/// refuses a query a policy would affect instead of hiding rows. A table the role cannot
/// read whole is [`Error::RowSecurity`]; plans only, reads no row.
pub(crate) async fn check_row_security(client: &impl GenericClient) -> Result<(), Error> {
    for (schema, table) in tables(client, true).await? {
        client
            .query(&format!("SELECT FROM {} LIMIT 0", maint_db::qualified(&schema, &table)), &[])
            .await
            .map_err(|e| row_security(e.into(), &schema, &table))?;
    }
    Ok(())
}

async fn digest(
    client: &impl GenericClient,
    schema: String,
    table: String,
    method: DigestMethod,
) -> Result<TableFingerprint, Error> {
    let r = match client.query_one(&method.sql(&maint_db::qualified(&schema, &table)), &[]).await {
        Ok(r) => r,
        Err(e) => return Err(row_security(e.into(), &schema, &table)),
    };
    Ok(TableFingerprint { schema, table, rows: r.get(0), digest: r.get(1), method })
}

/// Digests a table of a restored copy the session owns (`pg_restore --no-owner`) with
/// `row_security = off`: when the copy forces row-level security on its owner, that is
/// lifted on the copy (`NO FORCE ROW LEVEL SECURITY`: it is scratch) and the table read
/// again, so its policies never hide rows from the comparison.
async fn digest_restored(
    client: &impl GenericClient,
    schema: String,
    table: String,
    method: DigestMethod,
) -> Result<TableFingerprint, Error> {
    match digest(client, schema.clone(), table.clone(), method).await {
        Err(Error::RowSecurity { .. }) => {
            client
                .batch_execute(&format!(
                    "ALTER TABLE {} NO FORCE ROW LEVEL SECURITY",
                    maint_db::qualified(&schema, &table)
                ))
                .await?;
            digest(client, schema, table, method).await
        }
        other => other,
    }
}

/// Fingerprints every ordinary table outside the system schemas with the cheapest method
/// its column types allow. Runs in the client's current transaction, which must be open
/// (run it inside the dump's snapshot to match the dump): a table whose types have no hash
/// function is retried with the text method after a rollback to a savepoint. Run it with
/// `row_security = off`, as `pg_dump` runs: a table whose policies apply to the role is then
/// [`Error::RowSecurity`], not a digest of the rows the policies let through.
pub async fn fingerprint(client: &impl GenericClient) -> Result<Vec<TableFingerprint>, Error> {
    let mut out = Vec::new();
    for (schema, table) in tables(client, false).await? {
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

/// Fingerprints one restored table the way its manifest entry was. For a copy the
/// session owns, with `row_security = off` (see [`crate::restore_test`]): a copy that forces
/// row-level security on its owner has that lifted first.
pub async fn fingerprint_table(
    client: &impl GenericClient,
    expected: &TableFingerprint,
) -> Result<TableFingerprint, Error> {
    digest_restored(client, expected.schema.clone(), expected.table.clone(), expected.method).await
}

/// Completes the fingerprints of a restored copy: every table not in `done` is digested the
/// way its manifest entry was; tables the source does not have are listed with no digest.
pub async fn fingerprint_like(
    client: &impl GenericClient,
    expected: &[TableFingerprint],
    mut done: Vec<TableFingerprint>,
) -> Result<Vec<TableFingerprint>, Error> {
    for (schema, table) in tables(client, false).await? {
        if done.iter().any(|d| d.schema == schema && d.table == table) {
            continue;
        }
        let fp = match expected.iter().find(|e| e.schema == schema && e.table == table) {
            Some(e) => digest_restored(client, schema, table, e.method).await?,
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
