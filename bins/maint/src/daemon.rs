//! `maint daemon`: runs each window at its start, with a missed-run policy.
//!
//! The decision ([`due`]) is pure; the loop ([`run_loop`]) does the waiting, running and
//! recording through a [`Host`], which the tests replace by a simulated clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use maint_core::chrono::{DateTime, TimeDelta, Utc};
use maint_core::tokio_util::sync::CancellationToken;
use maint_core::{Calendar, Error, RunReport, Status, one_line};
use serde::{Deserialize, Serialize};

/// The task id of the report `maint run` gives when another runner holds the run lock.
pub(crate) const RUN_LOCK_TASK: &str = "run-lock";

/// How long the loop waits after an error (or a held run lock) before trying again.
pub(crate) const BACKOFF: Duration = Duration::from_secs(60);

/// What to do with a window whose occurrence closed (start plus duration) before it ran:
/// the daemon was down, or busy with another window. An occurrence still inside its window
/// runs, late, under either policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum MissedPolicy {
    /// Never run a missed window; report it and wait for its next start.
    Skip,
    /// Run it once if its start is no older than the grace period.
    RunOnce,
}

/// The last occurrence of each window that ran, and the last one reported missed (kept
/// next to the lock file).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct DaemonState {
    /// Window -> the start of its last occurrence that ran to the end.
    pub(crate) last_run: BTreeMap<String, DateTime<Utc>>,
    /// Window -> the start of its last occurrence reported missed (reported once).
    #[serde(default)]
    pub(crate) missed: BTreeMap<String, DateTime<Utc>>,
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
            .map_err(Error::io("write", path))
    }
}

/// One occurrence of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Occurrence {
    pub(crate) window: String,
    pub(crate) start: DateTime<Utc>,
}

impl Occurrence {
    /// `daily (started 2026-12-02 02:00 UTC, 40 min ago)`.
    pub(crate) fn describe(&self, now: DateTime<Utc>) -> String {
        format!(
            "{} (started {}, {} min ago)",
            self.window,
            self.start.format("%Y-%m-%d %H:%M UTC"),
            (now - self.start).num_minutes()
        )
    }
}

/// What is due at one instant.
#[derive(Debug, Default)]
pub(crate) struct Due {
    /// To run now, in plan order.
    pub(crate) run: Vec<Occurrence>,
    /// Closed before they ran and not to be run (the policy); not reported before.
    pub(crate) missed: Vec<Occurrence>,
}

/// What is due at `now`. Each window's latest occurrence that neither ran nor was reported
/// missed runs while its window is open (late or not, under either policy), and after it
/// closed under `RunOnce` while its start is no older than `grace`; otherwise it is missed
/// (not reported for a window never run whose start is more than a day old: a first start).
pub(crate) fn due(
    cal: &Calendar,
    state: &DaemonState,
    now: DateTime<Utc>,
    policy: MissedPolicy,
    grace: TimeDelta,
) -> Due {
    let mut due = Due::default();
    for w in cal.windows() {
        let Some(start) = w.previous_start(now) else { continue };
        let settled = |m: &BTreeMap<String, DateTime<Utc>>| m.get(&w.name).is_some_and(|t| *t >= start);
        if settled(&state.last_run) || settled(&state.missed) {
            continue;
        }
        let late = now - start;
        let occ = Occurrence { window: w.name.clone(), start };
        if w.occurrence_containing(now) == Some(start) || (policy == MissedPolicy::RunOnce && late <= grace) {
            due.run.push(occ);
        } else if state.last_run.contains_key(&w.name) || late <= TimeDelta::days(1) {
            due.missed.push(occ);
        }
    }
    due
}

/// What the loop needs from the world; a simulated clock in the tests.
pub(crate) trait Host {
    /// The clock.
    fn now(&self) -> DateTime<Utc>;
    /// Waits `d` (the loop also wakes on a stop).
    async fn sleep(&self, d: Duration);
    /// The plan, read again at every turn.
    fn calendar(&self) -> Result<Calendar, Error>;
    /// Runs a window now, as `maint run WINDOW` does.
    async fn run(&self, window: &str) -> Result<RunReport, Error>;
    /// Persists the state.
    fn save(&self, state: &DaemonState) -> Result<(), Error>;
    /// Tells the operator that an occurrence was missed (the loop has logged it).
    async fn missed(&self, occurrence: &Occurrence, detail: &str);
}

