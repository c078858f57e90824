//! The maint-change binary, run as an operator would, against a real PostgreSQL.

use std::path::PathBuf;
use std::process::{Command, Output};

use maint_testkit::Postgres;

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("maint-change-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn change(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maint-change"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("MAINT_CONFIG")
        .env_remove("MAINT_CALENDAR")
        .env_remove("MAINT_CHANGE_DATABASE_URL")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

const PLAN: &str = "monthly_maintenance:\n  day: \"First Sunday\"\n  time: \"02:00 UTC\"\n  duration: \"4 hours\"\n  tasks:\n    - {name: \"System Updates\", impact: \"downtime\"}\n";

#[tokio::test]
async fn a_change_goes_from_pending_to_scheduled_and_every_rule_is_enforced() {
    let db = Postgres::shared().await.fresh_database().await;
    let url = db.url();
    let url = url.as_str();
    let dir = temp_dir("flow");
    let plan = dir.join("plan.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    let cal = plan.to_str().unwrap();
    let create = change(
        url,
        &[
            "--json",
            "create",
            "--title",
            "AindusDB 2.0.0",
            "--requester",
            "bob",
            "--approver",
            "alice",
            "--approver",
            "carol",
            "--risk",
            "high",
            "--impact",
            "downtime",
            "--window",
            "monthly",
            "--duration-minutes",
            "90",
            "--rollback-plan",
            "undo the rollout",
            "--target-version",
            "2.0.0",
        ],
    );
    assert!(create.status.success(), "{}", stderr(&create));
    let report = json(&create);
    assert_eq!(report["task"], "change-create");
    assert_eq!(report["status"], "ok");
    assert_eq!(report["items"][0]["id"], "CR-1");
    assert_eq!(report["items"][0]["state"], "pending");
    assert_eq!(report["items"][0]["required_approvals"], 2);

    // The requester's database role (the one CR-1 was created through) cannot approve.
    let own_role = change(url, &["approve", "CR-1", "--by", "alice"]);
    assert_eq!(own_role.status.code(), Some(1));
    assert_eq!(
        stderr(&own_role).trim(),
        "maint-change: change CR-1: role postgres requested this change and cannot approve it"
    );
    let alice = db.as_role("alice").await.url();
    let approved = change(&alice, &["--json", "approve", "CR-1", "--by", "alice"]);
    assert!(approved.status.success(), "{}", stderr(&approved));
    let approvals = &json(&approved)["items"][0]["approvals"];
    assert_eq!(approvals[0]["identity"].as_str(), Some(format!("{}_alice", db.name).as_str()));
    // One role approving as two people counts once.
    let as_carol = change(&alice, &["approve", "CR-1", "--by", "carol"]);
    assert_eq!(as_carol.status.code(), Some(1));
    assert_eq!(
        stderr(&as_carol).trim(),
        format!(
            "maint-change: change CR-1: role {}_alice has already approved it as alice (an identity counts once)",
            db.name
        )
    );

    let twice = change(&alice, &["approve", "CR-1", "--by", "alice"]);
    assert_eq!(twice.status.code(), Some(1));
    assert_eq!(
        stderr(&twice).trim(),
        "maint-change: change CR-1: alice has already approved it (an approver counts once)"
    );
    let own = change(url, &["--json", "approve", "CR-1", "--by", "bob"]);
    assert_eq!(own.status.code(), Some(1));
    assert_eq!(json(&own)["status"], "failed");
    assert!(json(&own)["error"].as_str().unwrap().contains("bob requested this change and cannot approve it"));

    let early = change(url, &["schedule", "CR-1", "--start", "2099-12-06T02:00:00Z", "--by", "ops", "--calendar", cal]);
    assert_eq!(early.status.code(), Some(1));
    assert!(stderr(&early).contains("cannot schedule: it is pending, not approved"), "{}", stderr(&early));

    let carol = db.as_role("carol").await.url();
    assert!(change(&carol, &["approve", "CR-1", "--by", "carol"]).status.success());
    let outside =
        change(url, &["schedule", "CR-1", "--start", "2099-12-07T02:00:00Z", "--by", "ops", "--calendar", cal]);
    assert_eq!(outside.status.code(), Some(1));
    assert!(stderr(&outside).contains("is outside window monthly"), "{}", stderr(&outside));
    // 2099-12-06 is the first Sunday of December 2099.
    let ok = change(url, &["schedule", "CR-1", "--start", "2099-12-06T02:00:00Z", "--by", "ops", "--calendar", cal]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    let now = change(url, &["start", "CR-1", "--by", "ops", "--calendar", cal]);
    assert_eq!(now.status.code(), Some(1));
    assert!(stderr(&now).contains("execution refused outside the approved slot"), "{}", stderr(&now));

    let list = json(&change(url, &["--json", "list", "--state", "scheduled"]));
    assert_eq!(list["metrics"]["changes"], 1.0);
    assert_eq!(list["items"][0]["approvals"].as_array().unwrap().len(), 2);
    let actions: Vec<&str> =
        list["items"][0]["history"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "approve", "approve", "schedule"]);
    let human = change(url, &["list"]);
    let line = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(line.starts_with("CR-1  scheduled    risk high"), "{line}");
    assert!(line.contains("approvals 2/2 at 2099-12-06T02:00:00Z  AindusDB 2.0.0"), "{line}");

    let ics = change(url, &["ical"]);
    let text = String::from_utf8_lossy(&ics.stdout).into_owned();
    assert!(text.starts_with("BEGIN:VCALENDAR"), "{text}");
    assert!(text.contains("UID:CR-1@aindusdb-maint"));
    assert!(text.contains("DTSTART:20991206T020000Z"), "{text}");

    let cancel = change(url, &["--json", "cancel", "CR-1", "--by", "bob", "--reason", "postponed"]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    assert_eq!(json(&cancel)["items"][0]["state"], "cancelled");
    let ics = String::from_utf8_lossy(&change(url, &["ical"]).stdout).into_owned();
    assert!(ics.contains("STATUS:CANCELLED"), "{ics}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_change_is_started_inside_its_slot_then_fails_and_is_rolled_back() {
    use maint_core::chrono::{SecondsFormat, TimeDelta, Utc};
    let db = Postgres::shared().await.fresh_database().await;
    let url = db.url();
    let url = url.as_str();
    let created = change(url, &["create", "--title", "Patch 1.4.1", "--requester", "bob", "--approver", "alice"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let alice = db.as_role("alice").await.url();
    assert!(change(&alice, &["approve", "CR-1", "--by", "alice", "--comment", "fine"]).status.success());
    // The slot opens two seconds from now (a start must not be in the past).
    let start = Utc::now() + TimeDelta::seconds(2);
    let start_text = start.to_rfc3339_opts(SecondsFormat::Secs, true);
    let scheduled = change(url, &["schedule", "CR-1", "--start", &start_text, "--by", "ops"]);
    assert!(scheduled.status.success(), "{}", stderr(&scheduled));
    let early = change(url, &["start", "CR-1", "--by", "ops"]);
    assert_eq!(early.status.code(), Some(1), "the slot has not opened yet: {}", stderr(&early));
    while Utc::now() < start + TimeDelta::milliseconds(200) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let started = change(url, &["--json", "start", "CR-1", "--by", "ops"]);
    assert!(started.status.success(), "{}", stderr(&started));
    assert_eq!(json(&started)["items"][0]["state"], "in_progress");
    let back = change(url, &["rolled-back", "CR-1", "--by", "ops"]);
    assert_eq!(back.status.code(), Some(1));
    assert!(stderr(&back).contains("cannot record a rollback: it is in_progress, not failed"), "{}", stderr(&back));
    let fail = change(url, &["fail", "CR-1", "--by", "ops", "--reason", "smoke checks failed"]);
    assert!(fail.status.success(), "{}", stderr(&fail));
    let back = change(url, &["--json", "rolled-back", "CR-1", "--by", "ops", "--detail", "api on 1.4.0 again"]);
    assert!(back.status.success(), "{}", stderr(&back));
    let shown = json(&change(url, &["--json", "show", "CR-1"]));
    let item = &shown["items"][0];
    assert_eq!(item["state"], "rolled_back");
    let states: Vec<&str> = item["history"].as_array().unwrap().iter().map(|e| e["to"].as_str().unwrap()).collect();
    assert_eq!(states, ["pending", "approved", "scheduled", "in_progress", "failed", "rolled_back"]);
    assert_eq!(item["history"][4]["detail"], "smoke checks failed");
    assert_eq!(item["history"][1]["detail"], "approval 1/1: fine");
    let human = String::from_utf8_lossy(&change(url, &["show", "CR-1"]).stdout).into_owned();
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), 7, "the change, then one line per event: {human}");
    assert!(lines[0].starts_with("CR-1  rolled_back  risk low"), "{human}");
    assert!(lines[2].contains("  alice      approve   pending -> approved  (approval 1/1: fine)"), "{human}");
    assert!(lines[6].contains("  ops        roll_back failed -> rolled_back  (api on 1.4.0 again)"), "{human}");
}

#[tokio::test]
async fn bad_input_is_one_line_naming_the_field_with_exit_code_2() {
    let db = Postgres::shared().await.fresh_database().await;
    let url = db.url();
    let cases: &[(&[&str], &str)] = &[
        (&["create", "--title", "t", "--requester", "bob", "--risk", "huge"], "--risk"),
        (&["create", "--title", " ", "--requester", "bob", "--approver", "a"], "--title"),
        (&["create", "--title", "t", "--requester", "bob", "--approver", "a", "--impact", "downtime"], "--window"),
        (&["create", "--title", "t", "--requester", "bob", "--target-version", "2.0"], "--target-version"),
        (&["create", "--title", "t", "--requester", "bob", "--duration-minutes", "0"], "--duration-minutes"),
        (&["create", "--title", "t", "--requester", "bob", "--approver", "bob"], "--approver"),
        (&["create", "--title", "t", "--requester", "b", "--approver", "a", "--risk", "high"], "--rollback-plan"),
        (&["approve", "12", "--by", "alice"], "id"),
        (&["approve", "CR-01", "--by", "alice"], "id"),
        (&["schedule", "CR-1", "--start", "tomorrow", "--by", "ops"], "--start"),
        (&["list", "--state", "draft"], "--state"),
        (
            &["--calendar", "/nonexistent.yaml", "create", "--title", "t", "--requester", "b", "--window", "monthly"],
            "--calendar",
        ),
    ];
    for (args, field) in cases {
        let out = change(&url, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(field), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let listed = json(&change(&url, &["--json", "list"]));
    assert_eq!(listed["metrics"]["changes"], 0.0, "bad input stored nothing");
    let missing = change(&url, &["show", "CR-9"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing).trim(), "maint-change: change CR-9: not found");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_maint-change"))
            .args(args)
            .env_remove("MAINT_CHANGE_DATABASE_URL")
            .env_remove("MAINT_CONFIG")
            .output()
            .unwrap()
    };
    let no_url = run(&["list"]);
    assert_eq!(no_url.status.code(), Some(2));
    assert!(stderr(&no_url).starts_with("maint-change: --database-url: required"), "{}", stderr(&no_url));
    let bad_url = run(&["--database-url", "postgresql://u:secret@h:notaport/db", "list"]);
    assert_eq!(bad_url.status.code(), Some(2), "{}", stderr(&bad_url));
    assert!(stderr(&bad_url).starts_with("maint-change: --database-url:"), "{}", stderr(&bad_url));
    assert!(!stderr(&bad_url).contains("secret"), "the password is never printed: {}", stderr(&bad_url));
    // Port 1 on the loopback: nobody listens.
    let down = run(&["--database-url", "postgresql://maint:secret@127.0.0.1:1/maint", "list"]);
    assert_eq!(down.status.code(), Some(1), "{}", stderr(&down));
    assert!(stderr(&down).starts_with("maint-change: cannot connect to PostgreSQL"), "{}", stderr(&down));
    assert!(!stderr(&down).contains("secret"), "{}", stderr(&down));
}
