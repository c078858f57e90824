//! Pure decisions: observations in, actions out. No I/O.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::backend::{Change, Key, KeyAction, Observation, Probe, Recheck};
use crate::rule::{Action, Condition, FieldFormat, Rule, format_duration};

/// What must be read about a key to judge `rule`.
pub fn probe_for(rule: &Rule) -> Probe {
    match &rule.condition {
        Condition::FieldOlderThan { field, .. } => Probe::Field(field.clone()),
        Condition::IdleWithoutTtl { .. } => Probe::Idle,
        Condition::LargerThan { .. } => Probe::Memory,
    }
}

/// Whether judging `rule` needs each key's TTL: only `set_ttl` (which backfills keys without
/// one) and the idle condition (keys without TTL) do.
pub fn needs_ttl(rule: &Rule) -> bool {
    matches!(rule.action, Action::SetTtl(_)) || matches!(rule.condition, Condition::IdleWithoutTtl { .. })
}

/// One eligible key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The key.
    #[serde(serialize_with = "key_as_text")]
    pub key: Key,
    /// Why it is eligible, for the report.
    pub reason: String,
    /// The atomic check-and-act to run, `None` for a report-only rule.
    #[serde(skip)]
    pub action: Option<KeyAction>,
}

fn key_as_text<S: serde::Serializer>(key: &Key, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&key_text(key))
}

/// A key for humans (lossy for non-UTF-8 bytes).
pub fn key_text(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// The decisions for one batch, plus counts of keys that could not be judged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchPlan {
    /// Eligible keys.
    pub decisions: Vec<Decision>,
    /// Keys of the wrong type for the rule (e.g. a string where a hash was expected).
    pub wrong_type: u64,
    /// Hashes without the field, or with a value that is not a time in the expected format.
    pub unreadable: u64,
    /// Keys whose idle time Redis does not track (LFU policy).
    pub untracked: u64,
}

/// Parses a field value as an instant in `format`. ISO-8601 without offset is read as UTC.
pub fn parse_instant(value: &[u8], format: FieldFormat) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(value).ok()?.trim();
    match format {
        FieldFormat::UnixSeconds => {
            let secs: f64 = text.parse().ok()?;
            if !secs.is_finite() {
                return None;
            }
            DateTime::from_timestamp_millis((secs * 1000.0) as i64)
        }
        FieldFormat::Iso8601 => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()))
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|n| n.and_utc()))
            .ok(),
    }
}

/// Decides which of the observed keys `rule` applies to, at time `now`.
pub fn plan(rule: &Rule, observations: &[Observation], now: DateTime<Utc>) -> BatchPlan {
    let mut out = BatchPlan::default();
    for obs in observations {
        if obs.kind == "none" || obs.ttl_ms == -2 {
            continue;
        }
        // set_ttl only backfills keys that have none.
        if matches!(rule.action, Action::SetTtl(_)) && obs.ttl_ms != -1 {
            continue;
        }
        let judged = match &rule.condition {
            Condition::FieldOlderThan { field, format, older_than } => {
                if obs.kind != "hash" {
                    out.wrong_type += 1;
                    continue;
                }
                let Some(value) = &obs.field else {
                    out.unreadable += 1;
                    continue;
                };
                let Some(at) = parse_instant(value, *format) else {
                    out.unreadable += 1;
                    continue;
                };
                let age = (now - at).to_std().unwrap_or(Duration::ZERO);
                (age > *older_than).then(|| {
                    (
                        format!(
                            "{field} {} is {} old (> {})",
                            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                            format_duration(age),
                            format_duration(*older_than)
                        ),
                        Recheck::FieldUnchanged { field: field.clone(), value: value.clone() },
                    )
                })
            }
            Condition::IdleWithoutTtl { idle_longer_than } => {
                if obs.ttl_ms != -1 {
                    continue;
                }
                let Some(idle) = obs.idle_secs else {
                    out.untracked += 1;
                    continue;
                };
                (idle > idle_longer_than.as_secs()).then(|| {
                    (
                        format!(
                            "no TTL, idle {} (> {})",
                            format_duration(Duration::from_secs(idle)),
                            format_duration(*idle_longer_than)
                        ),
                        Recheck::IdleAtLeast { secs: idle_longer_than.as_secs() + 1 },
                    )
                })
            }
            Condition::LargerThan { bytes } => {
                let Some(size) = obs.memory_bytes else {
                    out.unreadable += 1;
                    continue;
                };
                (size > *bytes).then(|| (format!("{size} bytes (> {bytes})"), Recheck::LargerThan { bytes: *bytes }))
            }
        };
        let Some((reason, recheck)) = judged else { continue };
        let change = match rule.action {
            Action::Delete => Some(Change::Unlink),
            Action::SetTtl(ttl) => Some(Change::Expire(ttl.as_millis().min(u64::MAX as u128) as u64)),
            Action::Report => None,
        };
        out.decisions.push(Decision {
            key: obs.key.clone(),
            reason,
            action: change.map(|change| KeyAction { key: obs.key.clone(), recheck, change }),
        });
    }
    out
}

