use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a task does to the service while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// The service is unaffected.
    None,
    /// The service stays up, but some writes may wait (for example an index rebuild).
    ReadOnly,
    /// The service is unavailable for part of the task; only inside a window.
    Downtime,
}

impl Impact {
    /// The name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::ReadOnly => "read_only",
            Impact::Downtime => "downtime",
        }
    }
}

impl fmt::Display for Impact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Impact {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "none" => Ok(Impact::None),
            "read_only" => Ok(Impact::ReadOnly),
            "downtime" => Ok(Impact::Downtime),
            _ => Err(format!("unknown impact {s:?} (expected none, read_only or downtime)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("read-only".parse::<Impact>(), Ok(Impact::ReadOnly));
        assert_eq!("Downtime".parse::<Impact>(), Ok(Impact::Downtime));
        assert!("sometimes".parse::<Impact>().is_err());
        assert_eq!(serde_json::to_string(&Impact::ReadOnly).unwrap(), "\"read_only\"");
        assert!(Impact::Downtime > Impact::ReadOnly);
    }
}
