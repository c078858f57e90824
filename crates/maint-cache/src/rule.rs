use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// How a hash field stores its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldFormat {
    /// Unix time in seconds (`1732406400`, fractions allowed).
    UnixSeconds,
    /// An ISO-8601 / RFC 3339 instant (`2026-11-24T02:00:00Z`).
    Iso8601,
}

/// When a key is eligible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A hash whose `field` holds a time older than `older_than`.
    FieldOlderThan {
        /// The hash field (`last_access`).
        field: String,
        /// How the time is written.
        format: FieldFormat,
        /// The age above which the key is eligible.
        older_than: Duration,
    },
    /// A key without a TTL, not read or written for longer than `idle_longer_than`
    /// (`OBJECT IDLETIME`; not available under an LFU eviction policy).
    IdleWithoutTtl {
        /// The idle time above which the key is eligible.
        idle_longer_than: Duration,
    },
    /// A key using more than `bytes` (`MEMORY USAGE`).
    LargerThan {
        /// The size above which the key is eligible.
        bytes: u64,
    },
}

/// What to do with an eligible key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `UNLINK` it (freed in the background).
    Delete,
    /// Give it this TTL, only if it has none.
    SetTtl(Duration),
    /// List it, touch nothing.
    Report,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Delete => f.write_str("delete"),
            Action::SetTtl(d) => write!(f, "set_ttl {}", format_duration(*d)),
            Action::Report => f.write_str("report"),
        }
    }
}

/// A validated cleanup rule: keys matching `pattern` for which `condition` holds get `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// A name for reports (`sessions`).
    pub name: String,
    /// A `SCAN MATCH` glob (`session:*`).
    pub pattern: String,
    /// When a key is eligible.
    pub condition: Condition,
    /// What happens to it.
    pub action: Action,
}

impl Rule {
    /// Sessions: `session:*` whose `last_access` (unix seconds) is older than 24 h are deleted.
    pub fn sessions() -> Rule {
        Rule {
            name: "sessions".into(),
            pattern: "session:*".into(),
            condition: Condition::FieldOlderThan {
                field: "last_access".into(),
                format: FieldFormat::UnixSeconds,
                older_than: Duration::from_secs(24 * 3600),
            },
            action: Action::Delete,
        }
    }

    /// VERITAS results: `veritas:*` whose `created_at` (ISO-8601) is older than 7 days are deleted.
    pub fn veritas_results() -> Rule {
        Rule {
            name: "veritas-results".into(),
            pattern: "veritas:*".into(),
            condition: Condition::FieldOlderThan {
                field: "created_at".into(),
                format: FieldFormat::Iso8601,
                older_than: Duration::from_secs(7 * 24 * 3600),
            },
            action: Action::Delete,
        }
    }
}

/// Parses a rule's duration in maint-core's grammar ([`maint_core::parse_duration`]:
/// `90s`, `30min`, `24h`, `7 days`, `2w`, `1h30m`), never zero: a rule on keys older than
/// nothing would match every key.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = maint_core::parse_duration(text)?;
    if d.is_zero() {
        return Err(format!("{text:?} is zero"));
    }
    Ok(d)
}

/// Prints a duration the way [`parse_duration`] reads it (`1day 2h`).
pub fn format_duration(d: Duration) -> String {
    maint_core::Duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped deploy/maint.toml writes `statement_timeout = "30min"`; a cache rule read
    /// the same text as an error. One grammar (maint-core's) for every duration.
    #[test]
    fn a_rule_reads_durations_as_every_section_does() {
        assert_eq!(parse_duration("30min"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("3 days"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 7d "), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("24").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("not a duration"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("0s").unwrap_err().contains("is zero"));
        assert_eq!(format_duration(Duration::from_secs(93_784)), "1day 2h 3m 4s");
        assert_eq!(parse_duration(&format_duration(Duration::from_secs(93_784))), Ok(Duration::from_secs(93_784)));
        assert_eq!(Action::SetTtl(Duration::from_secs(7 * 86_400)).to_string(), "set_ttl 7days");
    }
}
