//! Index Rebuild: bloat estimates and measurements, and the pure rebuild planner. No I/O here.

use std::cmp::Reverse;

use serde::Serialize;

use crate::{ReindexConfig, qualified};

/// A table or an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelKind {
    /// An ordinary table.
    Table,
    /// A btree index.
    Index,
}

/// The catalog estimate of one relation's bloat (from `pg_class` and `pg_stats`, against
/// the size now).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BloatEstimate {
    /// Table or index.
    pub kind: RelKind,
    /// `pg_class.oid` of the relation.
    pub oid: u32,
    /// Schema.
    pub schema: String,
    /// Name of the relation.
    pub name: String,
    /// The table (the relation itself for a table).
    pub table: String,
    /// The table's oid.
    pub table_oid: u32,
    /// Size now (`pg_relation_size`; from `relpages` when the relation was locked).
    pub bytes: i64,
    /// Estimated wasted bytes: size minus the size the rows would need.
    pub bloat_bytes: i64,
    /// For an index: `REINDEX INDEX CONCURRENTLY` can rebuild it (a btree, not an
    /// exclusion constraint, no index build running on its table). Always false for tables.
    pub reindexable: bool,
}

impl BloatEstimate {
    /// `schema.name`, quoted.
    pub fn qualified(&self) -> String {
        qualified(&self.schema, &self.name)
    }

    /// Estimated wasted fraction of the relation.
    pub fn ratio(&self) -> f64 {
        if self.bytes <= 0 { 0.0 } else { self.bloat_bytes as f64 / self.bytes as f64 }
    }
}

/// An exact figure from `pgstattuple_approx` (tables) or `pgstatindex` (indexes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BloatMeasurement {
    /// Size of the relation as measured.
    pub bytes: i64,
    /// Wasted bytes: free space plus dead tuples (tables); the leaf space above
    /// what a freshly built index at fillfactor 90 would need, plus deleted pages (indexes).
    pub bloat_bytes: i64,
    /// `avg_leaf_density` in percent (indexes with at least one leaf page).
    pub leaf_density: Option<f64>,
}

/// An estimate with its measurement, when one was taken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BloatEntry {
    /// The catalog estimate.
    pub estimate: BloatEstimate,
    /// The exact figure, when `pgstattuple` was available and the relation was a candidate.
    pub measured: Option<BloatMeasurement>,
}

/// The candidates worth measuring: the `top` relations with the most estimated wasted
/// bytes (more than zero), most first, ties by name.
pub fn bloat_candidates(estimates: &[BloatEstimate], top: usize) -> Vec<BloatEstimate> {
    let mut c: Vec<BloatEstimate> = estimates.iter().filter(|e| e.bloat_bytes > 0).cloned().collect();
    c.sort_by_key(|e| (Reverse(e.bloat_bytes), e.schema.clone(), e.name.clone()));
    c.truncate(top);
    c
}

/// Bytes a measured index wastes: leaf pages beyond what their live entries would need
/// at fillfactor 90, plus deleted pages.
pub fn index_waste(block_size: i64, leaf_pages: i64, deleted_pages: i64, leaf_density: f64) -> i64 {
    if leaf_pages <= 0 || !leaf_density.is_finite() {
        return deleted_pages.max(0) * block_size;
    }
    let needed = (leaf_pages as f64 * leaf_density / 90.0).ceil() as i64;
    ((leaf_pages - needed).max(0) + deleted_pages.max(0)) * block_size
}

/// Why an index is rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReindexJob {
    /// The index.
    pub index: BloatEstimate,
    /// Wasted bytes the decision used (measured when available).
    pub bloat_bytes: i64,
    /// Measured leaf density, when measured.
    pub leaf_density: Option<f64>,
    /// `measured` or `estimated`.
    pub basis: &'static str,
}

/// Whether an index is over the thresholds: measured, wasted bytes at least
/// `min_bloat_bytes` and leaf density below `max_leaf_density`; unmeasured, estimated
/// wasted bytes at least `min_bloat_bytes` and at least `min_bloat_ratio` of the index.
pub fn needs_rebuild(entry: &BloatEntry, t: &ReindexConfig) -> Option<ReindexJob> {
    let e = &entry.estimate;
    if e.kind != RelKind::Index || !e.reindexable {
        return None;
    }
    let job = |bloat_bytes, leaf_density, basis| ReindexJob { index: e.clone(), bloat_bytes, leaf_density, basis };
    match &entry.measured {
        Some(m) => {
            let density = m.leaf_density?;
            (m.bloat_bytes >= t.min_bloat_bytes && density < t.max_leaf_density)
                .then(|| job(m.bloat_bytes, Some(density), "measured"))
        }
        None => (e.bloat_bytes >= t.min_bloat_bytes && e.ratio() >= t.min_bloat_ratio)
            .then(|| job(e.bloat_bytes, None, "estimated")),
    }
}

/// The indexes to rebuild, grouped by table (so a table sees one rebuild at a time, one
/// after the other) and within a table most wasted bytes first.
pub fn plan_reindex(entries: &[BloatEntry], t: &ReindexConfig) -> Vec<ReindexJob> {
    let mut jobs: Vec<ReindexJob> = entries.iter().filter_map(|e| needs_rebuild(e, t)).collect();
    jobs.sort_by_key(|j| (j.index.table_oid, Reverse(j.bloat_bytes), j.index.name.clone()));
    jobs
}

