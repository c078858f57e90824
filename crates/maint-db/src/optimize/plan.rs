//! Database Optimization: what the catalog says about tables, indexes and retention
//! rules, and the pure planning from it (observed state in, actions out). No I/O here.

use std::cmp::Reverse;

use serde::Serialize;

use crate::{Blocker, Error, Order, RetentionRule, Steps, qualified};

/// A table as seen in the catalog, without taking any lock on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableStats {
    /// `pg_class.oid`.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Size estimate from `relpages` (heap + TOAST), in bytes: reading the real size
    /// would take a lock that a blocked table would make us wait for.
    pub bytes: i64,
    /// `n_dead_tup`.
    pub dead_tuples: i64,
    /// `age(relfrozenxid)`.
    pub xid_age: i64,
    /// `vacuum_count` before the run.
    pub vacuum_count: i64,
    /// `analyze_count` before the run.
    pub analyze_count: i64,
}

/// What to do to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableWork {
    /// `VACUUM (SKIP_LOCKED[, ANALYZE][, FREEZE])`.
    Vacuum {
        /// With ANALYZE.
        analyze: bool,
        /// With FREEZE.
        freeze: bool,
    },
    /// `ANALYZE (SKIP_LOCKED)`.
    Analyze,
}

/// Why a table is in the plan where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `age(relfrozenxid)` at or above the wraparound threshold: first.
    Wraparound,
    /// Everything else, by the configured order.
    Routine,
}

/// One planned statement on one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableJob {
    /// The table.
    pub table: TableStats,
    /// What to run.
    pub work: TableWork,
    /// Why it is where it is.
    pub reason: Reason,
}

/// How one table job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TableOutcome {
    /// Done: the statistics counters moved.
    Done,
    /// `SKIP_LOCKED` skipped it: these sessions hold conflicting locks.
    Skipped {
        /// Who holds the locks.
        blockers: Vec<Blocker>,
    },
    /// The statement succeeded but the counters did not move and nobody holds a
    /// conflicting lock (no privilege, or the lock was released meanwhile).
    Unconfirmed,
    /// The table was dropped after planning.
    Vanished,
}

/// An invalid index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidIndex {
    /// Schema.
    pub schema: String,
    /// Index name.
    pub name: String,
    /// Its table.
    pub table: String,
    /// The table's oid.
    pub table_oid: u32,
    /// Size estimate from `relpages`.
    pub bytes: i64,
    /// A `CREATE INDEX`/`REINDEX` is running on the table right now.
    pub build_in_progress: bool,
}

/// What the catalog says about a retention rule's table and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleTarget {
    /// The named table's oid; `None` when there is no such table.
    pub oid: Option<u32>,
    /// The tables that hold its rows, each planned on its own (`DELETE FROM ONLY`): the
    /// named table unless it is partitioned, then every inheritance child and partition
    /// below it that is an ordinary table.
    pub tables: Vec<RetentionTable>,
    /// The column's type (`timestamp with time zone`); `None` when there is no such column.
    pub column_type: Option<String>,
    /// The cutoff as `timestamptz` text (now minus the rule's age).
    pub cutoff_tz: String,
    /// The same instant as `timestamp` text in the rule's time zone; `None` when the
    /// server does not know that zone.
    pub cutoff_local: Option<String>,
}

/// One table a retention rule deletes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionTable {
    /// `pg_class.oid`.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
}

/// A retention rule checked against the catalog, for one of its tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedRule {
    /// The rule.
    pub rule: RetentionRule,
    /// The table (the rule's own, or one of its children or partitions).
    pub table: RetentionTable,
    /// `timestamptz` or `timestamp` (dates compare with timestamps).
    pub cast: &'static str,
    /// The cutoff text for that cast.
    pub cutoff: String,
}

/// How a retention rule reaches its expired rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "scan", rename_all = "snake_case")]
pub enum RetentionScan {
    /// Few rows expire (the planner would find them through an index): batches of
    /// `LIMIT batch_size` rows by `ctid`.
    Rows,
    /// Many rows expire (the planner would read the whole table): the table is walked in
    /// ranges of `pages` pages (about `batch_size` rows each), `total` pages in all, each
    /// range one `DELETE` with a TID range scan, as fast per row as one big `DELETE`.
    Pages {
        /// Pages per statement.
        pages: u32,
        /// Pages of the table when the rule started.
        total: u32,
    },
}

