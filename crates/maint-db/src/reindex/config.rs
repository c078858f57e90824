//! Index Rebuild's settings: `[bloat]` (estimation and measurement) and `[reindex]` (when
//! an index is rebuilt), and their validation.

use serde::{Deserialize, Serialize};

use crate::Error;

/// Bloat settings (`[bloat]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BloatConfig {
    /// `CREATE EXTENSION IF NOT EXISTS pgstattuple` when it is missing (off: only use it
    /// when an administrator installed it).
    pub create_extension: bool,
    /// How many of the largest estimated candidates are measured exactly.
    pub measure_top: usize,
}

impl Default for BloatConfig {
    fn default() -> Self {
        BloatConfig { create_extension: false, measure_top: 20 }
    }
}

/// When an index is rebuilt (`[reindex]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReindexConfig {
    /// Wasted bytes an index must have (measured, or estimated when unmeasured).
    pub min_bloat_bytes: i64,
    /// Measured `avg_leaf_density` (percent) below which a bloated index is rebuilt.
    pub max_leaf_density: f64,
    /// Without a measurement: the estimated wasted fraction of the index needed.
    pub min_bloat_ratio: f64,
}

impl Default for ReindexConfig {
    fn default() -> Self {
        ReindexConfig { min_bloat_bytes: 10 << 20, max_leaf_density: 70.0, min_bloat_ratio: 0.3 }
    }
}

impl BloatConfig {
    /// Checks `[bloat]`; the error names the field.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.measure_top > 10_000 {
            return Err(Error::invalid("bloat.measure_top", format!("{} is more than 10000", self.measure_top)));
        }
        Ok(())
    }
}

impl ReindexConfig {
    /// Checks `[reindex]`; the error names the field.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let r = self;
        if r.min_bloat_bytes < 0 {
            return Err(Error::invalid("reindex.min_bloat_bytes", "must not be negative"));
        }
        if !(0.0..=100.0).contains(&r.max_leaf_density) {
            return Err(Error::invalid("reindex.max_leaf_density", "must be a percentage between 0 and 100"));
        }
        if !(0.0..=1.0).contains(&r.min_bloat_ratio) {
            return Err(Error::invalid("reindex.min_bloat_ratio", "must be a fraction between 0 and 1"));
        }
        Ok(())
    }
}

/// Vector (pgvector) and text indexes (`[vector]`): recall measurement and rebuilds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorConfig {
    /// Measure the recall of every HNSW and IVFFlat index (performance analysis, index rebuild).
    pub recall: bool,
    /// Stored vectors sampled as queries.
    pub sample: u32,
    /// Neighbours searched (recall@k).
    pub k: u32,
    /// Recall below this is a warning finding.
    pub target: f64,
    /// Recall below this is a critical finding.
    pub critical: f64,
    /// Highest `hnsw.ef_search` tried to reach the target (pgvector allows up to 1000);
    /// `ivfflat.probes` goes up to the index's `lists`.
    pub ef_search_ceiling: i64,
    /// `statement_timeout` of the read-only recall transaction (`1m`).
    pub recall_timeout: String,
    /// Rebuild vector indexes in the index rebuild when a rule says so.
    pub rebuild: bool,
    /// Share of the rows deleted or updated since the last build that plans a rebuild.
    pub rebuild_changed_share: f64,
    /// Upper bound of the `maintenance_work_mem` sized for a build (`1GB`).
    pub maintenance_work_mem_cap: String,
    /// `max_parallel_maintenance_workers` of a build (the server's when unset).
    pub parallel_workers: Option<u32>,
    /// How often a build's progress is logged (`5s`).
    pub progress_interval: String,
}

impl Default for VectorConfig {
    fn default() -> Self {
        VectorConfig {
            recall: true,
            sample: 50,
            k: 10,
            target: 0.95,
            critical: 0.8,
            ef_search_ceiling: 400,
            recall_timeout: "1m".into(),
            rebuild: true,
            rebuild_changed_share: 0.2,
            maintenance_work_mem_cap: "1GB".into(),
            parallel_workers: None,
            progress_interval: "5s".into(),
        }
    }
}

/// Validated [`VectorConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSettings {
    /// Measure recall.
    pub recall: bool,
    /// Queries sampled (1 to 10,000).
    pub sample: u32,
    /// k (1 to 1,000).
    pub k: u32,
    /// Warning threshold.
    pub target: f64,
    /// Critical threshold (at most `target`).
    pub critical: f64,
    /// `hnsw.ef_search` ceiling.
    pub ef_search_ceiling: i64,
    /// Recall transaction timeout.
    pub recall_timeout: std::time::Duration,
    /// Rebuild vector indexes.
    pub rebuild: bool,
    /// Changed share threshold.
    pub rebuild_changed_share: f64,
    /// `maintenance_work_mem` cap in bytes.
    pub maintenance_work_mem_cap: i64,
    /// Parallel maintenance workers.
    pub parallel_workers: Option<u32>,
    /// Progress log interval.
    pub progress_interval: std::time::Duration,
}

impl Default for VectorSettings {
    fn default() -> Self {
        crate::Config::default().validate().expect("the default configuration is valid").vector
    }
}

impl VectorConfig {
    /// Checks `[vector]`; the error names the field.
    pub(crate) fn validate(&self) -> Result<VectorSettings, Error> {
        let v = self;
        if !(1..=10_000).contains(&v.sample) {
            return Err(Error::invalid("vector.sample", format!("{} is not between 1 and 10000", v.sample)));
        }
        if !(1..=1000).contains(&v.k) {
            return Err(Error::invalid("vector.k", format!("{} is not between 1 and 1000", v.k)));
        }
        for (field, x) in [
            ("vector.target", v.target),
            ("vector.critical", v.critical),
            ("vector.rebuild_changed_share", v.rebuild_changed_share),
        ] {
            if !(0.0..=1.0).contains(&x) {
                return Err(Error::invalid(field, format!("{x} is not a fraction between 0 and 1")));
            }
        }
        if v.critical > v.target {
            return Err(Error::invalid(
                "vector.critical",
                format!("{} is above vector.target {}", v.critical, v.target),
            ));
        }
        if !(1..=1000).contains(&v.ef_search_ceiling) {
            return Err(Error::invalid(
                "vector.ef_search_ceiling",
                format!("{} is not between 1 and 1000 (pgvector's range)", v.ef_search_ceiling),
            ));
        }
        let cap = crate::parse_size(&v.maintenance_work_mem_cap)
            .map_err(|m| Error::invalid("vector.maintenance_work_mem_cap", m))?;
        if cap < 1 << 20 {
            return Err(Error::invalid("vector.maintenance_work_mem_cap", "must be at least 1MB"));
        }
        if v.parallel_workers.is_some_and(|w| w > 1024) {
            return Err(Error::invalid("vector.parallel_workers", "must be at most 1024"));
        }
        Ok(VectorSettings {
            recall: v.recall,
            sample: v.sample,
            k: v.k,
            target: v.target,
            critical: v.critical,
            ef_search_ceiling: v.ef_search_ceiling,
            recall_timeout: crate::config::duration("vector.recall_timeout", &v.recall_timeout)?,
            rebuild: v.rebuild,
            rebuild_changed_share: v.rebuild_changed_share,
            maintenance_work_mem_cap: cap,
            parallel_workers: v.parallel_workers,
            progress_interval: crate::config::duration("vector.progress_interval", &v.progress_interval)?,
        })
    }
}
