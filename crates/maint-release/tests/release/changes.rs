//! Change management (CAB) against real PostgreSQL: the rules hold in the store, under
//! concurrency, and through the update orchestrator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::join_all;
use maint_core::{Calendar, Impact, Status, TaskContext};
use maint_release::deadpool_postgres::tokio_postgres::error::SqlState;
use maint_release::{
    ApprovalPolicy, ChangeRequest, ChangeState, ChangeStore, Deployer, Error, NewChange, PgChangeStore, Revision, Risk,
    UpdateRequest, UpdateSettings, Updater, changes_to_icalendar, semver::Version,
};
use maint_testkit::TestDb;

use super::{fresh, session};

const PLAN: &str = "monthly_maintenance:\n  day: \"First Sunday\"\n  time: \"02:00 UTC\"\n  duration: \"4 hours\"\n  tasks:\n    - {name: \"System Updates\", impact: \"downtime\"}\n";

fn store(db: &TestDb) -> PgChangeStore {
    PgChangeStore::new(db.pool())
}

/// A store connected as a LOGIN role of its own (`<database>_<name>`, created on first
/// use) that has only the data privileges an operator grants to the people who approve:
/// `pg_read_all_data` and `pg_write_all_data` (no right to create anything).
async fn role_store(db: &TestDb, name: &str) -> PgChangeStore {
    PgChangeStore::new(db.as_role(name).await.pool())
}

fn role(db: &TestDb, name: &str) -> String {
    format!("{}_{name}", db.name)
}

/// `who` approves change `id` through a role of their own.
async fn approve_as(db: &TestDb, id: &str, who: &str, comment: Option<&str>) -> ChangeRequest {
    role_store(db, who).await.update(id, &mut |c| c.approve(who, comment, Utc::now())).await.unwrap()
}

fn change(risk: Risk, approvers: &[&str]) -> NewChange {
    NewChange {
        title: "AindusDB 2.0.0".into(),
        description: "new vector index format".into(),
        risk,
        rollback_plan: "undo the rollout; restore the pre-update backup".into(),
        test_plan: "staging soak".into(),
        requester: "bob".into(),
        approvers: approvers.iter().map(|s| (*s).to_owned()).collect(),
        estimated_minutes: 60,
        ..NewChange::default()
    }
}

fn policy() -> ApprovalPolicy {
    ApprovalPolicy::default()
}

