use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use maint_core::{Impact, Task, TaskContext, TaskReport, one_line};
use tokio::sync::Semaphore;

use crate::fsops::{Opened, Owner};
use crate::plan::{Decision, Observed, looks_like_archive, plan_rotation};
use crate::rotate::{FileOutcome, Shared, process, retention};
use crate::state::{Locked, State, Store};
use crate::{Codec, Config, Result};

/// The `log-rotation` task: rotates, compresses and prunes the configured logs.
#[derive(Debug, Clone)]
pub struct LogRotation {
    cfg: Config,
    owner: Owner,
    crash_after: Option<String>,
    cancel_at: Option<String>,
}

/// The logs a configuration names, as found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Each log with what was observed.
    pub files: Vec<(PathBuf, Observed)>,
    /// Patterns that matched nothing, directories a glob matched, and the like.
    pub warnings: Vec<String>,
}

pub(crate) fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Refuses two logs of one file name from different directories whose archives would share
/// their names: in one `archive_dir` (each log's retention would delete the other's
/// archives) or under one `archive_url` prefix (uploads would overwrite each other).
pub(crate) fn check_clash<'a>(cfg: &Config, logs: impl IntoIterator<Item = &'a Path>) -> Result<()> {
    let shared = match (&cfg.archive_dir, &cfg.archive_url) {
        (Some(d), _) => format!("archive_dir {}", d.display()),
        (None, Some(url)) => format!("archive_url {url}"),
        (None, None) => return Ok(()),
    };
    // a directory by what it is, so that two spellings of one log are one log
    let dir_of = |log: &Path| {
        let d = crate::rotate::parent(log);
        std::fs::canonicalize(d).unwrap_or_else(|_| d.to_owned())
    };
    let mut seen: BTreeMap<&std::ffi::OsStr, (&Path, PathBuf)> = BTreeMap::new();
    for log in logs {
        let Some(name) = log.file_name() else { continue };
        let dir = dir_of(log);
        match seen.get(name) {
            Some((first, d)) if *d != dir => {
                return Err(crate::Error::invalid(
                    "paths",
                    format!(
                        "{} and {} have the same file name: their archives would mix in {shared} \
                         (retention of one would delete the other's); archive them apart",
                        first.display(),
                        log.display()
                    ),
                ));
            }
            Some(_) => {}
            None => {
                seen.insert(name, (log, dir));
            }
        }
    }
    Ok(())
}

/// Expands the configured paths and globs. A literal path is reported whatever it is
/// (missing, a directory, a symbolic link); a glob yields regular files and symbolic links
/// (to be refused and reported) and never this tool's archives or temporary files. Links
/// are never followed.
pub fn find_targets(cfg: &Config) -> Targets {
    let mut t = Targets::default();
    let mut seen = BTreeSet::new();
    let opts = glob::MatchOptions { require_literal_leading_dot: true, ..glob::MatchOptions::new() };
    for pat in &cfg.paths {
        if !has_glob(pat) {
            let p = PathBuf::from(pat);
            let obs = match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_symlink() => Observed::Symlink,
                Ok(m) if m.is_file() => Observed::File { size: m.len() },
                Ok(_) => Observed::NotAFile,
                Err(_) => Observed::Missing,
            };
            if seen.insert(p.clone()) {
                t.files.push((p, obs));
            }
            continue;
        }
        let mut matched = 0;
        if let Ok(paths) = glob::glob_with(pat, opts) {
            for p in paths.flatten() {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if looks_like_archive(&name) {
                    continue;
                }
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_file() || m.is_symlink() => {
                        matched += 1;
                        let obs = if m.is_symlink() { Observed::Symlink } else { Observed::File { size: m.len() } };
                        if seen.insert(p.clone()) {
                            t.files.push((p, obs));
                        }
                    }
                    Ok(_) => t.warnings.push(format!("{pat}: {} is not a regular file, skipped", p.display())),
                    Err(_) => {}
                }
            }
        }
        if matched == 0 {
            t.warnings.push(format!("{pat}: no file matches"));
        }
    }
    t
}

