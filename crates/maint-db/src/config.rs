use std::time::Duration;

use maint_core::Secret;
use serde::{Deserialize, Serialize};

use crate::Error;

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
}

impl Default for RetentionRuleConfig {
    fn default() -> Self {
        RetentionRuleConfig {
            schema: "public".into(),
            table: String::new(),
            column: String::new(),
            older_than: "0s".into(),
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

/// Configuration of the database maintenance (`[database]` in a binary's TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `postgresql://user:password@host:port/db` (or the key=value form). Never printed.
    pub url: Option<Secret>,
    /// Connections used in parallel for per-table work.
    pub jobs: usize,
    /// `lock_timeout` of every session (`5s`).
    pub lock_timeout: String,
    /// `statement_timeout` of every session (`1h`).
    pub statement_timeout: String,
    /// How many times a statement that hit `lock_timeout` is tried in all.
    pub lock_attempts: u32,
    /// Base pause before a retry; doubled each time, plus up to 100% jitter.
    pub retry_backoff: String,
    /// `maintenance_work_mem` of every session (`256MB`); the server's when unset.
    pub maintenance_work_mem: Option<String>,
    /// Which steps run.
    pub steps: Steps,
    /// Order of routine tables.
    pub order: Order,
    /// `VACUUM (FREEZE)` for tables past `wraparound_age`.
    pub freeze: bool,
    /// Tables with `age(relfrozenxid)` at least this come first.
    pub wraparound_age: i64,
    /// Retention rules and batching.
    pub retention: RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: None,
            jobs: 2,
            lock_timeout: "5s".into(),
            statement_timeout: "1h".into(),
            lock_attempts: 3,
            retry_backoff: "500ms".into(),
            maintenance_work_mem: None,
            steps: Steps::default(),
            order: Order::default(),
            freeze: false,
            wraparound_age: 150_000_000,
            retention: RetentionConfig::default(),
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
}

/// A validated [`Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Parallel connections (at least 1).
    pub jobs: usize,
    /// `lock_timeout` (at least 1 ms).
    pub lock_timeout: Duration,
    /// `statement_timeout` (zero: none).
    pub statement_timeout: Duration,
    /// Attempts for a statement that hits `lock_timeout` (at least 1).
    pub lock_attempts: u32,
    /// Base retry pause.
    pub retry_backoff: Duration,
    /// `maintenance_work_mem`, checked to be a number with an optional unit.
    pub maintenance_work_mem: Option<String>,
    /// Steps.
    pub steps: Steps,
    /// Order.
    pub order: Order,
    /// FREEZE wraparound tables.
    pub freeze: bool,
    /// Wraparound threshold.
    pub wraparound_age: i64,
    /// Rows per retention batch.
    pub batch_size: u64,
    /// Pause between retention batches.
    pub pause: Duration,
    /// Retention rules.
    pub rules: Vec<RetentionRule>,
}

impl Default for Settings {
    fn default() -> Self {
        Config::default().validate().expect("the default configuration is valid")
    }
}

/// Parses `500ms`, `5s`, `10m`, `2h`, `30d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not a duration (e.g. 500ms, 5s, 10m, 2h, 30d)"))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(format!("{text:?}: unknown unit (use ms, s, m, h or d)")),
    };
    ms.map(Duration::from_millis).ok_or_else(|| format!("{text:?} is too large"))
}

fn duration(field: &str, text: &str) -> Result<Duration, Error> {
    parse_duration(text).map_err(|m| Error::invalid(field, m))
}

fn name(field: &str, value: &str) -> Result<String, Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "empty name"));
    }
    if value.contains('\0') {
        return Err(Error::invalid(field, "a name cannot contain a NUL character"));
    }
    if value.len() > 63 {
        return Err(Error::invalid(field, format!("{value:?} is longer than PostgreSQL's 63 bytes")));
    }
    Ok(value.to_owned())
}

