//! Index Integrity's settings: `[amcheck]`.

use serde::{Deserialize, Serialize};

/// Index integrity checks with `amcheck` (`[amcheck]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmcheckConfig {
    /// `CREATE EXTENSION IF NOT EXISTS amcheck` when it is missing (off: only use it when
    /// an administrator installed it). Never in a dry run.
    pub create_extension: bool,
    /// `bt_index_check(index, heapallindexed => true)`: also verify that every heap tuple
    /// has its index entry (reads the whole table; much slower).
    pub heapallindexed: bool,
    /// Check the btree indexes of `pg_catalog` and TOAST tables too.
    pub include_catalogs: bool,
}

impl Default for AmcheckConfig {
    fn default() -> Self {
        AmcheckConfig { create_extension: false, heapallindexed: false, include_catalogs: true }
    }
}
