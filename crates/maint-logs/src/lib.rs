#![doc = include_str!("../README.md")]

mod compress;
mod config;
mod error;
mod fsops;
mod plan;
mod rotate;
mod state;
mod task;
mod upload;
mod writer;

pub use compress::{Codec, Packed, Staged, compress_verified, verify};
pub use config::{Compression, Config, DEFAULT_STATE_DIR, Mode, Naming, Truncate, parse_signal};
pub use error::{Error, Result};
pub use plan::{
    ArchiveInfo, ArchiveKey, Decision, Observed, Retention, dated_name, looks_like_archive, numbered_name,
    parse_archive, plan_retention, plan_rotation, plan_shift,
};
pub use rotate::FileOutcome;
pub use state::{FileState, Pending, State};
pub use task::{LogRotation, Targets, find_targets};
pub use writer::{RotatingWriter, RotatingWriterBuilder, WriterGuard};

/// Re-exported because [`Config::archive_url`] stores go through it.
pub use object_store;
