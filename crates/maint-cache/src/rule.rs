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

/// Parses `90s`, `30m`, `24h`, `7d`, `2w` and sums like `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (expected e.g. 90s, 30m, 24h, 7d)".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(format!("{text:?} is not a duration: unknown unit {c:?} (use s, m, h, d, w)")),
        };
        let n: u64 =
            digits.parse().map_err(|_| format!("{text:?} is not a duration (expected e.g. 90s, 30m, 24h, 7d)"))?;
        digits.clear();
        total =
            n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(|| format!("{text:?} is too long"))?;
    }
    if !digits.is_empty() {
        return Err(format!("{text:?} has no unit (use s, m, h, d, w, e.g. 24h)"));
    }
    if total == 0 {
        return Err(format!("{text:?} is zero"));
    }
    Ok(Duration::from_secs(total))
}

/// Prints a duration the way [`parse_duration`] reads it (`1d2h`).
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
        if s >= unit {
            out.push_str(&format!("{}{name}", s / unit));
            s %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 7d "), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("24").unwrap_err().contains("no unit"));
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("5y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(format_duration(Duration::from_secs(93_784)), "1d2h3m4s");
        assert_eq!(Action::SetTtl(Duration::from_secs(7 * 86_400)).to_string(), "set_ttl 7d");
    }
}