impl Config {
    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<Settings, Error> {
        if self.jobs == 0 || self.jobs > 64 {
            return Err(Error::invalid("jobs", format!("{} is not between 1 and 64", self.jobs)));
        }
        let lock_timeout = duration("lock_timeout", &self.lock_timeout)?;
        if lock_timeout.is_zero() {
            return Err(Error::invalid("lock_timeout", "must be positive: 0 would wait for locks forever"));
        }
        let statement_timeout = duration("statement_timeout", &self.statement_timeout)?;
        if self.lock_attempts == 0 || self.lock_attempts > 20 {
            return Err(Error::invalid("lock_attempts", format!("{} is not between 1 and 20", self.lock_attempts)));
        }
        let retry_backoff = duration("retry_backoff", &self.retry_backoff)?;
        if let Some(m) = &self.maintenance_work_mem {
            let t = m.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let ok = split > 0 && matches!(&t[split..], "" | "kB" | "MB" | "GB" | "TB");
            if !ok {
                return Err(Error::invalid("maintenance_work_mem", format!("{m:?} is not a size such as 256MB")));
            }
        }
        if self.wraparound_age <= 0 {
            return Err(Error::invalid("wraparound_age", "must be positive"));
        }
        if self.retention.batch_size == 0 || self.retention.batch_size > 1_000_000 {
            return Err(Error::invalid(
                "retention.batch_size",
                format!("{} is not between 1 and 1000000", self.retention.batch_size),
            ));
        }
        let pause = duration("retention.pause", &self.retention.pause)?;
        let mut rules = Vec::new();
        for (i, r) in self.retention.rules.iter().enumerate() {
            let at = format!("retention.rules[{i}]");
            rules.push(RetentionRule {
                schema: name(&format!("{at}.schema"), &r.schema)?,
                table: name(&format!("{at}.table"), &r.table)?,
                column: name(&format!("{at}.column"), &r.column)?,
                older_than: duration(&format!("{at}.older_than"), &r.older_than)?,
            });
        }
        Ok(Settings {
            jobs: self.jobs,
            lock_timeout,
            statement_timeout,
            lock_attempts: self.lock_attempts,
            retry_backoff,
            maintenance_work_mem: self.maintenance_work_mem.as_ref().map(|m| m.trim().to_owned()),
            steps: self.steps,
            order: self.order,
            freeze: self.freeze,
            wraparound_age: self.wraparound_age,
            batch_size: self.retention.batch_size,
            pause,
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_reject_with_a_reason() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1s").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn defaults_are_valid_and_carry_the_aindusdb_rules() {
        let s = Config::default().validate().unwrap();
        assert_eq!(s.lock_timeout, Duration::from_secs(5));
        assert!(!s.steps.retention);
        assert_eq!(s.rules[0].table, "logs");
        assert_eq!(s.rules[0].older_than, Duration::from_secs(30 * 86_400));
        assert_eq!((s.rules[1].table.as_str(), s.rules[1].older_than), ("user_sessions", Duration::ZERO));
    }

    #[test]
    fn bad_values_name_their_field() {
        let field = |c: Config| match c.validate() {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected an Invalid error, got {other:?}"),
        };
        assert_eq!(field(Config { jobs: 0, ..Default::default() }), "jobs");
        assert_eq!(field(Config { lock_timeout: "0s".into(), ..Default::default() }), "lock_timeout");
        assert_eq!(field(Config { statement_timeout: "soon".into(), ..Default::default() }), "statement_timeout");
        assert_eq!(
            field(Config { maintenance_work_mem: Some("1; DROP".into()), ..Default::default() }),
            "maintenance_work_mem"
        );
        let mut c = Config::default();
        c.retention.rules[1].table = String::new();
        assert_eq!(field(c), "retention.rules[1].table");
    }

    #[test]
    fn toml_fills_missing_fields_with_defaults() {
        let c: Config = toml::from_str(
            "jobs = 4\n[retention]\nbatch_size = 10\n[[retention.rules]]\ntable = \"audit\"\ncolumn = \"at\"\nolder_than = \"7d\"\n",
        )
        .unwrap();
        let s = c.validate().unwrap();
        assert_eq!((s.jobs, s.batch_size, s.pause), (4, 10, Duration::from_millis(100)));
        assert_eq!(s.rules.len(), 1);
        assert_eq!(s.rules[0].schema, "public");
        assert!(toml::from_str::<Config>("jobz = 1").is_err());
    }
}