/// SCAN's COUNT, adapted so each call stays under a latency budget: halved after a call over
/// budget, doubled after one under half of it, always within `[min, max]`.
#[derive(Debug, Clone)]
pub struct AdaptiveCount {
    count: u32,
    min: u32,
    max: u32,
    budget: Duration,
}

impl AdaptiveCount {
    /// Starts at `start`.
    pub fn new(start: u32, min: u32, max: u32, budget: Duration) -> Self {
        AdaptiveCount { count: start.clamp(min, max), min, max, budget }
    }

    /// The COUNT for the next call.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Feeds back how long the last call took.
    pub fn observe(&mut self, elapsed: Duration) {
        if elapsed > self.budget {
            self.count = (self.count / 2).max(self.min);
        } else if elapsed * 2 < self.budget {
            self.count = self.count.saturating_mul(2).min(self.max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap()
    }

    fn hash(key: &str, field: Option<&str>, ttl_ms: i64) -> Observation {
        Observation { key: key.into(), kind: "hash".into(), ttl_ms, field: field.map(Into::into), ..Default::default() }
    }

    fn keys(p: &BatchPlan) -> Vec<String> {
        p.decisions.iter().map(|d| key_text(&d.key)).collect()
    }

    #[test]
    fn sessions_older_than_24h_are_deleted_with_a_value_recheck() {
        let t = now().timestamp();
        let obs = vec![
            hash("session:old", Some(&(t - 25 * 3600).to_string()), -1),
            hash("session:fresh", Some(&(t - 3600).to_string()), 5000),
            hash("session:edge", Some(&(t - 24 * 3600).to_string()), -1),
            hash("session:frac", Some(&format!("{}.5", t - 48 * 3600)), 100),
            hash("session:nofield", None, -1),
            hash("session:garbage", Some("yesterday"), -1),
            Observation { key: "session:str".into(), kind: "string".into(), ttl_ms: -1, ..Default::default() },
            Observation { key: "session:gone".into(), kind: "none".into(), ttl_ms: -2, ..Default::default() },
        ];
        let p = plan(&Rule::sessions(), &obs, now());
        assert_eq!(keys(&p), ["session:old", "session:frac"]);
        assert_eq!((p.wrong_type, p.unreadable, p.untracked), (1, 2, 0));
        let action = p.decisions[0].action.clone().unwrap();
        assert_eq!(action.change, Change::Unlink);
        assert_eq!(
            action.recheck,
            Recheck::FieldUnchanged { field: "last_access".into(), value: (t - 25 * 3600).to_string().into() }
        );
        assert_eq!(p.decisions[0].reason, "last_access 2026-11-23T01:00:00Z is 1day 1h old (> 1day)");
    }

    #[test]
    fn veritas_results_use_iso_8601_in_any_common_spelling() {
        let obs = vec![
            hash("veritas:a", Some("2026-11-10T00:00:00Z"), -1),
            hash("veritas:b", Some("2026-11-10T00:00:00.123456+00:00"), -1),
            hash("veritas:c", Some("2026-11-10T00:00:00.5"), -1),
            hash("veritas:d", Some("2026-11-10 03:00:00+03:00"), -1),
            hash("veritas:fresh", Some("2026-11-23T00:00:00Z"), -1),
            hash("veritas:future", Some("2027-01-01T00:00:00Z"), -1),
            hash("veritas:unix", Some("1732406400"), -1),
        ];
        let p = plan(&Rule::veritas_results(), &obs, now());
        assert_eq!(keys(&p), ["veritas:a", "veritas:b", "veritas:c", "veritas:d"]);
        assert_eq!(p.unreadable, 1);
    }

    #[test]
    fn idle_rule_needs_no_ttl_and_a_tracked_idle_time() {
        let rule = Rule {
            name: "idle".into(),
            pattern: "*".into(),
            condition: Condition::IdleWithoutTtl { idle_longer_than: Duration::from_secs(100) },
            action: Action::SetTtl(Duration::from_secs(60)),
        };
        let o = |key: &str, ttl_ms: i64, idle: Option<u64>| Observation {
            key: key.into(),
            kind: "string".into(),
            ttl_ms,
            idle_secs: idle,
            ..Default::default()
        };
        let p = plan(
            &rule,
            &[o("a", -1, Some(500)), o("b", 9000, Some(500)), o("c", -1, Some(50)), o("d", -1, None)],
            now(),
        );
        assert_eq!(keys(&p), ["a"]);
        assert_eq!(p.untracked, 1);
        let action = p.decisions[0].action.clone().unwrap();
        assert_eq!(action.change, Change::Expire(60_000));
        assert_eq!(action.recheck, Recheck::IdleAtLeast { secs: 101 });
    }

    #[test]
    fn report_only_rules_decide_without_actions() {
        let rule = Rule {
            name: "big".into(),
            pattern: "*".into(),
            condition: Condition::LargerThan { bytes: 1000 },
            action: Action::Report,
        };
        let o = |key: &str, bytes: u64| Observation {
            key: key.into(),
            kind: "string".into(),
            ttl_ms: -1,
            memory_bytes: Some(bytes),
            ..Default::default()
        };
        let p = plan(&rule, &[o("small", 1000), o("big", 1001)], now());
        assert_eq!(keys(&p), ["big"]);
        assert_eq!(p.decisions[0].action, None);
        assert_eq!(p.decisions[0].reason, "1001 bytes (> 1000)");
    }

    #[test]
    fn only_ttl_rules_read_the_ttl() {
        assert!(!needs_ttl(&Rule::sessions()));
        let backfill = Rule { action: Action::SetTtl(Duration::from_secs(60)), ..Rule::sessions() };
        assert!(needs_ttl(&backfill));
        let idle = Rule {
            condition: Condition::IdleWithoutTtl { idle_longer_than: Duration::from_secs(1) },
            action: Action::Delete,
            ..Rule::sessions()
        };
        assert!(needs_ttl(&idle));
        // A field rule that deletes judges keys whose TTL was not read.
        let t = now().timestamp();
        let obs = hash("session:old", Some(&(t - 90_000).to_string()), crate::backend::TTL_NOT_READ);
        assert_eq!(plan(&Rule::sessions(), &[obs], now()).decisions.len(), 1);
    }

    #[test]
    fn scan_count_adapts_within_bounds() {
        let mut c = AdaptiveCount::new(100, 10, 400, Duration::from_millis(4));
        c.observe(Duration::from_micros(1900));
        assert_eq!(c.count(), 200);
        c.observe(Duration::from_micros(500));
        c.observe(Duration::from_micros(500));
        assert_eq!(c.count(), 400);
        c.observe(Duration::from_millis(3));
        assert_eq!(c.count(), 400);
        for _ in 0..10 {
            c.observe(Duration::from_millis(9));
        }
        assert_eq!(c.count(), 10);
    }
}
