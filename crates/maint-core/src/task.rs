use std::fmt::Debug;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::{Impact, TaskReport};

/// What a running task is told: whether to only plan, and when to stop.
#[derive(Debug, Clone, Default)]
pub struct TaskContext {
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// Cancelled when the run must stop (timeout, signal); long work checks it
    /// between steps and reports how far it got.
    pub cancel: CancellationToken,
}

impl TaskContext {
    /// A context for a real (or, with `dry_run`, planned) run that is never cancelled.
    pub fn new(dry_run: bool) -> Self {
        TaskContext { dry_run, cancel: CancellationToken::new() }
    }
}

/// One maintenance task. Object safe: runners hold `Arc<dyn Task>`.
///
/// A task never returns an error: failures are a report with status `failed`,
/// so a runner can always collect, print and notify.
#[async_trait]
pub trait Task: Send + Sync + Debug + 'static {
    /// The task id, as in the calendar (`log-rotation`).
    fn name(&self) -> &str;
    /// What the task does to the service.
    fn impact(&self) -> Impact;
    /// Runs the task (or plans it, when `ctx.dry_run`).
    async fn run(&self, ctx: &TaskContext) -> TaskReport;
}