impl LogRotation {
    /// Checks the configuration (errors name the field) and builds the task.
    pub fn new(cfg: Config) -> Result<Self> {
        cfg.validate()?;
        let owner = Owner::from_setting(cfg.owner.as_deref())?;
        Ok(LogRotation { cfg, owner, crash_after: None, cancel_at: None })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The logs the configuration names, as found now ([`find_targets`]); an error (bad
    /// input) when two of them would share archive names (the same file name into one
    /// archive directory or upload prefix). The run checks this first too.
    pub fn check_targets(&self) -> Result<Targets> {
        let targets = find_targets(&self.cfg);
        check_clash(&self.cfg, targets.files.iter().map(|(p, _)| p.as_path()))?;
        Ok(targets)
    }

    /// Fault injection for crash-safety tests: the process aborts (like `kill -9`) right
    /// after the named step (`state-written`, `renamed`, `recreated`, `writer-closed`,
    /// `compressed`, `archived`, `blanked` (collapse-range: the blank line written, the prefix
    /// not yet removed), `truncated`, `source-removed`).
    #[doc(hidden)]
    pub fn crash_after(mut self, step: Option<String>) -> Self {
        self.crash_after = step;
        self
    }

    /// Fault injection for cancellation tests: the run's token is cancelled (as by a SIGTERM
    /// or a task timeout arriving then) when the named step is reached; besides the steps of
    /// [`LogRotation::crash_after`], `tail-read` (copytruncate's fallback, the tail is in memory).
    #[doc(hidden)]
    pub fn cancel_at(mut self, step: Option<String>) -> Self {
        self.cancel_at = step;
        self
    }

    async fn run_inner(&self, ctx: &TaskContext, report: &mut TaskReport) -> Result<()> {
        let targets = self.check_targets()?;
        for w in &targets.warnings {
            if self.cfg.missing_ok {
                report.warn(w.clone());
            } else {
                report.fail(w.clone());
            }
        }
        let store = Store::new(&self.cfg);
        let (state, warning) = if targets.files.is_empty() {
            (State::default(), None)
        } else {
            // Archives are written, renamed and deleted there as the runner: a directory only
            // it can write, never a link (planted in the log directory before it was created).
            if let Some(dir) = &self.cfg.archive_dir
                && crate::state::private_dir(dir, !ctx.dry_run, 0o755)?
                && !ctx.dry_run
            {
                crate::fsops::probe_dir(dir)?;
            }
            // A dry run creates nothing: no state directory is an empty state.
            if store.prepare(!ctx.dry_run)? {
                State::load_with(store.path(), !ctx.dry_run)?
            } else {
                (State::default(), None)
            }
        };
        if let Some(w) = warning {
            report.warn(w);
        }
        let now = Utc::now();
        let upload = match &self.cfg.archive_url {
            Some(url) => Some(crate::upload::destination(url)?),
            None => None,
        };
        let mut jobs = Vec::new();
        for (path, obs) in &targets.files {
            let fs = state.files.get(path);
            let decision = plan_rotation(&self.cfg, *obs, fs.and_then(|f| f.last_rotated), now);
            let pending = fs.is_some_and(|f| f.pending.is_some());
            jobs.push((path.clone(), *obs, decision, pending));
        }
        // Files that will compress now, at most `concurrency` at once, share the cores.
        let busy = jobs.iter().filter(|(_, _, d, pending)| *pending || matches!(d, Decision::Rotate(_))).count();
        let codec =
            Codec::new(self.cfg.compress, self.cfg.effective_level()).spread_over(busy.min(self.cfg.concurrency));
        let shared = Arc::new(Shared {
            cfg: self.cfg.clone(),
            codec,
            store,
            owner: self.owner,
            cancel: ctx.cancel.clone(),
            upload,
            crash_after: self.crash_after.clone(),
            cancel_at: self.cancel_at.clone(),
        });
        let sem = Arc::new(Semaphore::new(self.cfg.concurrency));
        let mut set = tokio::task::JoinSet::new();
        for (path, obs, decision, pending) in jobs {
            let shared = Arc::clone(&shared);
            let sem = Arc::clone(&sem);
            let dry_run = ctx.dry_run;
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                one_file(&shared, &path, (obs, decision), pending, dry_run).await
            });
        }
        let mut outcomes = Vec::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok(o) => outcomes.push(o),
                Err(e) => {
                    report.fail(format!("a rotation job panicked: {e}"));
                }
            }
        }
        outcomes.sort_by(|a, b| a.path.cmp(&b.path));
        let mut m = [0u64; 6];
        let mut archives_written = 0u64;
        let mut failed = Vec::new();
        for o in &outcomes {
            if o.action == "rotated" {
                m[0] += 1;
            }
            archives_written += o.archives.len() as u64;
            m[1] += o.bytes_in;
            m[2] += o.bytes_out;
            m[3] += o.deleted.len() as u64;
            m[4] += o.bytes_at_risk;
            m[5] += o.bytes_deleted;
            for w in &o.warnings {
                report.warn(w.clone());
            }
            if o.action == "failed" {
                failed.push(format!("{}: {}", o.path.display(), o.reason));
            }
            report.item(o);
        }
        for (name, v) in ["files_rotated", "bytes_in", "bytes_out", "files_deleted", "bytes_at_risk", "bytes_deleted"]
            .into_iter()
            .zip(m)
        {
            report.metric(name, v as f64);
        }
        report.metric("archives_written", archives_written as f64);
        if !failed.is_empty() {
            report.fail(failed.join("; "));
        }
        Ok(())
    }
}

