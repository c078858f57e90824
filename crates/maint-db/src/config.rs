use std::path::{Path, PathBuf};
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
    /// Bloat estimation and measurement (`[bloat]`).
    pub bloat: BloatConfig,
    /// Index rebuild thresholds (`[reindex]`).
    pub reindex: ReindexConfig,
    /// Index integrity checks (`[amcheck]`).
    pub amcheck: AmcheckConfig,
    /// Health and performance analysis thresholds (`[analysis]`).
    pub analysis: AnalysisConfig,
    /// Security audit settings (`[audit]`).
    pub audit: AuditConfig,
    /// Capacity planning (`[capacity]`).
    pub capacity: CapacityConfig,
}

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

/// Parses `512MB`, `100GB`, `2TB`, `1048576` (bytes); units are powers of 1024.
pub fn parse_size(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: i64 = digits.parse().map_err(|_| format!("{text:?} is not a size (e.g. 512MB, 100GB, 2TB)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "KB" | "K" => 10,
        "MB" | "M" => 20,
        "GB" | "G" => 30,
        "TB" | "T" => 40,
        _ => return Err(format!("{text:?}: unknown unit (use B, kB, MB, GB or TB)")),
    };
    n.checked_mul(1i64 << shift).ok_or_else(|| format!("{text:?} is too large"))
}

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

/// Index integrity checks with `amcheck` (`[amcheck]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmcheckConfig {
    /// `CREATE EXTENSION IF NOT EXISTS amcheck` when it is missing (off: only use it when
    /// an administrator installed it). Never in a dry run.
    pub create_extension: bool,
    /// `bt_index_check(index, heapallindexed => true)`: also verify that every heap tuple
    /// has its index entry (reads the whole table; much slower).
    pub heapallindexed: bool,
    /// Check the btree indexes of `pg_catalog` and TOAST tables too.
    pub include_catalogs: bool,
}

