//! Grandfather-father-son retention, per database, never deleting the newest complete or
//! the newest verified backup.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::{BackupEntry, Error, Ledger, key_database, key_time};

/// How long a dump without a manifest is left alone after its upload, whatever the minimum
/// age: `create` writes the manifest once the upload and the fingerprints are both done.
pub const INCOMPLETE_GRACE: TimeDelta = TimeDelta::hours(1);

/// Grandfather-father-son retention, applied to each database on its own.
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

impl Retention {
    /// Refuses a policy that keeps nothing (every keep count 0) and a minimum age that
    /// reaches before the earliest date there is.
    pub fn validate(&self) -> Result<(), Error> {
        if self.keep_daily == 0 && self.keep_weekly == 0 && self.keep_monthly == 0 {
            return Err(Error::invalid(
                "retention",
                "keep_daily, keep_weekly and keep_monthly are all 0: the policy keeps nothing (set one of them)",
            ));
        }
        check_days(self.min_age_days, "min_age_days")
    }
}

/// `days` days before `now`, if that is a date chrono can represent.
pub(crate) fn days_before(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(TimeDelta::days(i64::from(days)))
}

/// Refuses a number of days (config field or flag `field`) that reaches before the earliest date.
pub(crate) fn check_days(days: u32, field: &str) -> Result<(), Error> {
    match days_before(Utc::now(), days) {
        Some(_) => Ok(()),
        None => Err(Error::invalid(field, format!("{days} days reaches before the earliest date there is"))),
    }
}

/// A backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The dump's key; it names the database, and each database is a series of its own.
    pub key: String,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// When its objects were last written (the newer of dump and manifest), when known.
    pub uploaded_at: Option<DateTime<Utc>>,
    /// Whether it has a manifest.
    pub complete: bool,
    /// Whether its last verification passed (ledger).
    pub verified_ok: bool,
}

impl Candidate {
    /// A catalog entry with its ledger record; `None` when its age cannot be told (no time
    /// in the key and no dump object). A manifest whose dump is gone is no complete backup.
    pub fn from_entry(entry: &BackupEntry, ledger: &Ledger) -> Option<Candidate> {
        let created_at = key_time(&entry.key).or_else(|| entry.object.as_ref().map(|o| o.last_modified))?;
        Some(Candidate {
            key: entry.key.clone(),
            created_at,
            uploaded_at: entry.object.iter().chain(&entry.manifest).map(|m| m.last_modified).max(),
            complete: entry.manifest.is_some() && entry.object.is_some(),
            verified_ok: ledger.entries.get(&entry.key).and_then(|l| l.verified_ok).unwrap_or(false),
        })
    }

    /// The series it belongs to: its database (keys without one form one series).
    fn series(&self) -> &str {
        key_database(&self.key).unwrap_or_default()
    }
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

/// One database's backups, as the plan walks them newest first.
#[derive(Debug, Default)]
struct Series<'a> {
    newest_complete: Option<&'a str>,
    newest_verified: Option<&'a str>,
    days: BTreeSet<NaiveDate>,
    weeks: BTreeSet<(i32, u32)>,
    months: BTreeSet<(i32, u32)>,
}

