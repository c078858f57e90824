//! Pure decisions: which files rotate, how archives are named, which archives retention
//! deletes. No I/O here; the executor observes, asks, then acts.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Compression, Config};

/// What was observed about one log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The path does not exist.
    Missing,
    /// The path exists but is not a regular file.
    NotAFile,
    /// The path is a symbolic link (never followed).
    Symlink,
    /// A regular file.
    File {
        /// Its size in bytes.
        size: u64,
    },
}

/// The planner's answer for one log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "reason", rename_all = "snake_case")]
pub enum Decision {
    /// Rotate it, for this reason.
    Rotate(String),
    /// Leave it, for this reason.
    Skip(String),
    /// An error an operator must fix.
    Error(String),
    /// Never touched, and reported (a symbolic link, a file that is not the expected owner's).
    Refuse(String),
}

/// Decides whether a log file rotates now.
///
/// Triggers: `max_size` rotates whatever the interval; otherwise the file must be at least
/// `min_size` bytes and its last rotation at least `interval_secs` old (no interval: every
/// scheduled call). Empty files are skipped with `not_if_empty`, missing ones with `missing_ok`.
pub fn plan_rotation(
    cfg: &Config,
    observed: Observed,
    last_rotated: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Decision {
    let size = match observed {
        Observed::Missing if cfg.missing_ok => return Decision::Skip("missing (missing_ok)".to_owned()),
        Observed::Missing => return Decision::Error("no such file".to_owned()),
        Observed::NotAFile => return Decision::Error("not a regular file (a directory?)".to_owned()),
        Observed::Symlink => return Decision::Refuse("a symbolic link (not followed)".to_owned()),
        Observed::File { size } => size,
    };
    if size == 0 && cfg.not_if_empty {
        return Decision::Skip("empty (not_if_empty)".to_owned());
    }
    if let Some(max) = cfg.max_size
        && size >= max
    {
        return Decision::Rotate(format!("size {size} >= max_size {max}"));
    }
    if size < cfg.min_size {
        return Decision::Skip(format!("size {size} < min_size {}", cfg.min_size));
    }
    if let (Some(interval), Some(last)) = (cfg.interval_secs, last_rotated) {
        let age = (now - last).num_seconds().max(0) as u64;
        if age < interval {
            return Decision::Skip(format!("rotated {age}s ago, interval {interval}s"));
        }
    }
    Decision::Rotate(match cfg.interval_secs {
        Some(i) => format!("interval {i}s elapsed"),
        None => "scheduled".to_owned(),
    })
}

fn split_ext(file_name: &str) -> (&str, &str) {
    match file_name.rfind('.') {
        Some(i) if i > 0 => (&file_name[..i], &file_name[i..]),
        _ => (file_name, ""),
    }
}

/// The dated archive name: `app.log` at 2026-11-24 02:15:00.250 UTC gives
/// `app-20261124-021500-250.log.gz` (the time to the millisecond, fixed width, so that names
/// sort in time order; see [`parse_archive`] for the names of earlier versions).
pub fn dated_name(file_name: &str, at: DateTime<Utc>, compression: Compression) -> String {
    let (stem, ext) = split_ext(file_name);
    let stamp = at.format("%Y%m%d-%H%M%S-%3f");
    format!("{stem}-{stamp}{ext}{}", compression.extension())
}

/// The numbered archive name: `app.log.3.gz`.
pub fn numbered_name(file_name: &str, n: u32, compression: Compression) -> String {
    format!("{file_name}.{n}{}", compression.extension())
}

/// Where an archive stands among the archives of one log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ArchiveKey {
    /// A dated archive: the time stamp's digits (`YYYYMMDDHHMMSS`) and its milliseconds
    /// (in names made before milliseconds, `app-20261124-021500-2.log.gz`, the sequence of
    /// the rotations in that second; none is 0).
    Dated(u64, u32),
    /// A numbered archive.
    Numbered(u32),
}

fn strip_compression(name: &str) -> &str {
    for ext in [".gz", ".zst"] {
        if let Some(s) = name.strip_suffix(ext) {
            return s;
        }
    }
    name
}