async fn one_file(
    shared: &Shared,
    path: &Path,
    (obs, decision): (Observed, Decision),
    pending: bool,
    dry_run: bool,
) -> FileOutcome {
    let mut out = FileOutcome { path: path.to_owned(), ..FileOutcome::default() };
    let (rotate, reason) = match decision {
        Decision::Rotate(r) => (true, r),
        Decision::Skip(r) => (false, r),
        Decision::Error(r) => {
            out.action = "failed".to_owned();
            out.reason = r;
            return out;
        }
        Decision::Refuse(r) => {
            out.refuse(path, &r);
            return out;
        }
    };
    out.reason = reason;
    if dry_run {
        if let Ok(Opened::Refused(why)) = crate::fsops::open_log(path, false, shared.owner) {
            out.refuse(path, &why);
            return out;
        }
        out.action = if rotate { "planned" } else { "skipped" }.to_owned();
        if pending {
            out.warnings.push(format!("{}: an interrupted rotation would be finished", path.display()));
        }
        if let Err(e) = retention(shared, path, true, &mut out) {
            out.warnings.push(one_line(&e));
        }
        return out;
    }
    let _lock = match shared.store.try_lock_log(path).await {
        Ok(Locked::Held(l)) => l,
        Ok(Locked::Busy(lock)) => {
            out.action = "skipped".to_owned();
            out.reason = format!("another rotation of this log is running (it holds {})", lock.display());
            out.warnings.push(format!("{}: {}", path.display(), out.reason));
            return out;
        }
        Err(e) => {
            out.action = "failed".to_owned();
            out.reason = one_line(&e);
            return out;
        }
    };
    // Planned again with the state as it is now that the log is ours: a rotation another
    // run finished meanwhile counts for the interval.
    let rotate = rotate
        && match shared.store.get(path).await {
            Ok(now) => match plan_rotation(&shared.cfg, obs, now.last_rotated, Utc::now()) {
                Decision::Rotate(_) => true,
                Decision::Skip(r) | Decision::Error(r) | Decision::Refuse(r) => {
                    out.reason = r;
                    false
                }
            },
            Err(e) => {
                out.action = "failed".to_owned();
                out.reason = one_line(&e);
                return out;
            }
        };
    match process(shared, path, rotate, &mut out).await {
        Ok(()) => {
            if out.action.is_empty() {
                out.action = "skipped".to_owned();
            }
            if let Err(e) = retention(shared, path, false, &mut out) {
                out.warnings.push(one_line(&e));
            }
        }
        Err(e) => {
            out.action = "failed".to_owned();
            out.reason = one_line(&e);
        }
    }
    out
}

#[async_trait]
impl Task for LogRotation {
    fn name(&self) -> &str {
        "log-rotation"
    }

    fn impact(&self) -> Impact {
        Impact::None
    }

    async fn run(&self, ctx: &TaskContext) -> TaskReport {
        let mut report = TaskReport::begin(self.name(), ctx.dry_run);
        if let Err(e) = self.run_inner(ctx, &mut report).await {
            report.fail(one_line(&e));
        }
        report.finish()
    }
}