impl Default for AmcheckConfig {
    fn default() -> Self {
        AmcheckConfig { create_extension: false, heapallindexed: false, include_catalogs: true }
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

/// Security audit settings (`[audit]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Login roles (other than superusers listed in `allowed_superusers`) must have a
    /// password expiry (`VALID UNTIL`).
    pub require_password_expiry: bool,
    /// Superuser login roles that are expected (reported as info, not warning).
    pub allowed_superusers: Vec<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { require_password_expiry: false, allowed_superusers: vec!["postgres".into()] }
    }
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
            bloat: BloatConfig::default(),
            reindex: ReindexConfig::default(),
            amcheck: AmcheckConfig::default(),
            analysis: AnalysisConfig::default(),
            audit: AuditConfig::default(),
            capacity: CapacityConfig::default(),
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
    /// Bloat estimation and measurement.
    pub bloat: BloatConfig,
    /// Reindex thresholds.
    pub reindex: ReindexConfig,
    /// Index integrity checks.
    pub amcheck: AmcheckConfig,
    /// Analysis thresholds.
    pub analysis: AnalysisSettings,
    /// Security audit.
    pub audit: AuditConfig,
    /// Capacity planning.
    pub capacity: CapacitySettings,
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

/// A retention age deletes data: it needs an explicit unit (a bare `30` is not "30 days")
/// and at least an hour, so a typo cannot empty a table; exactly `0s` is the documented
/// "expiry column in the past" form.
fn retention_age(field: &str, text: &str) -> Result<Duration, Error> {
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
        let tzdb = tz_database();
        for (i, r) in self.retention.rules.iter().enumerate() {
            let at = format!("retention.rules[{i}]");
            rules.push(RetentionRule {
                schema: name(&format!("{at}.schema"), &r.schema)?,
                table: name(&format!("{at}.table"), &r.table)?,
                column: name(&format!("{at}.column"), &r.column)?,
                older_than: retention_age(&format!("{at}.older_than"), &r.older_than)?,
                timezone: time_zone(&format!("{at}.timezone"), &r.timezone, &tzdb)?,
            });
        }
        if self.bloat.measure_top > 10_000 {
            return Err(Error::invalid("bloat.measure_top", format!("{} is more than 10000", self.bloat.measure_top)));
        }
        let r = &self.reindex;
        if r.min_bloat_bytes < 0 {
            return Err(Error::invalid("reindex.min_bloat_bytes", "must not be negative"));
        }
        if !(0.0..=100.0).contains(&r.max_leaf_density) {
            return Err(Error::invalid("reindex.max_leaf_density", "must be a percentage between 0 and 100"));
        }
        if !(0.0..=1.0).contains(&r.min_bloat_ratio) {
            return Err(Error::invalid("reindex.min_bloat_ratio", "must be a fraction between 0 and 1"));
        }
        let a = &self.analysis;
        for (field, v) in [
            ("analysis.connection_saturation", a.connection_saturation),
            ("analysis.cache_hit_ratio", a.cache_hit_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::invalid(field, "must be a fraction between 0 and 1"));
            }
        }
        let analysis = AnalysisSettings {
            long_running: duration("analysis.long_running", &a.long_running)?,
            idle_in_transaction: duration("analysis.idle_in_transaction", &a.idle_in_transaction)?,
            connection_saturation: a.connection_saturation,
            cache_hit_ratio: a.cache_hit_ratio,
            seq_scan_min_rows: a.seq_scan_min_rows.max(0),
            slot_retained_bytes: a.slot_retained_bytes.max(0),
            replication_lag: duration("analysis.replication_lag", &a.replication_lag)?,
        };
        let c = &self.capacity;
        if c.top == 0 || c.top > 1000 {
            return Err(Error::invalid("capacity.top", format!("{} is not between 1 and 1000", c.top)));
        }
        let capacity = CapacitySettings {
            schema: name("capacity.schema", &c.schema)?,
            disk_budget: match &c.disk_budget {
                Some(b) => Some(parse_size(b).map_err(|m| Error::invalid("capacity.disk_budget", m))?),
                None => None,
            },
            top: c.top,
            window: duration("capacity.window", &c.window)?,
            warn_days: c.warn_days,
            keep: duration("capacity.keep", &c.keep)?,
        };
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
            bloat: self.bloat.clone(),
            reindex: self.reindex.clone(),
            amcheck: self.amcheck.clone(),
            analysis,
            audit: self.audit.clone(),
            capacity,
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
        for (bad, why) in [("30", "needs a unit"), ("0d", "less than an hour"), ("10m", "less than an hour")] {
            let e = retention_age("retention.rules[0].older_than", bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
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
        let mut c = Config::default();
        c.retention.rules[0].timezone = "Europe/Paris'; DROP TABLE logs; --".into();
        assert_eq!(field(c), "retention.rules[0].timezone");
    }

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

    #[test]
    fn sizes_parse_and_new_sections_are_checked() {
        assert_eq!(parse_size("100GB"), Ok(100 << 30));
        assert_eq!(parse_size("512 MB"), Ok(512 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("5PB").unwrap_err().contains("unknown unit"));
        let c: Config = toml::from_str(
            "[capacity]\ndisk_budget = \"2TB\"\nschema = \"ops\"\n[reindex]\nmax_leaf_density = 60.0\n\
             [analysis]\nidle_in_transaction = \"30s\"\n[audit]\nrequire_password_expiry = true\n",
        )
        .unwrap();
        let s = c.validate().unwrap();
        assert_eq!((s.capacity.disk_budget, s.capacity.schema.as_str()), (Some(2 << 40), "ops"));
        assert_eq!(s.analysis.idle_in_transaction, Duration::from_secs(30));
        assert!(s.audit.require_password_expiry && s.reindex.max_leaf_density == 60.0);
        let field = |c: Config| match c.validate() {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected an Invalid error, got {other:?}"),
        };
        let mut c = Config::default();
        c.capacity.disk_budget = Some("a lot".into());
        assert_eq!(field(c), "capacity.disk_budget");
        let mut c = Config::default();
        c.reindex.max_leaf_density = 120.0;
        assert_eq!(field(c), "reindex.max_leaf_density");
        let mut c = Config::default();
        c.analysis.long_running = "soon".into();
        assert_eq!(field(c), "analysis.long_running");
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
        assert_eq!((s.rules[0].schema.as_str(), s.rules[0].timezone.as_str()), ("public", "UTC"));
        assert!(toml::from_str::<Config>("jobz = 1").is_err());
    }
}
