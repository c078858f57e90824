//! Shared by every task: PostgreSQL's table-level lock modes and which conflict, to name
//! the sessions that block a statement.

use std::fmt;

/// PostgreSQL's table-level lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// `SELECT`.
    AccessShare,
    /// `SELECT FOR UPDATE`.
    RowShare,
    /// `INSERT`, `UPDATE`, `DELETE`.
    RowExclusive,
    /// `VACUUM`, `ANALYZE`, `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`.
    ShareUpdateExclusive,
    /// `CREATE INDEX`.
    Share,
    /// `CREATE TRIGGER`.
    ShareRowExclusive,
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY`.
    Exclusive,
    /// `DROP`, `TRUNCATE`, `VACUUM FULL`, `LOCK TABLE`.
    AccessExclusive,
}

const ALL: [LockMode; 8] = [
    LockMode::AccessShare,
    LockMode::RowShare,
    LockMode::RowExclusive,
    LockMode::ShareUpdateExclusive,
    LockMode::Share,
    LockMode::ShareRowExclusive,
    LockMode::Exclusive,
    LockMode::AccessExclusive,
];

impl LockMode {
    /// The name in `pg_locks.mode` (`AccessExclusiveLock`).
    pub fn pg_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// Parses a `pg_locks.mode` value.
    pub fn from_pg_name(name: &str) -> Option<LockMode> {
        ALL.into_iter().find(|m| m.pg_name() == name)
    }

    /// Whether a lock in mode `self` must wait for a lock held in mode `held`
    /// (the table in the PostgreSQL manual, "Conflicting Lock Modes").
    pub fn conflicts_with(self, held: LockMode) -> bool {
        use LockMode::*;
        let conflicting: &[LockMode] = match self {
            AccessShare => &[AccessExclusive],
            RowShare => &[Exclusive, AccessExclusive],
            RowExclusive => &[Share, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareUpdateExclusive => &[ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive],
            Share => &[RowExclusive, ShareUpdateExclusive, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareRowExclusive => {
                &[RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive]
            }
            Exclusive => {
                &[RowShare, RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive]
            }
            AccessExclusive => &ALL,
        };
        conflicting.contains(&held)
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.pg_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_table_is_symmetric_and_matches_the_manual() {
        for a in ALL {
            assert_eq!(LockMode::from_pg_name(a.pg_name()), Some(a));
            for b in ALL {
                assert_eq!(a.conflicts_with(b), b.conflicts_with(a), "{a} vs {b}");
            }
        }
        assert!(!LockMode::ShareUpdateExclusive.conflicts_with(LockMode::RowExclusive));
        assert!(LockMode::ShareUpdateExclusive.conflicts_with(LockMode::ShareUpdateExclusive));
        assert!(!LockMode::RowExclusive.conflicts_with(LockMode::RowExclusive));
        assert!(LockMode::AccessShare.conflicts_with(LockMode::AccessExclusive));
        assert!(!LockMode::AccessShare.conflicts_with(LockMode::Exclusive));
        assert_eq!(LockMode::from_pg_name("SIReadLock"), None);
    }
}
