//! `maint daemon`: runs each window at its start, with a missed-run policy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use maint_core::chrono::{DateTime, TimeDelta, Utc};
use maint_core::{Calendar, Error};
use serde::{Deserialize, Serialize};

/// What to do with a window whose start passed while the daemon was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum MissedPolicy {
    /// Never run a missed window; wait for its next start.
    Skip,
    /// Run it once if its start is no older than the grace period.
    RunOnce,
}

/// When each window last ran (kept next to the lock file).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct DaemonState {
    pub(crate) last_run: BTreeMap<String, DateTime<Utc>>,
}

impl DaemonState {
    pub(crate) fn path(lock_file: &Path) -> PathBuf {
        lock_file.with_extension("daemon.json")
    }

    pub(crate) fn load(path: &Path) -> DaemonState {
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), Error> {
        maint_core::write_atomic(path, &serde_json::to_vec_pretty(self).unwrap_or_default())
            .map_err(|source| Error::Read { path: path.to_owned(), source })
    }
}

/// Windows to run now: those whose latest start is after their last run and, under
/// `RunOnce`, within the grace period; with the windows skipped and why.
pub(crate) fn due(
    cal: &Calendar,
    state: &DaemonState,
    now: DateTime<Utc>,
    policy: MissedPolicy,
    grace: TimeDelta,
) -> (Vec<String>, Vec<String>) {
    let (mut run, mut skipped) = (Vec::new(), Vec::new());
    for w in cal.windows() {
        let Some(start) = w.previous_start(now) else { continue };
        if state.last_run.get(&w.name).is_some_and(|last| *last >= start) {
            continue;
        }
        let late = now - start;
        if late <= TimeDelta::seconds(1) || (policy == MissedPolicy::RunOnce && late <= grace) {
            run.push(w.name.clone());
        } else if state.last_run.contains_key(&w.name) || late <= TimeDelta::days(1) {
            skipped.push(format!(
                "{} (started {}, {} min ago)",
                w.name,
                start.format("%Y-%m-%d %H:%M UTC"),
                late.num_minutes()
            ));
        }
    }
    (run, skipped)
}

#[cfg(test)]
mod tests {
    use maint_core::chrono::TimeZone;

    use super::*;

    fn cal() -> Calendar {
        Calendar::from_yaml(include_str!("../../../deploy/maintenance.yaml")).unwrap()
    }

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap()
    }

    #[test]
    fn on_time_windows_run_and_missed_ones_follow_the_policy() {
        let cal = cal();
        let mut state = DaemonState::default();
        // Tuesday 1 December 02:00 exactly: the daily window is due.
        let (run, _) = due(&cal, &state, at(1, 2, 0), MissedPolicy::Skip, TimeDelta::hours(1));
        assert_eq!(run, ["daily"]);
        state.last_run.insert("daily".into(), at(1, 2, 0));
        let (run, _) = due(&cal, &state, at(1, 2, 30), MissedPolicy::RunOnce, TimeDelta::hours(1));
        assert!(run.is_empty(), "already ran");
        // The daemon was down over Wednesday 02:00; restarted at 02:40.
        let (run, skipped) = due(&cal, &state, at(2, 2, 40), MissedPolicy::Skip, TimeDelta::hours(1));
        assert!(run.is_empty());
        assert_eq!(skipped, ["daily (started 2026-12-02 02:00 UTC, 40 min ago)"]);
        let (run, _) = due(&cal, &state, at(2, 2, 40), MissedPolicy::RunOnce, TimeDelta::hours(1));
        assert_eq!(run, ["daily"], "within the grace period");
        let (run, skipped) = due(&cal, &state, at(2, 4, 0), MissedPolicy::RunOnce, TimeDelta::hours(1));
        assert!(run.is_empty(), "past the grace period");
        assert_eq!(skipped.len(), 1);
        // Sunday 6 December is the first Sunday: monthly at 02:00, weekly at 03:00.
        state.last_run.insert("daily".into(), at(6, 2, 0));
        let (run, _) = due(&cal, &state, at(6, 2, 0), MissedPolicy::Skip, TimeDelta::hours(1));
        assert_eq!(run, ["monthly"]);
        let (run, _) = due(&cal, &state, at(6, 3, 0), MissedPolicy::Skip, TimeDelta::hours(1));
        assert_eq!(run, ["weekly"]);
    }
}