/// Recognises an archive of `file_name` (either naming, any compression; dated names of
/// every version: `-HHMMSS-mmm`, and the older `-HHMMSS` and `-HHMMSS-seq`).
pub fn parse_archive(file_name: &str, candidate: &str) -> Option<ArchiveKey> {
    let bare = strip_compression(candidate);
    if let Some(n) = bare.strip_prefix(file_name).and_then(|r| r.strip_prefix('.'))
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return n.parse().ok().map(ArchiveKey::Numbered);
    }
    let (stem, ext) = split_ext(file_name);
    let middle = bare.strip_prefix(stem)?.strip_prefix('-')?.strip_suffix(ext)?;
    let (stamp, seq) = match middle.get(15..) {
        Some("") => (middle, 0),
        Some(rest) => (&middle[..15], rest.strip_prefix('-')?.parse().ok()?),
        None => return None,
    };
    let b = stamp.as_bytes();
    let ok = b.len() == 15 && b[8] == b'-' && b.iter().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit());
    if !ok {
        return None;
    }
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    Some(ArchiveKey::Dated(digits.parse().ok()?, seq))
}

/// Whether a file name looks like an archive or a temporary file of this tool, so that
/// a glob such as `*.log` never rotates archives (uncompressed archives end in `.log` too).
pub fn looks_like_archive(name: &str) -> bool {
    if name.starts_with('.') || name.ends_with(".tmp") {
        return true;
    }
    let bare = strip_compression(name);
    let b = bare.as_bytes();
    // -YYYYMMDD-HHMMSS anywhere
    b.windows(16).any(|w| {
        w[0] == b'-'
            && w[9] == b'-'
            && w[1..9].iter().all(u8::is_ascii_digit)
            && w[10..16].iter().all(u8::is_ascii_digit)
    })
}

/// Where copytruncate with collapse-range cuts a log: what is archived and what is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    /// Bytes archived from the start: through the last whole line.
    pub(crate) archived: u64,
    /// Bytes removed with collapse-range: whole blocks, less than the file. Bytes
    /// `collapsed..archived` (under a block, or one) are overwritten with a blank line first,
    /// so that the live log starts at a line boundary.
    pub(crate) collapsed: u64,
}

/// Plans the cut of a log of `size` bytes, in blocks of `blk`, whose last whole line ends at
/// `line_end` (`None`: no newline near the end; the cut then falls on a block boundary).
/// `None` when not even one block can be removed (a log under about a block).
pub(crate) fn plan_cut(size: u64, blk: u64, line_end: Option<u64>) -> Option<Cut> {
    // whole blocks up to `n`, never the whole file (collapse-range must leave a byte)
    let blocks = |n: u64| {
        let b = n / blk * blk;
        if b >= size { b.saturating_sub(blk) } else { b }
    };
    let archived = line_end.unwrap_or_else(|| blocks(size));
    let collapsed = blocks(archived);
    (collapsed > 0).then_some(Cut { archived, collapsed })
}

/// Numbered naming: the renames (from, to), in order, that free slot 1 by shifting the
/// contiguous run `1, 2, ..` up by one. Gaps (a crash mid-shift) stop the shift.
pub fn plan_shift(existing: &[u32]) -> Vec<(u32, u32)> {
    let mut run = 0;
    while existing.contains(&(run + 1)) {
        run += 1;
    }
    (1..=run).rev().map(|n| (n, n + 1)).collect()
}

/// One existing archive, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// Its path.
    pub path: PathBuf,
    /// Modification time.
    pub mtime: DateTime<Utc>,
    /// Size in bytes.
    pub size: u64,
}

/// Retention limits; all that are set apply at once.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Retention {
    /// Keep at most this many archives.
    pub keep: Option<usize>,
    /// Delete archives older than this many days.
    pub max_age_days: Option<f64>,
    /// Keep at most this many bytes of archives, newest first.
    pub max_total_bytes: Option<u64>,
}

impl Retention {
    /// The limits of a config.
    pub fn from_config(cfg: &Config) -> Self {
        Retention { keep: cfg.keep, max_age_days: cfg.max_age_days, max_total_bytes: cfg.max_total_bytes }
    }
}

