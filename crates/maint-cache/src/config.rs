use std::path::PathBuf;
use std::time::Duration;

use deadpool_redis::redis::IntoConnectionInfo;
use maint_core::Secret;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::rule::{Action, Condition, FieldFormat, Rule, format_duration, parse_duration};

/// The Redis URL used when none is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Standalone server or Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One server (the URL's database index is used).
    #[default]
    Standalone,
    /// A cluster: the URL names any node; every master from `CLUSTER NODES` is scanned.
    Cluster,
}

/// One rule as written in the configuration (TOML `[[rules]]`).
///
/// ```toml
/// [[rules]]
/// name = "sessions"
/// pattern = "session:*"
/// condition = "field_older_than"   # or idle_without_ttl, larger_than
/// field = "last_access"
/// field_type = "unix_seconds"      # or iso8601
/// older_than = "24h"
/// action = "delete"                # or set_ttl (with ttl = "7d"), report
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// A name for reports; defaults to the pattern.
    pub name: Option<String>,
    /// The key glob for `SCAN MATCH`.
    pub pattern: String,
    /// `field_older_than`, `idle_without_ttl` or `larger_than`.
    pub condition: String,
    /// For `field_older_than`: the hash field.
    pub field: Option<String>,
    /// For `field_older_than`: `unix_seconds` or `iso8601`.
    pub field_type: Option<String>,
    /// For `field_older_than`: the age (`24h`).
    pub older_than: Option<String>,
    /// For `idle_without_ttl`: the idle time (`30d`).
    pub idle_longer_than: Option<String>,
    /// For `larger_than`: the size in bytes.
    pub larger_than_bytes: Option<u64>,
    /// `delete`, `set_ttl` or `report`.
    pub action: String,
    /// For `set_ttl`: the TTL to give (`7d`).
    pub ttl: Option<String>,
}

impl From<&Rule> for RuleConfig {
    fn from(rule: &Rule) -> Self {
        let mut rc = RuleConfig { name: Some(rule.name.clone()), pattern: rule.pattern.clone(), ..Default::default() };
        match &rule.condition {
            Condition::FieldOlderThan { field, format, older_than } => {
                rc.condition = "field_older_than".into();
                rc.field = Some(field.clone());
                rc.field_type = Some(
                    match format {
                        FieldFormat::UnixSeconds => "unix_seconds",
                        FieldFormat::Iso8601 => "iso8601",
                    }
                    .into(),
                );
                rc.older_than = Some(format_duration(*older_than));
            }
            Condition::IdleWithoutTtl { idle_longer_than } => {
                rc.condition = "idle_without_ttl".into();
                rc.idle_longer_than = Some(format_duration(*idle_longer_than));
            }
            Condition::LargerThan { bytes } => {
                rc.condition = "larger_than".into();
                rc.larger_than_bytes = Some(*bytes);
            }
        }
        match rule.action {
            Action::Delete => rc.action = "delete".into(),
            Action::Report => rc.action = "report".into(),
            Action::SetTtl(d) => {
                rc.action = "set_ttl".into();
                rc.ttl = Some(format_duration(d));
            }
        }
        rc
    }
}

impl RuleConfig {
    /// Validates this rule; `at` is its path in the configuration (`rules[0]`).
    pub fn to_rule(&self, at: &str) -> Result<Rule, Error> {
        let pattern = self.pattern.trim();
        if pattern.is_empty() {
            return Err(Error::invalid(format!("{at}.pattern"), "empty pattern (expected a glob such as session:*)"));
        }
        let need = |v: &Option<String>, name: &str| -> Result<String, Error> {
            match v.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => Ok(s.to_owned()),
                _ => {
                    Err(Error::invalid(format!("{at}.{name}"), format!("required for condition {:?}", self.condition)))
                }
            }
        };
        let duration = |v: &Option<String>, name: &str| -> Result<Duration, Error> {
            parse_duration(&need(v, name)?).map_err(|m| Error::invalid(format!("{at}.{name}"), m))
        };
        let condition = match self.condition.trim() {
            "field_older_than" => {
                let field = need(&self.field, "field")?;
                let format = match need(&self.field_type, "field_type")?.as_str() {
                    "unix_seconds" | "unix" => FieldFormat::UnixSeconds,
                    "iso8601" | "iso-8601" | "rfc3339" => FieldFormat::Iso8601,
                    other => {
                        return Err(Error::invalid(
                            format!("{at}.field_type"),
                            format!("unknown field type {other:?} (expected unix_seconds or iso8601)"),
                        ));
                    }
                };
                Condition::FieldOlderThan { field, format, older_than: duration(&self.older_than, "older_than")? }
            }
            "idle_without_ttl" => {
                Condition::IdleWithoutTtl { idle_longer_than: duration(&self.idle_longer_than, "idle_longer_than")? }
            }
            "larger_than" => match self.larger_than_bytes {
                Some(bytes) if bytes > 0 => Condition::LargerThan { bytes },
                _ => {
                    return Err(Error::invalid(
                        format!("{at}.larger_than_bytes"),
                        "required for condition \"larger_than\" (a positive number of bytes)",
                    ));
                }
            },
            other => {
                return Err(Error::invalid(
                    format!("{at}.condition"),
                    format!("unknown condition {other:?} (expected field_older_than, idle_without_ttl or larger_than)"),
                ));
            }
        };
        let action = match self.action.trim() {
            "delete" | "unlink" => Action::Delete,
            "report" => Action::Report,
            "set_ttl" => Action::SetTtl(duration(&self.ttl, "ttl")?),
            other => {
                return Err(Error::invalid(
                    format!("{at}.action"),
                    format!("unknown action {other:?} (expected delete, set_ttl or report)"),
                ));
            }
        };
        let name = self.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).unwrap_or(pattern).to_owned();
        Ok(Rule { name, pattern: pattern.to_owned(), condition, action })
    }
}

