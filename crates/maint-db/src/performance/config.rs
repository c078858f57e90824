//! Performance Analysis's settings: the `[analysis]` thresholds and their validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::duration;
use crate::{Config, Error};

/// Thresholds of the health and performance analysis (`[analysis]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    /// An active query running longer than this is reported.
    pub long_running: String,
    /// A session idle in a transaction longer than this is reported.
    pub idle_in_transaction: String,
    /// Used fraction of `max_connections` (minus reserved) that is a warning; 0.95 and up is critical.
    pub connection_saturation: f64,
    /// Buffer cache hit ratio below which a warning is given.
    pub cache_hit_ratio: f64,
    /// Tables with at least this many live rows are checked for sequential-scan load.
    pub seq_scan_min_rows: i64,
    /// WAL retained by a replication slot beyond which it is a warning.
    pub slot_retained_bytes: i64,
    /// Replay lag of a standby beyond which it is a warning.
    pub replication_lag: String,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            long_running: "5m".into(),
            idle_in_transaction: "1m".into(),
            connection_saturation: 0.8,
            cache_hit_ratio: 0.99,
            seq_scan_min_rows: 10_000,
            slot_retained_bytes: 1 << 30,
            replication_lag: "5m".into(),
        }
    }
}

/// Validated [`AnalysisConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSettings {
    /// Active query age threshold.
    pub long_running: Duration,
    /// Idle-in-transaction threshold.
    pub idle_in_transaction: Duration,
    /// Connection use warning fraction.
    pub connection_saturation: f64,
    /// Cache hit ratio warning threshold.
    pub cache_hit_ratio: f64,
    /// Live rows for the seq-scan check.
    pub seq_scan_min_rows: i64,
    /// Slot retained WAL threshold.
    pub slot_retained_bytes: i64,
    /// Replay lag threshold.
    pub replication_lag: Duration,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        Config::default().validate().expect("the default configuration is valid").analysis
    }
}

impl AnalysisConfig {
    /// Checks `[analysis]`; the error names the field.
    pub(crate) fn validate(&self) -> Result<AnalysisSettings, Error> {
        let a = self;
        for (field, v) in [
            ("analysis.connection_saturation", a.connection_saturation),
            ("analysis.cache_hit_ratio", a.cache_hit_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::invalid(field, "must be a fraction between 0 and 1"));
            }
        }
        Ok(AnalysisSettings {
            long_running: duration("analysis.long_running", &a.long_running)?,
            idle_in_transaction: duration("analysis.idle_in_transaction", &a.idle_in_transaction)?,
            connection_saturation: a.connection_saturation,
            cache_hit_ratio: a.cache_hit_ratio,
            seq_scan_min_rows: a.seq_scan_min_rows.max(0),
            slot_retained_bytes: a.slot_retained_bytes.max(0),
            replication_lag: duration("analysis.replication_lag", &a.replication_lag)?,
        })
    }
}