/// Decides which backups to keep, each database on its own (one database's backups never
/// take another's slots). Per database it never deletes the newest complete backup nor the
/// newest one that passed verification; it never deletes anything younger than
/// `min_age_days`, nor a dump without a manifest within [`INCOMPLETE_GRACE`] of its upload.
/// Newest first.
pub fn plan_retention(backups: &[Candidate], policy: &Retention, now: DateTime<Utc>) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    sorted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.key.cmp(&a.key)));
    let young = days_before(now, policy.min_age_days).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let fresh = now - INCOMPLETE_GRACE;
    let mut series: HashMap<&str, Series<'_>> = HashMap::new();
    for c in &sorted {
        let s = series.entry(c.series()).or_default();
        if c.complete {
            s.newest_complete.get_or_insert(&c.key);
            if c.verified_ok {
                s.newest_verified.get_or_insert(&c.key);
            }
        }
    }
    let mut out = Vec::with_capacity(sorted.len());
    for c in sorted {
        let s = series.entry(c.series()).or_default();
        let mut reasons: Vec<&str> = Vec::new();
        if c.created_at > young {
            reasons.push("younger than the minimum age");
        }
        if !c.complete && c.uploaded_at.unwrap_or(c.created_at) > fresh {
            reasons.push("incomplete, uploaded less than 1 h ago (may still be uploading)");
        }
        if s.newest_verified == Some(c.key.as_str()) {
            reasons.push("newest verified backup");
        }
        if s.newest_complete == Some(c.key.as_str()) {
            reasons.push("newest complete backup");
        }
        if c.complete {
            let d = c.created_at.date_naive();
            let week = (d.iso_week().year(), d.iso_week().week());
            let month = (d.year(), d.month());
            if !s.days.contains(&d) && s.days.len() < policy.keep_daily as usize {
                s.days.insert(d);
                reasons.push("daily");
            }
            if !s.weeks.contains(&week) && s.weeks.len() < policy.keep_weekly as usize {
                s.weeks.insert(week);
                reasons.push("weekly");
            }
            if !s.months.contains(&month) && s.months.len() < policy.keep_monthly as usize {
                s.months.insert(month);
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
                Candidate {
                    key: format!("k{i:03}"),
                    created_at: at,
                    uploaded_at: None,
                    complete: true,
                    verified_ok: true,
                }
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
                ("k000", "younger than the minimum age, newest complete backup"),
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
            uploaded_at: None,
            complete: false,
            verified_ok: false,
        };
        let plan = plan_retention(&[c("uploading", 1), c("crashed", 50)], &Retention::default(), now);
        assert!(plan[0].keep);
        assert_eq!((plan[1].keep, plan[1].reason.as_str()), (false, "incomplete (no manifest)"));
    }

    fn backup(db: &str, at: DateTime<Utc>, complete: bool, verified_ok: bool) -> Candidate {
        let key = crate::backup_key(db, at, crate::Compression::Gzip);
        Candidate { key, created_at: at, uploaded_at: None, complete, verified_ok }
    }

    #[test]
    fn each_database_keeps_its_own_slots() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap();
        // Ten days of nightly backups of two databases, "b" always a few minutes after "a"
        // (and "aindus-db", whose name has a dash, in between).
        let mut all = Vec::new();
        for day in 0..10 {
            let at = now - TimeDelta::days(day) - TimeDelta::hours(1);
            all.push(backup("a", at, true, true));
            all.push(backup("aindus-db", at + TimeDelta::minutes(2), true, true));
            all.push(backup("b", at + TimeDelta::minutes(5), true, true));
        }
        let policy = Retention { keep_daily: 7, keep_weekly: 0, keep_monthly: 0, min_age_days: 0 };
        let plan = plan_retention(&all, &policy, now);
        for db in ["a", "aindus-db", "b"] {
            let mine: Vec<&Decision> =
                plan.iter().filter(|d| d.key.rsplit('/').next().unwrap().starts_with(&format!("{db}-2"))).collect();
            assert_eq!(mine.len(), 10);
            let daily = mine.iter().filter(|d| d.keep && d.reason.contains("daily")).count();
            assert_eq!(daily, 7, "{db} keeps its seven daily slots: {plan:#?}");
            assert!(mine[..7].iter().all(|d| d.keep), "{db}: the newest seven are kept: {mine:#?}");
            assert!(mine[7..].iter().all(|d| !d.keep), "{db}: the three oldest go: {mine:#?}");
        }
    }

    #[test]
    fn the_newest_complete_backup_is_never_deleted() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap();
        let none = Retention { keep_daily: 0, keep_weekly: 0, keep_monthly: 0, min_age_days: 0 };
        let mut all = Vec::new();
        for db in ["a", "b"] {
            all.push(backup(db, now - TimeDelta::days(1), false, false)); // newer, but incomplete
            all.push(backup(db, now - TimeDelta::days(2), true, false));
            all.push(backup(db, now - TimeDelta::days(3), true, false));
        }
        let plan = plan_retention(&all, &none, now);
        let mut kept: Vec<&str> = plan.iter().filter(|d| d.keep).map(|d| d.key.as_str()).collect();
        kept.sort_unstable();
        assert_eq!(kept, [all[1].key.as_str(), all[4].key.as_str()], "{plan:#?}");
        assert!(plan.iter().filter(|d| d.keep).all(|d| d.reason == "newest complete backup"), "{plan:#?}");
    }

    #[test]
    fn an_incomplete_backup_is_not_deleted_while_it_may_still_be_uploading() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap();
        let policy = Retention { min_age_days: 0, ..Retention::default() };
        let mut all = [
            backup("a", now - TimeDelta::minutes(10), false, false),
            backup("a", now - TimeDelta::hours(3), false, false),
            backup("a", now - TimeDelta::hours(5), false, false),
            backup("a", now - TimeDelta::days(1), true, true),
        ];
        // A five-hour dump whose upload ended ten minutes ago.
        all[2].uploaded_at = Some(now - TimeDelta::minutes(10));
        let plan = plan_retention(&all, &policy, now);
        assert!(plan[0].keep && plan[0].reason.contains("may still be uploading"), "{plan:#?}");
        assert_eq!((plan[1].keep, plan[1].reason.as_str()), (false, "incomplete (no manifest)"));
        assert!(plan[2].keep && plan[2].reason.contains("may still be uploading"), "{plan:#?}");
        assert!(plan[3].keep);
    }

    #[test]
    fn huge_minimum_ages_keep_everything_instead_of_panicking() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap();
        let forever = Retention { min_age_days: u32::MAX, ..Retention::default() };
        let plan = plan_retention(&history(30, now), &forever, now);
        assert!(plan.iter().all(|d| d.keep), "{plan:#?}");
    }

    #[test]
    fn a_policy_that_keeps_nothing_or_reaches_before_time_is_refused() {
        let none = Retention { keep_daily: 0, keep_weekly: 0, keep_monthly: 0, min_age_days: 1 };
        let e = none.validate().unwrap_err();
        assert!(e.is_bad_input());
        assert_eq!(
            e.to_string(),
            "retention: keep_daily, keep_weekly and keep_monthly are all 0: the policy keeps nothing (set one of them)"
        );
        let e = Retention { min_age_days: u32::MAX, ..Retention::default() }.validate().unwrap_err();
        assert_eq!(e.to_string(), "min_age_days: 4294967295 days reaches before the earliest date there is");
        assert!(Retention { keep_monthly: 1, ..none }.validate().is_ok());
        assert!(Retention { min_age_days: 36500, ..Retention::default() }.validate().is_ok());
    }
}
