//! Runs the `maint` binary as an operator would.

use std::process::Command;

fn maint(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_maint"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env_remove("MAINT_CALENDAR")
        .output()
        .expect("run maint");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn calendar_lists_the_next_windows_of_the_shipped_plan() {
    let (code, out, err) = maint(&["calendar", "--from", "2026-05-04T00:00:00Z", "--json", "--count", "2"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let monthly = &v["windows"][2];
    assert_eq!(monthly["window"], "monthly");
    assert_eq!(monthly["next"][0], "2026-06-07T02:00:00Z");
    assert_eq!(monthly["next"][1], "2026-07-05T02:00:00Z");
    assert_eq!(monthly["tasks"][0]["impact"], "downtime");
    assert_eq!(v["windows"][0]["next"][0], "2026-05-04T02:00:00Z");
    assert_eq!(v["windows"][1]["next"][0], "2026-05-10T03:00:00Z");
    let (code, text, _) = maint(&["calendar", "--from", "2026-05-04T00:00:00Z"]);
    assert_eq!(code, 0);
    assert!(text.contains("monthly (0 2 * * SUN#1, 240 min, impact downtime): next 2026-06-07T02:00:00Z"), "{text}");
    assert!(text.contains("  - Index Rebuild [index-rebuild] impact read_only"), "{text}");
}

#[test]
fn calendar_reads_toml_and_exports_icalendar() {
    let (code, out, err) =
        maint(&["calendar", "--config", "deploy/maintenance.toml", "--ical", "--from", "2026-11-24T00:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("BEGIN:VCALENDAR"), "{out}");
    assert_eq!(out.matches("BEGIN:VEVENT").count(), 3);
    assert!(out.contains("RRULE:FREQ=MONTHLY;BYDAY=1SU"));
}

#[test]
fn a_bad_plan_exits_2_with_one_line_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("maint-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/maintenance.yaml")).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, plan.replacen("\"02:00 UTC\"", "\"25:00 UTC\"", 1)).unwrap();
    let (code, out, err) = maint(&["calendar", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("maint: daily_maintenance.time: \"25:00 UTC\""), "{err}");
    let (code, _, err) = maint(&["calendar", "--config", "/nonexistent/plan.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read /nonexistent/plan.yaml"), "{err}");
    let (code, _, err) = maint(&["calendar", "--from", "yesterday"]);
    assert_eq!(code, 2, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
