//! An AindusDB-shaped database: what maintenance meets in production, in a fresh test
//! database, with the document count as a parameter.
//!
//! One SQL file, `crates/maint-testkit/sql/aindusdb.sql`, is the fixture for Rust
//! ([`create`]) and for psql (`psql -v docs=3000 -f crates/maint-testkit/sql/aindusdb.sql
//! "$url"`, as `scripts/demo` seeds): both build the same database, the same row counts
//! ([`row_counts`]) and, with `setseed`, the same vectors and words. The layout follows
//! AindusDB Core's own schema (`db/init.sql` and `migrations/` of aindus-labs/aindusdb_core),
//! written anew and trimmed to what maintenance sees. Everything is in schema `aindusdb`;
//! `CREATE EXTENSION IF NOT EXISTS vector` (pgvector, in the default schema) comes first.
//!
//! | table | rows for `docs` documents | what it holds |
//! |---|---|---|
//! | `tenants` | 3 | `id uuid`, unique `name`, `settings jsonb`, `is_active`, timestamps |
//! | `users` | 60 (20 a tenant) | `tenant_id` → tenants, `username`/`email` unique per tenant, `password_hash`, `role`, `last_login`; btree on `tenant_id` |
//! | `collections` | 12 (4 a tenant) | `tenant_id` → tenants, `name` unique per tenant, `metadata jsonb`; btree on `tenant_id` |
//! | `documents` | `docs − docs/4` | `id uuid`, `tenant_id` → tenants, `collection_id` → collections, `content text`, `title`, `metadata jsonb`, embeddings `embedding_text vector(384)` (every row), `embedding_image vector(512)` (every third row), `embedding_audio`/`embedding_video vector(512)` and `embedding_3d vector(256)` (NULL), a generated `content_tsvector` (`to_tsvector('french', content)`), `file_type`, `file_size`, `checksum`, `created_at`/`updated_at` (a trigger keeps `updated_at`) |
//! | `user_sessions` | `docs/10 + 30` | `user_id` → users, unique `session_token`, `ip_address inet`, `expires_at timestamptz` (a third in the past), `is_active` (false on every ninth, so some expired ones are still active); btree on `user_id` and `(is_active, expires_at)` |
//! | `audit_logs` | `docs/2` | `user_id` → users, `action`, `details jsonb` (GIN), `success`, `level`, `created_at` (btree, one entry every 5 minutes back from now) |
//! | `veritas_proofs` | `docs/5 − docs/20` | `document_id` → documents (cascade), `input_data`, `computation_steps`, `result_value` (jsonb, a GIN index each), `verification_status`, `confidence_score` |
//!
//! On `documents`: HNSW indexes `USING hnsw (<col> vector_cosine_ops) WITH (m = 32,
//! ef_construction = 128)` on each of the five embedding columns, GIN on `metadata` and
//! `content_tsvector`, btree on `tenant_id`, `collection_id` and `created_at`, and row-level
//! security enabled with the policy `documents_tenant_isolation` on
//! `current_setting('app.current_tenant_id', true)` (owners and superusers bypass it, as in
//! AindusDB). The indexes are built after the load (faster), then the churn: every fourth
//! document deleted (its VERITAS proof with it) and every tenth revised (`title`,
//! `metadata`), nothing vacuumed or analyzed, so maintenance has work to do and sizes are
//! those right after a bulk load.
//!
//! Cold build time (one fresh database, PostgreSQL 17.12 + pgvector in the test container,
//! `fsync=off`, 2 cores shared with other builds: load average 5 to 6), nearly all of it the
//! HNSW builds:
//!
//! | documents | build | of which |
//! |---|---|---|
//! | 3,000 | 15 to 19 s (psql and `scripts/demo`) | HNSW on the text embeddings 11.5 s, the churn's updates 2.3 s |
//! | 20,000 | 7 min 58 s (psql) | load 25 s, HNSW text 5 min 06 s, HNSW image 1 min 16 s, updates 1 min 08 s |
//!
//! 100,000 documents were not measured: at this rate the build takes well over 10 minutes
//! (an HNSW build grows faster than the row count). The updates of the churn are slow
//! because each revised row enters every HNSW graph again. The HNSW builds run in the
//! session's backend (`max_parallel_maintenance_workers = 0`: a parallel build puts
//! `maintenance_work_mem` in `/dev/shm`, 64 MB in a container, and fails) with
//! `maintenance_work_mem = 512MB`, so the graph stays in memory.

use crate::TestDb;

/// The fixture's SQL as psql runs it (`psql -v docs=N -f`); [`sql`] gives it for one batch.
pub const SQL: &str = include_str!("../sql/aindusdb.sql");

/// The fixture's tables, schema-qualified, as created.
pub const TABLES: [&str; 7] = [
    "aindusdb.tenants",
    "aindusdb.users",
    "aindusdb.collections",
    "aindusdb.documents",
    "aindusdb.user_sessions",
    "aindusdb.audit_logs",
    "aindusdb.veritas_proofs",
];

/// The fixture's five embedding columns of `aindusdb.documents`, each with its HNSW index
/// `idx_documents_<column>`.
pub const EMBEDDINGS: [&str; 5] =
    ["embedding_text", "embedding_image", "embedding_audio", "embedding_video", "embedding_3d"];

/// [`SQL`] for `docs` documents as one batch: psql's meta-commands (the lines starting with
/// a backslash) left out, `:docs` replaced by the count.
pub fn sql(docs: u32) -> String {
    SQL.lines().filter(|l| !l.starts_with('\\')).collect::<Vec<_>>().join("\n").replace(":docs", &docs.to_string())
}

/// The rows each of [`TABLES`] holds once the fixture for `docs` documents is built
/// (after the churn), in the same order.
pub fn row_counts(docs: u32) -> [(&'static str, i64); 7] {
    let n = i64::from(docs);
    let rows = [3, 60, 12, n - n / 4, n / 10 + 30, n / 2, n / 5 - n / 20];
    std::array::from_fn(|i| (TABLES[i], rows[i]))
}

/// Builds the AindusDB fixture with `docs` documents in `db` (a fresh database: the schema
/// `aindusdb` must not exist yet), through a plain setup connection. Panics on failure.
pub async fn create(db: &TestDb, docs: u32) {
    let client = db.pool().get().await.expect("connect to the test database");
    client
        .batch_execute(&sql(docs))
        .await
        .unwrap_or_else(|e| panic!("cannot build the AindusDB fixture ({docs} documents) in {}: {e:?}", db.name));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_batch_has_the_count_and_no_psql_commands() {
        let sql = super::sql(1234);
        assert!(!sql.contains(":docs") && sql.contains("generate_series(1, 1234)"));
        assert!(sql.lines().all(|l| !l.starts_with('\\')));
        assert!(super::SQL.contains("\\set ON_ERROR_STOP on"));
        assert_eq!(super::row_counts(3000).map(|(_, n)| n), [3, 60, 12, 2250, 330, 1500, 450]);
    }
}
