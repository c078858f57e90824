//! The maint-change binary, run as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("maint-change-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn change(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maint-change"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("MAINT_CONFIG")
        .env_remove("MAINT_CALENDAR")
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

#[test]
fn a_change_goes_from_draft_to_scheduled_and_every_rule_is_enforced() {
    let dir = temp_dir("flow");
    let plan = dir.join("plan.yaml");
    std::fs::write(&plan, PLAN).unwrap();
    let cal = plan.to_str().unwrap();
    let create = change(
        &dir,
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
    assert_eq!(report["items"][0]["state"], "draft");

    assert!(change(&dir, &["submit", "CR-1", "--by", "bob"]).status.success());
    assert!(change(&dir, &["approve", "CR-1", "--by", "alice"]).status.success());

    let twice = change(&dir, &["approve", "CR-1", "--by", "alice"]);
    assert_eq!(twice.status.code(), Some(1));
    assert_eq!(
        stderr(&twice).trim(),
        "maint-change: change CR-1: alice has already approved it (an approver counts once)"
    );
    let own = change(&dir, &["--json", "approve", "CR-1", "--by", "bob"]);
    assert_eq!(own.status.code(), Some(1));
    assert_eq!(json(&own)["status"], "failed");
    assert!(json(&own)["error"].as_str().unwrap().contains("bob requested this change and cannot approve it"));

    let early =
        change(&dir, &["schedule", "CR-1", "--start", "2026-12-06T02:00:00Z", "--by", "ops", "--calendar", cal]);
    assert_eq!(early.status.code(), Some(1));
    assert!(stderr(&early).contains("cannot schedule: it is submitted, not approved"), "{}", stderr(&early));

    assert!(change(&dir, &["approve", "CR-1", "--by", "carol"]).status.success());
    let outside =
        change(&dir, &["schedule", "CR-1", "--start", "2099-12-07T02:00:00Z", "--by", "ops", "--calendar", cal]);
    assert_eq!(outside.status.code(), Some(1));
    assert!(stderr(&outside).contains("is outside window monthly"), "{}", stderr(&outside));
    // 2099-12-06 is the first Sunday of December 2099.
    let ok = change(&dir, &["schedule", "CR-1", "--start", "2099-12-06T02:00:00Z", "--by", "ops", "--calendar", cal]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    let list = json(&change(&dir, &["--json", "list", "--state", "scheduled"]));
    assert_eq!(list["metrics"]["changes"], 1.0);
    assert_eq!(list["items"][0]["approvals"].as_array().unwrap().len(), 2);
    let human = change(&dir, &["list"]);
    let line = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(line.starts_with("CR-1  scheduled  risk high"), "{line}");
    assert!(line.contains("approvals 2/2 at 2099-12-06T02:00:00Z  AindusDB 2.0.0"), "{line}");

    let ics = change(&dir, &["ical"]);
    let text = String::from_utf8_lossy(&ics.stdout).into_owned();
    assert!(text.starts_with("BEGIN:VCALENDAR"), "{text}");
    assert!(text.contains("UID:CR-1@aindusdb-maint"));
    assert!(text.contains("DTSTART:20991206T020000Z"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_is_one_line_naming_the_field_with_exit_code_2() {
    let dir = temp_dir("bad");
    let cases: &[(&[&str], &str)] = &[
        (&["create", "--title", "t", "--requester", "bob", "--risk", "huge"], "--risk"),
        (&["create", "--title", " ", "--requester", "bob"], "--title"),
        (&["create", "--title", "t", "--requester", "bob", "--impact", "downtime"], "--window"),
        (&["create", "--title", "t", "--requester", "bob", "--target-version", "2.0"], "--target-version"),
        (&["create", "--title", "t", "--requester", "bob", "--duration-minutes", "0"], "--duration-minutes"),
        (&["approve", "12", "--by", "alice"], "id"),
        (&["schedule", "CR-1", "--start", "tomorrow", "--by", "ops"], "--start"),
        (
            &["--calendar", "/nonexistent.yaml", "create", "--title", "t", "--requester", "b", "--window", "monthly"],
            "--calendar",
        ),
    ];
    for (args, field) in cases {
        let out = change(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(field), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let missing = change(&dir, &["show", "CR-9"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing).trim(), "maint-change: change CR-9: not found");
    let no_dir = Command::new(env!("CARGO_BIN_EXE_maint-change"))
        .args(["list"])
        .env_remove("MAINT_CHANGE_DIR")
        .env_remove("MAINT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(no_dir.status.code(), Some(2));
    assert!(stderr(&no_dir).starts_with("maint-change: --dir: required"), "{}", stderr(&no_dir));
    std::fs::remove_dir_all(dir).unwrap();
}
