//! The orchestrator's tests, on mocks: the order of the steps, rollback, dry run,
//! change requests, audit and notifications.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{TimeDelta, TimeZone};
use maint_core::{Impact, Status};
use maint_notify::{Notification, Notifier, RetryPolicy, Severity, Target};
use mockall::Sequence;
use mockall::predicate::eq;

use super::*;
use crate::{
    ApprovalPolicy, CheckResult, MigrationOutcome, MockBackupGate, MockDeployer, MockHealthChecks,
    MockSchemaMigrations, NewChange, Revision, Risk,
};

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Notification>>);

#[async_trait]
impl Notifier for Recorder {
    fn name(&self) -> String {
        "recorder".into()
    }
    async fn send(&self, n: &Notification) -> Result<(), maint_notify::Error> {
        self.0.lock().unwrap().push(n.clone());
        Ok(())
    }
}

fn settings() -> UpdateSettings {
    UpdateSettings {
        workloads: vec!["api".into(), "worker".into()],
        image_repository: "registry.example/aindusdb".into(),
        rollout_timeout: Duration::from_secs(600),
    }
}

fn deployer_at(version: &str) -> MockDeployer {
    let mut d = MockDeployer::new();
    d.expect_name().return_const("mock".to_owned());
    let image = format!("registry.example/aindusdb:{version}");
    d.expect_history().with(eq("api")).returning(move |w| {
        Ok(vec![Revision {
            workload: w.to_owned(),
            number: 7,
            image: image.clone(),
            current: true,
            change_cause: None,
        }])
    });
    d
}

fn check(ok: bool) -> Vec<CheckResult> {
    vec![CheckResult {
        name: "/health/ready".into(),
        ok,
        status: Some(if ok { 200 } else { 503 }),
        error: (!ok).then(|| "HTTP 503 (expected 200)".to_owned()),
        attempts: 1,
    }]
}

fn applied(phase: Phase, names: &[&str]) -> MigrationOutcome {
    MigrationOutcome {
        phase,
        applied: names
            .iter()
            .enumerate()
            .map(|(i, n)| crate::AppliedStep { version: (i + 1).to_string(), name: (*n).to_owned(), duration_ms: 1 })
            .collect(),
        ..MigrationOutcome::default()
    }
}

fn to(v: &str) -> UpdateRequest {
    UpdateRequest { to: Some(Version::parse(v).unwrap()), ..UpdateRequest::default() }
}

struct Harness {
    updater: Updater,
    sent: Arc<Recorder>,
}

fn harness(d: MockDeployer, m: MockSchemaMigrations, c: MockHealthChecks, b: Option<MockBackupGate>) -> Harness {
    let sent = Arc::new(Recorder::default());
    let dispatcher = Dispatcher::new(vec![Target::new(sent.clone())], RetryPolicy::default());
    let mut updater = Updater::new(Arc::new(d), settings())
        .unwrap()
        .with_migrations(Arc::new(m))
        .with_checks(Arc::new(c))
        .with_notify(dispatcher);
    if let Some(b) = b {
        updater = updater.with_backup(Arc::new(b));
    }
    Harness { updater, sent }
}