/// How to order and what to run, from [`Settings`](crate::Settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablePlanOptions {
    /// Which of analyze/vacuum run.
    pub steps: Steps,
    /// Order of routine tables.
    pub order: Order,
    /// FREEZE wraparound tables.
    pub freeze: bool,
    /// Wraparound threshold on `age(relfrozenxid)`.
    pub wraparound_age: i64,
}

/// Orders the tables and picks the statement for each: tables at or past the
/// wraparound age first (oldest first), then the rest by `order`; ties by name so the
/// plan is deterministic. Empty when neither vacuum nor analyze is asked for.
pub fn plan_tables(tables: Vec<TableStats>, opts: &TablePlanOptions) -> Vec<TableJob> {
    let Steps { vacuum, analyze, .. } = opts.steps;
    if !vacuum && !analyze {
        return Vec::new();
    }
    let mut jobs: Vec<TableJob> = tables
        .into_iter()
        .map(|table| {
            let wrap = table.xid_age >= opts.wraparound_age;
            let work =
                if vacuum { TableWork::Vacuum { analyze, freeze: wrap && opts.freeze } } else { TableWork::Analyze };
            let reason = if wrap && vacuum { Reason::Wraparound } else { Reason::Routine };
            TableJob { table, work, reason }
        })
        .collect();
    jobs.sort_by(|a, b| {
        let key = |j: &TableJob| {
            let wrap = j.reason == Reason::Wraparound;
            let t = &j.table;
            let (first, second) = match opts.order {
                Order::MostDeadFirst => (-t.dead_tuples, t.bytes),
                Order::SmallestFirst => (t.bytes, -t.dead_tuples),
            };
            (Reverse(wrap), if wrap { -t.xid_age } else { 0 }, first, second, t.schema.clone(), t.name.clone())
        };
        key(a).cmp(&key(b))
    });
    jobs
}

/// The statement for a job; every identifier quoted.
pub fn job_sql(job: &TableJob) -> String {
    let name = qualified(&job.table.schema, &job.table.name);
    match job.work {
        TableWork::Vacuum { analyze, freeze } => {
            let mut opts = vec!["SKIP_LOCKED"];
            if analyze {
                opts.insert(0, "ANALYZE");
            }
            if freeze {
                opts.push("FREEZE");
            }
            format!("VACUUM ({}) {name}", opts.join(", "))
        }
        TableWork::Analyze => format!("ANALYZE (SKIP_LOCKED) {name}"),
    }
}

/// Whether an index name is a leftover of a failed `REINDEX CONCURRENTLY`:
/// it ends in `_ccnew` or `_ccold`, optionally followed by digits (`_ccnew1`).
pub fn is_reindex_leftover(name: &str) -> bool {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit());
    trimmed.ends_with("_ccnew") || trimmed.ends_with("_ccold")
}

/// What to do with the invalid indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvalidIndexPlan {
    /// Leftovers of a failed `REINDEX CONCURRENTLY`: dropped concurrently.
    pub drop: Vec<InvalidIndex>,
    /// Leftovers on a table where an index build is running now: left alone this time.
    pub busy: Vec<InvalidIndex>,
    /// Invalid for another reason (a failed `CREATE INDEX CONCURRENTLY`): reported only.
    pub report: Vec<InvalidIndex>,
}

/// Sorts invalid indexes into drop / busy / report.
pub fn plan_invalid_indexes(indexes: Vec<InvalidIndex>) -> InvalidIndexPlan {
    let mut plan = InvalidIndexPlan::default();
    for index in indexes {
        if !is_reindex_leftover(&index.name) {
            plan.report.push(index);
        } else if index.build_in_progress {
            plan.busy.push(index);
        } else {
            plan.drop.push(index);
        }
    }
    plan
}