/// The holder named by a report of a run the run lock skipped.
fn lock_holder(report: &RunReport) -> Option<&str> {
    match report.tasks.as_slice() {
        [t] if t.task == RUN_LOCK_TASK && t.status == Status::Skipped => t.warnings.first().map(String::as_str),
        _ => None,
    }
}

/// Runs what is due, one window at a time, deciding again at the current time after each
/// run, until `stop`. Only `stop` ends it: an error in a turn is logged and the turn tried
/// again after [`BACKOFF`].
pub(crate) async fn run_loop(
    host: &impl Host,
    state: &mut DaemonState,
    policy: MissedPolicy,
    grace: TimeDelta,
    stop: &CancellationToken,
) {
    // Window -> when a run that did not happen (run lock held, error) may be tried again.
    let mut retry_at = BTreeMap::new();
    while !stop.is_cancelled() {
        let wait = match turn(host, state, policy, grace, &mut retry_at, stop).await {
            Ok(Some(wait)) => wait,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!("daemon: {}; trying again in {}s", one_line(&e), BACKOFF.as_secs());
                BACKOFF
            }
        };
        tokio::select! {
            () = host.sleep(wait) => {}
            () = stop.cancelled() => {}
        }
    }
}

/// One turn: reports (once) what was missed, then runs the first due window that is not
/// waiting for a retry. `None` after a run (decide again now), else how long to sleep.
///
/// A run is recorded only when it ended: ok, warning, failed, or skipped by its own tasks.
/// One the run lock skipped (who holds it, running what, is not known) or that could not
/// start is retried after [`BACKOFF`] while still due; one cut short by `stop` is not
/// recorded, so the next daemon start resumes it under the missed policy.
async fn turn(
    host: &impl Host,
    state: &mut DaemonState,
    policy: MissedPolicy,
    grace: TimeDelta,
    retry_at: &mut BTreeMap<String, DateTime<Utc>>,
    stop: &CancellationToken,
) -> Result<Option<Duration>, Error> {
    let cal = host.calendar()?;
    let now = host.now();
    let due = due(&cal, state, now, policy, grace);
    for m in &due.missed {
        let detail = m.describe(now);
        tracing::warn!("missed window {detail}: not run (policy {policy:?})");
        host.missed(m, &detail).await;
        state.missed.insert(m.window.clone(), m.start);
    }
    if !due.missed.is_empty() {
        host.save(state)?;
    }
    let mut wake = cal.windows().iter().map(|w| w.next_start(now)).min().unwrap_or(now + BACKOFF);
    for occ in due.run {
        if let Some(at) = retry_at.get(&occ.window).filter(|at| **at > now) {
            wake = wake.min(*at);
            continue;
        }
        let result = host.run(&occ.window).await;
        if stop.is_cancelled() {
            tracing::warn!("window {} stopped before its end: not recorded as run", occ.window);
            return Ok(None);
        }
        let not_run = match result {
            Ok(report) => match lock_holder(&report) {
                Some(holder) => Some(holder.to_owned()),
                None => {
                    tracing::info!("{}", report.render_table().trim_end());
                    retry_at.remove(&occ.window);
                    state.last_run.insert(occ.window.clone(), occ.start);
                    host.save(state)?;
                    None
                }
            },
            Err(e) => Some(one_line(&e)),
        };
        if let Some(why) = not_run {
            tracing::warn!("window {} not run: {why}; trying again in {}s", occ.window, BACKOFF.as_secs());
            retry_at.insert(occ.window, host.now() + BACKOFF);
        }
        return Ok(None);
    }
    tracing::info!("next check at {}", wake.to_rfc3339_opts(maint_core::chrono::SecondsFormat::Secs, true));
    Ok(Some((wake - now).to_std().unwrap_or_default() + Duration::from_millis(50)))
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use maint_core::TaskReport;
    use maint_core::chrono::TimeZone;

    use super::*;

    fn cal() -> Calendar {
        Calendar::from_yaml(include_str!("../../../deploy/maintenance.yaml")).unwrap()
    }

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap()
    }

    fn names(occ: &[Occurrence]) -> Vec<&str> {
        occ.iter().map(|o| o.window.as_str()).collect()
    }

    #[test]
    fn on_time_windows_run_and_missed_ones_follow_the_policy() {
        let cal = cal();
        let mut state = DaemonState::default();
        let due = |state: &DaemonState, now, policy| super::due(&cal, state, now, policy, TimeDelta::hours(1));
        // Tuesday 1 December 02:00 exactly: the daily window is due.
        assert_eq!(names(&due(&state, at(1, 2, 0), MissedPolicy::Skip).run), ["daily"]);
        state.last_run.insert("daily".into(), at(1, 2, 0));
        assert!(due(&state, at(1, 2, 30), MissedPolicy::RunOnce).run.is_empty(), "already ran");
        // The daemon was down over Wednesday 02:00 (a 15-minute window); restarted at 02:40.
        let d = due(&state, at(2, 2, 40), MissedPolicy::Skip);
        assert!(d.run.is_empty());
        let missed: Vec<String> = d.missed.iter().map(|o| o.describe(at(2, 2, 40))).collect();
        assert_eq!(missed, ["daily (started 2026-12-02 02:00 UTC, 40 min ago)"]);
        assert_eq!(names(&due(&state, at(2, 2, 40), MissedPolicy::RunOnce).run), ["daily"], "within the grace period");
        let d = due(&state, at(2, 4, 0), MissedPolicy::RunOnce);
        assert!(d.run.is_empty(), "past the grace period");
        assert_eq!(d.missed.len(), 1);
        // Reported once: not again at the next turn.
        state.missed.insert("daily".into(), at(2, 2, 0));
        let d = due(&state, at(2, 4, 1), MissedPolicy::RunOnce);
        assert!(d.run.is_empty() && d.missed.is_empty(), "{d:?}");
        // Sunday 6 December is the first Sunday: monthly at 02:00, weekly at 03:00.
        state.last_run.insert("daily".into(), at(6, 2, 0));
        assert_eq!(names(&due(&state, at(6, 2, 0), MissedPolicy::Skip).run), ["monthly"]);
        state.last_run.insert("monthly".into(), at(6, 2, 0));
        assert_eq!(names(&due(&state, at(6, 3, 0), MissedPolicy::Skip).run), ["weekly"]);
    }

    /// A start that passed while another window ran is late, not missed, while its window
    /// (start plus duration) is open, under either policy; only a closed one is missed.
    #[test]
    fn a_late_start_inside_its_window_runs_under_either_policy() {
        let cal = cal();
        let mut state = DaemonState::default();
        for w in ["daily", "monthly"] {
            state.last_run.insert(w.into(), at(6, 2, 0));
        }
        state.last_run.insert("weekly".into(), at(6, 3, 0) - TimeDelta::days(7));
        for policy in [MissedPolicy::Skip, MissedPolicy::RunOnce] {
            let d = due(&cal, &state, at(6, 3, 35), policy, TimeDelta::minutes(10));
            assert_eq!(names(&d.run), ["weekly"], "{policy:?}");
            let d = due(&cal, &state, at(6, 4, 5), policy, TimeDelta::minutes(10));
            assert!(d.run.is_empty(), "{policy:?}: the weekly window closed at 04:00, past the grace");
            assert_eq!(names(&d.missed), ["weekly"], "{policy:?}");
        }
    }

    /// A simulated world: the clock moves only when the loop sleeps or a window runs.
    struct Sim {
        cal: Calendar,
        now: Cell<DateTime<Utc>>,
        end: DateTime<Utc>,
        stop: CancellationToken,
        /// Every run attempt: window, when.
        runs: RefCell<Vec<(String, DateTime<Utc>)>>,
        missed: RefCell<Vec<Occurrence>>,
        /// The state as last saved.
        saved: RefCell<BTreeMap<String, DateTime<Utc>>>,
        /// Calls made so far and the calls that fail: ("calendar" | "run" | "save", n).
        calls: RefCell<BTreeMap<&'static str, u32>>,
        fail: Vec<(&'static str, u32)>,
        /// Runs that find the run lock held by another runner.
        busy: Cell<u32>,
        /// The window whose run SIGTERM cuts short.
        sigterm_in: Option<&'static str>,
        turns: Cell<u32>,
    }

    impl Sim {
        fn new(from: DateTime<Utc>, end: DateTime<Utc>) -> Sim {
            Sim {
                cal: cal(),
                now: Cell::new(from),
                end,
                stop: CancellationToken::new(),
                runs: RefCell::default(),
                missed: RefCell::default(),
                saved: RefCell::default(),
                calls: RefCell::default(),
                fail: Vec::new(),
                busy: Cell::new(0),
                sigterm_in: None,
                turns: Cell::new(0),
            }
        }

        async fn drive(&self, state: &mut DaemonState, policy: MissedPolicy) {
            run_loop(self, state, policy, TimeDelta::hours(1), &self.stop).await;
            assert!(self.stop.is_cancelled(), "the loop ended before a stop, at {}", self.now.get());
        }

        /// Every run attempt: `daily 01 02:00` (window, day, time).
        fn runs(&self) -> Vec<String> {
            self.runs.borrow().iter().map(|(w, t)| format!("{w} {}", t.format("%d %H:%M"))).collect()
        }

        fn fails(&self, op: &'static str) -> bool {
            let mut calls = self.calls.borrow_mut();
            let n = calls.entry(op).or_default();
            *n += 1;
            self.fail.contains(&(op, *n))
        }

        fn advance(&self, d: TimeDelta) {
            self.now.set(self.now.get() + d);
            if self.now.get() >= self.end {
                self.stop.cancel();
            }
        }
    }

    impl Host for Sim {
        fn now(&self) -> DateTime<Utc> {
            self.turns.set(self.turns.get() + 1);
            assert!(self.turns.get() < 100_000, "the loop spins at {}", self.now.get());
            self.now.get()
        }

        async fn sleep(&self, d: Duration) {
            self.advance(TimeDelta::from_std(d).unwrap());
        }

        fn calendar(&self) -> Result<Calendar, Error> {
            if self.fails("calendar") {
                return Err(Error::invalid("calendar", "unreadable for a moment"));
            }
            Ok(self.cal.clone())
        }

        async fn run(&self, window: &str) -> Result<RunReport, Error> {
            self.runs.borrow_mut().push((window.to_owned(), self.now.get()));
            if self.fails("run") {
                return Err(Error::invalid("calendar", "unreadable for a moment"));
            }
            let mut task = TaskReport::begin("health-check", false);
            if self.busy.get() > 0 {
                self.busy.set(self.busy.get() - 1);
                let mut r = TaskReport::begin(RUN_LOCK_TASK, false);
                r.skip("another maint run holds the database run lock: pid 42");
                return Ok(RunReport::new(window, false, vec![r.finish()]));
            }
            // Runs of realistic length: a monthly of 90 minutes.
            let took = match window {
                "daily" => 5,
                "weekly" => 20,
                _ => 90,
            };
            self.advance(TimeDelta::minutes(took));
            if self.sigterm_in == Some(window) {
                self.stop.cancel();
                task.skip("the run was cancelled before this task");
            }
            Ok(RunReport::new(window, false, vec![task.finish()]))
        }

        fn save(&self, state: &DaemonState) -> Result<(), Error> {
            if self.fails("save") {
                return Err(Error::invalid("state", "disk full"));
            }
            *self.saved.borrow_mut() = state.last_run.clone();
            Ok(())
        }

        async fn missed(&self, occurrence: &Occurrence, _detail: &str) {
            self.missed.borrow_mut().push(occurrence.clone());
        }
    }

    /// First Sunday: daily and monthly at 02:00, the monthly takes 90 minutes; the weekly
    /// start (03:00) passes meanwhile and runs after it, inside its hour.
    #[tokio::test]
    async fn a_weekly_start_passed_during_a_long_monthly_run_runs_after_it() {
        let sim = Sim::new(at(6, 1, 0), at(6, 12, 0));
        let mut state = DaemonState::default();
        sim.drive(&mut state, MissedPolicy::Skip).await;
        assert_eq!(sim.runs(), ["daily 06 02:00", "monthly 06 02:05", "weekly 06 03:35"]);
        assert!(sim.missed.borrow().iter().all(|m| m.start < at(6, 0, 0)), "{:?}", sim.missed.borrow());
        for (w, start) in [("daily", at(6, 2, 0)), ("weekly", at(6, 3, 0)), ("monthly", at(6, 2, 0))] {
            assert_eq!(state.last_run[w], start, "{w}");
            assert_eq!(sim.saved.borrow()[w], start, "{w}");
        }
    }

    /// SIGTERM mid-window: the occurrence is not recorded, so the next daemon start resumes
    /// it under the missed policy.
    #[tokio::test]
    async fn a_window_cut_short_by_sigterm_is_not_recorded_and_resumes() {
        let mut sim = Sim::new(at(1, 1, 0), at(1, 12, 0));
        sim.sigterm_in = Some("daily");
        let mut state = DaemonState::default();
        sim.drive(&mut state, MissedPolicy::RunOnce).await;
        assert_eq!(sim.runs(), ["daily 01 02:00"]);
        assert!(!state.last_run.contains_key("daily"), "{state:?}");
        assert!(!sim.saved.borrow().contains_key("daily"));
        // Restarted at 02:30: the window (15 minutes) closed, the start is within the grace.
        let sim = Sim::new(at(1, 2, 30), at(1, 12, 0));
        sim.drive(&mut state, MissedPolicy::RunOnce).await;
        assert_eq!(sim.runs(), ["daily 01 02:30"]);
        assert_eq!(state.last_run["daily"], at(1, 2, 0));
    }

    /// An unreadable calendar, a failed run and a failed state save are logged; the loop
    /// retries after the backoff and goes on until it is stopped.
    #[tokio::test]
    async fn an_error_in_one_turn_does_not_end_the_loop() {
        let mut sim = Sim::new(at(1, 1, 0), at(2, 12, 0));
        sim.fail = vec![("calendar", 2), ("run", 1), ("save", 2)];
        let mut state = DaemonState::default();
        sim.drive(&mut state, MissedPolicy::Skip).await;
        assert_eq!(sim.runs(), ["daily 01 02:01", "daily 01 02:02", "daily 02 02:00"]);
        assert_eq!(state.last_run["daily"], at(2, 2, 0));
        assert_eq!(sim.saved.borrow()["daily"], at(2, 2, 0));
    }

    /// A run skipped because another runner holds the run lock is not recorded (who ran what
    /// is not known): retried inside the window, then reported missed once.
    #[tokio::test]
    async fn a_run_the_lock_skipped_is_retried_then_reported_missed() {
        let sim = Sim::new(at(1, 1, 30), at(1, 12, 0));
        sim.busy.set(2);
        let mut state = DaemonState::default();
        sim.drive(&mut state, MissedPolicy::Skip).await;
        assert_eq!(sim.runs(), ["daily 01 02:00", "daily 01 02:01", "daily 01 02:02"]);
        assert_eq!(state.last_run["daily"], at(1, 2, 0));

        let sim = Sim::new(at(1, 1, 30), at(1, 12, 0));
        sim.busy.set(u32::MAX);
        let mut state = DaemonState::default();
        sim.drive(&mut state, MissedPolicy::Skip).await;
        let expected: Vec<String> = (0..15).map(|m| format!("daily 01 02:{m:02}")).collect();
        assert_eq!(sim.runs(), expected, "retried each minute until the window closed at 02:15");
        assert!(!state.last_run.contains_key("daily"));
        let today: Vec<_> = sim.missed.borrow().iter().filter(|m| m.start == at(1, 2, 0)).cloned().collect();
        assert_eq!(names(&today), ["daily"], "reported once");
        assert_eq!(state.missed["daily"], at(1, 2, 0));
    }

    /// The shipped plan over a simulated year, with a monthly of 90 minutes: every
    /// occurrence runs exactly once, inside its window, and nothing is missed.
    #[tokio::test]
    async fn a_simulated_year_runs_every_occurrence_once_inside_its_window() {
        let (from, end) = (at(1, 0, 0), at(1, 0, 0) + TimeDelta::days(365));
        let sim = Sim::new(from, end);
        let mut state = DaemonState::default();
        state.last_run.insert("daily".into(), at(1, 0, 0) - TimeDelta::hours(22));
        sim.drive(&mut state, MissedPolicy::Skip).await;
        assert!(sim.missed.borrow().is_empty(), "{:?}", sim.missed.borrow());
        let runs = sim.runs.borrow();
        for w in sim.cal.windows() {
            let mut starts = Vec::new();
            let mut t = w.next_start(from - TimeDelta::seconds(1));
            while t < end {
                starts.push(t);
                t = w.next_start(t);
            }
            let ran: Vec<_> = runs.iter().filter(|(name, _)| *name == w.name).map(|(_, t)| *t).collect();
            assert_eq!(ran.len(), starts.len(), "{}: {ran:?}", w.name);
            for (start, t) in starts.iter().zip(&ran) {
                assert_eq!(w.occurrence_containing(*t), Some(*start), "{} ran at {t}", w.name);
            }
        }
    }
}
