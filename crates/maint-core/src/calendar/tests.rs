use chrono::{TimeZone, Utc};

use super::*;

const PLAN: &str = include_str!("../../../../deploy/maintenance.yaml");
const PLAN_TOML: &str = include_str!("../../../../deploy/maintenance.toml");

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).single().unwrap()
}

fn field_of(err: Error) -> String {
    match err {
        Error::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn original_plan_loads_unchanged() {
    let cal = Calendar::from_yaml(PLAN).unwrap();
    let names: Vec<&str> = cal.windows().iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["daily", "weekly", "monthly"]);
    let ids: Vec<&str> = cal.windows().iter().flat_map(|w| w.tasks.iter().map(|t| t.id)).collect();
    let all: Vec<&str> = BUILTIN_TASKS.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, all, "the twelve tasks, in plan order");
    let monthly = cal.window("monthly").unwrap();
    assert_eq!(monthly.schedule, Schedule::Monthly { nth: 1, weekday: Weekday::Sun });
    assert_eq!(monthly.duration, TimeDelta::hours(4));
    assert_eq!(monthly.impact(), Impact::Downtime);
    assert_eq!(monthly.tasks[0].script.as_deref(), Some("scripts/system_updates.sh"));
    assert_eq!(cal.window("weekly").unwrap().cron_pattern(), "0 3 * * SUN");
    assert_eq!(cal.window("daily").unwrap().duration, TimeDelta::minutes(15));
    // Daily (02:00) and weekly (Sunday 03:00) both fall inside the monthly 02:00-06:00
    // downtime on the first Sunday: allowed, but said.
    assert_eq!(cal.warnings().len(), 2, "{:?}", cal.warnings());
    assert!(cal.warnings().iter().all(|w| w.contains("\"monthly\"")));
}

#[test]
fn toml_plan_matches_yaml_plan() {
    let (y, t) = (Calendar::from_yaml(PLAN).unwrap(), Calendar::from_toml(PLAN_TOML).unwrap());
    let from = utc(2026, 11, 24, 0, 0);
    for (a, b) in y.windows().iter().zip(t.windows()) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.next_starts(from, 5), b.next_starts(from, 5));
        let ids = |w: &Window| w.tasks.iter().map(|t| (t.id, t.impact)).collect::<Vec<_>>();
        assert_eq!(ids(a), ids(b));
    }
    assert!(t.window("monthly").unwrap().tasks[0].critical);
}

#[test]
fn first_sunday_means_the_first_sunday() {
    let cal = Calendar::from_yaml(PLAN).unwrap();
    let m = cal.window("monthly").unwrap();
    // February 2026 starts on a Sunday: the 1st is the first Sunday.
    assert_eq!(m.next_start(utc(2026, 1, 5, 0, 0)), utc(2026, 2, 1, 2, 0));
    // June 2026 starts on a Monday: the first Sunday is the 7th, not the 1st-7th range of
    // a plain `0 2 1-7 * 0` cron, which would also fire on every other Sunday.
    assert_eq!(m.next_start(utc(2026, 5, 4, 0, 0)), utc(2026, 6, 7, 2, 0));
    assert_eq!(
        m.next_starts(utc(2026, 6, 7, 2, 0), 3),
        [utc(2026, 7, 5, 2, 0), utc(2026, 8, 2, 2, 0), utc(2026, 9, 6, 2, 0)]
    );
    // No other Sunday of June is a monthly start.
    for d in [14, 21, 28] {
        assert!(!m.contains(utc(2026, 6, d, 2, 30)), "June {d}");
    }
}

#[test]
fn windows_know_when_they_are_open() {
    let cal = Calendar::from_yaml(PLAN).unwrap();
    let m = cal.window("monthly").unwrap();
    assert!(m.contains(utc(2026, 6, 7, 2, 0)), "start is inside");
    assert!(m.contains(utc(2026, 6, 7, 5, 59)));
    assert!(!m.contains(utc(2026, 6, 7, 6, 0)), "end is outside");
    assert!(!m.contains(utc(2026, 6, 7, 1, 59)));
    assert_eq!(m.occurrence_containing(utc(2026, 6, 7, 3, 0)), Some(utc(2026, 6, 7, 2, 0)));
    let daily = cal.window("daily").unwrap();
    assert!(daily.contains(utc(2026, 11, 24, 2, 14)));
    assert!(!daily.contains(utc(2026, 11, 24, 2, 15)));
    let active: Vec<&str> = cal.active_at(utc(2026, 6, 7, 3, 30)).iter().map(|w| w.name.as_str()).collect();
    assert_eq!(active, ["weekly", "monthly"]);
    // Next daily start is strictly after the given instant.
    assert_eq!(daily.next_start(utc(2026, 11, 24, 2, 0)), utc(2026, 11, 25, 2, 0));
}

#[test]
fn bad_time_names_the_field() {
    let plan = PLAN.replacen("\"02:00 UTC\"", "\"25:00 UTC\"", 1);
    let err = Calendar::from_yaml(&plan).unwrap_err();
    assert!(err.to_string().contains("25:00"), "{err}");
    assert_eq!(field_of(err), "daily_maintenance.time");
    let plan = PLAN.replacen("\"02:00 UTC\"", "\"02:00 CET\"", 1);
    assert!(Calendar::from_yaml(&plan).unwrap_err().to_string().contains("only UTC"));
}

