//! Where change requests live: the [`ChangeStore`] trait, change ids (`CR-<n>`), and
//! the in-memory store.

use std::fmt::Debug;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{ApprovalPolicy, ChangeRequest, Error, NewChange};

/// An operation on a stored change: it gets the current change and either refuses
/// (nothing is stored) or changes it. It may only change `state` and
/// `scheduled_start`, and append to `approvals` and `history` (what the methods of
/// [`ChangeRequest`] do).
pub type ChangeOp<'a> = dyn FnMut(&mut ChangeRequest) -> Result<(), Error> + Send + 'a;

/// Where change requests live. Small on purpose; object safe (`Arc<dyn ChangeStore>`).
#[async_trait]
pub trait ChangeStore: Send + Sync + Debug + 'static {
    /// Validates `new` ([`ChangeRequest::new`]) and stores it as a `pending` change under
    /// a new id (`CR-<n>`) that the store allocates. Returns the stored change.
    async fn create(&self, new: NewChange, policy: &ApprovalPolicy, now: DateTime<Utc>)
    -> Result<ChangeRequest, Error>;
    /// Loads one change with its approvals and history.
    async fn load(&self, id: &str) -> Result<ChangeRequest, Error>;
    /// Loads, changes (through `op`) and stores one change as one step that no other
    /// `update` of the same change interleaves with: two approvals at the same moment
    /// are both counted, and the same approver approving twice at the same moment is
    /// counted once. Nothing is stored when `op` refuses. Returns the stored change.
    async fn update(&self, id: &str, op: &mut ChangeOp<'_>) -> Result<ChangeRequest, Error>;
    /// Every change, by id number.
    async fn list(&self) -> Result<Vec<ChangeRequest>, Error>;
}

/// The number in `CR-<n>` (written without sign or leading zeros: one id, one spelling).
pub(crate) fn id_number(id: &str) -> Option<i64> {
    let n: i64 = id.strip_prefix("CR-")?.parse().ok().filter(|n| *n > 0)?;
    (format!("CR-{n}") == id).then_some(n)
}

/// Checks an id given on a command line (`CR-12`); `field` names it.
pub fn check_change_id(field: &str, id: &str) -> Result<(), Error> {
    if id_number(id).is_some() {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("{id:?} is not a change id (expected CR-<number>)")))
    }
}

/// Change requests in memory (one mutex), for tests and for embedding a change
/// workflow that needs no persistence. [`crate::PgChangeStore`] is the one to run with.
#[derive(Debug, Default)]
pub struct MemoryChangeStore {
    changes: Mutex<Vec<ChangeRequest>>,
}

impl MemoryChangeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ChangeRequest>> {
        // A panic in another holder cannot leave a half-applied change: ops work on a copy.
        self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ChangeStore for MemoryChangeStore {
    async fn create(
        &self,
        new: NewChange,
        policy: &ApprovalPolicy,
        now: DateTime<Utc>,
    ) -> Result<ChangeRequest, Error> {
        let mut changes = self.lock();
        let change = ChangeRequest::new(format!("CR-{}", changes.len() + 1), new, policy, now)?;
        changes.push(change.clone());
        Ok(change)
    }

    async fn load(&self, id: &str) -> Result<ChangeRequest, Error> {
        check_change_id("id", id)?;
        self.lock().iter().find(|c| c.id == id).cloned().ok_or_else(|| Error::ChangeNotFound(id.to_owned()))
    }

    async fn update(&self, id: &str, op: &mut ChangeOp<'_>) -> Result<ChangeRequest, Error> {
        check_change_id("id", id)?;
        let mut changes = self.lock();
        let slot = changes.iter_mut().find(|c| c.id == id).ok_or_else(|| Error::ChangeNotFound(id.to_owned()))?;
        let mut change = slot.clone();
        op(&mut change)?;
        *slot = change.clone();
        Ok(change)
    }

    async fn list(&self) -> Result<Vec<ChangeRequest>, Error> {
        Ok(self.lock().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChangeState;

    fn new_change(title: &str) -> NewChange {
        NewChange {
            title: title.into(),
            requester: "bob".into(),
            approvers: vec!["alice".into()],
            estimated_minutes: 30,
            ..NewChange::default()
        }
    }

    #[tokio::test]
    async fn memory_store_numbers_changes_and_keeps_a_refused_op_out() {
        let store = MemoryChangeStore::new();
        let policy = ApprovalPolicy::default();
        let a = store.create(new_change("first"), &policy, Utc::now()).await.unwrap();
        let b = store.create(new_change("second"), &policy, Utc::now()).await.unwrap();
        assert_eq!((a.id.as_str(), b.id.as_str()), ("CR-1", "CR-2"));
        let err = store.create(new_change(" "), &policy, Utc::now()).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "title"));
        let err = store.update("CR-1", &mut |c| c.approve("bob", None, Utc::now())).await.unwrap_err();
        assert!(err.to_string().contains("cannot approve it"), "{err}");
        assert_eq!(store.load("CR-1").await.unwrap(), a, "a refused op stores nothing");
        let c = store.update("CR-1", &mut |c| c.approve("alice", None, Utc::now())).await.unwrap();
        assert_eq!(c.state, ChangeState::Approved);
        assert_eq!(store.load("CR-1").await.unwrap().state, ChangeState::Approved);
        assert!(matches!(store.load("CR-9").await, Err(Error::ChangeNotFound(ref id)) if id == "CR-9"));
        assert!(matches!(store.load("../etc").await, Err(Error::Invalid { .. })));
        assert_eq!(store.list().await.unwrap().len(), 2);
        assert!(check_change_id("--change", "CR-0").is_err());
        assert!(check_change_id("--change", "CR-01").is_err(), "one id, one spelling");
        assert!(check_change_id("--change", "CR-+1").is_err());
        assert!(check_change_id("--change", "12").unwrap_err().to_string().starts_with("--change: \"12\""));
    }
}
