//! A change request and its life: pending → approved → scheduled → in_progress →
//! completed | failed → rolled_back (and rejected, cancelled), the approval policy, the
//! window check, and the iCalendar export.

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
///
/// ```text
/// pending -> approved -> scheduled -> in_progress -> completed
///    |          |            |                    -> failed -> rolled_back
///    |          +------------+--> cancelled
///    +--> rejected | cancelled
/// ```
///
/// `rejected` (by an approver) and `cancelled` (by the requester or an approver, before
/// execution starts) are the two ways a change ends without being carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    /// Waiting for approvals (a new change starts here).
    Pending,
    /// Enough approvals; waiting for a slot.
    Approved,
    /// Has a start time inside its window.
    Scheduled,
    /// Being carried out (entered only inside its slot and window).
    InProgress,
    /// Carried out successfully (final).
    Completed,
    /// Carried out and failed.
    Failed,
    /// Failed, and undone (final).
    RolledBack,
    /// Refused by an approver (final).
    Rejected,
    /// Withdrawn before it started (final).
    Cancelled,
}

impl ChangeState {
    /// Every state, in life order.
    pub const ALL: [ChangeState; 9] = [
        ChangeState::Pending,
        ChangeState::Approved,
        ChangeState::Scheduled,
        ChangeState::InProgress,
        ChangeState::Completed,
        ChangeState::Failed,
        ChangeState::RolledBack,
        ChangeState::Rejected,
        ChangeState::Cancelled,
    ];

    /// The snake_case name (`in_progress`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Pending => "pending",
            ChangeState::Approved => "approved",
            ChangeState::Scheduled => "scheduled",
            ChangeState::InProgress => "in_progress",
            ChangeState::Completed => "completed",
            ChangeState::Failed => "failed",
            ChangeState::RolledBack => "rolled_back",
            ChangeState::Rejected => "rejected",
            ChangeState::Cancelled => "cancelled",
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
    /// `in_progress`, `in-progress` and `in progress` are one state; case is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        ChangeState::ALL.into_iter().find(|st| st.as_str() == wanted).ok_or_else(|| {
            let names: Vec<&str> = ChangeState::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown state {s:?} (expected {})", names.join(", "))
        })
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

/// One approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who, as they named themselves (a listed approver).
    pub by: String,
    /// The authenticated identity that approved: the PostgreSQL `session_user` of the
    /// change store's connection, set by the store (never by the caller). A change counts
    /// one approval per identity. `None` in a store without authentication
    /// ([`crate::MemoryChangeStore`]) and for approvals stored before identities were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// Why, optionally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One thing that happened to a change (who did what when), for its history. Every
/// accepted operation is one event, whether it moved the state or not (an approval
/// short of the required count stays `pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub by: String,
    /// What: `create`, `approve`, `reject`, `schedule`, `start`, `complete`, `fail`,
    /// `roll_back`, `cancel`.
    pub action: String,
    /// The state before (`None` for `create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<ChangeState>,
    /// The state after.
    pub to: ChangeState,
    /// A comment, reason or start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
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
    /// `CR-1`, `CR-2`, ... (the number is allocated by the store).
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
    /// The authenticated identity that created it (the store's `session_user`): it can
    /// never approve it. `None` as for [`Approval::identity`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_identity: Option<String>,
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
    /// Distinct approvals needed (fixed at creation, from the risk).
    pub required_approvals: u32,
    /// Approvals, one per approver, oldest first.
    pub approvals: Vec<Approval>,
    /// Start, once scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_start: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Every event, oldest first. Operations only ever append to it (and to
    /// `approvals`): a store persists what was appended.
    pub history: Vec<ChangeEvent>,
}

/// Names are compared trimmed and case-insensitively: `Alice` and ` alice` are one person.
pub(crate) fn same_person(a: &str, b: &str) -> bool {
    person_key(a) == person_key(b)
}

