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

async fn fresh_verified_backup(cfg: &MaintConfig, max_age: TimeDelta) -> Item {
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
        if age > max_age {
            return Err(format!(
                "the newest verified backup {} is {} h old (limit {} h)",
                newest.1,
                age.num_hours(),
                max_age.num_hours()
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

/// How long the checklist waits for the test notification.
const MONITORING_TIMEOUT: Duration = Duration::from_secs(60);

async fn monitoring(cfg: &MaintConfig) -> Item {
    monitoring_within(cfg, MONITORING_TIMEOUT).await
}

async fn monitoring_within(cfg: &MaintConfig, limit: Duration) -> Item {
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
    // A target that does not answer in time is a failure, not a delivery.
    let Ok(out) = tokio::time::timeout(limit, d.send(&n)).await else {
        return item(NAME, Err(format!("no answer from the targets within {limit:?}")));
    };
    match out.iter().find(|d| d.outcome == maint_notify::Outcome::Failed) {
        Some(bad) => item(NAME, Err(format!("{}: {}", bad.target, bad.error.clone().unwrap_or_default()))),
        None => item(NAME, Ok(format!("{} target(s) took a test notification", out.len()))),
    }
}

async fn integrity(cfg: &MaintConfig) -> Item {
    const NAME: &str = "data integrity (amcheck over the btree indexes)";
    if cfg.database.url.is_none() {
        return not_configured(NAME, "[database] url");
    }
    let task = match maint_db::IndexIntegrity::new(&cfg.database) {
        Ok(t) => t,
        Err(e) => return item(NAME, Err(one_line(&e))),
    };
    let r = task.run(&TaskContext::new(false)).await;
    let checked = r.metrics.get("indexes_checked").copied().unwrap_or(0.0);
    match r.status {
        Status::Failed => item(NAME, Err(r.error.unwrap_or_default())),
        _ if checked == 0.0 => not_configured(NAME, "the amcheck extension (or [database.amcheck] create_extension)"),
        _ => item(NAME, Ok(format!("{checked} indexes checked, none corrupt"))),
    }
}

/// Leftovers of interrupted maintenance: scratch databases of restore tests, invalid
/// `_ccnew`/`_ccold` indexes of a failed `REINDEX CONCURRENTLY`, temporary archives of a
/// killed log rotation. Each is dropped or cleaned by the next run of its task; until then
/// it takes space (and an invalid index slows every write to its table).
async fn leftovers(cfg: &MaintConfig) -> Item {
    const NAME: &str = "no leftovers of interrupted maintenance";
    let mut found = Vec::new();
    let dirs = log_dirs(cfg);
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                found.push(format!("temporary archive {}", e.path().display()));
            }
        }
    }
    let Some(url) = cfg.database.url.as_ref() else {
        return match (found.is_empty(), dirs.is_empty()) {
            (_, true) => not_configured(NAME, "[database] url or [logs] paths"),
            (true, false) => item(NAME, Ok("no temporary archives".into())),
            (false, false) => item(NAME, Err(found.join(", "))),
        };
    };
    let pg = async {
        let client = maint_db::connect(url).await.map_err(|e| one_line(&e))?;
        let scratch = client
            .query("SELECT datname FROM pg_database WHERE datname LIKE 'maint\\_restore\\_%' ORDER BY 1", &[])
            .await
            .map_err(|e| one_line(&e))?;
        let invalid = client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE NOT i.indisvalid AND c.relname ~ '_cc(new|old)[0-9]*$' ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| one_line(&e))?;
        Ok::<_, String>((scratch, invalid))
    };
    match pg.await {
        Ok((scratch, invalid)) => {
            found.extend(scratch.iter().map(|r| format!("scratch database {}", r.get::<_, String>(0))));
            found.extend(invalid.iter().map(|r| format!("invalid index {}", r.get::<_, String>(0))));
        }
        Err(e) => return item(NAME, Err(format!("cannot look: {e}"))),
    }
    if found.is_empty() {
        item(NAME, Ok("no scratch database, invalid _ccnew index or temporary archive".into()))
    } else {
        item(NAME, Err(format!("{} (the next run of its task removes it)", found.join(", "))))
    }
}

/// The directories of the configured logs and of their archives.
fn log_dirs(cfg: &MaintConfig) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<std::path::PathBuf> = cfg
        .logs
        .paths
        .iter()
        .filter_map(|p| std::path::Path::new(p).parent().map(std::path::Path::to_path_buf))
        .filter(|d| !d.to_string_lossy().contains(['*', '?', '[']))
        .collect();
    dirs.extend(cfg.logs.archive_dir.clone());
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Runs the checklist; the report fails when an automated item fails.
pub(crate) async fn run(which: &str, cfg: &MaintConfig, max_backup_age_hours: i64) -> Result<TaskReport, Error> {
    let max_backup_age = TimeDelta::try_hours(max_backup_age_hours)
        .ok_or_else(|| Error::invalid("--max-backup-age-hours", format!("{max_backup_age_hours} is too large")))?;
    let items = match which {
        "pre" => vec![
            fresh_verified_backup(cfg, max_backup_age).await,
            health(cfg).await,
            baseline(cfg).await,
            integrity(cfg).await,
            monitoring(cfg).await,
            manual("stakeholders notified of the window"),
            manual("status page updated"),
            manual("rollback plan reviewed"),
        ],
        "post" => vec![
            health(cfg).await,
            baseline(cfg).await,
            fresh_verified_backup(cfg, max_backup_age).await,
            integrity(cfg).await,
            leftovers(cfg).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A target that accepts the connection and never answers: the item fails (it passed
    /// when the wait ran out, as if nothing had failed).
    #[tokio::test]
    async fn a_notification_target_that_never_answers_fails_the_item() {
        let port = maint_testkit::silent_server();
        let mut cfg = MaintConfig::default();
        cfg.notify.targets = vec![maint_core::Secret::new(format!("slack+http://127.0.0.1:{port}/services/T/B/X"))];
        cfg.notify.request_timeout_secs = 600.0;
        cfg.notify.total_timeout_secs = 600.0;
        let i = monitoring_within(&cfg, Duration::from_millis(500)).await;
        assert_eq!(i.state, "failed", "{i:?}");
        assert!(i.detail.contains("no answer"), "{i:?}");
    }

    /// A database that accepts the connection and never answers: the leftovers item fails
    /// at the URL's `connect_timeout`, naming the server (it waited forever).
    #[tokio::test]
    async fn leftovers_of_a_database_that_never_answers_fail_at_the_connect_timeout() {
        let port = maint_testkit::silent_server();
        let mut cfg = MaintConfig::default();
        cfg.database.url =
            Some(maint_core::Secret::new(format!("postgresql://maint:pw@127.0.0.1:{port}/postgres?connect_timeout=2")));
        let i = tokio::time::timeout(Duration::from_secs(30), leftovers(&cfg)).await.expect("gave up within 30 s");
        assert_eq!(i.state, "failed", "{i:?}");
        let want =
            format!("cannot look: cannot connect to PostgreSQL at 127.0.0.1:{port}/postgres: no answer within 2s");
        assert!(i.detail.starts_with(&want), "{i:?}");
    }
}
