//! Index Integrity's SQL: the btree indexes `amcheck` can verify, `amcheck` itself and
//! `bt_index_check`. Each method serves the [`DbBackend`](crate::DbBackend) method of the
//! same name.

use serde::Serialize;

use crate::db::query_err;
use crate::postgres::USER_SCHEMAS;
use crate::{Error, LockMode, PgBackend, qualified};

/// SQLSTATE of "index corrupted" (raised by amcheck).
const INDEX_CORRUPTED: &str = "XX002";

/// SQLSTATE of "data corrupted".
const DATA_CORRUPTED: &str = "XX001";

/// A btree index that `amcheck` can verify (valid, ready, not temporary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BtreeIndex {
    /// `pg_class.oid` of the index.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Index name.
    pub name: String,
    /// Its table.
    pub table: String,
    /// The table's oid.
    pub table_oid: u32,
    /// Size from `relpages`.
    pub bytes: i64,
}

/// What `bt_index_check` said about one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IndexCheck {
    /// No problem found.
    Ok,
    /// amcheck raised `index_corrupted` (XX002) or `data_corrupted` (XX001).
    Corrupt {
        /// The SQLSTATE.
        sqlstate: String,
        /// The server's message, with its detail when there is one.
        message: String,
    },
    /// The index was dropped after it was listed.
    Vanished,
}

impl PgBackend {
    pub(crate) async fn amcheck(&self, create: bool) -> Result<bool, Error> {
        self.extension("amcheck", create).await
    }

    pub(crate) async fn btree_indexes(&self, catalogs: bool) -> Result<Vec<BtreeIndex>, Error> {
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

    pub(crate) async fn check_index(&self, index: &BtreeIndex, heapallindexed: bool) -> Result<IndexCheck, Error> {
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
}