/// Configuration of the cache cleanup (`[cache]` in a binary's TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `redis://[user:password@]host:port/db` (or `rediss://`); a secret, never printed.
    /// Defaults to [`DEFAULT_REDIS_URL`].
    pub redis_url: Option<Secret>,
    /// For a `rediss://` URL: a PEM file of the CA certificate(s) the server's certificate must
    /// chain to, instead of the system's roots (a private CA, a managed service's CA bundle).
    pub ca_file: Option<PathBuf>,
    /// Standalone or cluster.
    pub mode: Mode,
    /// The rules; the default is the two AindusDB rules (24 h sessions, 7-day VERITAS results).
    pub rules: Vec<RuleConfig>,
    /// Upper bound on Redis operations per second (a SCAN call or one key checked or changed
    /// counts as one); 0 means no limit beyond the latency budget.
    pub max_ops_per_sec: u32,
    /// Target duration of one server call in milliseconds: SCAN's COUNT adapts to it, and a
    /// call slower than this is followed by an equal pause.
    pub latency_budget_ms: u64,
    /// First SCAN COUNT.
    pub scan_count: u32,
    /// Smallest SCAN COUNT the adaptation may choose.
    pub scan_count_min: u32,
    /// Largest SCAN COUNT the adaptation may choose.
    pub scan_count_max: u32,
    /// Keys per pipeline of checks or actions.
    pub batch_size: usize,
    /// Run `MEMORY PURGE` afterwards (only on jemalloc).
    pub memory_purge: bool,
    /// At most this many keys are listed in the report's items.
    pub max_items: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            redis_url: None,
            ca_file: None,
            mode: Mode::Standalone,
            rules: [Rule::sessions(), Rule::veritas_results()].iter().map(RuleConfig::from).collect(),
            max_ops_per_sec: 0,
            latency_budget_ms: 4,
            scan_count: 200,
            scan_count_min: 10,
            scan_count_max: 5000,
            batch_size: 1000,
            memory_purge: false,
            max_items: 1000,
        }
    }
}

/// A validated [`Config`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Redis URL (secret).
    pub redis_url: Secret,
    /// The CA file for a `rediss://` URL (`None`: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Standalone or cluster.
    pub mode: Mode,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// 0 = unlimited.
    pub max_ops_per_sec: u32,
    /// Latency budget of one server call.
    pub latency_budget: Duration,
    /// First, smallest and largest SCAN COUNT.
    pub scan_count: (u32, u32, u32),
    /// Keys per pipeline.
    pub batch_size: usize,
    /// Run `MEMORY PURGE` on jemalloc.
    pub memory_purge: bool,
    /// Report item cap.
    pub max_items: usize,
}

