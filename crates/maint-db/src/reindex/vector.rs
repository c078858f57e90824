//! Indexes by access method (btree, hash, GIN, GiST, BRIN, pgvector's HNSW and IVFFlat,
//! anything else listed and left alone), the recall of vector indexes, and when a vector
//! index is worth rebuilding. Pure: the SQL is in `vector_sql.rs`.
//!
//! The rules follow pgvector's README (<https://github.com/pgvector/pgvector>): recall is
//! measured against the exact search; `hnsw.ef_search` / `ivfflat.probes` trade speed for
//! recall; HNSW keeps deleted tuples in its graph until VACUUM repairs it (slowly), so
//! reindex first; IVFFlat `lists` fits `rows / 1000` up to 1M rows and `sqrt(rows)` above;
//! a build whose graph does not fit in `maintenance_work_mem` is far slower.

use serde::Serialize;

use crate::{Finding, Severity, VectorSettings, qualified};

/// Inserted, updated and deleted tuples of a table (`pg_stat_all_tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct TupleCounters {
    /// `n_tup_ins`.
    pub inserted: i64,
    /// `n_tup_upd`.
    pub updated: i64,
    /// `n_tup_del`.
    pub deleted: i64,
}

/// A build of an index recorded in the tool's schema (`<capacity.schema>.index_builds`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BuildRecord {
    /// When, in seconds since the Unix epoch (server clock).
    pub at: f64,
    /// The table's counters then.
    pub counters: TupleCounters,
    /// The table's live rows then.
    pub rows: i64,
    /// The index size right after.
    pub bytes: i64,
}

/// One index of a user table, whatever its access method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexInfo {
    /// Index oid.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Index name.
    pub name: String,
    /// Table name.
    pub table: String,
    /// Table oid.
    pub table_oid: u32,
    /// Access method (`pg_am.amname`): `btree`, `gin`, `hnsw`, `ivfflat`, ...
    pub method: String,
    /// `pg_relation_size` (the `relpages` estimate when the index was locked).
    pub bytes: i64,
    /// `bytes` is the `relpages` estimate.
    pub estimated: bool,
    /// `reloptions` as stored (`m=32`, `lists=100`, `fastupdate=off`).
    pub options: Vec<String>,
    /// Operator class of the first key (`vector_cosine_ops`).
    pub opclass: Option<String>,
    /// The ordering operator of that class (`<=>`), for vector indexes.
    pub operator: Option<String>,
    /// The first key as SQL (`pg_get_indexdef(oid, 1, true)`: a quoted column or an expression).
    pub key: String,
    /// Its type with modifiers (`vector(384)`).
    pub key_type: String,
    /// The key is a plain column.
    pub key_is_column: bool,
    /// Dimensions of a `vector`/`halfvec`/`sparsevec`/`bit` key (`atttypmod`).
    pub dimensions: Option<i32>,
    /// `pg_stats.null_frac` of the column (`None` when not analyzed or an expression).
    pub null_frac: Option<f64>,
    /// The predicate of a partial index.
    pub predicate: Option<String>,
    /// `indisvalid`.
    pub valid: bool,
    /// `n_live_tup` of the table.
    pub live_rows: i64,
    /// The table's counters now (cumulative since the statistics were reset).
    pub counters: TupleCounters,
    /// The last build recorded by this tool, if any.
    pub build: Option<BuildRecord>,
}

/// The rows changed since an index was built, and since when they are counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SinceBuild {
    /// Inserted, updated and deleted since.
    pub counters: TupleCounters,
    /// The recorded build, or `None`: counted since the statistics were reset.
    pub built_at: Option<f64>,
    /// `(updated + deleted) / (rows at the build, else live + deleted)`.
    pub changed_share: f64,
}

impl IndexInfo {
    /// `"schema"."name"`.
    pub fn qualified(&self) -> String {
        qualified(&self.schema, &self.name)
    }