/// Checks what the catalog said about rule number `i`; the error names the field. One
/// [`ResolvedRule`] per table that holds the rule's rows (none for a partitioned table
/// without partitions).
pub fn resolve_rule(i: usize, rule: &RetentionRule, target: RuleTarget) -> Result<Vec<ResolvedRule>, Error> {
    let at = format!("retention.rules[{i}]");
    let table = qualified(&rule.schema, &rule.table);
    if target.oid.is_none() {
        return Err(Error::invalid(format!("{at}.table"), format!("table {table} does not exist")));
    }
    let Some(ty) = target.column_type else {
        return Err(Error::invalid(
            format!("{at}.column"),
            format!("table {table} has no column {}", crate::quote_ident(&rule.column)),
        ));
    };
    let (cast, cutoff) = match ty.as_str() {
        "timestamp with time zone" => ("timestamptz", target.cutoff_tz),
        "timestamp without time zone" | "date" => {
            let Some(cutoff) = target.cutoff_local else {
                return Err(Error::invalid(
                    format!("{at}.timezone"),
                    format!("time zone {:?} is not known to the server", rule.timezone),
                ));
            };
            ("timestamp", cutoff)
        }
        other => {
            return Err(Error::invalid(
                format!("{at}.column"),
                format!("column {} is of type {other}, not a timestamp or date", crate::quote_ident(&rule.column)),
            ));
        }
    };
    Ok(target
        .tables
        .into_iter()
        .map(|table| ResolvedRule { rule: rule.clone(), table, cast, cutoff: cutoff.clone() })
        .collect())
}

/// `ONLY schema.table`: the rule's one table, never its children (each child is a
/// rule of its own, and its `ctid`s are not the parent's).
fn only(rule: &ResolvedRule) -> String {
    format!("ONLY {}", qualified(&rule.table.schema, &rule.table.name))
}

/// `WHERE` clause of a rule (`$1` is the cutoff text).
/// The cutoff is converted once (an InitPlan), not per row: a text-to-timestamp cast is a
/// stable function the planner does not fold.
fn expired(rule: &ResolvedRule) -> String {
    format!("{} < (SELECT $1::text::{})", crate::quote_ident(&rule.rule.column), rule.cast)
}

/// One batch: `DELETE FROM ONLY t WHERE ctid = ANY(ARRAY(SELECT ctid FROM ONLY t WHERE
/// <expired> LIMIT $2)) AND <expired>`. The predicate is repeated so that a row updated
/// while the `DELETE` waits for its lock (a session extended) is checked again in its new
/// version: a TID scan alone would delete it (servers without PostgreSQL's "Add missing EPQ
/// recheck for TID Scan" fix).
pub fn delete_batch_sql(rule: &ResolvedRule) -> String {
    let (table, expired) = (only(rule), expired(rule));
    format!(
        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {expired} LIMIT $2)) AND {expired}"
    )
}

/// One page range: `DELETE ... WHERE ctid >= '($2,0)' AND ctid < '($3,0)' AND <expired>`
/// (a TID range scan, PostgreSQL 14+: each statement reads only its pages).
pub fn delete_pages_sql(rule: &ResolvedRule) -> String {
    format!(
        "DELETE FROM {} WHERE ctid >= ('(' || $2::bigint || ',0)')::tid AND ctid < ('(' || $3::bigint || ',0)')::tid \
         AND {}",
        only(rule),
        expired(rule)
    )
}

/// The planner's choice for all of a rule's expired rows (`EXPLAIN`). The cutoff is not
/// in a subquery here: the planner must see its value to estimate how many rows match.
pub fn explain_expired_sql(rule: &ResolvedRule) -> String {
    format!(
        "EXPLAIN SELECT ctid FROM {} WHERE {} < $1::text::{}",
        only(rule),
        crate::quote_ident(&rule.rule.column),
        rule.cast
    )
}