impl Config {
    /// Checks every value; errors name the field (`rules[1].older_than`). The URL is checked
    /// for shape only and never quoted.
    pub fn validate(&self) -> Result<Settings, Error> {
        let redis_url = self.redis_url.clone().unwrap_or_else(|| Secret::new(DEFAULT_REDIS_URL));
        if deadpool_redis::redis::parse_redis_url(redis_url.expose()).is_none() {
            return Err(Error::invalid(
                "redis_url",
                "not a Redis URL (expected redis://[user:password@]host[:port][/db] or rediss://...)",
            ));
        }
        // The same reading of the URL as the connection's (crate::redis::client), so a scheme
        // redis-rs treats as TLS is one here too.
        let tls = redis_url.expose().into_connection_info().is_ok_and(|info| crate::redis::is_tls(&info));
        if self.ca_file.is_some() && !tls {
            return Err(Error::invalid("ca_file", "set, but redis_url is not a rediss:// (TLS) URL"));
        }
        if self.rules.is_empty() {
            return Err(Error::invalid("rules", "no rules: nothing to do (omit `rules` for the built-in ones)"));
        }
        let rules =
            self.rules.iter().enumerate().map(|(i, r)| r.to_rule(&format!("rules[{i}]"))).collect::<Result<_, _>>()?;
        if self.latency_budget_ms == 0 {
            return Err(Error::invalid("latency_budget_ms", "must be at least 1"));
        }
        if self.scan_count_min == 0 || self.scan_count_min > self.scan_count_max {
            return Err(Error::invalid("scan_count_min", "must be at least 1 and not above scan_count_max"));
        }
        if !(self.scan_count_min..=self.scan_count_max).contains(&self.scan_count) {
            return Err(Error::invalid("scan_count", "must lie between scan_count_min and scan_count_max"));
        }
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(Error::invalid("batch_size", "must be between 1 and 10000"));
        }
        Ok(Settings {
            redis_url,
            ca_file: self.ca_file.clone(),
            mode: self.mode,
            rules,
            max_ops_per_sec: self.max_ops_per_sec,
            latency_budget: Duration::from_millis(self.latency_budget_ms),
            scan_count: (self.scan_count, self.scan_count_min, self.scan_count_max),
            batch_size: self.batch_size,
            memory_purge: self.memory_purge,
            max_items: self.max_items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<Settings, String> {
        let cfg: Config = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        cfg.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_the_two_aindusdb_rules() {
        let s = Config::default().validate().unwrap();
        assert_eq!(s.rules, vec![Rule::sessions(), Rule::veritas_results()]);
        assert_eq!(s.redis_url.expose(), DEFAULT_REDIS_URL);
        let s = parse("max_ops_per_sec = 500").unwrap();
        assert_eq!(s.rules.len(), 2);
        assert_eq!(s.max_ops_per_sec, 500);
    }

    #[test]
    fn rules_from_toml() {
        let s = parse(
            r#"
            [[rules]]
            pattern = "tmp:*"
            condition = "idle_without_ttl"
            idle_longer_than = "30d"
            action = "set_ttl"
            ttl = "1d"
            [[rules]]
            name = "big"
            pattern = "*"
            condition = "larger_than"
            larger_than_bytes = 1048576
            action = "report"
            "#,
        )
        .unwrap();
        assert_eq!(s.rules[0].name, "tmp:*");
        assert_eq!(
            s.rules[0].condition,
            Condition::IdleWithoutTtl { idle_longer_than: Duration::from_secs(30 * 86_400) }
        );
        assert_eq!(s.rules[0].action, Action::SetTtl(Duration::from_secs(86_400)));
        assert_eq!(s.rules[1].condition, Condition::LargerThan { bytes: 1 << 20 });
        assert_eq!(s.rules[1].action, Action::Report);
    }

    #[test]
    fn bad_rules_name_the_field() {
        let rule = |body: &str| format!("[[rules]]\npattern = \"s:*\"\naction = \"delete\"\n{body}");
        let cases = [
            (
                rule(
                    "condition = \"field_older_than\"\nfield = \"a\"\nfield_type = \"unix_seconds\"\nolder_than = \"24 parsecs\"",
                ),
                "rules[0].older_than: ",
            ),
            (
                rule("condition = \"field_older_than\"\nfield = \"a\"\nfield_type = \"float\"\nolder_than = \"1h\""),
                "rules[0].field_type: unknown field type \"float\"",
            ),
            (
                rule("condition = \"field_older_than\"\nfield_type = \"iso8601\"\nolder_than = \"1h\""),
                "rules[0].field: required",
            ),
            (rule("condition = \"sometimes\""), "rules[0].condition: unknown condition"),
            (rule("condition = \"larger_than\""), "rules[0].larger_than_bytes: required"),
            (
                "[[rules]]\npattern = \"\"\ncondition = \"larger_than\"\nlarger_than_bytes = 5\naction = \"delete\""
                    .into(),
                "rules[0].pattern: empty pattern",
            ),
            (
                "[[rules]]\npattern = \"x\"\ncondition = \"larger_than\"\nlarger_than_bytes = 5\naction = \"burn\""
                    .into(),
                "rules[0].action: unknown action",
            ),
            (
                "[[rules]]\npattern = \"x\"\ncondition = \"larger_than\"\nlarger_than_bytes = 5\naction = \"set_ttl\""
                    .into(),
                "rules[0].ttl: required",
            ),
            ("rules = []".into(), "rules: no rules"),
            ("redis_url = \"http://user:hunter2@host\"".into(), "redis_url: not a Redis URL"),
            ("scan_count = 0".into(), "scan_count: "),
            ("redis_url = \"redis://:hunter2@host\"\nca_file = \"/ca.crt\"".into(), "ca_file: set, but"),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with(want), "{text}\n=> {err}\nwant prefix {want}");
            assert!(!err.contains("hunter2"));
        }
        assert!(parse("colour = 1").unwrap_err().contains("unknown field"));
    }
}
