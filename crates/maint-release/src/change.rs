use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use maint_core::{Calendar, Impact};
use serde::{Deserialize, Serialize};

use crate::Error;

/// How risky a change is; the number of approvals it needs grows with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Routine.
    #[default]
    Low,
    /// Could disturb users.
    Medium,
    /// Could cause an outage.
    High,
    /// Could lose data.
    Critical,
}

impl Risk {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Risk {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Risk::Low),
            "medium" => Ok(Risk::Medium),
            "high" => Ok(Risk::High),
            "critical" => Ok(Risk::Critical),
            _ => Err(format!("unknown risk {s:?} (expected low, medium, high or critical)")),
        }
    }
}

/// Where a change request is in its life:
/// `draft -> submitted -> approved | rejected`, `approved -> scheduled -> done | failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeState {
    /// Being written by its requester.
    Draft,
    /// Waiting for approvals.
    Submitted,
    /// Enough approvals; waiting for a slot.
    Approved,
    /// Refused by an approver (final).
    Rejected,
    /// Has a start time inside its window.
    Scheduled,
    /// Carried out successfully (final).
    Done,
    /// Carried out and failed (final).
    Failed,
}

impl ChangeState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Draft => "draft",
            ChangeState::Submitted => "submitted",
            ChangeState::Approved => "approved",
            ChangeState::Rejected => "rejected",
            ChangeState::Scheduled => "scheduled",
            ChangeState::Done => "done",
            ChangeState::Failed => "failed",
        }
    }
}

impl fmt::Display for ChangeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangeState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ChangeState::Draft,
            ChangeState::Submitted,
            ChangeState::Approved,
            ChangeState::Rejected,
            ChangeState::Scheduled,
            ChangeState::Done,
            ChangeState::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s.trim().to_ascii_lowercase())
        .ok_or_else(|| format!("unknown state {s:?}"))
    }
}

/// How many distinct approvals each risk level needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// For [`Risk::Low`] (default 1).
    pub low: u32,
    /// For [`Risk::Medium`] (default 1).
    pub medium: u32,
    /// For [`Risk::High`] (default 2).
    pub high: u32,
    /// For [`Risk::Critical`] (default 3).
    pub critical: u32,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        ApprovalPolicy { low: 1, medium: 1, high: 2, critical: 3 }
    }
}

impl ApprovalPolicy {
    /// Approvals needed for `risk` (never fewer than one).
    pub fn required(&self, risk: Risk) -> u32 {
        match risk {
            Risk::Low => self.low,
            Risk::Medium => self.medium,
            Risk::High => self.high,
            Risk::Critical => self.critical,
        }
        .max(1)
    }
}

/// One approval (or rejection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, optionally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One state transition, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub by: String,
    /// New state.
    pub to: ChangeState,
}

/// What a requester writes to open a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewChange {
    /// One line.
    pub title: String,
    /// What and why.
    pub description: String,
    /// How risky.
    pub risk: Risk,
    /// What it does to the service (`downtime` only inside a window).
    pub impact: Option<Impact>,
    /// How to undo it.
    pub rollback_plan: String,
    /// How it was, or will be, tested.
    pub test_plan: String,
    /// Who asks for it (can never approve it).
    pub requester: String,
    /// Who may approve it.
    pub approvers: Vec<String>,
    /// The calendar window it must run in (`monthly`); required for `downtime`.
    pub window: Option<String>,
    /// How long it takes, in minutes.
    pub estimated_minutes: u32,
    /// The version it deploys, when it is an update.
    pub target_version: Option<String>,
}

/// A change request (CAB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// `CR-1`, `CR-2`, ...
    pub id: String,
    /// One line.
    pub title: String,
    /// What and why.
    pub description: String,
    /// How risky.
    pub risk: Risk,
    /// What it does to the service.
    pub impact: Impact,
    /// How to undo it.
    pub rollback_plan: String,
    /// How it was tested.
    pub test_plan: String,
    /// Who asks for it.
    pub requester: String,
    /// Who may approve it.
    pub approvers: Vec<String>,
    /// Calendar window it must run in.
    pub window: Option<String>,
    /// How long it takes, in minutes.
    pub estimated_minutes: u32,
    /// The version it deploys, when it is an update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,
    /// Where it is.
    pub state: ChangeState,
    /// Distinct approvals needed (fixed when submitted, from the risk).
    pub required_approvals: u32,
    /// Approvals, one per approver.
    pub approvals: Vec<Approval>,
    /// The rejection, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Approval>,
    /// Start, once scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_start: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Every transition, oldest first.
    pub history: Vec<Transition>,
}