/// The dry-run count.
pub fn count_expired_sql(rule: &ResolvedRule) -> String {
    format!("SELECT count(*) FROM {} WHERE {}", only(rule), expired(rule))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::RetentionTable;

    fn t(name: &str, bytes: i64, dead: i64, age: i64) -> TableStats {
        TableStats {
            oid: 1,
            schema: "public".into(),
            name: name.into(),
            bytes,
            dead_tuples: dead,
            xid_age: age,
            vacuum_count: 0,
            analyze_count: 0,
        }
    }

    fn opts(order: Order) -> TablePlanOptions {
        TablePlanOptions { steps: Steps::default(), order, freeze: true, wraparound_age: 1000 }
    }

    fn names(jobs: &[TableJob]) -> Vec<&str> {
        jobs.iter().map(|j| j.table.name.as_str()).collect()
    }

    #[test]
    fn wraparound_first_then_most_dead_then_smallest() {
        let tables = vec![
            t("big", 900, 5, 10),
            t("small", 10, 5, 10),
            t("dirty", 500, 80, 10),
            t("old", 999, 0, 5000),
            t("older", 1, 0, 9000),
        ];
        let jobs = plan_tables(tables.clone(), &opts(Order::MostDeadFirst));
        assert_eq!(names(&jobs), ["older", "old", "dirty", "small", "big"]);
        assert_eq!(jobs[0].reason, Reason::Wraparound);
        assert_eq!(jobs[0].work, TableWork::Vacuum { analyze: true, freeze: true });
        assert_eq!(jobs[2].work, TableWork::Vacuum { analyze: true, freeze: false });
        let jobs = plan_tables(tables, &opts(Order::SmallestFirst));
        assert_eq!(names(&jobs), ["older", "old", "small", "dirty", "big"]);
    }

    #[test]
    fn steps_choose_the_statement() {
        let only = |vacuum, analyze| TablePlanOptions {
            steps: Steps { vacuum, analyze, ..Steps::default() },
            ..opts(Order::MostDeadFirst)
        };
        let mut job = plan_tables(vec![t(r#"we"ird; name"#, 1, 1, 1)], &only(false, true)).remove(0);
        assert_eq!(job_sql(&job), r#"ANALYZE (SKIP_LOCKED) "public"."we""ird; name""#);
        assert_eq!(job.reason, Reason::Routine);
        job = plan_tables(vec![t("x", 1, 1, 1)], &only(true, false)).remove(0);
        assert_eq!(job_sql(&job), r#"VACUUM (SKIP_LOCKED) "public"."x""#);
        job = plan_tables(vec![t("x", 1, 1, 5000)], &only(true, true)).remove(0);
        assert_eq!(job_sql(&job), r#"VACUUM (ANALYZE, SKIP_LOCKED, FREEZE) "public"."x""#);
        assert!(plan_tables(vec![t("x", 1, 1, 1)], &only(false, false)).is_empty());
    }

    #[test]
    fn only_reindex_leftovers_are_dropped() {
        assert!(is_reindex_leftover("logs_pkey_ccnew"));
        assert!(is_reindex_leftover("logs_pkey_ccnew12"));
        assert!(is_reindex_leftover("idx_ccold"));
        assert!(!is_reindex_leftover("ccnew_but_not_suffix"));
        assert!(!is_reindex_leftover("logs_created_at_idx"));
        let ix = |name: &str, busy| InvalidIndex {
            schema: "public".into(),
            name: name.into(),
            table: "logs".into(),
            table_oid: 7,
            bytes: 8192,
            build_in_progress: busy,
        };
        let plan = plan_invalid_indexes(vec![ix("a_ccnew", false), ix("b_ccold1", true), ix("c_idx", false)]);
        assert_eq!(plan.drop, [ix("a_ccnew", false)]);
        assert_eq!(plan.busy, [ix("b_ccold1", true)]);
        assert_eq!(plan.report, [ix("c_idx", false)]);
    }

    #[test]
    fn retention_rules_are_checked_and_quoted() {
        let rule = RetentionRule {
            schema: "public".into(),
            table: "lo\"gs".into(),
            column: "created at".into(),
            older_than: Duration::from_secs(60),
            timezone: "Asia/Tokyo".into(),
        };
        let table = |oid, name: &str| RetentionTable { oid, schema: "public".into(), name: name.into() };
        let target = |oid, ty: Option<&str>| RuleTarget {
            oid,
            tables: oid.map(|o| table(o, "lo\"gs")).into_iter().collect(),
            column_type: ty.map(str::to_owned),
            cutoff_tz: "2026-01-01 00:00:00+00".into(),
            cutoff_local: Some("2026-01-01 09:00:00".into()),
        };
        let err = resolve_rule(2, &rule, target(None, None)).unwrap_err();
        assert_eq!(err.to_string(), r#"retention.rules[2].table: table "public"."lo""gs" does not exist"#);
        let err = resolve_rule(0, &rule, target(Some(5), None)).unwrap_err();
        assert!(err.to_string().starts_with("retention.rules[0].column: "), "{err}");
        let err = resolve_rule(0, &rule, target(Some(5), Some("integer"))).unwrap_err();
        assert!(err.to_string().contains("not a timestamp"), "{err}");
        let r = resolve_rule(0, &rule, target(Some(5), Some("timestamp without time zone"))).unwrap().remove(0);
        assert_eq!((r.cast, r.cutoff.as_str(), r.table.oid), ("timestamp", "2026-01-01 09:00:00", 5));
        assert_eq!(
            delete_batch_sql(&r),
            r#"DELETE FROM ONLY "public"."lo""gs" WHERE ctid = ANY(ARRAY(SELECT ctid FROM ONLY "public"."lo""gs" WHERE "created at" < (SELECT $1::text::timestamp) LIMIT $2)) AND "created at" < (SELECT $1::text::timestamp)"#
        );
        let r = resolve_rule(0, &rule, target(Some(5), Some("timestamp with time zone"))).unwrap().remove(0);
        assert_eq!(
            count_expired_sql(&r),
            r#"SELECT count(*) FROM ONLY "public"."lo""gs" WHERE "created at" < (SELECT $1::text::timestamptz)"#
        );
        assert_eq!(
            delete_pages_sql(&r),
            r#"DELETE FROM ONLY "public"."lo""gs" WHERE ctid >= ('(' || $2::bigint || ',0)')::tid AND ctid < ('(' || $3::bigint || ',0)')::tid AND "created at" < (SELECT $1::text::timestamptz)"#
        );
        assert_eq!(
            explain_expired_sql(&r),
            r#"EXPLAIN SELECT ctid FROM ONLY "public"."lo""gs" WHERE "created at" < $1::text::timestamptz"#
        );
    }

    #[test]
    fn each_child_and_partition_is_a_rule_of_its_own() {
        let rule = RetentionRule {
            schema: "public".into(),
            table: "metrics".into(),
            column: "at".into(),
            older_than: Duration::from_secs(3600),
            timezone: "UTC".into(),
        };
        let table = |oid, name: &str| RetentionTable { oid, schema: "public".into(), name: name.into() };
        let target = RuleTarget {
            oid: Some(1),
            tables: vec![table(2, "metrics_a"), table(3, "metrics_b")],
            column_type: Some("date".into()),
            cutoff_tz: "2026-01-01 00:00:00+00".into(),
            cutoff_local: Some("2026-01-01 00:00:00".into()),
        };
        let rules = resolve_rule(0, &rule, target.clone()).unwrap();
        let tables: Vec<(u32, &str)> = rules.iter().map(|r| (r.table.oid, r.table.name.as_str())).collect();
        assert_eq!(tables, [(2, "metrics_a"), (3, "metrics_b")]);
        assert!(rules.iter().all(|r| r.cast == "timestamp" && r.cutoff == "2026-01-01 00:00:00"));
        assert!(count_expired_sql(&rules[1]).starts_with(r#"SELECT count(*) FROM ONLY "public"."metrics_b" WHERE"#));
        // A partitioned table without partitions: nothing to do, not an error.
        assert_eq!(resolve_rule(0, &rule, RuleTarget { tables: vec![], ..target.clone() }).unwrap(), []);
        // A zone the server does not know fails a zone-less column, and only such a column.
        let unknown = RuleTarget { cutoff_local: None, ..target };
        let err = resolve_rule(3, &rule, unknown.clone()).unwrap_err();
        assert_eq!(err.to_string(), r#"retention.rules[3].timezone: time zone "UTC" is not known to the server"#);
        let tz = RuleTarget { column_type: Some("timestamp with time zone".into()), ..unknown };
        assert_eq!(resolve_rule(3, &rule, tz).unwrap().len(), 2);
    }
}
