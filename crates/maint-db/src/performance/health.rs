//! Performance Analysis: what the statistics views say (sessions, indexes, scans, slots,
//! replicas) and the pure assessment that turns it into findings. No I/O here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{AnalysisSettings, Finding, Severity, qualified, quote_ident};

/// A client session other than ours (`pg_stat_activity`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    /// Backend pid.
    pub pid: i32,
    /// Role.
    pub user: String,
    /// `application_name`.
    pub application: String,
    /// `state`.
    pub state: String,
    /// Seconds since the current query started.
    pub query_seconds: Option<f64>,
    /// Seconds since the state last changed.
    pub state_seconds: Option<f64>,
    /// Sessions this one waits for (`pg_blocking_pids`).
    pub blocked_by: Vec<i32>,
    /// The query, cut to 200 characters.
    pub query: String,
}

/// An index with its usage (`pg_stat_user_indexes`, `pg_index`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexUsage {
    /// Schema.
    pub schema: String,
    /// Index name.
    pub name: String,
    /// Table name.
    pub table: String,
    /// Size (`pg_relation_size`).
    pub bytes: i64,
    /// `bytes` is the `relpages` estimate: the index or its table was locked ACCESS
    /// EXCLUSIVE, so its size could not be read without waiting.
    pub estimated: bool,
    /// `idx_scan`.
    pub scans: i64,
    /// Unique or primary key, or backs a constraint: never "unused".
    pub enforces: bool,
    /// `indisvalid`.
    pub valid: bool,
    /// Table, access method, columns, operator classes, collations, expressions and
    /// predicate: indexes with equal signatures are duplicates.
    pub signature: String,
}

/// A table's scan counters (`pg_stat_user_tables`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableScans {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// `n_live_tup`.
    pub live_rows: i64,
    /// `seq_scan`.
    pub seq_scans: i64,
    /// `seq_tup_read`.
    pub seq_rows_read: i64,
    /// `idx_scan` (0 when the table has no index).
    pub idx_scans: i64,
}

/// A replication slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotInfo {
    /// `slot_name`.
    pub name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    /// Someone is consuming it.
    pub active: bool,
    /// WAL it keeps (`pg_current_wal_lsn() - restart_lsn`); `None` on a standby.
    pub retained_bytes: Option<i64>,
}

/// A standby streaming from this server (`pg_stat_replication`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaInfo {
    /// `application_name`.
    pub name: String,
    /// `replay_lag` in seconds (`None` when idle or unknown).
    pub replay_lag_seconds: Option<f64>,
}

/// What the health analysis reads, all from statistics views and settings (no lock on
/// any user table).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct HealthSnapshot {
    /// `max_connections`.
    pub max_connections: i64,
    /// `superuser_reserved_connections`.
    pub reserved_connections: i64,
    /// Client backends connected now (ours included).
    pub connections: i64,
    /// Client sessions other than ours.
    pub sessions: Vec<SessionInfo>,
    /// `blks_hit` of this database.
    pub blocks_hit: i64,
    /// `blks_read` of this database.
    pub blocks_read: i64,
    /// `autovacuum_freeze_max_age`.
    pub freeze_max_age: i64,
    /// `age(datfrozenxid)` of every database that accepts connections.
    pub database_xid_ages: Vec<(String, i64)>,
    /// User indexes.
    pub indexes: Vec<IndexUsage>,
    /// User tables.
    pub tables: Vec<TableScans>,
    /// Replication slots.
    pub slots: Vec<SlotInfo>,
    /// Streaming standbys.
    pub replicas: Vec<ReplicaInfo>,
}

/// Figures of a health snapshot, for the report's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HealthFigures {
    /// Connections used out of those available to ordinary roles.
    pub connection_ratio: f64,
    /// `blks_hit / (blks_hit + blks_read)`; 1 when nothing was read.
    pub cache_hit_ratio: f64,
    /// The highest `age(datfrozenxid)`.
    pub max_xid_age: i64,
}

impl HealthSnapshot {
    /// The figures.
    pub fn figures(&self) -> HealthFigures {
        let usable = (self.max_connections - self.reserved_connections).max(1);
        let total = self.blocks_hit + self.blocks_read;
        HealthFigures {
            connection_ratio: self.connections as f64 / usable as f64,
            cache_hit_ratio: if total == 0 { 1.0 } else { self.blocks_hit as f64 / total as f64 },
            max_xid_age: self.database_xid_ages.iter().map(|(_, a)| *a).max().unwrap_or(0),
        }
    }
}

fn secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

impl IndexUsage {
    /// The size in MiB, said to be an estimate when it is one.
    fn size(&self) -> String {
        if self.estimated { format!("{} (estimated from relpages)", mib(self.bytes)) } else { mib(self.bytes) }
    }
}