fn steps(r: &TaskReport) -> Vec<(String, String)> {
    r.items.iter().map(|i| (i["step"].as_str().unwrap().to_owned(), i["status"].as_str().unwrap().to_owned())).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[tokio::test]
async fn happy_path_migrates_expand_before_the_rollout_and_contract_after() {
    let mut seq = Sequence::new();
    let mut d = deployer_at("1.4.0");
    let mut m = MockSchemaMigrations::new();
    let mut c = MockHealthChecks::new();
    let mut b = MockBackupGate::new();
    c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
    b.expect_ensure_backup().times(1).in_sequence(&mut seq).returning(|_| Ok("recent verified backup k".into()));
    m.expect_migrate()
        .withf(|p, ctx| *p == Phase::Expand && !ctx.dry_run)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|p, _| Ok(applied(p, &["add_email"])));
    d.expect_set_image()
        .withf(|w, image| w == ["api", "worker"] && image == "registry.example/aindusdb:1.5.0")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    d.expect_wait_rollout().times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
    c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
    m.expect_migrate()
        .withf(|p, _| *p == Phase::Contract)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|p, _| Ok(applied(p, &["drop_legacy"])));
    d.expect_undo().never();
    let h = harness(d, m, c, Some(b));
    let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(
        steps(&r),
        pairs(&[
            ("version", "ok"),
            ("change", "skipped"),
            ("pre-checks", "ok"),
            ("backup", "ok"),
            ("expand-migrations", "ok"),
            ("rollout", "ok"),
            ("smoke", "ok"),
            ("contract-migrations", "ok"),
        ])
    );
    assert_eq!(r.items[0]["detail"], "minor update 1.4.0 -> 1.5.0");
    assert_eq!(r.metrics["expand_migrations_applied"], 1.0);
    assert_eq!(r.metrics["contract_migrations_applied"], 1.0);
    assert_eq!(r.metrics["notifications_delivered"], 1.0);
    let sent = h.sent.0.lock().unwrap();
    assert_eq!(sent[0].title, "AindusDB updated from 1.4.0 to 1.5.0");
    assert_eq!(sent[0].severity, Severity::Info);
}

#[tokio::test]
async fn a_failed_rollout_is_undone_and_notified() {
    let mut seq = Sequence::new();
    let mut d = deployer_at("1.4.0");
    let mut m = MockSchemaMigrations::new();
    let mut c = MockHealthChecks::new();
    c.expect_check().times(1).returning(|| check(true));
    m.expect_migrate().withf(|p, _| *p == Phase::Expand).times(1).returning(|p, _| Ok(applied(p, &[])));
    m.expect_migrate().withf(|p, _| *p == Phase::Contract).never();
    d.expect_set_image().times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
    d.expect_wait_rollout()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(Error::Deploy("api: progress deadline exceeded".into())));
    d.expect_undo().withf(|w| w == ["api", "worker"]).times(1).in_sequence(&mut seq).returning(|_| Ok(()));
    d.expect_wait_rollout().times(1).in_sequence(&mut seq).returning(|_, _| Ok(()));
    let h = harness(d, m, c, None);
    let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("deploy: api: progress deadline exceeded"));
    let s = steps(&r);
    assert_eq!(&s[s.len() - 2..], pairs(&[("rollout", "failed"), ("rollback", "ok")]).as_slice());
    assert_eq!(r.metrics["rolled_back"], 1.0);
    let sent = h.sent.0.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].title, "AindusDB update failed and was rolled back");
    assert_eq!(sent[0].severity, Severity::Error);
    assert!(sent[0].body.contains("progress deadline"));
}

#[tokio::test]
async fn a_failed_smoke_test_is_undone() {
    let mut d = deployer_at("1.4.0");
    let mut m = MockSchemaMigrations::new();
    let mut c = MockHealthChecks::new();
    let mut seq = Sequence::new();
    c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
    c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(false));
    m.expect_migrate().withf(|p, _| *p == Phase::Expand).times(1).returning(|p, _| Ok(applied(p, &[])));
    m.expect_migrate().withf(|p, _| *p == Phase::Contract).never();
    d.expect_set_image().times(1).returning(|_, _| Ok(()));
    d.expect_wait_rollout().times(2).returning(|_, _| Ok(()));
    d.expect_undo().times(1).returning(|_| Ok(()));
    let h = harness(d, m, c, None);
    let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error.as_deref(), Some("smoke: smoke checks failed on 1.5.0: /health/ready: HTTP 503 (expected 200)"));
    let s = steps(&r);
    assert_eq!(&s[s.len() - 3..], pairs(&[("rollout", "ok"), ("smoke", "failed"), ("rollback", "ok")]).as_slice());
    assert_eq!(h.sent.0.lock().unwrap()[0].title, "AindusDB update failed and was rolled back");
}

