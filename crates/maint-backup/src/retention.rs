use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Grandfather-father-son retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Retention {
    /// Newest backup of each of the last N days that have backups.
    pub keep_daily: u32,
    /// Newest backup of each of the last M ISO weeks that have backups.
    pub keep_weekly: u32,
    /// Newest backup of each of the last K months that have backups.
    pub keep_monthly: u32,
    /// Anything younger than this is kept (and an incomplete backup may still be uploading).
    pub min_age_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { keep_daily: 7, keep_weekly: 4, keep_monthly: 12, min_age_days: 1 }
    }
}

/// A backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The dump's key.
    pub key: String,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// Whether it has a manifest.
    pub complete: bool,
    /// Whether its last verification passed (ledger).
    pub verified_ok: bool,
}

/// Keep or delete, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The dump's key.
    pub key: String,
    /// Keep it?
    pub keep: bool,
    /// Why.
    pub reason: String,
}

/// Decides which backups to keep. Never deletes the newest backup that passed
/// verification, nor anything younger than `min_age_days`. Newest first.
pub fn plan_retention(backups: &[Candidate], policy: &Retention, now: DateTime<Utc>) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    sorted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.key.cmp(&a.key)));
    let newest_verified = sorted.iter().find(|c| c.complete && c.verified_ok).map(|c| c.key.clone());
    let young = now - TimeDelta::days(i64::from(policy.min_age_days));
    let (mut days, mut weeks, mut months) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut out = Vec::with_capacity(sorted.len());
    for c in sorted {
        let mut reasons: Vec<&str> = Vec::new();
        if c.created_at > young {
            reasons.push("younger than the minimum age");
        }
        if Some(&c.key) == newest_verified.as_ref() {
            reasons.push("newest verified backup");
        }
        if c.complete {
            let d = c.created_at.date_naive();
            let week = (d.iso_week().year(), d.iso_week().week());
            let month = (d.year(), d.month());
            if !days.contains(&d) && days.len() < policy.keep_daily as usize {
                days.insert(d);
                reasons.push("daily");
            }
            if !weeks.contains(&week) && weeks.len() < policy.keep_weekly as usize {
                weeks.insert(week);
                reasons.push("weekly");
            }
            if !months.contains(&month) && months.len() < policy.keep_monthly as usize {
                months.insert(month);
                reasons.push("monthly");
            }
        }
        let (keep, reason) = if !reasons.is_empty() {
            (true, reasons.join(", "))
        } else if !c.complete {
            (false, "incomplete (no manifest)".to_owned())
        } else {
            (false, "outside the daily, weekly and monthly slots".to_owned())
        };
        out.push(Decision { key: c.key.clone(), keep, reason });
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn history(days: i64, now: DateTime<Utc>) -> Vec<Candidate> {
        (0..days)
            .map(|i| {
                let at = now - TimeDelta::days(i) - TimeDelta::hours(1);
                Candidate { key: format!("k{i:03}"), created_at: at, complete: true, verified_ok: true }
            })
            .collect()
    }

    #[test]
    fn four_hundred_days_keep_the_gfs_slots_only() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap();
        let plan = plan_retention(&history(400, now), &Retention::default(), now);
        let kept: Vec<&Decision> = plan.iter().filter(|d| d.keep).collect();
        // 7 daily; 4 weekly (the first of them already a daily); 12 monthly (the first
        // one or two already kept): between 12 + 7 and 7 + 4 + 12 backups.
        assert!((19..=23).contains(&kept.len()), "{} kept: {kept:?}", kept.len());
        let slot = |name: &str| plan.iter().filter(|d| d.keep && d.reason.split(", ").any(|r| r == name)).count();
        assert_eq!(slot("monthly"), 12);
        assert_eq!(slot("weekly"), 4);
        assert_eq!(slot("daily"), 7);
        assert!(plan[..7].iter().all(|d| d.keep), "the newest seven days are kept");
        let oldest_kept = kept.iter().map(|d| d.key.as_str()).max().unwrap();
        assert!(oldest_kept < "k370", "nothing older than about a year: {oldest_kept}");
        assert!(plan.iter().any(|d| d.key == "k399" && !d.keep));
    }

    #[test]
    fn never_deletes_the_newest_verified_or_young_backups() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap();
        let mut h = history(60, now);
        for c in &mut h {
            c.verified_ok = c.key == "k050";
        }
        let none = Retention { keep_daily: 0, keep_weekly: 0, keep_monthly: 0, min_age_days: 2 };
        let plan = plan_retention(&h, &none, now);
        let kept: Vec<(&str, &str)> =
            plan.iter().filter(|d| d.keep).map(|d| (d.key.as_str(), d.reason.as_str())).collect();
        assert_eq!(
            kept,
            [
                ("k000", "younger than the minimum age"),
                ("k001", "younger than the minimum age"),
                ("k050", "newest verified backup")
            ]
        );
    }

    #[test]
    fn incomplete_backups_go_once_old_enough() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap();
        let c = |key: &str, hours: i64| Candidate {
            key: key.into(),
            created_at: now - TimeDelta::hours(hours),
            complete: false,
            verified_ok: false,
        };
        let plan = plan_retention(&[c("uploading", 1), c("crashed", 50)], &Retention::default(), now);
        assert!(plan[0].keep);
        assert_eq!((plan[1].keep, plan[1].reason.as_str()), (false, "incomplete (no manifest)"));
    }
}
