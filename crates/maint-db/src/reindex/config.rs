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