/// The form under which a name is compared (and kept unique in the database).
pub(crate) fn person_key(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

fn required_text(field: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() { Err(Error::invalid(field, "required")) } else { Ok(()) }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl ChangeRequest {
    /// A `pending` change from what the requester wrote, needing
    /// `policy.required(risk)` approvals. Refused (`field` errors name the bad input) when
    /// a required field is empty, a downtime change names no window, a high or critical
    /// change has no rollback plan, or there are not enough approvers besides the
    /// requester to ever reach the required count.
    pub fn new(
        id: impl Into<String>,
        new: NewChange,
        policy: &ApprovalPolicy,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
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
        let window = non_empty(new.window.as_deref());
        if impact == Impact::Downtime && window.is_none() {
            return Err(Error::invalid("window", "a downtime change must name its maintenance window"));
        }
        if let Some(a) = new.approvers.iter().find(|a| a.trim().is_empty()) {
            return Err(Error::invalid("approvers", format!("empty approver name {a:?}")));
        }
        let requester = new.requester.trim().to_owned();
        let mut approvers: Vec<String> = Vec::new();
        for a in new.approvers {
            if !approvers.iter().any(|x| same_person(x, &a)) {
                approvers.push(a.trim().to_owned());
            }
        }
        let required = policy.required(new.risk);
        let eligible = approvers.iter().filter(|a| !same_person(a, &requester)).count();
        if eligible < required as usize {
            return Err(Error::invalid(
                "approvers",
                format!(
                    "a {} risk change needs {required} approval(s) but lists {eligible} approver(s) other than the requester",
                    new.risk
                ),
            ));
        }
        Ok(ChangeRequest {
            id: id.into(),
            title: new.title.trim().to_owned(),
            description: new.description,
            risk: new.risk,
            impact,
            rollback_plan: new.rollback_plan,
            test_plan: new.test_plan,
            history: vec![ChangeEvent {
                at: now,
                by: requester.clone(),
                action: "create".into(),
                from: None,
                to: ChangeState::Pending,
                detail: Some(format!("needs {required} approval(s)")),
            }],
            requester,
            requester_identity: None,
            approvers,
            window,
            estimated_minutes: new.estimated_minutes,
            target_version: non_empty(new.target_version.as_deref()),
            state: ChangeState::Pending,
            required_approvals: required,
            approvals: Vec::new(),
            scheduled_start: None,
            created_at: now,
        })
    }

    fn refuse(&self, message: impl Into<String>) -> Error {
        Error::change(&self.id, message)
    }

    fn expect_state(&self, allowed: &[ChangeState], doing: &str) -> Result<(), Error> {
        if allowed.contains(&self.state) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        let want = match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Err(self.refuse(format!("cannot {doing}: it is {}, not {want}", self.state)))
    }

    fn event(&mut self, action: &str, to: ChangeState, by: &str, detail: Option<String>, now: DateTime<Utc>) {
        let from = Some(self.state);
        self.state = to;
        self.history.push(ChangeEvent { at: now, by: by.trim().to_owned(), action: action.into(), from, to, detail });
    }

    fn check_actor(&self, by: &str) -> Result<(), Error> {
        if by.trim().is_empty() { Err(Error::invalid("by", "required")) } else { Ok(()) }
    }

    /// How long it is expected to take.
    pub fn duration(&self) -> TimeDelta {
        TimeDelta::minutes(i64::from(self.estimated_minutes))
    }

    /// Whether `by` is a listed approver other than the requester.
    pub fn may_approve(&self, by: &str) -> bool {
        !same_person(by, &self.requester) && self.approvers.iter().any(|a| same_person(a, by))
    }

    /// Records an approval. Refused when: the change is not pending, `by` is the
    /// requester, `by` is not a listed approver, or `by` has already approved (each
    /// approver counts once, whatever the spelling of their name). Reaching the required
    /// count moves it to `approved`.
    pub fn approve(&mut self, by: &str, comment: Option<&str>, now: DateTime<Utc>) -> Result<(), Error> {
        self.check_actor(by)?;
        self.expect_state(&[ChangeState::Pending], "approve")?;
        if same_person(by, &self.requester) {
            return Err(self.refuse(format!("{} requested this change and cannot approve it", by.trim())));
        }
        if !self.approvers.iter().any(|a| same_person(a, by)) {
            return Err(self.refuse(format!("{} is not an approver of this change", by.trim())));
        }
        if self.approvals.iter().any(|a| same_person(&a.by, by)) {
            return Err(self.refuse(format!("{} has already approved it (an approver counts once)", by.trim())));
        }
        let comment = non_empty(comment);
        self.approvals.push(Approval { by: by.trim().to_owned(), identity: None, at: now, comment: comment.clone() });
        let to = if self.approvals.len() >= self.required_approvals as usize {
            ChangeState::Approved
        } else {
            ChangeState::Pending
        };
        let count = format!("approval {}/{}", self.approvals.len(), self.required_approvals);
        let detail = match comment {
            Some(c) => format!("{count}: {c}"),
            None => count,
        };
        self.event("approve", to, by, Some(detail), now);
        Ok(())
    }

    /// Sets `identity`, the authenticated identity of the session that made them, on the
    /// approvals from index `from` on (the ones an operation just appended), and refuses
    /// them when `identity` is the one that created the change or has already approved
    /// it, under whatever name: names are what people type, the identity is who they
    /// are. A store with authentication calls this after every operation, before it
    /// stores anything.
    pub fn authenticate_approvals(&mut self, from: usize, identity: &str) -> Result<(), Error> {
        for i in from..self.approvals.len() {
            if self.requester_identity.as_deref() == Some(identity) {
                return Err(self.refuse(format!("role {identity} requested this change and cannot approve it")));
            }
            if let Some(earlier) = self.approvals[..i].iter().find(|a| a.identity.as_deref() == Some(identity)) {
                return Err(self.refuse(format!(
                    "role {identity} has already approved it as {} (an identity counts once)",
                    earlier.by
                )));
            }
            self.approvals[i].identity = Some(identity.to_owned());
        }
        Ok(())
    }

    /// `pending -> rejected`, by a listed approver who is not the requester, with a reason.
    pub fn reject(&mut self, by: &str, reason: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.check_actor(by)?;
        self.expect_state(&[ChangeState::Pending], "reject")?;
        if !self.may_approve(by) {
            return Err(
                self.refuse(format!("{} cannot reject it: only an approver other than the requester", by.trim()))
            );
        }
        required_text("reason", reason)?;
        self.event("reject", ChangeState::Rejected, by, Some(reason.trim().to_owned()), now);
        Ok(())
    }

    /// `pending | approved | scheduled -> cancelled`, by the requester or a listed approver,
    /// with a reason. A change that has started cannot be cancelled: it completes or fails.
    pub fn cancel(&mut self, by: &str, reason: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.check_actor(by)?;
        self.expect_state(&[ChangeState::Pending, ChangeState::Approved, ChangeState::Scheduled], "cancel")?;
        if !same_person(by, &self.requester) && !self.approvers.iter().any(|a| same_person(a, by)) {
            return Err(self.refuse(format!("{} cannot cancel it: only its requester or an approver", by.trim())));
        }
        required_text("reason", reason)?;
        self.event("cancel", ChangeState::Cancelled, by, Some(reason.trim().to_owned()), now);
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
        self.check_actor(by)?;
        self.expect_state(&[ChangeState::Approved], "schedule")?;
        if start < now {
            return Err(self.refuse(format!("start {} is in the past", start.to_rfc3339())));
        }
        self.check_window(calendar, start)?;
        self.scheduled_start = Some(start);
        self.event("schedule", ChangeState::Scheduled, by, Some(start.to_rfc3339()), now);
        Ok(())
    }

    /// Whether it may be carried out at `now`: scheduled, `now` inside its slot
    /// `[start, start + duration)` and inside its window.
    pub fn ensure_executable(&self, calendar: Option<&Calendar>, now: DateTime<Utc>) -> Result<(), Error> {
        self.expect_state(&[ChangeState::Scheduled], "execute")?;
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

    /// `scheduled -> in_progress`: execution starts, only when [`Self::ensure_executable`]
    /// allows it at `now`.
    pub fn start(&mut self, by: &str, calendar: Option<&Calendar>, now: DateTime<Utc>) -> Result<(), Error> {
        self.check_actor(by)?;
        self.ensure_executable(calendar, now)?;
        self.event("start", ChangeState::InProgress, by, None, now);
        Ok(())
    }

    /// `in_progress -> completed`.
    pub fn complete(&mut self, by: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.check_actor(by)?;
        self.expect_state(&[ChangeState::InProgress], "complete")?;
        self.event("complete", ChangeState::Completed, by, None, now);
        Ok(())
    }

    /// `in_progress -> failed`, with what went wrong.
    pub fn fail(&mut self, by: &str, reason: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.check_actor(by)?;
        self.expect_state(&[ChangeState::InProgress], "fail")?;
        required_text("reason", reason)?;
        self.event("fail", ChangeState::Failed, by, Some(reason.trim().to_owned()), now);
        Ok(())
    }

    /// `failed -> rolled_back`: the undo succeeded.
    pub fn roll_back(&mut self, by: &str, detail: Option<&str>, now: DateTime<Utc>) -> Result<(), Error> {
        self.check_actor(by)?;
        self.expect_state(&[ChangeState::Failed], "record a rollback")?;
        self.event("roll_back", ChangeState::RolledBack, by, non_empty(detail), now);
        Ok(())
    }
}

/// The changes that have a slot as an iCalendar (RFC 5545) document, one event per change
/// (`UID` `<id>@aindusdb-maint`), for a calendar program to import: `scheduled`,
/// `in_progress` and finished ones are `CONFIRMED`, a change cancelled after it was
/// scheduled is `CANCELLED` (a calendar that imported it removes it); changes without a
/// slot are left out.
pub fn changes_to_icalendar<'a>(changes: impl IntoIterator<Item = &'a ChangeRequest>) -> String {
    use icalendar::{Component, EventLike, EventStatus};
    let mut cal = icalendar::Calendar::new();
    cal.name("AindusDB changes");
    for c in changes {
        let Some(start) = c.scheduled_start else { continue };
        let status = match c.state {
            ChangeState::Cancelled => EventStatus::Cancelled,
            ChangeState::Pending | ChangeState::Approved | ChangeState::Rejected => continue,
            _ => EventStatus::Confirmed,
        };
        let approvers: Vec<&str> = c.approvals.iter().map(|a| a.by.as_str()).collect();
        let description = format!(
            "{}\n\nstate: {}\nrisk: {}\nimpact: {}\nrequester: {}\napproved by: {}\nrollback plan: {}\ntest plan: {}",
            c.description,
            c.state,
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
            .status(status)
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

    fn new_change(risk: Risk, approvers: &[&str]) -> NewChange {
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
        }
    }

    fn pending(risk: Risk, approvers: &[&str]) -> ChangeRequest {
        ChangeRequest::new("CR-1", new_change(risk, approvers), &ApprovalPolicy::default(), now()).unwrap()
    }

    fn states(c: &ChangeRequest) -> Vec<ChangeState> {
        c.history.iter().map(|e| e.to).collect()
    }

    #[test]
    fn the_old_plans_double_approval_is_refused() {
        let mut c = pending(Risk::High, &["alice", "carol"]);
        assert_eq!((c.state, c.required_approvals), (ChangeState::Pending, 2));
        c.approve("alice", None, now()).unwrap();
        let err = c.approve("alice", Some("again"), now()).unwrap_err();
        assert_eq!(err.to_string(), "change CR-1: alice has already approved it (an approver counts once)");
        let err = c.approve(" ALICE ", None, now()).unwrap_err();
        assert!(err.to_string().contains("already approved"), "another spelling is the same person: {err}");
        assert_eq!(c.approvals.len(), 1);
        assert_eq!(c.state, ChangeState::Pending, "one approver alone never satisfies two approvals");
        c.approve("carol", None, now()).unwrap();
        assert_eq!(c.state, ChangeState::Approved);
        assert!(c.approve("dave", None, now()).unwrap_err().to_string().contains("it is approved, not pending"));
        assert_eq!(states(&c), [ChangeState::Pending, ChangeState::Pending, ChangeState::Approved]);
        assert_eq!(c.history[2].detail.as_deref(), Some("approval 2/2"));
    }

    #[test]
    fn an_authenticated_identity_counts_once_and_never_for_its_own_change() {
        let mut c = pending(Risk::High, &["alice", "carol", "dave"]);
        c.requester_identity = Some("bob_role".into());
        let approve = |c: &mut ChangeRequest, name: &str, identity: &str| {
            let mut next = c.clone();
            next.approve(name, None, now())?;
            next.authenticate_approvals(c.approvals.len(), identity)?;
            *c = next;
            Ok::<_, Error>(())
        };
        let err = approve(&mut c, "alice", "bob_role").unwrap_err();
        assert_eq!(err.to_string(), "change CR-1: role bob_role requested this change and cannot approve it");
        approve(&mut c, "alice", "shared").unwrap();
        let err = approve(&mut c, "carol", "shared").unwrap_err();
        assert_eq!(
            err.to_string(),
            "change CR-1: role shared has already approved it as alice (an identity counts once)"
        );
        assert_eq!((c.state, c.approvals.len()), (ChangeState::Pending, 1));
        approve(&mut c, "carol", "carol_role").unwrap();
        assert_eq!(c.state, ChangeState::Approved);
        let identities: Vec<_> = c.approvals.iter().map(|a| a.identity.as_deref()).collect();
        assert_eq!(identities, [Some("shared"), Some("carol_role")]);
    }

    #[test]
    fn the_requester_cannot_approve_or_reject_their_own_change() {
        let mut c = pending(Risk::Low, &["alice", "bob"]);
        let err = c.approve("Bob", None, now()).unwrap_err();
        assert_eq!(err.to_string(), "change CR-1: Bob requested this change and cannot approve it");
        assert!(c.reject("bob", "no", now()).is_err());
        assert!(c.approvals.is_empty());
        assert!(matches!(c.approve(" ", None, now()), Err(Error::Invalid { ref field, .. }) if field == "by"));
    }

    #[test]
    fn only_listed_approvers_approve_and_required_approvals_grow_with_risk() {
        let mut c = pending(Risk::Low, &["alice"]);
        assert!(c.approve("mallory", None, now()).unwrap_err().to_string().contains("mallory is not an approver"));
        let policy = ApprovalPolicy::default();
        assert_eq!([Risk::Low, Risk::Medium, Risk::High, Risk::Critical].map(|r| policy.required(r)), [1, 1, 2, 3]);
        let err = ChangeRequest::new("CR-2", new_change(Risk::Critical, &["alice", "carol", "bob"]), &policy, now())
            .unwrap_err();
        assert!(
            err.to_string().contains("needs 3 approval(s) but lists 2 approver(s) other than the requester"),
            "{err}"
        );
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "approvers"));
        let mut critical =
            ChangeRequest::new("CR-2", new_change(Risk::Critical, &["alice", "carol", "dave"]), &policy, now())
                .unwrap();
        critical.approve("alice", None, now()).unwrap();
        critical.approve("carol", None, now()).unwrap();
        assert_eq!(critical.state, ChangeState::Pending, "a critical change with two approvals is not approved");
        let err = critical.schedule("ops", utc(2026, 12, 6, 2, 0), None, now()).unwrap_err();
        assert_eq!(err.to_string(), "change CR-2: cannot schedule: it is pending, not approved");
        let err = critical.start("ops", None, now()).unwrap_err();
        assert_eq!(err.to_string(), "change CR-2: cannot execute: it is pending, not scheduled");
        critical.approve("dave", None, now()).unwrap();
        assert_eq!(critical.state, ChangeState::Approved);
    }

    #[test]
    fn rejection_and_cancellation_are_final_and_need_a_reason() {
        let mut c = pending(Risk::Medium, &["alice"]);
        assert!(matches!(c.reject("alice", " ", now()), Err(Error::Invalid { ref field, .. }) if field == "reason"));
        c.reject("alice", "no rollback test", now()).unwrap();
        assert_eq!(c.state, ChangeState::Rejected);
        assert_eq!(c.history.last().unwrap().detail.as_deref(), Some("no rollback test"));
        assert!(c.approve("alice", None, now()).is_err());
        assert!(c.cancel("bob", "late", now()).unwrap_err().to_string().contains("cannot cancel: it is rejected"));
        assert_eq!(states(&c), [ChangeState::Pending, ChangeState::Rejected]);

        let mut c = pending(Risk::Low, &["alice"]);
        assert!(c.cancel("mallory", "x", now()).unwrap_err().to_string().contains("only its requester or an approver"));
        c.cancel("bob", "superseded by CR-7", now()).unwrap();
        assert_eq!(c.state, ChangeState::Cancelled);
        assert!(c.approve("alice", None, now()).is_err());
    }

    #[test]
    fn new_changes_are_validated_field_by_field() {
        let base = NewChange {
            title: "t".into(),
            requester: "bob".into(),
            approvers: vec!["alice".into()],
            estimated_minutes: 5,
            ..NewChange::default()
        };
        let err = |n: NewChange| match ChangeRequest::new("CR-9", n, &ApprovalPolicy::default(), now()).unwrap_err() {
            Error::Invalid { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(err(NewChange { title: " ".into(), ..base.clone() }), "title");
        assert_eq!(err(NewChange { requester: String::new(), ..base.clone() }), "requester");
        assert_eq!(err(NewChange { estimated_minutes: 0, ..base.clone() }), "estimated_minutes");
        assert_eq!(err(NewChange { risk: Risk::High, ..base.clone() }), "rollback_plan");
        assert_eq!(err(NewChange { impact: Some(Impact::Downtime), ..base.clone() }), "window");
        assert_eq!(err(NewChange { approvers: vec![], ..base.clone() }), "approvers");
        assert_eq!(err(NewChange { approvers: vec!["".into()], ..base.clone() }), "approvers");
        let c = ChangeRequest::new(
            "CR-9",
            NewChange { approvers: vec!["a".into(), " A".into()], ..base },
            &ApprovalPolicy::default(),
            now(),
        )
        .unwrap();
        assert_eq!(c.approvers, ["a"], "an approver listed twice is one approver");
        assert_eq!(c.impact, Impact::None);
        assert_eq!(c.history[0].action, "create");
    }

    #[test]
    fn a_downtime_change_is_scheduled_and_started_only_inside_its_window() {
        let cal = Calendar::from_yaml(PLAN).unwrap();
        let mut c = pending(Risk::Low, &["alice"]);
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
        let err = c.start("ops", Some(&cal), utc(2026, 12, 6, 2, 0)).unwrap_err();
        assert!(err.to_string().contains("execution refused outside the approved slot"), "{err}");
        assert!(c.start("ops", Some(&cal), utc(2026, 12, 6, 3, 31)).is_err());
        assert!(c.start("ops", None, utc(2026, 12, 6, 2, 45)).is_err());
        assert_eq!(c.state, ChangeState::Scheduled, "a refused start changes nothing");
        c.start("ops", Some(&cal), utc(2026, 12, 6, 2, 45)).unwrap();
        assert_eq!(c.state, ChangeState::InProgress);
        assert!(c.start("ops", Some(&cal), utc(2026, 12, 6, 2, 46)).is_err(), "it starts once");
        assert!(c.cancel("bob", "x", now()).is_err(), "a started change cannot be cancelled");
        assert!(c.roll_back("ops", None, now()).unwrap_err().to_string().contains("it is in_progress, not failed"));
        c.complete("ops", utc(2026, 12, 6, 3, 0)).unwrap();
        assert_eq!(c.state, ChangeState::Completed);
        assert!(c.fail("ops", "late", utc(2026, 12, 6, 3, 0)).is_err());
        assert_eq!(
            states(&c),
            [
                ChangeState::Pending,
                ChangeState::Approved,
                ChangeState::Scheduled,
                ChangeState::InProgress,
                ChangeState::Completed
            ]
        );
    }

    #[test]
    fn a_failed_change_is_rolled_back() {
        let mut c = ChangeRequest::new(
            "CR-2",
            NewChange {
                title: "Patch".into(),
                requester: "bob".into(),
                approvers: vec!["alice".into()],
                estimated_minutes: 10,
                ..NewChange::default()
            },
            &ApprovalPolicy::default(),
            now(),
        )
        .unwrap();
        c.approve("alice", None, now()).unwrap();
        c.schedule("ops", utc(2026, 11, 25, 14, 0), None, now()).unwrap();
        c.start("ops", None, utc(2026, 11, 25, 14, 5)).unwrap();
        assert!(matches!(c.fail("ops", "", now()), Err(Error::Invalid { ref field, .. }) if field == "reason"));
        c.fail("ops", "smoke checks failed", utc(2026, 11, 25, 14, 9)).unwrap();
        assert_eq!(c.state, ChangeState::Failed);
        c.roll_back("ops", Some("api back on 1.4.0"), utc(2026, 11, 25, 14, 12)).unwrap();
        assert_eq!(c.state, ChangeState::RolledBack);
        let last = c.history.last().unwrap();
        assert_eq!(
            (last.action.as_str(), last.from, last.to),
            ("roll_back", Some(ChangeState::Failed), ChangeState::RolledBack)
        );
    }

    #[test]
    fn changes_with_a_slot_export_to_icalendar_and_parse_back() {
        use icalendar::Component;
        let cal = Calendar::from_yaml(PLAN).unwrap();
        let mut c = pending(Risk::Low, &["alice"]);
        c.approve("alice", None, now()).unwrap();
        let pending_only = pending(Risk::Low, &["alice"]);
        let mut scheduled = c.clone();
        scheduled.schedule("ops", utc(2026, 12, 6, 2, 0), Some(&cal), now()).unwrap();
        let mut cancelled = scheduled.clone();
        cancelled.id = "CR-2".into();
        cancelled.cancel("bob", "postponed", now()).unwrap();
        let text = changes_to_icalendar([&c, &pending_only, &scheduled, &cancelled]);
        let parsed: icalendar::Calendar = text.parse().unwrap();
        let events: Vec<_> = parsed.events().collect();
        assert_eq!(events.len(), 2, "only changes with a slot are exported");
        let e = events[0];
        assert_eq!(e.get_uid(), Some("CR-1@aindusdb-maint"));
        assert_eq!(e.get_summary(), Some("[CR-1] Update AindusDB to 2.0.0 (risk low, impact downtime)"));
        assert_eq!(e.get_start(), Some(utc(2026, 12, 6, 2, 0).into()));
        assert_eq!(e.get_end(), Some(utc(2026, 12, 6, 3, 0).into()));
        assert!(e.get_description().unwrap().contains("approved by: alice"));
        assert!(e.get_description().unwrap().contains("state: scheduled"));
        assert_eq!(e.property_value("STATUS"), Some("CONFIRMED"));
        assert_eq!(events[1].get_uid(), Some("CR-2@aindusdb-maint"));
        assert_eq!(events[1].property_value("STATUS"), Some("CANCELLED"));
    }

    #[test]
    fn states_and_risks_parse() {
        assert_eq!("Scheduled".parse::<ChangeState>(), Ok(ChangeState::Scheduled));
        for s in ["in_progress", "in-progress", "In Progress"] {
            assert_eq!(s.parse::<ChangeState>(), Ok(ChangeState::InProgress), "{s}");
        }
        for st in ChangeState::ALL {
            assert_eq!(st.as_str().parse::<ChangeState>(), Ok(st));
            assert_eq!(serde_json::to_value(st).unwrap(), st.as_str());
        }
        assert!("draft".parse::<ChangeState>().unwrap_err().contains("expected pending, approved"));
        assert_eq!("CRITICAL".parse::<Risk>(), Ok(Risk::Critical));
        assert!("huge".parse::<Risk>().unwrap_err().contains("expected low, medium, high or critical"));
    }
}
