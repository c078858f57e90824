//! The `[database]` section every task reads: the connection, session timeouts and lock
//! retries shared by all of them, and each task's own section (defined in its module:
//! `optimize::config`, `reindex::config`, ...), validated together into [`Settings`]. The
//! duration and size grammar is here too.

use std::time::Duration;

use maint_core::Secret;
use serde::{Deserialize, Serialize};

use crate::{
    AmcheckConfig, AnalysisConfig, AnalysisSettings, AuditConfig, BloatConfig, CapacityConfig, CapacitySettings, Error,
    Order, ReindexConfig, RetentionConfig, RetentionRule, Steps, VectorConfig, VectorSettings,
};

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
    /// Vector and text indexes (`[vector]`).
    pub vector: VectorConfig,
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
            vector: VectorConfig::default(),
        }
    }
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
    /// Vector and text indexes.
    pub vector: VectorSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Config::default().validate().expect("the default configuration is valid")
    }
}

pub use maint_core::parse_duration;

/// A size in maint-core's grammar ([`maint_core::parse_size`]: `512MB`, `100GB`, `2TB`,
/// `1048576`), as the `bigint` PostgreSQL compares it with.
pub fn parse_size(text: &str) -> Result<i64, String> {
    i64::try_from(maint_core::parse_size(text)?).map_err(|_| format!("{text:?} is too large"))
}

pub(crate) fn duration(field: &str, text: &str) -> Result<Duration, Error> {
    parse_duration(text).map_err(|m| Error::invalid(field, m))
}

pub(crate) fn name(field: &str, value: &str) -> Result<String, Error> {
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
        let (pause, rules) = self.retention.validate()?;
        self.bloat.validate()?;
        self.reindex.validate()?;
        let analysis = self.analysis.validate()?;
        let capacity = self.capacity.validate()?;
        let vector = self.vector.validate()?;
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
            vector,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::config::retention_age;

    #[test]
    fn durations_parse_and_reject_with_a_reason() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5").unwrap_err().contains("has no unit"));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("not a duration"));
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