/// The rebuild statement; every identifier quoted.
pub fn reindex_sql(index: &BloatEstimate) -> String {
    format!("REINDEX INDEX CONCURRENTLY {}", index.qualified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(name: &str, table_oid: u32, bytes: i64, bloat: i64) -> BloatEstimate {
        BloatEstimate {
            kind: RelKind::Index,
            oid: 1,
            schema: "public".into(),
            name: name.into(),
            table: "t".into(),
            table_oid,
            bytes,
            bloat_bytes: bloat,
            reindexable: true,
        }
    }

    fn measured(bytes: i64, bloat: i64, density: Option<f64>) -> Option<BloatMeasurement> {
        Some(BloatMeasurement { bytes, bloat_bytes: bloat, leaf_density: density })
    }

    const MB: i64 = 1 << 20;

    #[test]
    fn candidates_are_the_most_wasteful_first_and_never_the_clean_ones() {
        let all = vec![index("a", 1, 10, 0), index("b", 1, 10 * MB, 2 * MB), index("c", 1, 10 * MB, 5 * MB)];
        let c = bloat_candidates(&all, 5);
        assert_eq!(c.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["c", "b"]);
        assert_eq!(bloat_candidates(&all, 1).len(), 1);
    }

    #[test]
    fn a_measurement_overrides_the_estimate() {
        let t = ReindexConfig::default();
        // The estimate says bloated; the measurement says dense: not rebuilt.
        let dense =
            BloatEntry { estimate: index("i", 1, 100 * MB, 60 * MB), measured: measured(100 * MB, MB, Some(89.0)) };
        assert_eq!(needs_rebuild(&dense, &t), None);
        // The estimate says fine; the measurement finds sparse leaves: rebuilt.
        let sparse =
            BloatEntry { estimate: index("i", 1, 100 * MB, 0), measured: measured(100 * MB, 50 * MB, Some(40.0)) };
        let job = needs_rebuild(&sparse, &t).expect("over both thresholds");
        assert_eq!((job.basis, job.bloat_bytes, job.leaf_density), ("measured", 50 * MB, Some(40.0)));
        // Sparse but small: under min_bloat_bytes.
        let small = BloatEntry { estimate: index("i", 1, MB, 0), measured: measured(MB, MB / 2, Some(40.0)) };
        assert_eq!(needs_rebuild(&small, &t), None);
        // An empty index has no leaf density: never rebuilt on a measurement.
        let empty = BloatEntry { estimate: index("i", 1, 100 * MB, 60 * MB), measured: measured(8192, 0, None) };
        assert_eq!(needs_rebuild(&empty, &t), None);
    }

    #[test]
    fn without_a_measurement_both_bytes_and_ratio_must_be_over() {
        let t = ReindexConfig::default();
        let e = |bytes, bloat| BloatEntry { estimate: index("i", 1, bytes, bloat), measured: None };
        assert_eq!(needs_rebuild(&e(100 * MB, 40 * MB), &t).map(|j| j.basis), Some("estimated"));
        assert_eq!(needs_rebuild(&e(1000 * MB, 20 * MB), &t), None, "2% is not bloat");
        assert_eq!(needs_rebuild(&e(10 * MB, 5 * MB), &t), None, "5 MB is under 10 MB");
    }

    #[test]
    fn tables_and_unreindexable_indexes_are_never_planned() {
        let t = ReindexConfig { min_bloat_bytes: 0, ..ReindexConfig::default() };
        let mut table = index("t", 1, 100 * MB, 90 * MB);
        table.kind = RelKind::Table;
        let mut excl = index("excl", 1, 100 * MB, 90 * MB);
        excl.reindexable = false;
        let entries: Vec<BloatEntry> =
            [table, excl].into_iter().map(|estimate| BloatEntry { estimate, measured: None }).collect();
        assert!(plan_reindex(&entries, &t).is_empty());
    }

    #[test]
    fn the_plan_groups_by_table_most_wasteful_first() {
        let t = ReindexConfig { min_bloat_bytes: MB, ..ReindexConfig::default() };
        let entries: Vec<BloatEntry> = [
            index("t2_small", 2, 10 * MB, 4 * MB),
            index("t1_a", 1, 10 * MB, 5 * MB),
            index("t2_big", 2, 10 * MB, 8 * MB),
            index("t1_b", 1, 10 * MB, 9 * MB),
        ]
        .into_iter()
        .map(|estimate| BloatEntry { estimate, measured: None })
        .collect();
        let names: Vec<String> = plan_reindex(&entries, &t).into_iter().map(|j| j.index.name).collect();
        assert_eq!(names, ["t1_b", "t1_a", "t2_big", "t2_small"]);
    }

    #[test]
    fn index_waste_counts_sparse_leaves_and_deleted_pages() {
        assert_eq!(index_waste(8192, 100, 0, 90.0), 0);
        assert_eq!(index_waste(8192, 100, 0, 45.0), 50 * 8192);
        assert_eq!(index_waste(8192, 100, 3, 45.0), 53 * 8192);
        assert_eq!(index_waste(8192, 0, 2, f64::NAN), 2 * 8192);
    }

    #[test]
    fn reindex_sql_quotes_hostile_names() {
        let mut i = index("ix\"; DROP TABLE t; --", 1, 0, 0);
        i.schema = "my schema".into();
        assert_eq!(reindex_sql(&i), r#"REINDEX INDEX CONCURRENTLY "my schema"."ix""; DROP TABLE t; --""#);
    }
}
