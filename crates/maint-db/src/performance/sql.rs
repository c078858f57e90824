//! Performance Analysis's SQL: the statistics views and settings it reads (no lock on any
//! user table). Serves [`DbBackend::health`](crate::DbBackend::health).

use crate::db::query_err;
use crate::postgres::{size_sql, sized};
use crate::{Error, HealthSnapshot, IndexUsage, PgBackend, ReplicaInfo, SessionInfo, SlotInfo, TableScans};

impl PgBackend {
    pub(crate) async fn health(&self) -> Result<HealthSnapshot, Error> {
        let client = self.db.client().await?;
        let q = |what: &'static str| query_err(format!("read {what}"));
        let settings = client
            .query_one(
                "SELECT current_setting('max_connections')::bigint, \
                   current_setting('superuser_reserved_connections')::bigint, \
                   (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
                   coalesce((SELECT blks_hit FROM pg_stat_database WHERE datname = current_database()), 0), \
                   coalesce((SELECT blks_read FROM pg_stat_database WHERE datname = current_database()), 0), \
                   current_setting('autovacuum_freeze_max_age')::bigint",
                &[],
            )
            .await
            .map_err(q("settings and pg_stat_database"))?;
        let sessions = client
            .query(
                "SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''), coalesce(state, ''), \
                   extract(epoch FROM now() - query_start)::float8, extract(epoch FROM now() - state_change)::float8, \
                   pg_blocking_pids(pid), left(coalesce(query, ''), 200) \
                 FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = current_database() \
                 ORDER BY pid",
                &[],
            )
            .await
            .map_err(q("pg_stat_activity"))?;
        let ages = client
            .query(
                "SELECT datname::text, age(datfrozenxid)::bigint FROM pg_database WHERE datallowconn ORDER BY 1",
                &[],
            )
            .await
            .map_err(q("pg_database"))?;
        let indexes = sized(|exact| {
            let (bytes, estimated) = size_sql(
                exact,
                "pg_relation_size(ci.oid)",
                "ci.oid",
                "ct.oid",
                "ci.relpages::bigint * current_setting('block_size')::bigint",
            );
            let sql = format!(
                "SELECT n.nspname::text, ci.relname::text, ct.relname::text, {bytes}, coalesce(s.idx_scan, 0), \
                   x.indisunique OR x.indisprimary OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid), \
                   x.indisvalid, \
                   concat_ws('|', x.indrelid::text, ci.relam::text, x.indkey::text, x.indclass::text, \
                     x.indcollation::text, coalesce(pg_get_expr(x.indexprs, x.indrelid), ''), \
                     coalesce(pg_get_expr(x.indpred, x.indrelid), '')), {estimated} \
                 FROM pg_index x \
                 JOIN pg_class ci ON ci.oid = x.indexrelid \
                 JOIN pg_class ct ON ct.oid = x.indrelid \
                 JOIN pg_namespace n ON n.oid = ci.relnamespace \
                 LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = x.indexrelid \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
                 ORDER BY 1, 2"
            );
            let client = &client;
            async move { client.query(&sql, &[]).await.map_err(q("pg_index")) }
        })
        .await?;
        let tables = client
            .query(
                "SELECT schemaname::text, relname::text, coalesce(n_live_tup, 0), coalesce(seq_scan, 0), \
                   coalesce(seq_tup_read, 0), coalesce(idx_scan, 0) \
                 FROM pg_stat_user_tables ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(q("pg_stat_user_tables"))?;
        let slots = client
            .query(
                "SELECT slot_name::text, slot_type, active, \
                   CASE WHEN pg_is_in_recovery() OR restart_lsn IS NULL THEN NULL \
                        ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END \
                 FROM pg_replication_slots ORDER BY 1",
                &[],
            )
            .await
            .map_err(q("pg_replication_slots"))?;
        let replicas = client
            .query(
                "SELECT coalesce(application_name, ''), extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication",
                &[],
            )
            .await
            .map_err(q("pg_stat_replication"))?;
        Ok(HealthSnapshot {
            max_connections: settings.get(0),
            reserved_connections: settings.get(1),
            connections: settings.get(2),
            blocks_hit: settings.get(3),
            blocks_read: settings.get(4),
            freeze_max_age: settings.get(5),
            sessions: sessions
                .iter()
                .map(|r| SessionInfo {
                    pid: r.get(0),
                    user: r.get(1),
                    application: r.get(2),
                    state: r.get(3),
                    query_seconds: r.get(4),
                    state_seconds: r.get(5),
                    blocked_by: r.get(6),
                    query: r.get(7),
                })
                .collect(),
            database_xid_ages: ages.iter().map(|r| (r.get(0), r.get(1))).collect(),
            indexes: indexes
                .iter()
                .map(|r| IndexUsage {
                    schema: r.get(0),
                    name: r.get(1),
                    table: r.get(2),
                    bytes: r.get(3),
                    scans: r.get(4),
                    enforces: r.get(5),
                    valid: r.get(6),
                    signature: r.get(7),
                    estimated: r.get(8),
                })
                .collect(),
            tables: tables
                .iter()
                .map(|r| TableScans {
                    schema: r.get(0),
                    name: r.get(1),
                    live_rows: r.get(2),
                    seq_scans: r.get(3),
                    seq_rows_read: r.get(4),
                    idx_scans: r.get(5),
                })
                .collect(),
            slots: slots
                .iter()
                .map(|r| SlotInfo { name: r.get(0), slot_type: r.get(1), active: r.get(2), retained_bytes: r.get(3) })
                .collect(),
            replicas: replicas.iter().map(|r| ReplicaInfo { name: r.get(0), replay_lag_seconds: r.get(1) }).collect(),
        })
    }
}