#[test]
fn unknown_impact_names_the_field() {
    let plan = PLAN.replacen("impact: \"read_only\"}", "impact: \"sometimes\"}", 1);
    let err = Calendar::from_yaml(&plan).unwrap_err();
    assert_eq!(
        err.to_string(),
        "weekly_maintenance.tasks[0].impact: unknown impact \"sometimes\" (expected none, read_only or downtime)"
    );
    assert_eq!(err.exit_code(), crate::ExitCode::BadInput);
}

#[test]
fn unknown_task_bad_day_and_bad_duration_are_errors() {
    let plan = PLAN.replace("Capacity Planning", "Capacity Plannnig");
    assert_eq!(field_of(Calendar::from_yaml(&plan).unwrap_err()), "monthly_maintenance.tasks[3].name");
    let plan = PLAN.replace("\"First Sunday\"", "\"Fifth Sunday\"");
    assert_eq!(field_of(Calendar::from_yaml(&plan).unwrap_err()), "monthly_maintenance.day");
    let plan = PLAN.replace("\"15 minutes\"", "\"25 hours\"");
    assert_eq!(field_of(Calendar::from_yaml(&plan).unwrap_err()), "daily_maintenance.duration");
    let plan = PLAN.replace("\"1 hour\"", "\"soon\"");
    assert_eq!(field_of(Calendar::from_yaml(&plan).unwrap_err()), "weekly_maintenance.duration");
    let plan = format!("{PLAN}    - {{name: \"index-rebuild\", impact: \"none\"}}\n");
    assert_eq!(field_of(Calendar::from_yaml(&plan).unwrap_err()), "monthly_maintenance.tasks[4].name");
    assert!(matches!(Calendar::from_yaml("daily: [").unwrap_err(), Error::Parse { .. }));
    assert!(matches!(
        Calendar::from_yaml("daily_maintenance: {time: \"02:00\", duration: \"1h\", tasks: [], colour: red}")
            .unwrap_err(),
        Error::Parse { .. }
    ));
}

/// A duration too large for chrono is a named error, not a panic.
#[test]
fn a_huge_duration_is_an_error_not_a_panic() {
    for huge in ["9999999999999999 minutes", "9999999999999999 hours", "9999999999999999 days"] {
        let plan = PLAN.replace("\"15 minutes\"", &format!("\"{huge}\""));
        let err = Calendar::from_yaml(&plan).unwrap_err();
        assert!(err.to_string().contains("too large"), "{err}");
        assert_eq!(field_of(err), "daily_maintenance.duration", "{huge}");
    }
}

#[test]
fn overlapping_downtime_windows_are_an_error() {
    // Weekly Sunday 03:00 with a downtime task overlaps the monthly 02:00-06:00 downtime.
    let plan = PLAN.replace(
        "{name: \"Security Scan\", script: \"scripts/security_scan.sh\", impact: \"none\"}",
        "{name: \"Security Scan\", impact: \"downtime\"}",
    );
    let err = Calendar::from_yaml(&plan).unwrap_err();
    assert!(err.to_string().contains("both need downtime"), "{err}");
    assert!(err.to_string().contains("2024-01-07"), "first Sunday of the reference period: {err}");
    // Moved to Saturday, the two never meet.
    let plan = plan.replace("day: \"Sunday\"", "day: \"Saturday\"");
    let cal = Calendar::from_yaml(&plan).unwrap();
    assert_eq!(cal.window("weekly").unwrap().impact(), Impact::Downtime);
}

#[test]
fn last_weekday_of_month() {
    let plan = PLAN.replace("\"First Sunday\"", "\"Last Sunday\"");
    let cal = Calendar::from_yaml(&plan).unwrap();
    let m = cal.window("monthly").unwrap();
    assert_eq!(m.next_start(utc(2026, 11, 1, 0, 0)), utc(2026, 11, 29, 2, 0));
    assert_eq!(m.next_start(utc(2026, 11, 30, 0, 0)), utc(2026, 12, 27, 2, 0));
}

#[test]
fn icalendar_export_parses_back() {
    use icalendar::Component;
    let cal = Calendar::from_yaml(PLAN).unwrap();
    let text = cal.to_icalendar(utc(2026, 11, 24, 12, 0));
    let parsed: icalendar::Calendar = text.parse().unwrap();
    let events: Vec<_> = parsed.events().collect();
    assert_eq!(events.len(), 3);
    let monthly = events.iter().find(|e| e.get_uid() == Some("monthly-maintenance@aindusdb-maint")).unwrap();
    assert_eq!(monthly.property_value("RRULE"), Some("FREQ=MONTHLY;BYDAY=1SU"));
    // December 2026: the 1st is a Tuesday, so the first Sunday is the 6th.
    assert_eq!(monthly.get_start(), Some(utc(2026, 12, 6, 2, 0).into()));
    assert_eq!(monthly.get_end(), Some(utc(2026, 12, 6, 6, 0).into()));
    assert!(monthly.get_description().unwrap().contains("System Updates (downtime)"));
    let weekly = events.iter().find(|e| e.get_uid() == Some("weekly-maintenance@aindusdb-maint")).unwrap();
    assert_eq!(weekly.property_value("RRULE"), Some("FREQ=WEEKLY;BYDAY=SU"));
    assert_eq!(weekly.get_start(), Some(utc(2026, 11, 29, 3, 0).into()));
}
