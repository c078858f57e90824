//! `maint checklist pre|post`: the old plan's checklists as gates. What can be checked is
//! checked; what only a person can tick is listed as manual and never passes.

use std::time::Duration;

use maint_core::chrono::{TimeDelta, Utc};
use maint_core::{Error, Status, Task, TaskContext, TaskReport, one_line};
use serde::Serialize;

use crate::config::MaintConfig;

/// One checklist item.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Item {
    pub(crate) item: &'static str,
    /// `passed`, `failed`, `manual` (a person must tick it) or `not_configured`.
    pub(crate) state: &'static str,
    pub(crate) detail: String,
}

fn item(item: &'static str, result: Result<String, String>) -> Item {
    match result {
        Ok(detail) => Item { item, state: "passed", detail },
        Err(detail) => Item { item, state: "failed", detail },
    }
}

fn manual(item: &'static str) -> Item {
    Item { item, state: "manual", detail: "only a person can tick this".into() }
}

fn not_configured(item: &'static str, what: &str) -> Item {
    Item { item, state: "not_configured", detail: format!("configure {what} to check this") }
}

async fn fresh_verified_backup(cfg: &MaintConfig, max_age_hours: i64) -> Item {
    const NAME: &str = "a verified backup younger than the limit";
    let Some(url) = &cfg.backup.store else { return not_configured(NAME, "[backup] store") };
    let check = async {
        let store = maint_backup::open_store(url).map_err(|e| one_line(&e))?;
        let (ledger, _) = maint_backup::Ledger::load(&store, false).await.map_err(|e| one_line(&e))?;
        let entries = maint_backup::catalog(&store, "backups").await.map_err(|e| one_line(&e))?;
        let newest = entries
            .iter()
            .filter(|e| ledger.entries.get(&e.key).and_then(|l| l.verified_ok) == Some(true))
            .filter_map(|e| maint_backup::key_time(&e.key).map(|t| (t, e.key.clone())))
            .max()
            .ok_or_else(|| "no verified backup in the store".to_owned())?;
        let age = Utc::now() - newest.0;
        if age > TimeDelta::hours(max_age_hours) {
            return Err(format!(
                "the newest verified backup {} is {} h old (limit {max_age_hours} h)",
                newest.1,
                age.num_hours()
            ));
        }
        Ok(format!("{} ({} min old)", newest.1, age.num_minutes()))
    };
    item(NAME, check.await)
}

async fn health(cfg: &MaintConfig) -> Item {
    const NAME: &str = "health checks pass";
    let task = maint_health::HealthChecks::new(cfg.health_config());
    let r = task.run(&TaskContext::new(false)).await;
    match r.status {
        Status::Skipped => not_configured(NAME, "[health] or [database]"),
        Status::Failed => item(NAME, Err(r.error.unwrap_or_default())),
        _ => item(NAME, Ok(format!("{} checks passed", r.metrics.get("checks_passed").copied().unwrap_or(0.0)))),
    }
}

async fn baseline(cfg: &MaintConfig) -> Item {
    const NAME: &str = "performance baseline recorded";
    if cfg.collect.snapshots.is_none() {
        return not_configured(NAME, "[collect] snapshots");
    }
    let r = maint_health::MetricsCollection::new(cfg.collect_config()).run(&TaskContext::new(false)).await;
    match r.status {
        Status::Failed => item(NAME, Err(r.error.unwrap_or_default())),
        Status::Skipped => not_configured(NAME, "[database] or [health] redis_url"),
        _ => item(NAME, Ok(format!("{} figures appended to the snapshots", r.metrics.len()))),
    }
}

async fn monitoring(cfg: &MaintConfig) -> Item {
    const NAME: &str = "monitoring reachable (notification targets)";
    if cfg.notify.targets.is_empty() {
        return not_configured(NAME, "[notify] targets");
    }
    let d = match cfg.notify.build() {
        Ok(d) => d,
        Err(e) => return item(NAME, Err(one_line(&e))),
    };
    let n = maint_notify::Notification::new(
        "maintenance checklist",
        "checking that notifications arrive",
        maint_notify::Severity::Info,
    )
    .with_event_key("maint-checklist");
    let out = tokio::time::timeout(Duration::from_secs(60), d.send(&n)).await.unwrap_or_default();
    match out.iter().find(|d| d.outcome == maint_notify::Outcome::Failed) {
        Some(bad) => item(NAME, Err(format!("{}: {}", bad.target, bad.error.clone().unwrap_or_default()))),
        None => item(NAME, Ok(format!("{} target(s) took a test notification", out.len()))),
    }
}

/// Runs the checklist; the report fails when an automated item fails.
pub(crate) async fn run(which: &str, cfg: &MaintConfig, max_backup_age_hours: i64) -> Result<TaskReport, Error> {
    let items = match which {
        "pre" => vec![
            fresh_verified_backup(cfg, max_backup_age_hours).await,
            health(cfg).await,
            baseline(cfg).await,
            monitoring(cfg).await,
            manual("stakeholders notified of the window"),
            manual("status page updated"),
            manual("rollback plan reviewed"),
        ],
        "post" => vec![
            health(cfg).await,
            baseline(cfg).await,
            fresh_verified_backup(cfg, max_backup_age_hours).await,
            monitoring(cfg).await,
            manual("performance compared with the baseline by a person"),
            manual("status page updated: maintenance over"),
            manual("stakeholders told the window is closed"),
        ],
        other => return Err(Error::invalid("checklist", format!("{other:?} (expected pre or post)"))),
    };
    let mut report = TaskReport::begin(format!("checklist-{which}"), false);
    let count = |s: &str| items.iter().filter(|i| i.state == s).count() as f64;
    report.metric("items_passed", count("passed")).metric("items_failed", count("failed"));
    report.metric("items_manual", count("manual")).metric("items_not_configured", count("not_configured"));
    for i in items.iter().filter(|i| i.state == "manual") {
        report.warn(format!("manual: {}", i.item));
    }
    let failed: Vec<String> =
        items.iter().filter(|i| i.state == "failed").map(|i| format!("{}: {}", i.item, i.detail)).collect();
    for i in &items {
        report.item(i);
    }
    if !failed.is_empty() {
        report.fail(failed.join("; "));
    }
    Ok(report.finish())
}