/// Names are compared trimmed and case-insensitively: `Alice` and ` alice` are one person.
fn same_person(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn required_text(field: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() { Err(Error::invalid(field, "required")) } else { Ok(()) }
}

impl ChangeRequest {
    /// A draft from what the requester wrote; `field` errors name the bad input.
    pub fn new(id: impl Into<String>, new: NewChange, now: DateTime<Utc>) -> Result<Self, Error> {
        required_text("title", &new.title)?;
        required_text("requester", &new.requester)?;
        let impact = new.impact.unwrap_or(Impact::None);
        if new.estimated_minutes == 0 {
            return Err(Error::invalid("estimated_minutes", "must be at least 1"));
        }
        if new.risk >= Risk::High {
            required_text("rollback_plan", &new.rollback_plan)
                .map_err(|_| Error::invalid("rollback_plan", format!("required for a {} risk change", new.risk)))?;
        }
        if impact == Impact::Downtime && new.window.as_deref().is_none_or(|w| w.trim().is_empty()) {
            return Err(Error::invalid("window", "a downtime change must name its maintenance window"));
        }
        if let Some(a) = new.approvers.iter().find(|a| a.trim().is_empty()) {
            return Err(Error::invalid("approvers", format!("empty approver name {a:?}")));
        }
        let mut approvers: Vec<String> = Vec::new();
        for a in new.approvers {
            if !approvers.iter().any(|x| same_person(x, &a)) {
                approvers.push(a.trim().to_owned());
            }
        }
        Ok(ChangeRequest {
            id: id.into(),
            title: new.title.trim().to_owned(),
            description: new.description,
            risk: new.risk,
            impact,
            rollback_plan: new.rollback_plan,
            test_plan: new.test_plan,
            requester: new.requester.trim().to_owned(),
            approvers,
            window: new.window.map(|w| w.trim().to_owned()),
            estimated_minutes: new.estimated_minutes,
            target_version: new.target_version,
            state: ChangeState::Draft,
            required_approvals: 0,
            approvals: Vec::new(),
            rejection: None,
            scheduled_start: None,
            created_at: now,
            history: vec![Transition { at: now, by: new.requester.trim().to_owned(), to: ChangeState::Draft }],
        })
    }

    fn refuse(&self, message: impl Into<String>) -> Error {
        Error::change(&self.id, message)
    }

    fn expect_state(&self, want: ChangeState, doing: &str) -> Result<(), Error> {
        if self.state == want {
            Ok(())
        } else {
            Err(self.refuse(format!("cannot {doing}: it is {}, not {want}", self.state)))
        }
    }

    fn transition(&mut self, to: ChangeState, by: &str, now: DateTime<Utc>) {
        self.state = to;
        self.history.push(Transition { at: now, by: by.trim().to_owned(), to });
    }

    /// How long it is expected to take.
    pub fn duration(&self) -> TimeDelta {
        TimeDelta::minutes(i64::from(self.estimated_minutes))
    }

    /// Approvers other than the requester.
    fn eligible_approvers(&self) -> usize {
        self.approvers.iter().filter(|a| !same_person(a, &self.requester)).count()
    }

    /// `draft -> submitted`, by the requester. Fixes the number of approvals from the risk,
    /// and refuses when there are not enough approvers (besides the requester) to reach it.
    pub fn submit(&mut self, by: &str, policy: &ApprovalPolicy, now: DateTime<Utc>) -> Result<(), Error> {
        self.expect_state(ChangeState::Draft, "submit")?;
        if !same_person(by, &self.requester) {
            return Err(self.refuse(format!("only its requester {} can submit it", self.requester)));
        }
        let required = policy.required(self.risk);
        let eligible = self.eligible_approvers();
        if eligible < required as usize {
            return Err(self.refuse(format!(
                "a {} risk change needs {required} approval(s) but lists {eligible} approver(s) other than the requester",
                self.risk
            )));
        }
        self.required_approvals = required;
        self.transition(ChangeState::Submitted, by, now);
        Ok(())
    }

    /// Records an approval. Refused when: the change is not submitted, `by` is not a
    /// listed approver, `by` is the requester, or `by` has already approved (each
    /// approver counts once, whatever the spelling of their name). Reaching the required
    /// count moves it to `approved`.
    pub fn approve(&mut self, by: &str, comment: Option<String>, now: DateTime<Utc>) -> Result<(), Error> {
        self.expect_state(ChangeState::Submitted, "approve")?;
        if same_person(by, &self.requester) {
            return Err(self.refuse(format!("{} requested this change and cannot approve it", by.trim())));
        }
        if !self.approvers.iter().any(|a| same_person(a, by)) {
            return Err(self.refuse(format!("{} is not an approver of this change", by.trim())));
        }
        if self.approvals.iter().any(|a| same_person(&a.by, by)) {
            return Err(self.refuse(format!("{} has already approved it (an approver counts once)", by.trim())));
        }
        self.approvals.push(Approval { by: by.trim().to_owned(), at: now, comment });
        if self.approvals.len() >= self.required_approvals as usize {
            self.transition(ChangeState::Approved, by, now);
        }
        Ok(())
    }

    /// `submitted -> rejected`, by a listed approver who is not the requester.
    pub fn reject(&mut self, by: &str, reason: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.expect_state(ChangeState::Submitted, "reject")?;
        if same_person(by, &self.requester) || !self.approvers.iter().any(|a| same_person(a, by)) {
            return Err(
                self.refuse(format!("{} cannot reject it: only an approver other than the requester", by.trim()))
            );
        }
        required_text("reason", reason)?;
        self.rejection = Some(Approval { by: by.trim().to_owned(), at: now, comment: Some(reason.trim().to_owned()) });
        self.transition(ChangeState::Rejected, by, now);
        Ok(())
    }

    /// Checks that `[start, start + duration)` fits in one occurrence of the change's
    /// window. A `downtime` change must name a window whose tasks allow downtime; a
    /// change without a window may run at any time.
    pub fn check_window(&self, calendar: Option<&Calendar>, start: DateTime<Utc>) -> Result<(), Error> {
        let Some(name) = &self.window else {
            return if self.impact == Impact::Downtime {
                Err(self.refuse("a downtime change must name its maintenance window"))
            } else {
                Ok(())
            };
        };
        let calendar = calendar.ok_or_else(|| self.refuse(format!("window {name} needs a maintenance calendar")))?;
        let window =
            calendar.window(name).ok_or_else(|| self.refuse(format!("the calendar has no window named {name}")))?;
        if self.impact == Impact::Downtime && window.impact() != Impact::Downtime {
            return Err(
                self.refuse(format!("window {name} does not allow downtime (its impact is {})", window.impact()))
            );
        }
        let end = start + self.duration();
        match window.occurrence_containing(start) {
            Some(occ) if end <= occ + window.duration => Ok(()),
            Some(occ) => Err(self.refuse(format!(
                "{} + {} min ends at {end}, after window {name} closes at {}",
                start.to_rfc3339(),
                self.estimated_minutes,
                (occ + window.duration).to_rfc3339()
            ))),
            None => Err(self.refuse(format!(
                "{} is outside window {name} (next opens {})",
                start.to_rfc3339(),
                window.next_start(start).to_rfc3339()
            ))),
        }
    }

    /// `approved -> scheduled` at `start`, which must be in the future and inside the window.
    pub fn schedule(
        &mut self,
        by: &str,
        start: DateTime<Utc>,
        calendar: Option<&Calendar>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.expect_state(ChangeState::Approved, "schedule")?;
        if start < now {
            return Err(self.refuse(format!("start {} is in the past", start.to_rfc3339())));
        }
        self.check_window(calendar, start)?;
        self.scheduled_start = Some(start);
        self.transition(ChangeState::Scheduled, by, now);
        Ok(())
    }

    /// Whether it may be carried out at `now`: scheduled, `now` inside its slot
    /// `[start, start + duration)` and inside its window.
    pub fn ensure_executable(&self, calendar: Option<&Calendar>, now: DateTime<Utc>) -> Result<(), Error> {
        self.expect_state(ChangeState::Scheduled, "execute")?;
        let start = self.scheduled_start.ok_or_else(|| self.refuse("scheduled without a start"))?;
        if now < start || now >= start + self.duration() {
            return Err(self.refuse(format!(
                "execution refused outside the approved slot {} .. {}",
                start.to_rfc3339(),
                (start + self.duration()).to_rfc3339()
            )));
        }
        if self.window.is_some() {
            let calendar =
                calendar.ok_or_else(|| self.refuse("its window cannot be checked without a maintenance calendar"))?;
            let window = self.window.as_deref().and_then(|n| calendar.window(n));
            if !window.is_some_and(|w| w.contains(now)) {
                return Err(self.refuse(format!("execution refused: {} is outside its window", now.to_rfc3339())));
            }
        }
        Ok(())
    }

    /// `scheduled -> done | failed`.
    pub fn complete(&mut self, by: &str, success: bool, now: DateTime<Utc>) -> Result<(), Error> {
        self.expect_state(ChangeState::Scheduled, "complete")?;
        self.transition(if success { ChangeState::Done } else { ChangeState::Failed }, by, now);
        Ok(())
    }
}

/// The scheduled changes as an iCalendar (RFC 5545) document, one event per change
/// (`UID` `<id>@aindusdb-maint`), for a calendar program to import.
pub fn changes_to_icalendar<'a>(changes: impl IntoIterator<Item = &'a ChangeRequest>) -> String {
    use icalendar::{Component, EventLike, EventStatus};
    let mut cal = icalendar::Calendar::new();
    cal.name("AindusDB changes");
    for c in changes {
        let (ChangeState::Scheduled, Some(start)) = (c.state, c.scheduled_start) else { continue };
        let approvers: Vec<&str> = c.approvals.iter().map(|a| a.by.as_str()).collect();
        let description = format!(
            "{}\n\nrisk: {}\nimpact: {}\nrequester: {}\napproved by: {}\nrollback plan: {}\ntest plan: {}",
            c.description,
            c.risk,
            c.impact,
            c.requester,
            approvers.join(", "),
            c.rollback_plan,
            c.test_plan
        );
        let event = icalendar::Event::new()
            .uid(&format!("{}@aindusdb-maint", c.id))
            .summary(&format!("[{}] {} (risk {}, impact {})", c.id, c.title, c.risk, c.impact))
            .description(description.trim())
            .starts(start)
            .ends(start + c.duration())
            .status(EventStatus::Confirmed)
            .done();
        cal.push(event);
    }
    cal.done().to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const PLAN: &str = r#"
daily_maintenance:
  time: "02:00 UTC"
  duration: "15 minutes"
  tasks:
    - {name: "Log Rotation", impact: "none"}
monthly_maintenance:
  day: "First Sunday"
  time: "02:00 UTC"
  duration: "4 hours"
  tasks:
    - {name: "System Updates", impact: "downtime"}
"#;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn now() -> DateTime<Utc> {
        utc(2026, 11, 24, 10, 0)
    }

    fn draft(risk: Risk, approvers: &[&str]) -> ChangeRequest {
        ChangeRequest::new(
            "CR-1",
            NewChange {
                title: "Update AindusDB to 2.0.0".into(),
                risk,
                impact: Some(Impact::Downtime),
                rollback_plan: "kubectl rollout undo; restore the backup".into(),
                requester: "bob".into(),
                approvers: approvers.iter().map(|s| (*s).to_owned()).collect(),
                window: Some("monthly".into()),
                estimated_minutes: 60,
                ..NewChange::default()
            },
            now(),
        )
        .unwrap()
    }

    fn submitted(risk: Risk, approvers: &[&str]) -> ChangeRequest {
        let mut c = draft(risk, approvers);
        c.submit("bob", &ApprovalPolicy::default(), now()).unwrap();
        c
    }

    #[test]
    fn the_old_plans_double_approval_is_refused() {
        let mut c = submitted(Risk::High, &["alice", "carol"]);
        assert_eq!(c.required_approvals, 2);
        c.approve("alice", None, now()).unwrap();
        let err = c.approve("alice", Some("again".into()), now()).unwrap_err();
        assert_eq!(err.to_string(), "change CR-1: alice has already approved it (an approver counts once)");
        let err = c.approve(" ALICE ", None, now()).unwrap_err();
        assert!(err.to_string().contains("already approved"), "another spelling is the same person: {err}");
        assert_eq!(c.approvals.len(), 1);
        assert_eq!(c.state, ChangeState::Submitted, "one approver alone never satisfies two approvals");
        c.approve("carol", None, now()).unwrap();
        assert_eq!(c.state, ChangeState::Approved);
        assert!(c.approve("dave", None, now()).unwrap_err().to_string().contains("it is approved, not submitted"));
    }

    #[test]
    fn the_requester_cannot_approve_or_reject_their_own_change() {
        let mut c = submitted(Risk::Low, &["alice", "bob"]);
        let err = c.approve("Bob", None, now()).unwrap_err();
        assert_eq!(err.to_string(), "change CR-1: Bob requested this change and cannot approve it");
        assert!(c.reject("bob", "no", now()).is_err());
        assert!(c.approvals.is_empty());
    }

    #[test]
    fn only_listed_approvers_approve_and_required_approvals_grow_with_risk() {
        let mut c = submitted(Risk::Low, &["alice"]);
        assert!(c.approve("mallory", None, now()).unwrap_err().to_string().contains("mallory is not an approver"));
        let policy = ApprovalPolicy::default();
        assert_eq!([Risk::Low, Risk::Medium, Risk::High, Risk::Critical].map(|r| policy.required(r)), [1, 1, 2, 3]);
        let mut critical = draft(Risk::Critical, &["alice", "carol", "bob"]);
        let err = critical.submit("bob", &policy, now()).unwrap_err();
        assert!(
            err.to_string().contains("needs 3 approval(s) but lists 2 approver(s) other than the requester"),
            "{err}"
        );
        let mut critical = draft(Risk::Critical, &["alice", "carol", "dave"]);
        critical.submit("bob", &policy, now()).unwrap();
        critical.approve("alice", None, now()).unwrap();
        critical.approve("carol", None, now()).unwrap();
        assert_eq!(critical.state, ChangeState::Submitted, "a critical change with two approvals is not approved");
        assert!(critical.schedule("ops", utc(2026, 12, 6, 2, 0), None, now()).is_err());
        critical.approve("dave", None, now()).unwrap();
        assert_eq!(critical.state, ChangeState::Approved);
        assert!(c.submit("bob", &policy, now()).unwrap_err().to_string().contains("cannot submit: it is submitted"));
        let mut d = draft(Risk::Low, &["alice"]);
        assert!(d.submit("alice", &policy, now()).unwrap_err().to_string().contains("only its requester bob"));
    }

    #[test]
    fn rejection_is_final_and_needs_a_reason() {
        let mut c = submitted(Risk::Medium, &["alice"]);
        assert!(matches!(c.reject("alice", " ", now()), Err(Error::Invalid { ref field, .. }) if field == "reason"));
        c.reject("alice", "no rollback test", now()).unwrap();
        assert_eq!(c.state, ChangeState::Rejected);
        assert_eq!(c.rejection.as_ref().unwrap().comment.as_deref(), Some("no rollback test"));
        assert!(c.approve("alice", None, now()).is_err());
        let states: Vec<ChangeState> = c.history.iter().map(|t| t.to).collect();
        assert_eq!(states, [ChangeState::Draft, ChangeState::Submitted, ChangeState::Rejected]);
    }

    #[test]
    fn new_changes_are_validated_field_by_field() {
        let base =
            NewChange { title: "t".into(), requester: "bob".into(), estimated_minutes: 5, ..NewChange::default() };
        let err = |n: NewChange| match ChangeRequest::new("CR-9", n, now()).unwrap_err() {
            Error::Invalid { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(err(NewChange { title: " ".into(), ..base.clone() }), "title");
        assert_eq!(err(NewChange { requester: String::new(), ..base.clone() }), "requester");
        assert_eq!(err(NewChange { estimated_minutes: 0, ..base.clone() }), "estimated_minutes");
        assert_eq!(err(NewChange { risk: Risk::High, ..base.clone() }), "rollback_plan");
        assert_eq!(err(NewChange { impact: Some(Impact::Downtime), ..base.clone() }), "window");
        let c =
            ChangeRequest::new("CR-9", NewChange { approvers: vec!["a".into(), " A".into()], ..base }, now()).unwrap();
        assert_eq!(c.approvers, ["a"], "an approver listed twice is one approver");
        assert_eq!(c.impact, Impact::None);
    }

    #[test]
    fn a_downtime_change_is_scheduled_and_executed_only_inside_its_window() {
        let cal = Calendar::from_yaml(PLAN).unwrap();
        let mut c = submitted(Risk::Low, &["alice"]);
        c.approve("alice", None, now()).unwrap();
        // December 2026: the first Sunday is the 6th; the window is 02:00-06:00.
        let err = c.schedule("ops", utc(2026, 12, 7, 2, 0), Some(&cal), now()).unwrap_err();
        assert!(err.to_string().contains("is outside window monthly (next opens 2027-01-03T02:00:00+00:00)"), "{err}");
        let err = c.schedule("ops", utc(2026, 12, 6, 5, 30), Some(&cal), now()).unwrap_err();
        assert!(err.to_string().contains("after window monthly closes at 2026-12-06T06:00:00+00:00"), "{err}");
        assert!(c.schedule("ops", utc(2026, 12, 6, 2, 0), None, now()).unwrap_err().to_string().contains("calendar"));
        assert!(c.schedule("ops", utc(2026, 11, 1, 2, 0), Some(&cal), now()).unwrap_err().to_string().contains("past"));
        let mut daily = c.clone();
        daily.window = Some("daily".into());
        let err = daily.schedule("ops", utc(2026, 12, 6, 2, 0), Some(&cal), now()).unwrap_err();
        assert!(err.to_string().contains("window daily does not allow downtime"), "{err}");
        c.schedule("ops", utc(2026, 12, 6, 2, 30), Some(&cal), now()).unwrap();
        assert_eq!(c.state, ChangeState::Scheduled);
        let err = c.ensure_executable(Some(&cal), utc(2026, 12, 6, 2, 0)).unwrap_err();
        assert!(err.to_string().contains("execution refused outside the approved slot"), "{err}");
        assert!(c.ensure_executable(Some(&cal), utc(2026, 12, 6, 3, 31)).is_err());
        c.ensure_executable(Some(&cal), utc(2026, 12, 6, 2, 45)).unwrap();
        assert!(c.ensure_executable(None, utc(2026, 12, 6, 2, 45)).is_err());
        c.complete("ops", true, utc(2026, 12, 6, 3, 0)).unwrap();
        assert_eq!(c.state, ChangeState::Done);
        assert!(c.ensure_executable(Some(&cal), utc(2026, 12, 6, 2, 45)).is_err());
    }

    #[test]
    fn a_change_without_a_window_runs_at_its_slot() {
        let mut c = ChangeRequest::new(
            "CR-2",
            NewChange {
                title: "Patch".into(),
                requester: "bob".into(),
                approvers: vec!["alice".into()],
                estimated_minutes: 10,
                ..NewChange::default()
            },
            now(),
        )
        .unwrap();
        c.submit("bob", &ApprovalPolicy::default(), now()).unwrap();
        c.approve("alice", None, now()).unwrap();
        c.schedule("ops", utc(2026, 11, 25, 14, 0), None, now()).unwrap();
        c.ensure_executable(None, utc(2026, 11, 25, 14, 5)).unwrap();
        c.complete("ops", false, utc(2026, 11, 25, 14, 9)).unwrap();
        assert_eq!(c.state, ChangeState::Failed);
    }

    #[test]
    fn scheduled_changes_export_to_icalendar_and_parse_back() {
        use icalendar::Component;
        let cal = Calendar::from_yaml(PLAN).unwrap();
        let mut c = submitted(Risk::Low, &["alice"]);
        c.approve("alice", None, now()).unwrap();
        let draft_only = draft(Risk::Low, &["alice"]);
        let mut scheduled = c.clone();
        scheduled.schedule("ops", utc(2026, 12, 6, 2, 0), Some(&cal), now()).unwrap();
        let text = changes_to_icalendar([&c, &draft_only, &scheduled]);
        let parsed: icalendar::Calendar = text.parse().unwrap();
        let events: Vec<_> = parsed.events().collect();
        assert_eq!(events.len(), 1, "only scheduled changes are exported");
        let e = events[0];
        assert_eq!(e.get_uid(), Some("CR-1@aindusdb-maint"));
        assert_eq!(e.get_summary(), Some("[CR-1] Update AindusDB to 2.0.0 (risk low, impact downtime)"));
        assert_eq!(e.get_start(), Some(utc(2026, 12, 6, 2, 0).into()));
        assert_eq!(e.get_end(), Some(utc(2026, 12, 6, 3, 0).into()));
        assert!(e.get_description().unwrap().contains("approved by: alice"));
        assert_eq!(e.property_value("STATUS"), Some("CONFIRMED"));
    }

    #[test]
    fn states_and_risks_parse() {
        assert_eq!("Scheduled".parse::<ChangeState>(), Ok(ChangeState::Scheduled));
        assert!("pending".parse::<ChangeState>().is_err());
        assert_eq!("CRITICAL".parse::<Risk>(), Ok(Risk::Critical));
        assert!("huge".parse::<Risk>().unwrap_err().contains("expected low, medium, high or critical"));
    }
}