#[tokio::test]
async fn a_failed_expand_migration_means_no_rollout() {
    let mut d = deployer_at("1.4.0");
    let mut m = MockSchemaMigrations::new();
    let mut c = MockHealthChecks::new();
    c.expect_check().times(1).returning(|| check(true));
    m.expect_migrate().times(1).returning(|_, _| {
        Err(Error::ChecksumMismatch { version: "3".into(), name: "x".into(), applied: "a".into(), found: "b".into() })
    });
    d.expect_set_image().never();
    d.expect_wait_rollout().never();
    d.expect_undo().never();
    let h = harness(d, m, c, None);
    let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(steps(&r).last().unwrap(), &("expand-migrations".to_owned(), "failed".to_owned()));
    assert_eq!(r.metrics["rolled_back"], 0.0);
    let sent = h.sent.0.lock().unwrap();
    assert_eq!(sent[0].title, "AindusDB update failed before the rollout");
}

#[tokio::test]
async fn a_failed_rollback_is_critical() {
    let mut d = deployer_at("1.4.0");
    let mut m = MockSchemaMigrations::new();
    let mut c = MockHealthChecks::new();
    c.expect_check().times(1).returning(|| check(true));
    m.expect_migrate().times(1).returning(|p, _| Ok(applied(p, &[])));
    d.expect_set_image().times(1).returning(|_, _| Ok(()));
    d.expect_wait_rollout().times(1).returning(|_, _| Err(Error::Deploy("stuck".into())));
    d.expect_undo().times(1).returning(|_| Err(Error::Deploy("api: no previous revision".into())));
    let h = harness(d, m, c, None);
    let r = h.updater.run(&to("1.5.0"), &TaskContext::new(false)).await;
    assert_eq!(steps(&r).last().unwrap(), &("rollback".to_owned(), "failed".to_owned()));
    assert!(r.warnings.iter().any(|w| w.contains("no previous revision")));
    assert_eq!(h.sent.0.lock().unwrap()[0].severity, Severity::Critical);
}

#[tokio::test]
async fn failed_pre_checks_or_backup_change_nothing() {
    let mut d = deployer_at("1.4.0");
    let mut m = MockSchemaMigrations::new();
    let mut c = MockHealthChecks::new();
    c.expect_check().times(1).returning(|| check(false));
    m.expect_migrate().never();
    d.expect_set_image().never();
    let h = harness(d, m, c, None);
    let r = h.updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
    assert!(r.error.as_deref().unwrap().starts_with("smoke: pre-checks failed, nothing was changed"));

    let mut d = deployer_at("1.4.0");
    let mut m = MockSchemaMigrations::new();
    let mut c = MockHealthChecks::new();
    let mut b = MockBackupGate::new();
    c.expect_check().times(1).returning(|| check(true));
    b.expect_ensure_backup().times(1).returning(|_| Err(Error::Backup("pg_dump: not found".into())));
    m.expect_migrate().never();
    d.expect_set_image().never();
    let h = harness(d, m, c, Some(b));
    let r = h.updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
    assert_eq!(r.error.as_deref(), Some("backup: pg_dump: not found"));
}

#[tokio::test]
async fn too_little_free_space_stops_before_anything_changes() {
    // the real free space of the filesystem holding the temp dir
    let tmp = std::env::temp_dir();
    let need = |bytes| vec![DiskCheck { path: tmp.clone(), min_free_bytes: bytes }];
    let mut d = deployer_at("1.4.0");
    let mut m = MockSchemaMigrations::new();
    let mut c = MockHealthChecks::new();
    c.expect_check().never();
    m.expect_migrate().never();
    d.expect_set_image().never();
    let h = harness(d, m, c, None);
    let updater = h.updater.with_disk_checks(need(u64::MAX / 2));
    let r = updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(steps(&r).last().unwrap(), &("pre-checks".to_owned(), "failed".to_owned()));
    let e = r.error.unwrap();
    assert!(e.contains("not enough free space, nothing was changed") && e.contains("GiB required"), "{e}");
    let missing = vec![DiskCheck { path: "/nonexistent/volume".into(), min_free_bytes: 1 }];
    let h = harness(deployer_at("1.4.0"), MockSchemaMigrations::new(), MockHealthChecks::new(), None);
    let r = h.updater.with_disk_checks(missing).run(&to("1.4.1"), &TaskContext::new(true)).await;
    assert!(r.error.unwrap().contains("/nonexistent/volume: cannot read its free space"));
    // enough room: the step passes and says so (dry run: the rest is only planned)
    let mut m = MockSchemaMigrations::new();
    m.expect_migrate().returning(|p, _| Ok(applied(p, &[])));
    let h = harness(deployer_at("1.4.0"), m, MockHealthChecks::new(), None);
    let mut c = MockHealthChecks::new();
    c.expect_check().returning(|| check(true));
    let r =
        h.updater.with_checks(Arc::new(c)).with_disk_checks(need(1)).run(&to("1.4.1"), &TaskContext::new(true)).await;
    assert!(steps(&r).contains(&("pre-checks".to_owned(), "ok".to_owned())), "{r:?}");
}