async fn approval_rows(db: &TestDb, id: &str) -> Vec<String> {
    let n: i64 = id.trim_start_matches("CR-").parse().unwrap();
    session(db)
        .await
        .query("SELECT approver FROM maint_change.approval WHERE change_id = $1 ORDER BY approver", &[&n])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

/// (actor, action, from, to) of every event row of a change, from the table itself.
async fn event_rows(db: &TestDb, id: &str) -> Vec<(String, String, Option<String>, String)> {
    let n: i64 = id.trim_start_matches("CR-").parse().unwrap();
    session(db)
        .await
        .query(
            "SELECT actor, action, from_state, to_state FROM maint_change.event WHERE change_id = $1 ORDER BY id",
            &[&n],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test]
async fn reading_a_database_without_changes_creates_nothing() {
    let db = fresh().await;
    let s = store(&db);
    assert!(s.list().await.unwrap().is_empty());
    assert!(matches!(s.load("CR-1").await, Err(Error::ChangeNotFound(ref id)) if id == "CR-1"));
    let schemas: i64 = session(&db)
        .await
        .query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'maint_change'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(schemas, 0, "a read created the change schema");
    // The first write creates it, and reads then see the change.
    let created = s.create(change(Risk::Low, &["alice"]), &policy(), Utc::now()).await.unwrap();
    assert_eq!(s.load(&created.id).await.unwrap().id, created.id);
}

#[tokio::test]
async fn ids_come_from_the_database_and_bad_input_stores_nothing() {
    let db = fresh().await;
    let (a, b) = (store(&db), store(&db));
    let created = join_all((0..6).map(|i| {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { s.create(change(Risk::Low, &["alice"]), &policy(), Utc::now()).await.unwrap().id }
    }))
    .await;
    let mut ids = created.clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every create got its own id: {created:?}");
    let listed: Vec<String> = a.list().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(listed, ["CR-1", "CR-2", "CR-3", "CR-4", "CR-5", "CR-6"]);
    let err = a.create(change(Risk::Critical, &["alice", "bob"]), &policy(), Utc::now()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "approvers: a critical risk change needs 3 approval(s) but lists 1 approver(s) other than the requester"
    );
    assert_eq!(a.list().await.unwrap().len(), 6);
    assert!(matches!(a.load("CR-99").await, Err(Error::ChangeNotFound(ref id)) if id == "CR-99"));
    let loaded = a.load("CR-1").await.unwrap();
    assert_eq!((loaded.state, loaded.required_approvals), (ChangeState::Pending, 1));
    assert_eq!(loaded.history.len(), 1);
    assert_eq!(loaded.history[0].action, "create");
}

#[tokio::test]
async fn double_approval_by_one_approver_is_refused_even_at_the_same_moment() {
    let db = fresh().await;
    let s = store(&db);
    let c = s.create(change(Risk::Critical, &["alice", "carol", "dave"]), &policy(), Utc::now()).await.unwrap();
    let alice = role_store(&db, "alice").await;
    alice.update(&c.id, &mut |c| c.approve("alice", None, Utc::now())).await.unwrap();
    let err = alice.update(&c.id, &mut |c| c.approve("alice", None, Utc::now())).await.unwrap_err();
    assert_eq!(err.to_string(), format!("change {}: alice has already approved it (an approver counts once)", c.id));

    // Eight approvals by carol sent at the same moment, under three spellings, through
    // two stores (two pools): exactly one is counted.
    let (carol, other) = (role_store(&db, "carol").await, role_store(&db, "carol").await);
    let results = join_all((0..8).map(|i| {
        let s = if i % 2 == 0 { carol.clone() } else { other.clone() };
        let (id, name) = (c.id.clone(), ["carol", " Carol", "CAROL "][i % 3]);
        async move { s.update(&id, &mut |c| c.approve(name, None, Utc::now())).await }
    }))
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(e.to_string().contains("has already approved it (an approver counts once)"), "{e}");
    }
    let stored = s.load(&c.id).await.unwrap();
    assert_eq!(stored.approvals.len(), 2);
    assert_eq!(stored.state, ChangeState::Pending, "alice and carol are two of the three approvals needed");
    assert_eq!(approval_rows(&db, &c.id).await.len(), 2);

    // The primary key refuses a second row for the same person even from a writer that
    // skips the store.
    let n: i64 = c.id.trim_start_matches("CR-").parse().unwrap();
    let dup = session(&db)
        .await
        .execute(
            "INSERT INTO maint_change.approval (change_id, approver, approver_key, approved_at) \
             VALUES ($1, 'Carol', 'carol', now())",
            &[&n],
        )
        .await;
    let code = dup.unwrap_err().code().cloned();
    assert_eq!(code, Some(SqlState::UNIQUE_VIOLATION), "the table itself refuses it");
}

#[tokio::test]
async fn approvals_count_once_per_authenticated_role_whatever_name_is_given() {
    let db = fresh().await;
    // The requester's session: the superuser role `postgres` (it creates the tables).
    let s = store(&db);
    let c = s.create(change(Risk::High, &["alice", "carol", "dave"]), &policy(), Utc::now()).await.unwrap();
    assert_eq!(c.required_approvals, 2);
    assert_eq!(c.requester_identity.as_deref(), Some("postgres"));
    // The requester's role cannot approve, under any name.
    let err = s.update(&c.id, &mut |c| c.approve("alice", None, Utc::now())).await.unwrap_err();
    assert_eq!(err.to_string(), format!("change {}: role postgres requested this change and cannot approve it", c.id));
    // One role approving as two people counts once.
    let mallory = role_store(&db, "mallory").await;
    mallory.update(&c.id, &mut |c| c.approve("alice", None, Utc::now())).await.unwrap();
    let err = mallory.update(&c.id, &mut |c| c.approve("carol", None, Utc::now())).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "change {}: role {} has already approved it as alice (an identity counts once)",
            c.id,
            role(&db, "mallory")
        )
    );
    // Also through another pool of the same role at the same moment.
    let again = role_store(&db, "mallory").await;
    let results = join_all(["carol", "dave"].map(|name| {
        let (s, id) = (again.clone(), c.id.clone());
        async move { s.update(&id, &mut |c| c.approve(name, None, Utc::now())).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_err), "{results:?}");
    let stored = s.load(&c.id).await.unwrap();
    assert_eq!((stored.state, stored.approvals.len()), (ChangeState::Pending, 1));
    assert_eq!(stored.approvals[0].identity.as_deref(), Some(role(&db, "mallory").as_str()));
    // A second role satisfies the count of two.
    let carol = role_store(&db, "carol").await;
    let approved = carol.update(&c.id, &mut |c| c.approve("carol", Some("ok"), Utc::now())).await.unwrap();
    assert_eq!(approved.state, ChangeState::Approved);
    let identities: Vec<Option<&str>> = approved.approvals.iter().map(|a| a.identity.as_deref()).collect();
    assert_eq!(identities, [Some(role(&db, "mallory").as_str()), Some(role(&db, "carol").as_str())]);
    // The table itself refuses a second approval row for one identity.
    let n: i64 = c.id.trim_start_matches("CR-").parse().unwrap();
    let dup = session(&db)
        .await
        .execute(
            "INSERT INTO maint_change.approval (change_id, approver, approver_key, identity, approved_at) \
             VALUES ($1, 'Dave', 'dave', $2, now())",
            &[&n, &role(&db, "carol")],
        )
        .await;
    assert_eq!(dup.unwrap_err().code().cloned(), Some(SqlState::UNIQUE_VIOLATION));
}

#[tokio::test]
async fn approvals_by_different_people_at_the_same_moment_are_all_counted() {
    let db = fresh().await;
    let s = store(&db);
    let approvers: Vec<String> = (0..8).map(|i| format!("approver-{i}")).collect();
    let names: Vec<&str> = approvers.iter().map(String::as_str).collect();
    let strict = ApprovalPolicy { critical: 8, ..ApprovalPolicy::default() };
    let c = s.create(change(Risk::Critical, &names), &strict, Utc::now()).await.unwrap();
    assert_eq!(c.required_approvals, 8);
    let stores = join_all(approvers.iter().map(|a| role_store(&db, a))).await;
    let results = join_all(approvers.iter().zip(stores).map(|(a, s)| {
        let id = c.id.clone();
        async move { s.update(&id, &mut |c| c.approve(a, None, Utc::now())).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stored = s.load(&c.id).await.unwrap();
    assert_eq!(stored.approvals.len(), 8, "every approval sent at the same moment is kept");
    assert_eq!(stored.state, ChangeState::Approved);
    let events = event_rows(&db, &c.id).await;
    assert_eq!(events.len(), 9);
    assert_eq!(events.iter().filter(|e| e.3 == "approved").count(), 1, "exactly the last approval approves");
}

#[tokio::test]
async fn the_submitter_cannot_approve_their_own_change_and_only_listed_approvers_count() {
    let db = fresh().await;
    let s = store(&db);
    let c = s.create(change(Risk::Medium, &["alice", "bob"]), &policy(), Utc::now()).await.unwrap();
    let err = s.update(&c.id, &mut |c| c.approve("Bob", Some("looks fine to me"), Utc::now())).await;
    assert_eq!(
        err.unwrap_err().to_string(),
        format!("change {}: Bob requested this change and cannot approve it", c.id)
    );
    let err = s.update(&c.id, &mut |c| c.approve("mallory", None, Utc::now())).await;
    assert_eq!(err.unwrap_err().to_string(), format!("change {}: mallory is not an approver of this change", c.id));
    assert!(approval_rows(&db, &c.id).await.is_empty());
    assert_eq!(event_rows(&db, &c.id).await.len(), 1, "a refused operation writes no event");
    let rejected = s.update(&c.id, &mut |c| c.reject("alice", "no load test", Utc::now())).await.unwrap();
    assert_eq!(rejected.state, ChangeState::Rejected);
    assert_eq!(rejected.history.last().unwrap().detail.as_deref(), Some("no load test"));
}

#[tokio::test]
async fn a_critical_change_with_too_few_approvals_is_neither_scheduled_nor_executed() {
    let db = fresh().await;
    let s = store(&db);
    let c = s.create(change(Risk::Critical, &["alice", "carol", "dave"]), &policy(), Utc::now()).await.unwrap();
    assert_eq!(c.required_approvals, 3);
    for who in ["alice", "carol"] {
        approve_as(&db, &c.id, who, None).await;
    }
    let start = Utc::now() + TimeDelta::hours(1);
    let err = s.update(&c.id, &mut |c| c.schedule("ops", start, None, Utc::now())).await.unwrap_err();
    assert_eq!(err.to_string(), format!("change {}: cannot schedule: it is pending, not approved", c.id));
    let err = s.update(&c.id, &mut |c| c.start("ops", None, start)).await.unwrap_err();
    assert_eq!(err.to_string(), format!("change {}: cannot execute: it is pending, not scheduled", c.id));
    let stored = s.load(&c.id).await.unwrap();
    assert_eq!((stored.state, stored.approvals.len(), stored.scheduled_start), (ChangeState::Pending, 2, None));
    approve_as(&db, &c.id, "dave", None).await;
    let scheduled = s.update(&c.id, &mut |c| c.schedule("ops", start, None, Utc::now())).await.unwrap();
    assert_eq!(scheduled.state, ChangeState::Scheduled);
}

fn downtime_change() -> NewChange {
    NewChange {
        impact: Some(Impact::Downtime),
        window: Some("monthly".into()),
        ..change(Risk::High, &["alice", "carol"])
    }
}

#[tokio::test]
async fn execution_outside_the_approved_window_is_refused_and_the_happy_path_completes() {
    let db = fresh().await;
    let s = store(&db);
    let cal = Calendar::from_yaml(PLAN).unwrap();
    let c = s.create(downtime_change(), &policy(), Utc::now()).await.unwrap();
    for who in ["alice", "carol"] {
        approve_as(&db, &c.id, who, Some(&format!("ok from {who}"))).await;
    }
    let opens = cal.window("monthly").unwrap().next_start(Utc::now());
    let err = s.update(&c.id, &mut |c| c.schedule("ops", opens + TimeDelta::days(1), Some(&cal), Utc::now())).await;
    assert!(err.unwrap_err().to_string().contains("is outside window monthly"));
    let start = opens + TimeDelta::minutes(30);
    s.update(&c.id, &mut |c| c.schedule("ops", start, Some(&cal), Utc::now())).await.unwrap();

    for (when, why) in [
        (Utc::now(), "execution refused outside the approved slot"),
        (start - TimeDelta::minutes(10), "execution refused outside the approved slot"),
        (start + TimeDelta::minutes(61), "execution refused outside the approved slot"),
    ] {
        let err = s.update(&c.id, &mut |c| c.start("ops", Some(&cal), when)).await.unwrap_err();
        assert!(err.to_string().contains(why), "{when}: {err}");
    }
    let err = s.update(&c.id, &mut |c| c.start("ops", None, start + TimeDelta::minutes(5))).await.unwrap_err();
    assert!(err.to_string().contains("without a maintenance calendar"), "{err}");
    assert_eq!(s.load(&c.id).await.unwrap().state, ChangeState::Scheduled, "refused starts change nothing");

    let running = s.update(&c.id, &mut |c| c.start("ops", Some(&cal), start + TimeDelta::minutes(5))).await.unwrap();
    assert_eq!(running.state, ChangeState::InProgress);
    let done = s.update(&c.id, &mut |c| c.complete("ops", start + TimeDelta::minutes(50))).await.unwrap();
    assert_eq!(done.state, ChangeState::Completed);
    assert_eq!(done.scheduled_start, Some(start));
    assert_eq!(done.approvals[0].comment.as_deref(), Some("ok from alice"));
    let owned = |a: &str, b: &str, f: Option<&str>, t: &str| (a.into(), b.into(), f.map(Into::into), t.into());
    assert_eq!(
        event_rows(&db, &c.id).await,
        [
            owned("bob", "create", None, "pending"),
            owned("alice", "approve", Some("pending"), "pending"),
            owned("carol", "approve", Some("pending"), "approved"),
            owned("ops", "schedule", Some("approved"), "scheduled"),
            owned("ops", "start", Some("scheduled"), "in_progress"),
            owned("ops", "complete", Some("in_progress"), "completed"),
        ]
    );
    let history = &done.history;
    assert_eq!(history.len(), 6);
    assert_eq!(history[4].at, start + TimeDelta::minutes(5), "times survive the database to the microsecond");
}

#[tokio::test]
async fn the_icalendar_export_of_stored_changes_parses_back() {
    use icalendar::Component;
    let db = fresh().await;
    let s = store(&db);
    let cal = Calendar::from_yaml(PLAN).unwrap();
    let start = cal.window("monthly").unwrap().next_start(Utc::now());
    let a = s.create(downtime_change(), &policy(), Utc::now()).await.unwrap();
    let unscheduled = s.create(change(Risk::Low, &["alice"]), &policy(), Utc::now()).await.unwrap();
    for who in ["alice", "carol"] {
        approve_as(&db, &a.id, who, None).await;
    }
    s.update(&a.id, &mut |c| c.schedule("ops", start, Some(&cal), Utc::now())).await.unwrap();
    let text = changes_to_icalendar(&s.list().await.unwrap());
    let parsed: icalendar::Calendar = text.parse().unwrap();
    let events: Vec<_> = parsed.events().collect();
    assert_eq!(events.len(), 1, "{unscheduled:?} has no slot: {text}");
    let e = events[0];
    assert_eq!(e.get_uid(), Some(format!("{}@aindusdb-maint", a.id).as_str()));
    assert_eq!(e.get_start(), Some(start.into()));
    assert_eq!(e.get_end(), Some((start + TimeDelta::minutes(60)).into()));
    assert_eq!(e.property_value("STATUS"), Some("CONFIRMED"));
    assert!(e.get_summary().unwrap().contains("(risk high, impact downtime)"));
    assert!(e.get_description().unwrap().contains("approved by: alice, carol"));
    assert!(text.contains("DTSTAMP:"), "RFC 5545 requires DTSTAMP: {text}");
}

/// A deployer whose rollout of a `broken` image fails and whose undo succeeds.
#[derive(Debug, Default)]
struct Flaky {
    images: Mutex<Vec<String>>,
}

#[async_trait]
impl Deployer for Flaky {
    fn name(&self) -> String {
        "flaky".into()
    }
    async fn set_image(&self, _: &[String], image: &str) -> Result<(), Error> {
        self.images.lock().unwrap().push(image.to_owned());
        Ok(())
    }
    async fn wait_rollout(&self, _: &[String], _: Duration) -> Result<(), Error> {
        let current = self.images.lock().unwrap().last().cloned().unwrap_or_default();
        if current.contains("broken") { Err(Error::Deploy(format!("{current} not ready"))) } else { Ok(()) }
    }
    async fn undo(&self, _: &[String]) -> Result<(), Error> {
        self.images.lock().unwrap().pop();
        Ok(())
    }
    async fn history(&self, workload: &str) -> Result<Vec<Revision>, Error> {
        let images = self.images.lock().unwrap();
        let image = images.last().cloned().unwrap_or_else(|| "registry.example/aindusdb:1.0.0".into());
        Ok(vec![Revision { workload: workload.into(), number: 1, image, current: true, change_cause: None }])
    }
}

async fn scheduled_for(db: &TestDb, s: &PgChangeStore, version: &str, start: DateTime<Utc>) -> ChangeRequest {
    let new = NewChange { target_version: Some(version.into()), ..change(Risk::Low, &["alice"]) };
    let c = s.create(new, &policy(), start).await.unwrap();
    role_store(db, "alice").await.update(&c.id, &mut |c| c.approve("alice", None, start)).await.unwrap();
    s.update(&c.id, &mut |c| c.schedule("ops", start, None, start)).await.unwrap()
}

#[tokio::test]
async fn the_orchestrator_moves_a_stored_change_to_completed_or_rolled_back() {
    let db = fresh().await;
    let s = store(&db);
    let settings = UpdateSettings {
        workloads: vec!["api".into()],
        image_repository: "registry.example/aindusdb".into(),
        rollout_timeout: Duration::from_secs(5),
    };
    let deployer = Arc::new(Flaky::default());
    let updater = Updater::new(deployer, settings).unwrap().with_changes(Arc::new(s.clone()));
    let start = Utc::now() - TimeDelta::minutes(1);
    let request = |c: &ChangeRequest, to: &str| UpdateRequest {
        to: Some(Version::parse(to).unwrap()),
        change: Some(c.clone()),
        now: Some(Utc::now()),
        actor: Some("ops-alice".into()),
        ..UpdateRequest::default()
    };

    let good = scheduled_for(&db, &s, "1.1.0", start).await;
    let r = updater.run(&request(&good, "1.1.0"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(s.load(&good.id).await.unwrap().state, ChangeState::Completed);

    let broken = scheduled_for(&db, &s, "1.2.0-broken", start).await;
    let r = updater.run(&request(&broken, "1.2.0-broken"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.metrics["rolled_back"], 1.0);
    let stored = s.load(&broken.id).await.unwrap();
    assert_eq!(stored.state, ChangeState::RolledBack);
    let tail: Vec<_> = event_rows(&db, &broken.id).await.into_iter().skip(3).collect();
    assert_eq!(
        tail,
        [
            ("ops-alice".into(), "start".into(), Some("scheduled".into()), "in_progress".into()),
            ("ops-alice".into(), "fail".into(), Some("in_progress".into()), "failed".into()),
            ("ops-alice".into(), "roll_back".into(), Some("failed".into()), "rolled_back".into()),
        ]
    );
    assert!(stored.history[4].detail.as_deref().unwrap().contains("1.2.0-broken not ready"), "{stored:#?}");

    // A change that is no longer scheduled is refused before anything runs.
    let cancelled = scheduled_for(&db, &s, "1.3.0", start).await;
    s.update(&cancelled.id, &mut |c| c.cancel("bob", "postponed", Utc::now())).await.unwrap();
    let r = updater.run(&request(&cancelled, "1.3.0"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Failed);
    assert!(r.error.as_deref().unwrap().contains("cannot execute: it is cancelled, not scheduled"), "{r:#?}");
    assert_eq!(s.load(&cancelled.id).await.unwrap().state, ChangeState::Cancelled);
}
