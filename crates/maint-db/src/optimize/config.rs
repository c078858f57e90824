//! Database Optimization's settings: which steps run, the table order and wraparound
//! threshold (top-level keys of `[database]`), and `[retention]` with its rules and their
//! validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::{duration, name};

/// Which steps a run does. `retention` deletes data, so it is off unless asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Steps {
    /// `ANALYZE` every table (folded into `VACUUM (ANALYZE)` when `vacuum` is on too).
    pub analyze: bool,
    /// `VACUUM` every table.
    pub vacuum: bool,
    /// Drop invalid `*_ccnew`/`*_ccold` indexes left by a failed `REINDEX CONCURRENTLY`.
    pub invalid_indexes: bool,
    /// Delete rows by the retention rules.
    pub retention: bool,
}

impl Default for Steps {
    fn default() -> Self {
        Steps { analyze: true, vacuum: true, invalid_indexes: true, retention: false }
    }
}

/// The order of routine (non-wraparound) tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Most dead tuples first, then smallest.
    #[default]
    MostDeadFirst,
    /// Smallest first (by `relpages`), then most dead tuples.
    SmallestFirst,
}

/// One retention rule as written in the configuration (`[[retention.rules]]`).
///
/// `older_than = "0s"` means "the timestamp is in the past" (expiry columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionRuleConfig {
    /// Schema of the table.
    pub schema: String,
    /// Table name (not quoted; any characters).
    pub table: String,
    /// A `timestamp`, `timestamptz` or `date` column.
    pub column: String,
    /// Rows whose column is older than now minus this are deleted (`30d`, `12h`, `0s`).
    pub older_than: String,
    /// The time zone a `timestamp` (without time zone) or `date` column is written in
    /// (`UTC`, `Europe/Paris`); "now" is taken in it, whatever the session's `TimeZone`.
    /// Not used for `timestamptz` columns.
    pub timezone: String,
}

impl Default for RetentionRuleConfig {
    fn default() -> Self {
        RetentionRuleConfig {
            schema: "public".into(),
            table: String::new(),
            column: String::new(),
            older_than: "0s".into(),
            timezone: "UTC".into(),
        }
    }
}

/// Retention settings (`[retention]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Rows per `DELETE` statement.
    pub batch_size: u64,
    /// Pause between two batches (`100ms`).
    pub pause: String,
    /// The rules; the defaults are AindusDB's `logs` and `user_sessions`.
    pub rules: Vec<RetentionRuleConfig>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            batch_size: 5000,
            pause: "100ms".into(),
            rules: vec![
                RetentionRuleConfig {
                    table: "logs".into(),
                    column: "created_at".into(),
                    older_than: "30d".into(),
                    ..Default::default()
                },
                RetentionRuleConfig {
                    table: "user_sessions".into(),
                    column: "expires_at".into(),
                    older_than: "0s".into(),
                    ..Default::default()
                },
            ],
        }
    }
}

/// A validated retention rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionRule {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Timestamp column.
    pub column: String,
    /// Maximum age (zero: "in the past").
    pub older_than: Duration,
    /// Time zone of a `timestamp` or `date` column (an IANA name).
    pub timezone: String,
}

impl RetentionConfig {
    /// Checks `[retention]`: the batching, then every rule; the error names the field.
    /// Returns the pause between batches and the rules.
    pub(crate) fn validate(&self) -> Result<(Duration, Vec<RetentionRule>), Error> {
        if self.batch_size == 0 || self.batch_size > 1_000_000 {
            return Err(Error::invalid(
                "retention.batch_size",
                format!("{} is not between 1 and 1000000", self.batch_size),
            ));
        }
        let pause = duration("retention.pause", &self.pause)?;
        let mut rules = Vec::new();
        let tzdb = tz_database();
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("retention.rules[{i}]");
            rules.push(RetentionRule {
                schema: name(&format!("{at}.schema"), &r.schema)?,
                table: name(&format!("{at}.table"), &r.table)?,
                column: name(&format!("{at}.column"), &r.column)?,
                older_than: retention_age(&format!("{at}.older_than"), &r.older_than)?,
                timezone: time_zone(&format!("{at}.timezone"), &r.timezone, &tzdb)?,
            });
        }
        Ok((pause, rules))
    }
}