    /// `"schema"."table"`.
    pub fn qualified_table(&self) -> String {
        qualified(&self.schema, &self.table)
    }

    /// HNSW or IVFFlat (pgvector).
    pub fn is_vector(&self) -> bool {
        matches!(self.method.as_str(), "hnsw" | "ivfflat")
    }

    /// One of the access methods PostgreSQL and pgvector ship; others are listed only.
    pub fn is_known(&self) -> bool {
        matches!(self.method.as_str(), "btree" | "hash" | "gin" | "gist" | "spgist" | "brin" | "hnsw" | "ivfflat")
    }

    /// An integer option (`m`, `ef_construction`, `lists`), as given or pgvector's default.
    pub fn option(&self, name: &str) -> Option<i64> {
        let given = self.options.iter().find_map(|o| o.strip_prefix(name)?.strip_prefix('=')?.parse().ok());
        given.or(match (self.method.as_str(), name) {
            ("hnsw", "m") => Some(16),
            ("hnsw", "ef_construction") => Some(64),
            ("ivfflat", "lists") => Some(100),
            _ => None,
        })
    }

    /// GIN `fastupdate` (on unless turned off).
    pub fn fastupdate(&self) -> Option<bool> {
        (self.method == "gin")
            .then(|| !self.options.iter().any(|o| matches!(o.as_str(), "fastupdate=off" | "fastupdate=false")))
    }

    /// The distance of a vector operator class: `cosine`, `l2`, `ip`, `l1`, `hamming`, `jaccard`.
    pub fn distance(&self) -> Option<&'static str> {
        let c = self.opclass.as_deref()?;
        ["cosine", "l2", "ip", "l1", "hamming", "jaccard"].into_iter().find(|d| c.ends_with(&format!("_{d}_ops")))
    }

    /// The search parameter of the method and pgvector's default for it.
    pub fn search_parameter(&self) -> Option<(&'static str, i64)> {
        match self.method.as_str() {
            "hnsw" => Some(("hnsw.ef_search", 40)),
            "ivfflat" => Some(("ivfflat.probes", 1)),
            _ => None,
        }
    }

    /// The changes since the recorded build (or since the statistics were reset, when no
    /// build is recorded or the counters went back).
    pub fn since_build(&self) -> SinceBuild {
        let now = self.counters;
        let (counters, base, built_at) = match self.build {
            Some(b)
                if now.inserted >= b.counters.inserted
                    && now.updated >= b.counters.updated
                    && now.deleted >= b.counters.deleted =>
            {
                let c = TupleCounters {
                    inserted: now.inserted - b.counters.inserted,
                    updated: now.updated - b.counters.updated,
                    deleted: now.deleted - b.counters.deleted,
                };
                (c, b.rows, Some(b.at))
            }
            _ => (now, self.live_rows + now.deleted, None),
        };
        let changed = (counters.updated + counters.deleted) as f64;
        SinceBuild { counters, built_at, changed_share: if base > 0 { changed / base as f64 } else { 0.0 } }
    }

    /// Bytes per dimension of the key type.
    fn bytes_per_dimension(&self) -> f64 {
        match self.key_type.split('(').next().unwrap_or_default() {
            "halfvec" => 2.0,
            "bit" => 0.125,
            "sparsevec" => 8.0,
            _ => 4.0,
        }
    }

    /// Rows with a key (live rows less the NULL fraction).
    fn indexed_rows(&self) -> f64 {
        self.live_rows.max(0) as f64 * (1.0 - self.null_frac.unwrap_or(0.0))
    }

    /// The memory a build wants in `maintenance_work_mem` to stay fast, for HNSW and
    /// IVFFlat: HNSW keeps the graph in memory, each element its vector (dimensions ×
    /// bytes per dimension), its neighbour lists (2 × `m` on layer 0, 8 bytes each: a
    /// 6-byte tid and padding) and about 64 bytes of header; IVFFlat keeps its k-means
    /// sample (50 rows per list) and the centers. `None` for other methods or unknown dimensions.
    pub fn build_memory_estimate(&self) -> Option<i64> {
        let dims = f64::from(self.dimensions?);
        let per_vector = dims * self.bytes_per_dimension();
        let rows = self.indexed_rows();
        let bytes = match self.method.as_str() {
            "hnsw" => rows * (per_vector + 2.0 * self.option("m")? as f64 * 8.0 + 64.0),
            "ivfflat" => {
                let lists = self.option("lists")? as f64;
                rows.min(lists * 50.0) * per_vector + lists * dims * 4.0
            }
            _ => return None,
        };
        Some(bytes.ceil() as i64)
    }
}