/// Turns a snapshot into findings, most severe first (then by check and subject).
pub fn assess_health(s: &HealthSnapshot, t: &AnalysisSettings) -> Vec<Finding> {
    use Severity::*;
    let mut out = Vec::new();
    let f = s.figures();
    let usable = (s.max_connections - s.reserved_connections).max(1);
    if f.connection_ratio >= t.connection_saturation {
        let sev = if f.connection_ratio >= 0.95 { Critical } else { Medium };
        out.push(Finding::new(
            "connection_saturation",
            sev,
            "max_connections",
            format!("{} of {usable} connections in use ({:.0}%)", s.connections, f.connection_ratio * 100.0),
            "put a pooler (PgBouncer) in front, lower pool sizes, or raise max_connections",
        ));
    }
    for x in &s.sessions {
        let subject = format!("pid {} ({}, {})", x.pid, x.user, x.application);
        let query = x.query.split_whitespace().collect::<Vec<_>>().join(" ");
        let long = t.long_running.as_secs_f64();
        if x.state == "active" && x.query_seconds.is_some_and(|q| q >= long) {
            let q = x.query_seconds.unwrap_or(0.0);
            let sev = if q >= long * 6.0 { Critical } else { Medium };
            out.push(Finding::new(
                "long_running_query",
                sev,
                subject.clone(),
                format!("query running for {}: {query}", secs(q)),
                "check the plan (EXPLAIN), or cancel it with pg_cancel_backend(pid)",
            ));
        }
        let idle = t.idle_in_transaction.as_secs_f64();
        if x.state.starts_with("idle in transaction") && x.state_seconds.is_some_and(|q| q >= idle) {
            let q = x.state_seconds.unwrap_or(0.0);
            let sev = if q >= idle * 10.0 { Critical } else { Medium };
            out.push(Finding::new(
                "idle_in_transaction",
                sev,
                subject.clone(),
                format!("{} for {} (holds locks and blocks vacuum); last query: {query}", x.state, secs(q)),
                "fix the client so it commits or rolls back; set idle_in_transaction_session_timeout; \
                 end it with pg_terminate_backend(pid)",
            ));
        }
        if !x.blocked_by.is_empty() {
            let by = x.blocked_by.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            out.push(Finding::new(
                "blocked_lock",
                Medium,
                subject,
                format!(
                    "waiting {} for a lock held by pid {by}: {query}",
                    secs(x.state_seconds.or(x.query_seconds).unwrap_or(0.0))
                ),
                "look at what the blocking session is doing; end it if it is stuck",
            ));
        }
    }
    if s.blocks_hit + s.blocks_read >= 10_000 && f.cache_hit_ratio < t.cache_hit_ratio {
        out.push(Finding::new(
            "cache_hit_ratio",
            Medium,
            "shared_buffers",
            format!("cache hit ratio {:.2}% (threshold {:.2}%)", f.cache_hit_ratio * 100.0, t.cache_hit_ratio * 100.0),
            "raise shared_buffers or add memory; look for sequential scans of large tables",
        ));
    }
    if s.freeze_max_age > 0 {
        for (db, age) in &s.database_xid_ages {
            let share = *age as f64 / s.freeze_max_age as f64;
            // Autovacuum forces an anti-wraparound vacuum at 100%; the hard limit is ~2 billion.
            let sev = if *age >= 1_000_000_000 {
                Critical
            } else if share >= 1.0 {
                Medium
            } else if share >= 0.75 {
                Info
            } else {
                continue;
            };
            out.push(Finding::new(
                "xid_wraparound",
                sev,
                format!("database {}", quote_ident(db)),
                format!(
                    "age(datfrozenxid) = {age}, {:.0}% of autovacuum_freeze_max_age ({})",
                    share * 100.0,
                    s.freeze_max_age
                ),
                "run VACUUM (FREEZE) on the oldest tables (maint-db-optimize with freeze = true); \
                 look for long transactions and stale replication slots holding the horizon",
            ));
        }
    }
    let mut by_signature: BTreeMap<&str, Vec<&IndexUsage>> = BTreeMap::new();
    for ix in &s.indexes {
        let name = qualified(&ix.schema, &ix.name);
        if !ix.valid {
            out.push(Finding::new(
                "invalid_index",
                Medium,
                name,
                format!("index on {} is invalid (a failed CREATE INDEX CONCURRENTLY or REINDEX)", quote_ident(&ix.table)),
                "drop it, or rebuild it with REINDEX INDEX CONCURRENTLY; maint-db-optimize drops _ccnew/_ccold leftovers",
            ));
            continue;
        }
        by_signature.entry(ix.signature.as_str()).or_default().push(ix);
        if ix.scans == 0 && !ix.enforces {
            out.push(Finding::new(
                "unused_index",
                if ix.bytes >= 100 << 20 { Medium } else { Info },
                name,
                format!("never scanned since statistics were reset; {}", ix.size()),
                "if replicas do not use it either, drop it (DROP INDEX CONCURRENTLY): it costs every write",
            ));
        }
    }
    for group in by_signature.values().filter(|g| g.len() > 1) {
        // Keep the one that enforces something, else the most used; the others are redundant.
        let mut group = group.clone();
        group.sort_by_key(|ix| (std::cmp::Reverse(ix.enforces), std::cmp::Reverse(ix.scans), ix.name.clone()));
        let keep = qualified(&group[0].schema, &group[0].name);
        for ix in &group[1..] {
            out.push(Finding::new(
                "duplicate_index",
                Medium,
                qualified(&ix.schema, &ix.name),
                format!("same definition as {keep} on {}; {}", quote_ident(&ix.table), ix.size()),
                "drop the duplicate (DROP INDEX CONCURRENTLY) unless it backs a constraint",
            ));
        }
    }
    for tb in &s.tables {
        if tb.live_rows < t.seq_scan_min_rows || tb.seq_scans == 0 {
            continue;
        }
        let per_scan = tb.seq_rows_read / tb.seq_scans.max(1);
        if tb.seq_scans > tb.idx_scans && per_scan >= t.seq_scan_min_rows {
            out.push(Finding::new(
                "seq_scan_heavy",
                Medium,
                qualified(&tb.schema, &tb.name),
                format!(
                    "{} sequential scans (~{per_scan} rows each) against {} index scans; {} live rows",
                    tb.seq_scans, tb.idx_scans, tb.live_rows
                ),
                "find the queries (pg_stat_statements) and add the index they need",
            ));
        }
    }
    for slot in &s.slots {
        let retained = slot.retained_bytes.unwrap_or(0);
        let sev = if retained >= t.slot_retained_bytes {
            if slot.active { Medium } else { Critical }
        } else if !slot.active {
            Info
        } else {
            continue;
        };
        out.push(Finding::new(
            "replication_slot",
            sev,
            format!("slot {}", quote_ident(&slot.name)),
            format!(
                "{} slot, {}, retains {} of WAL",
                slot.slot_type,
                if slot.active { "active" } else { "inactive" },
                mib(retained)
            ),
            "an inactive slot keeps WAL and the xmin horizon forever: drop it with \
             pg_drop_replication_slot() if its consumer is gone",
        ));
    }
    for r in &s.replicas {
        if let Some(lag) = r.replay_lag_seconds.filter(|l| *l >= t.replication_lag.as_secs_f64()) {
            out.push(Finding::new(
                "replication_lag",
                Medium,
                format!("standby {}", quote_ident(&r.name)),
                format!("replay lag {}", secs(lag)),
                "check the standby's I/O and network; long queries on it with hot_standby_feedback",
            ));
        }
    }
    Finding::sort(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::checks;

    fn session(pid: i32, state: &str, query_s: f64, state_s: f64) -> SessionInfo {
        SessionInfo {
            pid,
            user: "app".into(),
            application: "api".into(),
            state: state.into(),
            query_seconds: Some(query_s),
            state_seconds: Some(state_s),
            blocked_by: vec![],
            query: "SELECT\n 1".into(),
        }
    }

    fn ix(name: &str, scans: i64, enforces: bool, sig: &str) -> IndexUsage {
        IndexUsage {
            schema: "public".into(),
            name: name.into(),
            table: "t".into(),
            bytes: 8192,
            estimated: false,
            scans,
            enforces,
            valid: true,
            signature: sig.into(),
        }
    }

    fn healthy() -> HealthSnapshot {
        HealthSnapshot {
            max_connections: 100,
            reserved_connections: 3,
            connections: 5,
            blocks_hit: 1_000_000,
            blocks_read: 10,
            freeze_max_age: 200_000_000,
            database_xid_ages: vec![("app".into(), 1000)],
            ..HealthSnapshot::default()
        }
    }

    #[test]
    fn an_index_size_read_from_relpages_is_said_to_be_estimated() {
        let mut i = ix("i", 0, false, "a");
        assert_eq!(i.size(), "0.0 MiB");
        i.estimated = true;
        assert_eq!(i.size(), "0.0 MiB (estimated from relpages)");
    }

    #[test]
    fn a_healthy_server_has_no_findings() {
        let s = healthy();
        assert!(assess_health(&s, &AnalysisSettings::default()).is_empty());
        let f = s.figures();
        assert!(f.cache_hit_ratio > 0.9999 && f.max_xid_age == 1000);
    }

    #[test]
    fn sessions_are_judged_against_the_thresholds() {
        let t = AnalysisSettings::default(); // long_running 5m, idle in transaction 1m
        let mut s = healthy();
        s.sessions = vec![
            session(1, "active", 10.0, 10.0),
            session(2, "active", 400.0, 400.0),
            session(3, "active", 4000.0, 4000.0),
            session(4, "idle in transaction", 900.0, 90.0),
            session(5, "idle in transaction (aborted)", 900.0, 900.0),
            session(6, "idle", 9000.0, 9000.0),
        ];
        s.sessions[0].blocked_by = vec![4];
        let f = assess_health(&s, &t);
        assert_eq!(
            checks(&f),
            [
                ("idle_in_transaction", Severity::Critical, "pid 5 (app, api)"),
                ("long_running_query", Severity::Critical, "pid 3 (app, api)"),
                ("blocked_lock", Severity::Medium, "pid 1 (app, api)"),
                ("idle_in_transaction", Severity::Medium, "pid 4 (app, api)"),
                ("long_running_query", Severity::Medium, "pid 2 (app, api)"),
            ]
        );
        assert!(f[2].message.contains("held by pid 4") && f[2].message.ends_with("SELECT 1"), "{}", f[2].message);
        assert!(!f.iter().any(|x| x.action.is_empty()));
    }

    #[test]
    fn connections_cache_and_wraparound() {
        let t = AnalysisSettings::default();
        let mut s = healthy();
        s.connections = 90;
        s.blocks_read = 100_000;
        s.database_xid_ages = vec![("a".into(), 160_000_000), ("b".into(), 250_000_000), ("c".into(), 1_500_000_000)];
        let f = assess_health(&s, &t);
        assert_eq!(
            checks(&f),
            [
                ("xid_wraparound", Severity::Critical, "database \"c\""),
                ("cache_hit_ratio", Severity::Medium, "shared_buffers"),
                ("connection_saturation", Severity::Medium, "max_connections"),
                ("xid_wraparound", Severity::Medium, "database \"b\""),
                ("xid_wraparound", Severity::Info, "database \"a\""),
            ]
        );
        s.connections = 96;
        let f = assess_health(&s, &t);
        assert_eq!((f[0].check.as_str(), f[0].severity), ("connection_saturation", Severity::Critical));
    }

    #[test]
    fn unused_duplicate_and_invalid_indexes() {
        let mut s = healthy();
        let mut broken = ix("broken", 0, false, "x");
        broken.valid = false;
        s.indexes = vec![
            ix("t_pkey", 0, true, "t(id)"),
            ix("t_id_idx", 50, false, "t(id)"),
            ix("t_id_idx2", 0, false, "t(id)"),
            ix("t_v_idx", 0, false, "t(v)"),
            broken,
        ];
        let f = assess_health(&s, &AnalysisSettings::default());
        assert_eq!(
            checks(&f),
            [
                ("duplicate_index", Severity::Medium, "\"public\".\"t_id_idx\""),
                ("duplicate_index", Severity::Medium, "\"public\".\"t_id_idx2\""),
                ("invalid_index", Severity::Medium, "\"public\".\"broken\""),
                ("unused_index", Severity::Info, "\"public\".\"t_id_idx2\""),
                ("unused_index", Severity::Info, "\"public\".\"t_v_idx\""),
            ]
        );
        assert!(f[0].message.contains("\"public\".\"t_pkey\""), "the primary key is kept: {}", f[0].message);
    }

    #[test]
    fn seq_scans_slots_and_lag() {
        let mut s = healthy();
        let scans = |name: &str, live, seq, read, idx| TableScans {
            schema: "public".into(),
            name: name.into(),
            live_rows: live,
            seq_scans: seq,
            seq_rows_read: read,
            idx_scans: idx,
        };
        s.tables = vec![
            scans("big_scanned", 1_000_000, 500, 500_000_000, 3),
            scans("small", 100, 10_000, 1_000_000, 0),
            scans("indexed", 1_000_000, 2, 2_000_000, 90_000),
        ];
        s.slots = vec![
            SlotInfo { name: "gone".into(), slot_type: "logical".into(), active: false, retained_bytes: Some(5 << 30) },
            SlotInfo { name: "ok".into(), slot_type: "physical".into(), active: true, retained_bytes: Some(1 << 20) },
        ];
        s.replicas = vec![
            ReplicaInfo { name: "r1".into(), replay_lag_seconds: Some(900.0) },
            ReplicaInfo { name: "r2".into(), replay_lag_seconds: None },
        ];
        let f = assess_health(&s, &AnalysisSettings::default());
        assert_eq!(
            checks(&f),
            [
                ("replication_slot", Severity::Critical, "slot \"gone\""),
                ("replication_lag", Severity::Medium, "standby \"r1\""),
                ("seq_scan_heavy", Severity::Medium, "\"public\".\"big_scanned\""),
            ]
        );
    }
}