/// A retention age deletes data: it needs an explicit unit (a bare `30` is not "30 days")
/// and at least an hour, so a typo cannot empty a table; exactly `0s` is the documented
/// "expiry column in the past" form.
pub(crate) fn retention_age(field: &str, text: &str) -> Result<Duration, Error> {
    if text.trim().chars().last().is_none_or(|c| c.is_ascii_digit()) {
        return Err(Error::invalid(field, format!("{text:?} needs a unit (e.g. 30d or 12h)")));
    }
    let d = duration(field, text)?;
    if text.trim() == "0s" {
        return Ok(d); // documented: the column is an expiry time, "in the past"
    }
    if d < Duration::from_secs(3600) {
        return Err(Error::invalid(
            field,
            format!("{text:?} is less than an hour; retention refuses to delete that young"),
        ));
    }
    Ok(d)
}

/// Where the host keeps its time zone database (`$TZDIR`, else `/usr/share/zoneinfo`).
fn tz_database() -> PathBuf {
    std::env::var_os("TZDIR").map_or_else(|| PathBuf::from("/usr/share/zoneinfo"), PathBuf::from)
}

/// A time zone as `AT TIME ZONE` takes it, limited to IANA names (`UTC`, `Europe/Paris`):
/// no POSIX forms such as `UTC+3`, whose sign is the reverse of what it reads. When the
/// host has a time zone database (`tzdb`) the name must be in it; the server checks it again
/// before anything is deleted.
fn time_zone(field: &str, zone: &str, tzdb: &Path) -> Result<String, Error> {
    let iana = zone.len() <= 64
        && zone.split('/').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
        && !zone.starts_with("UTC+")
        && !zone.starts_with("UTC-");
    if !iana {
        return Err(Error::invalid(field, format!("{zone:?} is not a time zone name such as UTC or Europe/Paris")));
    }
    if tzdb.is_dir() && !tzdb.join(zone).is_file() {
        return Err(Error::invalid(field, format!("{zone:?} is not in the time zone database {}", tzdb.display())));
    }
    Ok(zone.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_time_zones_are_iana_names_in_the_hosts_database() {
        let tzdb = std::env::temp_dir().join(format!("maint-db-tzdb-{}", std::process::id()));
        std::fs::create_dir_all(tzdb.join("Europe")).unwrap();
        std::fs::write(tzdb.join("Europe/Paris"), "TZif").unwrap();
        std::fs::write(tzdb.join("UTC"), "TZif").unwrap();
        let check = |zone: &str| time_zone("retention.rules[0].timezone", zone, &tzdb);
        assert_eq!(check("Europe/Paris").unwrap(), "Europe/Paris");
        assert_eq!(check("UTC").unwrap(), "UTC");
        let e = check("Europe/Pariss").unwrap_err().to_string();
        assert!(
            e.starts_with(r#"retention.rules[0].timezone: "Europe/Pariss" is not in the time zone database"#),
            "{e}"
        );
        for bad in ["", "Europe", "../etc/passwd", "/etc/passwd", "Europe/", "UTC+3", "+05:00", "Europe/Paris x"] {
            let e = check(bad).unwrap_err().to_string();
            assert!(e.starts_with("retention.rules[0].timezone: "), "{bad}: {e}");
        }
        std::fs::remove_dir_all(&tzdb).unwrap();
        // Without a database on the host the name is only checked for its shape.
        assert_eq!(check("Mars/Olympus").unwrap(), "Mars/Olympus");
        assert!(check("UTC-5").is_err());
    }
}