/// pgvector's starting point for IVFFlat `lists`: `rows / 1000` up to 1M rows, `sqrt(rows)` above (at least 1).
pub fn recommended_lists(rows: i64) -> i64 {
    let rows = rows.max(0);
    let lists = if rows <= 1_000_000 { rows / 1000 } else { (rows as f64).sqrt().round() as i64 };
    lists.max(1)
}

/// Median and 95th percentile of latencies in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Latency {
    /// p50.
    pub p50_ms: f64,
    /// p95.
    pub p95_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `ms` (any order); zeros when empty.
    pub fn of(ms: &[f64]) -> Latency {
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        let at =
            |p: f64| if v.is_empty() { 0.0 } else { v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1] };
        Latency { p50_ms: at(0.5), p95_ms: at(0.95) }
    }
}

/// Recall@k of approximate answers against the exact ones, from the distances of the
/// rows each returned: per query, the approximate rows at most as far as the exact k-th
/// neighbour (so a tie, such as a duplicate vector, counts as found), out of the exact
/// answer's size; averaged over queries (1 when there is no query).
pub fn recall_at_k(approx: &[Vec<f64>], exact: &[Vec<f64>]) -> f64 {
    let per: Vec<f64> = exact
        .iter()
        .zip(approx)
        .filter(|(e, _)| !e.is_empty())
        .map(|(e, a)| {
            let kth = e.iter().copied().fold(f64::MIN, f64::max);
            a.iter().filter(|d| **d <= kth).count().min(e.len()) as f64 / e.len() as f64
        })
        .collect();
    if per.is_empty() { 1.0 } else { per.iter().sum::<f64>() / per.len() as f64 }
}

/// The values tried to reach the target: doubling from `current` up to `ceiling` (which
/// is tried last when doubling jumps over it).
pub fn search_values(current: i64, ceiling: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut v = current.max(1);
    while v < ceiling {
        v = (v * 2).min(ceiling);
        out.push(v);
    }
    out
}

/// Recall of one vector index, measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecallMeasurement {
    /// The index, quoted.
    pub index: String,
    /// `hnsw.ef_search` or `ivfflat.probes`.
    pub parameter: String,
    /// Its value in the measuring session (the server's).
    pub value: i64,
    /// k.
    pub k: u32,
    /// Queries run (stored vectors sampled).
    pub queries: u32,
    /// Recall@k at `value`.
    pub recall: f64,
    /// Latency of the searches through the index.
    pub index_latency: Latency,
    /// Latency of the exact searches.
    pub exact_latency: Latency,
    /// The smallest value tried that reaches the target (`value` itself when it does);
    /// `None` when none up to the ceiling does.
    pub needed: Option<i64>,
    /// Each value tried above `value`, with its recall.
    pub tried: Vec<(i64, f64)>,
}