#[tokio::test]
async fn version_policy_refuses_downgrades_and_unapproved_major_updates_before_anything() {
    for (target, force, expected) in [
        ("1.3.0", false, "refusing to downgrade from 1.4.0 to 1.3.0"),
        ("2.0.0", false, "1.4.0 -> 2.0.0 is a major update"),
    ] {
        let mut d = deployer_at("1.4.0");
        let mut m = MockSchemaMigrations::new();
        let mut c = MockHealthChecks::new();
        c.expect_check().never();
        m.expect_migrate().never();
        d.expect_set_image().never();
        let h = harness(d, m, c, None);
        let req = UpdateRequest { force, ..to(target) };
        let r = h.updater.run(&req, &TaskContext::new(false)).await;
        assert_eq!(r.status, Status::Failed);
        assert!(r.error.as_deref().unwrap().starts_with(expected), "{:?}", r.error);
        assert_eq!(steps(&r), pairs(&[("version", "failed")]));
    }
    let mut d = deployer_at("1.4.0");
    d.expect_set_image().never();
    let h = harness(d, MockSchemaMigrations::new(), MockHealthChecks::new(), None);
    let r = h.updater.run(&to("1.4.0"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Skipped);
    assert!(h.sent.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_major_update_runs_only_with_its_change_request_inside_the_window() {
    let cal = Calendar::from_yaml(
        "monthly_maintenance:\n  day: \"First Sunday\"\n  time: \"02:00 UTC\"\n  duration: \"4 hours\"\n  tasks:\n    - {name: \"System Updates\", impact: \"downtime\"}\n",
    )
    .unwrap();
    let at = |d, h, mi| Utc.with_ymd_and_hms(2026, 12, d, h, mi, 0).unwrap();
    let mut cr = ChangeRequest::new(
        "CR-4",
        NewChange {
            title: "AindusDB 2.0".into(),
            risk: Risk::High,
            impact: Some(Impact::Downtime),
            rollback_plan: "undo".into(),
            requester: "bob".into(),
            approvers: vec!["alice".into(), "carol".into()],
            window: Some("monthly".into()),
            estimated_minutes: 90,
            target_version: Some("2.0.0".into()),
            ..NewChange::default()
        },
        &ApprovalPolicy::default(),
        at(1, 9, 0),
    )
    .unwrap();
    cr.approve("alice", None, at(1, 10, 0)).unwrap();
    cr.approve("carol", None, at(1, 10, 0)).unwrap();
    cr.schedule("ops", at(6, 2, 0), Some(&cal), at(1, 11, 0)).unwrap();

    // Outside the slot: refused before any check or change.
    let mut d = deployer_at("1.4.0");
    d.expect_set_image().never();
    let mut c = MockHealthChecks::new();
    c.expect_check().never();
    let h = harness(d, MockSchemaMigrations::new(), c, None);
    let req =
        UpdateRequest { change: Some(cr.clone()), calendar: Some(cal.clone()), now: Some(at(6, 4, 0)), ..to("2.0.0") };
    let r = h.updater.run(&req, &TaskContext::new(false)).await;
    assert!(r.error.as_deref().unwrap().contains("execution refused outside the approved slot"), "{:?}", r.error);
    assert_eq!(steps(&r), pairs(&[("version", "ok"), ("change", "failed")]));

    // Another version than the change covers: refused.
    let h = harness(deployer_at("1.4.0"), MockSchemaMigrations::new(), MockHealthChecks::new(), None);
    let req =
        UpdateRequest { change: Some(cr.clone()), calendar: Some(cal.clone()), now: Some(at(6, 2, 30)), ..to("3.0.0") };
    let r = h.updater.run(&req, &TaskContext::new(false)).await;
    assert!(r.error.as_deref().unwrap().contains("it covers version 2.0.0, not 3.0.0"), "{:?}", r.error);

    // Inside: runs.
    let mut d = deployer_at("1.4.0");
    d.expect_set_image().times(1).returning(|_, _| Ok(()));
    d.expect_wait_rollout().times(1).returning(|_, _| Ok(()));
    let mut m = MockSchemaMigrations::new();
    m.expect_migrate().times(2).returning(|p, _| Ok(applied(p, &[])));
    let mut c = MockHealthChecks::new();
    c.expect_check().times(2).returning(|| check(true));
    let h = harness(d, m, c, None);
    let req = UpdateRequest { change: Some(cr), calendar: Some(cal), now: Some(at(6, 2, 30)), ..to("2.0.0") };
    let r = h.updater.run(&req, &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(r.items[1]["detail"], "CR-4 is scheduled and in its window");
    assert_eq!(r.metrics["update_major"], 1.0);
    assert_eq!(h.sent.0.lock().unwrap()[0].fields["change"], "CR-4");
}

/// A change in a memory store, scheduled at 2026-11-25 14:00 for 60 minutes.
async fn stored_change(store: &crate::MemoryChangeStore) -> (String, DateTime<Utc>) {
    let start = Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0).unwrap();
    let new = NewChange {
        title: "AindusDB 1.5.0".into(),
        requester: "bob".into(),
        approvers: vec!["alice".into()],
        estimated_minutes: 60,
        ..NewChange::default()
    };
    let c = store.create(new, &ApprovalPolicy::default(), start).await.unwrap();
    store
        .update(&c.id, &mut |c| {
            c.approve("alice", None, start)?;
            c.schedule("ops", start, None, start)
        })
        .await
        .unwrap();
    (c.id, start)
}

#[tokio::test]
async fn the_orchestrator_records_the_life_of_the_change_in_its_store() {
    use crate::{ChangeState, MemoryChangeStore};
    // Outside the slot: refused, and the stored change stays scheduled.
    let store = Arc::new(MemoryChangeStore::new());
    let (id, start) = stored_change(&store).await;
    let mut d = deployer_at("1.4.0");
    d.expect_set_image().never();
    let h = harness(d, MockSchemaMigrations::new(), MockHealthChecks::new(), None);
    let updater = h.updater.with_changes(store.clone());
    let change = Some(store.load(&id).await.unwrap());
    let late = UpdateRequest { change: change.clone(), now: Some(start + TimeDelta::hours(2)), ..to("1.5.0") };
    let r = updater.run(&late, &TaskContext::new(false)).await;
    assert!(r.error.as_deref().unwrap().contains("execution refused outside the approved slot"), "{:?}", r.error);
    assert_eq!(store.load(&id).await.unwrap().state, ChangeState::Scheduled);

    // Inside, but a pre-check fails: nothing changed, the change included (still scheduled).
    let mut d = deployer_at("1.4.0");
    d.expect_set_image().never();
    let mut c = MockHealthChecks::new();
    c.expect_check().times(1).returning(|| check(false));
    let updater = harness(d, MockSchemaMigrations::new(), c, None).updater.with_changes(store.clone());
    let req = UpdateRequest { change: change.clone(), now: Some(start + TimeDelta::minutes(5)), ..to("1.5.0") };
    let r = updater.run(&req, &TaskContext::new(false)).await;
    assert!(r.error.as_deref().unwrap().contains("pre-checks failed, nothing was changed"), "{:?}", r.error);
    assert_eq!(store.load(&id).await.unwrap().state, ChangeState::Scheduled);

    // Inside: in_progress, then completed.
    let mut d = deployer_at("1.4.0");
    d.expect_set_image().times(1).returning(|_, _| Ok(()));
    d.expect_wait_rollout().times(1).returning(|_, _| Ok(()));
    let mut m = MockSchemaMigrations::new();
    m.expect_migrate().times(2).returning(|p, _| Ok(applied(p, &[])));
    let mut c = MockHealthChecks::new();
    c.expect_check().times(2).returning(|| check(true));
    let updater = harness(d, m, c, None).updater.with_changes(store.clone());
    let req = UpdateRequest {
        change: change.clone(),
        now: Some(start + TimeDelta::minutes(5)),
        actor: Some("ops-alice".into()),
        ..to("1.5.0")
    };
    let r = updater.run(&req, &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert_eq!(r.items[1]["detail"], "CR-1 is scheduled and in its window");
    assert!(r.items.iter().any(|i| i["step"] == "change" && i["detail"] == "CR-1: now in_progress"), "{r:#?}");
    assert_eq!(r.items.last().unwrap(), &serde_json::json!({ "change": "CR-1", "state": "completed" }));
    let stored = store.load(&id).await.unwrap();
    let actions: Vec<(&str, &str, ChangeState)> =
        stored.history.iter().map(|e| (e.action.as_str(), e.by.as_str(), e.to)).collect();
    assert_eq!(
        &actions[3..],
        [("start", "ops-alice", ChangeState::InProgress), ("complete", "ops-alice", ChangeState::Completed)]
    );

    // A failed smoke test that is undone: failed, then rolled_back.
    let (id, start) = stored_change(&store).await;
    let mut d = deployer_at("1.4.0");
    let mut c = MockHealthChecks::new();
    let mut seq = Sequence::new();
    c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
    c.expect_check().times(1).in_sequence(&mut seq).returning(|| check(false));
    let mut m = MockSchemaMigrations::new();
    m.expect_migrate().times(1).returning(|p, _| Ok(applied(p, &[])));
    d.expect_set_image().times(1).returning(|_, _| Ok(()));
    d.expect_wait_rollout().times(2).returning(|_, _| Ok(()));
    d.expect_undo().times(1).returning(|_| Ok(()));
    let updater = harness(d, m, c, None).updater.with_changes(store.clone());
    let req = UpdateRequest {
        change: Some(store.load(&id).await.unwrap()),
        now: Some(start + TimeDelta::minutes(5)),
        ..to("1.5.0")
    };
    let r = updater.run(&req, &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.items.last().unwrap()["state"], "rolled_back");
    let stored = store.load(&id).await.unwrap();
    let tail: Vec<(&str, ChangeState)> = stored.history.iter().map(|e| (e.action.as_str(), e.to)).collect();
    assert_eq!(
        &tail[3..],
        [("start", ChangeState::InProgress), ("fail", ChangeState::Failed), ("roll_back", ChangeState::RolledBack)]
    );
    assert!(stored.history[4].detail.as_deref().unwrap().starts_with("smoke: smoke checks failed on 1.5.0"));
}

#[tokio::test]
async fn a_dry_run_plans_every_step_and_changes_nothing() {
    let mut d = deployer_at("1.4.0");
    let mut m = MockSchemaMigrations::new();
    let mut c = MockHealthChecks::new();
    let mut b = MockBackupGate::new();
    c.expect_check().times(1).returning(|| check(true));
    b.expect_ensure_backup().withf(|ctx| ctx.dry_run).times(1).returning(|_| Ok("would create a backup".into()));
    m.expect_migrate().withf(|_, ctx| ctx.dry_run).times(2).returning(|p, _| {
        Ok(MigrationOutcome {
            phase: p,
            dry_run: true,
            planned: vec![format!("V1__{p}")],
            ..MigrationOutcome::default()
        })
    });
    d.expect_set_image().never();
    d.expect_wait_rollout().never();
    d.expect_undo().never();
    let h = harness(d, m, c, Some(b));
    let r = h.updater.run(&to("1.5.0"), &TaskContext::new(true)).await;
    assert_eq!(r.status, Status::Ok, "{r:#?}");
    assert!(r.dry_run);
    assert_eq!(
        steps(&r),
        pairs(&[
            ("version", "ok"),
            ("change", "skipped"),
            ("pre-checks", "ok"),
            ("backup", "planned"),
            ("expand-migrations", "planned"),
            ("rollout", "planned"),
            ("smoke", "planned"),
            ("contract-migrations", "planned"),
        ])
    );
    assert_eq!(r.items[4]["detail"], "would apply V1__expand");
    assert!(
        r.items[5]["detail"].as_str().unwrap().starts_with("would set registry.example/aindusdb:1.5.0 on api, worker")
    );
    assert!(h.sent.0.lock().unwrap().is_empty(), "a dry run notifies nobody");
}

#[tokio::test]
async fn an_audit_failure_is_a_warning_and_a_dry_run_is_not_audited() {
    let mut d = deployer_at("1.4.0");
    d.expect_set_image().times(1).returning(|_, _| Ok(()));
    d.expect_wait_rollout().times(1).returning(|_, _| Ok(()));
    let mut m = MockSchemaMigrations::new();
    m.expect_migrate().returning(|p, _| Ok(applied(p, &[])));
    let mut c = MockHealthChecks::new();
    c.expect_check().returning(|| check(true));
    let mut audit = crate::MockAuditLog::new();
    audit
        .expect_record()
        .withf(|r| r.to_version == "1.4.1" && r.from_version.as_deref() == Some("1.4.0") && r.status == "ok")
        .times(1)
        .returning(|_| Err(Error::Deploy("audit database down".into())));
    let audit: Arc<dyn AuditLog> = Arc::new(audit);
    let h = harness(d, m, c, None);
    let updater = h.updater.with_audit(audit);
    let r = updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
    assert_eq!(r.status, Status::Warning);
    assert!(r.warnings.iter().any(|w| w.contains("cannot write the audit record")), "{:?}", r.warnings);
    let planned = updater.run(&to("1.4.1"), &TaskContext::new(true)).await;
    assert_eq!(planned.status, Status::Ok, "record() was expected once: the dry run did not call it");
}

#[tokio::test]
async fn the_smoke_suite_runs_after_the_checks_and_before_only_when_asked() {
    for before in [false, true] {
        let mut d = deployer_at("1.4.0");
        d.expect_set_image().times(1).returning(|_, _| Ok(()));
        d.expect_wait_rollout().times(2).returning(|_, _| Ok(()));
        d.expect_undo().times(1).returning(|_| Ok(()));
        let mut m = MockSchemaMigrations::new();
        m.expect_migrate().returning(|p, _| Ok(applied(p, &[])));
        let mut c = MockHealthChecks::new();
        c.expect_check().times(2).returning(|| check(true));
        let mut suite = MockHealthChecks::new();
        let mut seq = Sequence::new();
        if before {
            suite.expect_check().times(1).in_sequence(&mut seq).returning(|| check(true));
        }
        suite.expect_check().times(1).in_sequence(&mut seq).returning(|| {
            vec![CheckResult {
                name: "veritas-sum".into(),
                ok: false,
                status: Some(200),
                error: Some("$.result: expected 5 (±0), got 5.5".into()),
                attempts: 1,
            }]
        });
        let h = harness(d, m, c, None);
        let updater = h.updater.with_smoke(Arc::new(suite), before);
        let r = updater.run(&to("1.4.1"), &TaskContext::new(false)).await;
        assert_eq!(
            r.error.as_deref(),
            Some("smoke: smoke checks failed on 1.4.1: veritas-sum: $.result: expected 5 (±0), got 5.5")
        );
        assert_eq!(r.items[2]["detail"], if before { "2 check(s) passed" } else { "1 check(s) passed" });
        assert_eq!(r.metrics["rolled_back"], 1.0);
    }
}

#[test]
fn settings_are_checked() {
    let d: Arc<dyn Deployer> = Arc::new(MockDeployer::new());
    let err = Updater::new(d.clone(), UpdateSettings { workloads: vec![], ..settings() }).unwrap_err();
    assert_eq!(err.to_string(), "update.workloads: at least one workload is required");
    let err = Updater::new(d, UpdateSettings { image_repository: " ".into(), ..settings() }).unwrap_err();
    assert!(err.is_bad_input());
}
