//! The monthly System Updates task: the update `[system_updates]` plans, carried out by the
//! same code as `maint-update run` (its configuration file, deployer, migrations, smoke suite
//! and rollback), so a planned update happens in its window without a separate scheduler.

use std::path::PathBuf;

use async_trait::async_trait;
use maint_core::{Error, Impact, Task, TaskContext, TaskReport, one_line};
use maint_release::UPDATE_TASK_ID;
use serde::Deserialize;

/// `[system_updates]`: the planned update. Without it the task is skipped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SystemUpdatesSection {
    /// The `maint-update` configuration file (deployer, migrations, smoke suite, ...).
    pub(crate) config: PathBuf,
    /// The version to deploy.
    pub(crate) to: String,
    /// The running version (default: read from the deployer).
    #[serde(default)]
    pub(crate) from: Option<String>,
    /// The change request covering the update (required for a major update).
    #[serde(default)]
    pub(crate) change: Option<String>,
    /// Allow a downgrade.
    #[serde(default)]
    pub(crate) force: bool,
}

/// The task.
#[derive(Debug)]
pub(crate) struct SystemUpdates {
    section: SystemUpdatesSection,
}

impl SystemUpdates {
    /// Checks what can be checked before the window: the file parses, the versions parse.
    pub(crate) fn new(section: &SystemUpdatesSection) -> Result<Self, Error> {
        // maint-release names the field itself: keep its field and message as they are.
        let bad = |e: maint_release::Error| match e {
            maint_release::Error::Invalid { field, message } => Error::invalid(field, message),
            other => Error::invalid("system_updates.config", one_line(&other)),
        };
        maint_update::load(Some(&section.config)).map_err(|e| match e {
            maint_release::Error::Invalid { message, .. } => Error::invalid("system_updates.config", message),
            other => bad(other),
        })?;
        maint_release::parse_version("system_updates.to", &section.to).map_err(bad)?;
        if let Some(from) = &section.from {
            maint_release::parse_version("system_updates.from", from).map_err(bad)?;
        }
        if let Some(change) = &section.change {
            maint_release::check_change_id("system_updates.change", change).map_err(bad)?;
        }
        Ok(SystemUpdates { section: section.clone() })
    }
}

#[async_trait]
impl Task for SystemUpdates {
    fn name(&self) -> &str {
        UPDATE_TASK_ID
    }

    fn impact(&self) -> Impact {
        Impact::Downtime
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let s = &self.section;
        let target = maint_update::Target {
            to: s.to.clone(),
            from: s.from.clone(),
            force: s.force,
            change: s.change.clone(),
            actor: std::env::var("MAINT_ACTOR").ok().or_else(|| Some("maint run".into())),
            ..maint_update::Target::default()
        };
        let prepared = match maint_update::load(Some(&s.config)) {
            Ok(file) => maint_update::prepare(file, target, ctx.dry_run).await,
            Err(e) => Err(e),
        };
        match prepared {
            Ok((updater, request)) => updater.run(&request, ctx).await,
            Err(e) => {
                let mut report = TaskReport::begin(UPDATE_TASK_ID, ctx.dry_run);
                report.fail(one_line(&e));
                report.finish()
            }
        }
    }
}