/// The report item of an inventoried index (`{"step": "index_inventory", ...}`).
pub(crate) fn inventory_item(ix: &IndexInfo) -> serde_json::Value {
    let since = ix.since_build();
    let mut item = serde_json::json!({"step": "index_inventory", "index": ix.qualified(), "table": ix.qualified_table(),
        "method": ix.method, "bytes": ix.bytes, "estimated": ix.estimated, "valid": ix.valid,
        "options": ix.options, "opclass": ix.opclass, "key": ix.key});
    if !ix.is_known() {
        item["note"] = "unknown access method: listed and left alone".into();
        return item;
    }
    for name in ["m", "ef_construction", "lists"] {
        if let Some(v) = ix.option(name).filter(|_| ix.is_vector()) {
            item[name] = v.into();
        }
    }
    if let Some(f) = ix.fastupdate() {
        item["fastupdate"] = f.into();
    }
    if ix.is_vector() {
        item["distance"] = ix.distance().into();
        item["dimensions"] = ix.dimensions.into();
        item["null_frac"] = ix.null_frac.into();
        item["memory_estimate_bytes"] = ix.build_memory_estimate().into();
    }
    item["live_rows"] = ix.live_rows.into();
    item["since_build"] = serde_json::json!({"built_at": since.built_at, "inserted": since.counters.inserted,
        "updated": since.counters.updated, "deleted": since.counters.deleted, "changed_share": since.changed_share});
    item
}

/// The report item of a recall measurement (`{"step": "recall", ...}`), with the previous
/// recall recorded, if any.
pub(crate) fn recall_item(m: &RecallMeasurement, previous: Option<f64>) -> serde_json::Value {
    let mut item = serde_json::json!(m);
    item["step"] = "recall".into();
    item["recall_previous"] = previous.into();
    item
}

/// The finding for a measured recall below the target (warning) or the critical threshold.
pub fn recall_finding(m: &RecallMeasurement, s: &VectorSettings, rebuild: &str) -> Option<Finding> {
    if m.recall >= s.target {
        return None;
    }
    let severity = if m.recall < s.critical { Severity::Critical } else { Severity::Medium };
    let message = format!(
        "recall@{} {:.3} at {} = {} over {} queries (target {:.2})",
        m.k, m.recall, m.parameter, m.value, m.queries, s.target
    );
    let action = match m.needed {
        Some(v) => {
            let reached = m.tried.iter().find(|t| t.0 == v).map_or(m.recall, |t| t.1);
            format!(
                "raise {p} to {v} (recall {reached:.3}): SET {p} = {v} in the searching sessions, or \
                 ALTER DATABASE ... SET {p} = {v}",
                p = m.parameter
            )
        }
        None => format!(
            "no {} up to {} reaches the target: rebuild the index ({rebuild}), or rebuild it with higher \
             build parameters (m, ef_construction / lists)",
            m.parameter,
            m.tried.last().map_or(m.value, |t| t.0)
        ),
    };
    let mut f = Finding::new("vector_recall", severity, m.index.clone(), message, "");
    f.action = action;
    Some(f)
}

/// Why a vector index should be rebuilt now, if it should: deleted-or-updated share
/// since the last build over `rebuild_changed_share`; recall below target with no search
/// parameter up to the ceiling reaching it; IVFFlat `lists` off pgvector's recommendation
/// by 2x or more, or the table grown 2x or more since the recorded build.
pub fn rebuild_reason(ix: &IndexInfo, recall: Option<&RecallMeasurement>, s: &VectorSettings) -> Option<String> {
    if !ix.is_vector() || !ix.valid {
        return None;
    }
    let since = ix.since_build();
    if since.changed_share >= s.rebuild_changed_share && since.counters.updated + since.counters.deleted > 0 {
        let when = if since.built_at.is_some() { "the last build" } else { "the statistics reset (no build recorded)" };
        return Some(format!(
            "{:.0}% of the rows deleted or updated since {when} ({} deleted, {} updated; threshold {:.0}%): \
             {} keeps them in its graph until VACUUM repairs it, and pgvector advises reindexing first",
            since.changed_share * 100.0,
            since.counters.deleted,
            since.counters.updated,
            s.rebuild_changed_share * 100.0,
            ix.method.to_uppercase()
        ));
    }
    if let Some(m) = recall.filter(|m| m.recall < s.target && m.needed.is_none()) {
        return Some(format!(
            "recall@{} {:.3} below the target {:.2}, and no {} up to {} reaches it",
            m.k,
            m.recall,
            s.target,
            m.parameter,
            m.tried.last().map_or(m.value, |t| t.0)
        ));
    }
    if ix.method == "ivfflat" {
        let rows = ix.indexed_rows() as i64;
        let lists = ix.option("lists").unwrap_or(100);
        let want = recommended_lists(rows);
        if lists >= want * 2 || lists * 2 <= want {
            return Some(format!(
                "lists = {lists} for {rows} rows: pgvector recommends about {want} (rows / 1000 up to 1M rows, sqrt(rows) above)"
            ));
        }
        if let Some(b) = ix.build.filter(|b| b.rows > 0 && ix.live_rows >= b.rows * 2) {
            return Some(format!(
                "the table grew from {} to {} rows since the build: the list centers no longer fit the data",
                b.rows, ix.live_rows
            ));
        }
    }
    None
}

