#![doc = include_str!("../README.md")]

mod calendar;
#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod file;
mod finding;
mod impact;
mod report;
mod secret;
mod task;
mod toml_file;
mod units;

pub use calendar::{BUILTIN_TASKS, Calendar, PlannedTask, Schedule, Window, builtin_task_id};
pub use error::{Error, ExitCode, one_line};
pub use file::{check_private_dir, ensure_private_dir, open_private, runtime_dir, write_atomic};
pub use finding::{Finding, Severity};
pub use impact::Impact;
pub use report::{RunReport, Status, TaskReport};
pub use secret::Secret;
pub use task::{Task, TaskContext};
pub use toml_file::{TomlError, parse_toml};
pub use units::{Duration, Size, parse_duration, parse_size};

/// Re-exported because [`Calendar`] and [`TaskReport`] use its types in their API.
pub use chrono;
/// Re-exported because [`TaskContext`] carries its `CancellationToken`.
pub use tokio_util;
