//! Capacity Planning's settings: `[capacity]` and its validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{duration, name};
use crate::{Config, Error, parse_size};

/// Capacity planning settings (`[capacity]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapacityConfig {
    /// The tool's own schema for size snapshots (created on first use).
    pub schema: String,
    /// The disk budget of the database (`100GB`); none: no "days until full".
    pub disk_budget: Option<String>,
    /// How many of the largest tables and of the largest indexes are recorded.
    pub top: usize,
    /// The history the growth is fitted over (`30d`).
    pub window: String,
    /// Fewer days than this until the budget is a warning.
    pub warn_days: u32,
    /// Snapshots older than this are deleted (`400d`).
    pub keep: String,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            schema: "maint".into(),
            disk_budget: None,
            top: 10,
            window: "30d".into(),
            warn_days: 30,
            keep: "400d".into(),
        }
    }
}

/// Validated [`CapacityConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacitySettings {
    /// Schema of the snapshots table.
    pub schema: String,
    /// Disk budget in bytes.
    pub disk_budget: Option<i64>,
    /// Relations of each kind recorded.
    pub top: usize,
    /// Fit window.
    pub window: Duration,
    /// Warning horizon in days.
    pub warn_days: u32,
    /// Snapshot retention.
    pub keep: Duration,
}

impl Default for CapacitySettings {
    fn default() -> Self {
        Config::default().validate().expect("the default configuration is valid").capacity
    }
}

impl CapacityConfig {
    /// Checks `[capacity]`; the error names the field.
    pub(crate) fn validate(&self) -> Result<CapacitySettings, Error> {
        let c = self;
        if c.top == 0 || c.top > 1000 {
            return Err(Error::invalid("capacity.top", format!("{} is not between 1 and 1000", c.top)));
        }
        Ok(CapacitySettings {
            schema: name("capacity.schema", &c.schema)?,
            disk_budget: match &c.disk_budget {
                Some(b) => Some(parse_size(b).map_err(|m| Error::invalid("capacity.disk_budget", m))?),
                None => None,
            },
            top: c.top,
            window: duration("capacity.window", &c.window)?,
            warn_days: c.warn_days,
            keep: duration("capacity.keep", &c.keep)?,
        })
    }
}