/// Which archives to delete, with the reason. Newest (by mtime, then name) are kept
/// first; an archive in `protect` (the ones this run just produced) is never deleted,
/// but counts toward `keep` and `max_total_bytes`.
pub fn plan_retention(
    archives: &[ArchiveInfo],
    protect: &[&Path],
    limits: Retention,
    now: DateTime<Utc>,
) -> Vec<(PathBuf, String)> {
    let mut sorted: Vec<&ArchiveInfo> = archives.iter().collect();
    sorted.sort_by(|a, b| b.mtime.cmp(&a.mtime).then_with(|| b.path.cmp(&a.path)));
    let mut out = Vec::new();
    let mut total = 0u64;
    for (i, a) in sorted.into_iter().enumerate() {
        total = total.saturating_add(a.size);
        let reason = if limits.keep.is_some_and(|k| i >= k) {
            Some(format!("beyond keep {}", limits.keep.unwrap_or_default()))
        } else if let Some(days) = limits.max_age_days
            && (now - a.mtime).num_milliseconds() as f64 > days * 86_400_000.0
        {
            Some(format!("older than {days} days"))
        } else if let Some(max) = limits.max_total_bytes
            && total > max
        {
            Some(format!("total {total} > max_total_bytes {max}"))
        } else {
            None
        };
        if let Some(r) = reason
            && !protect.contains(&a.path.as_path())
        {
            out.push((a.path.clone(), r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 2, 15, 0).unwrap() + Duration::seconds(s)
    }

    #[test]
    fn triggers_size_interval_empty_missing() {
        let mut cfg = Config { min_size: 100, interval_secs: Some(3600), max_size: Some(1000), ..Config::default() };
        let f = |size| Observed::File { size };
        assert!(matches!(plan_rotation(&cfg, f(50), None, t(0)), Decision::Skip(_)));
        assert!(matches!(plan_rotation(&cfg, f(100), None, t(0)), Decision::Rotate(_)));
        assert!(matches!(plan_rotation(&cfg, f(500), Some(t(-60)), t(0)), Decision::Skip(_)));
        assert!(matches!(plan_rotation(&cfg, f(500), Some(t(-3600)), t(0)), Decision::Rotate(_)));
        assert!(matches!(plan_rotation(&cfg, f(1000), Some(t(-1)), t(0)), Decision::Rotate(_)));
        cfg.min_size = 0;
        assert_eq!(plan_rotation(&cfg, f(0), None, t(0)), Decision::Skip("empty (not_if_empty)".to_owned()));
        assert!(matches!(plan_rotation(&cfg, Observed::Missing, None, t(0)), Decision::Skip(_)));
        assert!(matches!(plan_rotation(&cfg, Observed::NotAFile, None, t(0)), Decision::Error(_)));
        assert!(matches!(plan_rotation(&cfg, Observed::Symlink, None, t(0)), Decision::Refuse(_)));
        cfg.missing_ok = false;
        assert!(matches!(plan_rotation(&cfg, Observed::Missing, None, t(0)), Decision::Error(_)));
        cfg.not_if_empty = false;
        assert!(matches!(plan_rotation(&cfg, f(0), None, t(0)), Decision::Rotate(_)));
    }

    #[test]
    fn names_round_trip() {
        let n = dated_name("app.log", t(0), Compression::Gzip);
        assert_eq!(n, "app-20261124-021500-000.log.gz");
        assert_eq!(parse_archive("app.log", &n), Some(ArchiveKey::Dated(20261124021500, 0)));
        let n2 = dated_name("app.log", t(0) + Duration::milliseconds(42), Compression::Zstd);
        assert_eq!(n2, "app-20261124-021500-042.log.zst");
        assert_eq!(parse_archive("app.log", &n2), Some(ArchiveKey::Dated(20261124021500, 42)));
        assert_eq!(dated_name("messages", t(0), Compression::None), "messages-20261124-021500-000");
        assert_eq!(
            parse_archive("messages", "messages-20261124-021500-000"),
            Some(ArchiveKey::Dated(20261124021500, 0))
        );
        // the names of earlier versions are still archives (for retention)
        assert_eq!(parse_archive("app.log", "app-20261124-021500.log.gz"), Some(ArchiveKey::Dated(20261124021500, 0)));
        assert_eq!(
            parse_archive("app.log", "app-20261124-021500-2.log.zst"),
            Some(ArchiveKey::Dated(20261124021500, 2))
        );
        assert_eq!(parse_archive("messages", "messages-20261124-021500"), Some(ArchiveKey::Dated(20261124021500, 0)));
        assert_eq!(numbered_name("app.log", 3, Compression::Gzip), "app.log.3.gz");
        assert_eq!(parse_archive("app.log", "app.log.3.gz"), Some(ArchiveKey::Numbered(3)));
        // other logs and our own temporaries are not archives of app.log
        assert_eq!(parse_archive("app.log", "app2-20261124-021500.log.gz"), None);
        assert_eq!(parse_archive("app.log", "app-20261124-0215.log.gz"), None);
        assert_eq!(parse_archive("app.log", "app.log"), None);
        assert_eq!(parse_archive("app.log", "app.log.x.gz"), None);
        assert!(looks_like_archive("app-20261124-021500.log"));
        assert!(looks_like_archive(".app.log.rotating"));
        assert!(!looks_like_archive("app.log"));
        assert!(!looks_like_archive("api-2.log"));
    }

    /// Names sort in rotation order, as text and by key: in one second (several in one
    /// millisecond take the following ones), across seconds, minutes, days.
    #[test]
    fn dated_names_sort_in_rotation_order() {
        let times = [
            t(0),
            t(0) + Duration::milliseconds(1),
            t(0) + Duration::milliseconds(2),
            t(0) + Duration::milliseconds(999),
            t(1),
            t(1) + Duration::milliseconds(10),
            t(59) + Duration::milliseconds(100),
            t(60),
            t(86_399) + Duration::milliseconds(999),
            t(86_400),
        ];
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let made: Vec<String> = times.iter().map(|&at| dated_name("app.log", at, c)).collect();
            let mut sorted = made.clone();
            sorted.sort();
            assert_eq!(sorted, made, "{c:?}: names do not sort in rotation order");
            let keys: Vec<ArchiveKey> = made.iter().map(|n| parse_archive("app.log", n).unwrap()).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{c:?}: {keys:?}");
        }
    }

    #[test]
    fn the_cut_ends_at_the_last_whole_line_on_a_block_boundary() {
        let cut = |size, line_end| plan_cut(size, 4096, line_end).map(|c| (c.archived, c.collapsed));
        // through the last whole line; whole blocks collapsed, the rest (archived) blanked
        assert_eq!(cut(10_005, Some(10_000)), Some((10_000, 8192)));
        assert_eq!(cut(8200, Some(8192)), Some((8192, 8192)));
        // a log that ends with a whole line on a block boundary: a block is left (and blanked)
        assert_eq!(cut(8192, Some(8192)), Some((8192, 4096)));
        // no newline near the end: block boundaries, as far as they go
        assert_eq!(cut(10_005, None), Some((8192, 8192)));
        assert_eq!(cut(8192, None), Some((4096, 4096)));
        assert_eq!(cut(6000, None), Some((4096, 4096)));
        // not a whole block before the last line's end: none (copy and truncate instead)
        assert_eq!(cut(5000, Some(4000)), None);
        assert_eq!(cut(4096, Some(4096)), None);
        assert_eq!(cut(4096, None), None);
        assert_eq!(cut(0, None), None);
    }

    #[test]
    fn shift_frees_slot_one_and_stops_at_gaps() {
        assert_eq!(plan_shift(&[]), vec![]);
        assert_eq!(plan_shift(&[1, 2, 3]), vec![(3, 4), (2, 3), (1, 2)]);
        assert_eq!(plan_shift(&[2, 3]), vec![]);
        assert_eq!(plan_shift(&[1, 2, 4, 5]), vec![(2, 3), (1, 2)]);
    }

    fn a(name: &str, age_days: i64, size: u64) -> ArchiveInfo {
        ArchiveInfo { path: PathBuf::from(name), mtime: t(0) - Duration::days(age_days), size }
    }

    #[test]
    fn retention_applies_count_age_and_bytes_together() {
        let archives = vec![a("a0", 0, 10), a("a1", 1, 10), a("a2", 2, 10), a("a3", 3, 10), a("a9", 9, 10)];
        let del = |r: Retention, protect: &[&Path]| -> Vec<String> {
            plan_retention(&archives, protect, r, t(0)).into_iter().map(|(p, _)| p.display().to_string()).collect()
        };
        assert!(del(Retention::default(), &[]).is_empty());
        assert_eq!(del(Retention { keep: Some(3), ..Default::default() }, &[]), ["a3", "a9"]);
        assert_eq!(del(Retention { max_age_days: Some(2.5), ..Default::default() }, &[]), ["a3", "a9"]);
        assert_eq!(del(Retention { max_total_bytes: Some(25), ..Default::default() }, &[]), ["a2", "a3", "a9"]);
        // all three: the union
        let all = Retention { keep: Some(4), max_age_days: Some(5.0), max_total_bytes: Some(20) };
        assert_eq!(del(all, &[]), ["a2", "a3", "a9"]);
        // the file just produced survives even when it alone breaks the limits
        let big = vec![a("old", 1, 5), a("new", 0, 100)];
        let d = plan_retention(
            &big,
            &[Path::new("new")],
            Retention { max_total_bytes: Some(50), keep: Some(1), ..Default::default() },
            t(0),
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, PathBuf::from("old"));
        // even when its mtime is older than the limit (a writer that set it)
        let stale = vec![a("new", 30, 1)];
        assert!(
            plan_retention(
                &stale,
                &[Path::new("new")],
                Retention { max_age_days: Some(1.0), ..Default::default() },
                t(0)
            )
            .is_empty()
        );
    }
}