/// `maintenance_work_mem` for a build: the estimate plus a quarter, at least `current`,
/// at most `cap`; and whether the estimate is over the cap.
pub fn build_memory(estimate: Option<i64>, current: i64, cap: i64) -> (i64, bool) {
    match estimate {
        Some(e) => ((e + e / 4).max(current).min(cap.max(current)), e > cap),
        None => (current, false),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hnsw(name: &str, live: i64, counters: TupleCounters) -> IndexInfo {
        IndexInfo {
            oid: 1,
            schema: "public".into(),
            name: name.into(),
            table: "items".into(),
            table_oid: 2,
            method: "hnsw".into(),
            bytes: 8 << 20,
            estimated: false,
            options: vec!["m=32".into(), "ef_construction=128".into()],
            opclass: Some("vector_cosine_ops".into()),
            operator: Some("<=>".into()),
            key: "embedding".into(),
            key_type: "vector(384)".into(),
            key_is_column: true,
            dimensions: Some(384),
            null_frac: Some(0.5),
            predicate: None,
            valid: true,
            live_rows: live,
            counters,
            build: None,
        }
    }

    fn counters(inserted: i64, updated: i64, deleted: i64) -> TupleCounters {
        TupleCounters { inserted, updated, deleted }
    }

    fn settings() -> VectorSettings {
        VectorSettings::default()
    }

    #[test]
    fn options_distance_and_defaults_come_from_the_catalog_strings() {
        let ix = hnsw("i", 10, counters(10, 0, 0));
        assert_eq!((ix.option("m"), ix.option("ef_construction"), ix.option("lists")), (Some(32), Some(128), None));
        assert_eq!(ix.distance(), Some("cosine"));
        let mut iv = ix.clone();
        iv.method = "ivfflat".into();
        iv.options = vec![];
        iv.opclass = Some("halfvec_ip_ops".into());
        assert_eq!((iv.option("lists"), iv.distance()), (Some(100), Some("ip")));
        let mut gin = ix.clone();
        gin.method = "gin".into();
        gin.options = vec!["fastupdate=off".into()];
        assert_eq!((gin.fastupdate(), ix.fastupdate()), (Some(false), None));
        gin.method = "rum".into();
        assert!(!gin.is_known() && !gin.is_vector());
    }

    #[test]
    fn changes_count_from_the_recorded_build_or_the_statistics_reset() {
        let mut ix = hnsw("i", 500, counters(1000, 0, 500));
        let s = ix.since_build();
        assert_eq!((s.built_at, s.changed_share), (None, 0.5));
        ix.build = Some(BuildRecord { at: 10.0, counters: counters(1000, 0, 500), rows: 500, bytes: 1 });
        ix.counters = counters(1100, 50, 550);
        let s = ix.since_build();
        assert_eq!((s.counters, s.built_at), (counters(100, 50, 50), Some(10.0)));
        assert!((s.changed_share - 0.2).abs() < 1e-9);
        ix.counters = counters(10, 0, 0); // statistics were reset since
        assert_eq!(ix.since_build().built_at, None);
    }

    #[test]
    fn recall_latency_and_search_values() {
        let exact = vec![vec![0.1, 0.2], vec![0.3, 0.4], vec![], vec![0.0, 0.0]];
        let approx = vec![vec![0.1, 0.5], vec![0.3, 0.4], vec![], vec![0.0, 0.0]];
        // The third query has no answer; the fourth found other rows at the same distance (duplicates).
        assert_eq!(recall_at_k(&approx, &exact), 2.5 / 3.0);
        assert_eq!(recall_at_k(&[], &[]), 1.0);
        let l = Latency::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((l.p50_ms, l.p95_ms), (3.0, 5.0));
        assert_eq!(search_values(40, 400), vec![80, 160, 320, 400]);
        assert_eq!(search_values(1, 4), vec![2, 4]);
        assert!(search_values(400, 400).is_empty());
    }

    #[test]
    fn lists_follow_pgvector_and_memory_is_capped_with_a_warning() {
        assert_eq!((recommended_lists(50_000), recommended_lists(500), recommended_lists(4_000_000)), (50, 1, 2000));
        let ix = hnsw("i", 1000, counters(1000, 0, 0));
        // 500 rows with a vector × (384 × 4 + 2 × 32 × 8 + 64)
        assert_eq!(ix.build_memory_estimate(), Some(500 * (1536 + 512 + 64)));
        assert_eq!(build_memory(Some(1000), 64, 10_000), (1250, false));
        assert_eq!(build_memory(Some(1000), 64, 500), (500, true));
        assert_eq!(build_memory(Some(10), 64, 500), (64, false));
        assert_eq!(build_memory(None, 64, 500), (64, false));
    }

    #[test]
    fn rebuilds_are_planned_for_churn_recall_and_lists_drift() {
        let s = settings();
        let churned = hnsw("i", 500, counters(1000, 0, 500));
        assert!(rebuild_reason(&churned, None, &s).unwrap().contains("50% of the rows deleted or updated"));
        let calm = hnsw("i", 1000, counters(1000, 10, 10));
        assert_eq!(rebuild_reason(&calm, None, &s), None);
        let mut m = RecallMeasurement {
            index: calm.qualified(),
            parameter: "hnsw.ef_search".into(),
            value: 40,
            k: 10,
            queries: 50,
            recall: 0.5,
            index_latency: Latency::default(),
            exact_latency: Latency::default(),
            needed: None,
            tried: vec![(400, 0.9)],
        };
        assert!(rebuild_reason(&calm, Some(&m), &s).unwrap().contains("no hnsw.ef_search up to 400"));
        let f = recall_finding(&m, &s, "REINDEX").unwrap();
        assert_eq!(f.severity, Severity::Critical);
        m.needed = Some(160);
        m.recall = 0.9;
        m.tried = vec![(80, 0.93), (160, 0.96)];
        assert_eq!(rebuild_reason(&calm, Some(&m), &s), None, "raising ef_search is enough");
        let f = recall_finding(&m, &s, "REINDEX").unwrap();
        assert_eq!(f.severity, Severity::Medium);
        assert!(f.action.contains("SET hnsw.ef_search = 160") && f.action.contains("0.960"), "{}", f.action);
        let mut iv = calm;
        iv.method = "ivfflat".into();
        iv.options = vec!["lists=100".into()];
        iv.null_frac = None;
        iv.live_rows = 50_000;
        iv.counters = counters(50_000, 0, 0);
        assert!(rebuild_reason(&iv, None, &s).unwrap().contains("lists = 100 for 50000 rows"));
        iv.options = vec!["lists=50".into()];
        assert_eq!(rebuild_reason(&iv, None, &s), None);
        iv.build = Some(BuildRecord { at: 0.0, counters: counters(20_000, 0, 0), rows: 20_000, bytes: 1 });
        assert!(rebuild_reason(&iv, None, &s).unwrap().contains("grew from 20000 to 50000"));
    }
}
