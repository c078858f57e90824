use std::fmt::Debug;

use async_trait::async_trait;
use serde::Serialize;

use crate::Error;

/// A Redis key: binary safe.
pub type Key = Vec<u8>;

/// [`Observation::ttl_ms`] when the TTL was not read (a field rule that deletes needs none).
pub const TTL_NOT_READ: i64 = i64::MIN;

/// What to read about each key before deciding (one per condition kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The value of this hash field.
    Field(String),
    /// `OBJECT IDLETIME` (read without touching the key).
    Idle,
    /// `MEMORY USAGE`.
    Memory,
}

/// What was read about one key (read-only; not atomic, `apply` re-checks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observation {
    /// The key.
    pub key: Key,
    /// `none` when the key is known to be gone; for a field probe `hash` or `other` (a key
    /// of another type); otherwise `key`.
    pub kind: String,
    /// `PTTL`: -1 without TTL, -2 when gone, [`TTL_NOT_READ`] when not asked for.
    pub ttl_ms: i64,
    /// The hash field's value ([`Probe::Field`]; `None` when absent or not a hash).
    pub field: Option<Vec<u8>>,
    /// Idle seconds ([`Probe::Idle`]; `None` when Redis does not track it, e.g. LFU policy).
    pub idle_secs: Option<u64>,
    /// Bytes ([`Probe::Memory`]).
    pub memory_bytes: Option<u64>,
}

/// The server-side re-check done atomically with the action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "check")]
pub enum Recheck {
    /// The hash field still holds exactly the value the planner judged old (a refresh changes
    /// it, so a refreshed key survives; time only moves forward, so an unchanged old value is
    /// still old).
    FieldUnchanged {
        /// The field.
        field: String,
        /// The value seen.
        value: Vec<u8>,
    },
    /// Still no TTL and `OBJECT IDLETIME` still at least this.
    IdleAtLeast {
        /// Seconds.
        secs: u64,
    },
    /// `MEMORY USAGE` still above this.
    LargerThan {
        /// Bytes.
        bytes: u64,
    },
}

/// What to do to a key once the re-check passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// `UNLINK`.
    Unlink,
    /// `PEXPIRE` with this many milliseconds, only if the key still has no TTL.
    Expire(u64),
}

/// One atomic check-and-act on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAction {
    /// The key.
    pub key: Key,
    /// What must still hold.
    pub recheck: Recheck,
    /// What to do.
    pub change: Change,
}

/// The result of one [`KeyAction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Unlinked.
    Deleted,
    /// TTL set.
    TtlSet,
    /// The re-check failed (the key changed since it was read): left alone.
    Kept,
    /// The key was already gone.
    Gone,
}

/// `INFO memory` figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryInfo {
    /// `used_memory`.
    pub used_memory: u64,
    /// `mem_fragmentation_ratio`.
    pub fragmentation_ratio: f64,
    /// `lazyfree_pending_objects`.
    pub lazyfree_pending_objects: u64,
    /// `mem_allocator` (`jemalloc-5.3.0`, `libc`).
    pub allocator: String,
}

/// A dangerous command as the security check sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandExposure {
    /// `FLUSHALL`, `CONFIG`, `DEBUG`.
    pub command: String,
    /// Whether the command exists under its own name (not renamed or removed).
    pub present: bool,
    /// Whether the `default` user may run it (`ACL DRYRUN`); `None` when unknown.
    pub default_user_allowed: Option<bool>,
}

/// What the security check reads from a server; `None` = could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecurityFacts {
    /// `host:port` checked.
    pub node: String,
    /// The `default` user is enabled.
    pub default_user_enabled: Option<bool>,
    /// The `default` user needs no password (`nopass`).
    pub default_user_nopass: Option<bool>,
    /// `protected-mode`.
    pub protected_mode: Option<bool>,
    /// `bind` addresses.
    pub bind: Option<Vec<String>>,
    /// `tls-port` is not 0, or the connection uses TLS.
    pub tls: Option<bool>,
    /// FLUSHALL, CONFIG, DEBUG.
    pub commands: Vec<CommandExposure>,
}

/// One Redis node (a standalone server or a cluster master) as the cleanup sees it.
///
/// Small and object safe; every key operation is per node, so a cluster is a list of these,
/// one per master.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait CacheBackend: Send + Sync + Debug + 'static {
    /// `host:port/db`, without credentials.
    fn node(&self) -> String;

    /// One `SCAN cursor MATCH pattern COUNT count`: the next cursor (0 at the end) and keys.
    async fn scan(&self, cursor: u64, pattern: &str, count: u32) -> Result<(u64, Vec<Key>), Error>;

    /// Reads what `probe` needs about each key, pipelined, without changing anything; the
    /// TTL only when `ttl` is true (otherwise `ttl_ms` is [`TTL_NOT_READ`]).
    async fn inspect(&self, keys: &[Key], probe: &Probe, ttl: bool) -> Result<Vec<Observation>, Error>;

    /// Runs each action atomically on the server (re-check, then act), pipelined.
    async fn apply(&self, actions: &[KeyAction]) -> Result<Vec<Outcome>, Error>;

    /// `INFO memory`.
    async fn memory(&self) -> Result<MemoryInfo, Error>;

    /// `maxmemory-policy`, `None` when `CONFIG` is not available.
    async fn eviction_policy(&self) -> Result<Option<String>, Error>;

    /// `MEMORY PURGE`.
    async fn purge_memory(&self) -> Result<(), Error>;

    /// Reads the settings the security check judges.
    async fn security_facts(&self) -> Result<SecurityFacts, Error>;
}
