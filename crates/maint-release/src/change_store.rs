use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::{ChangeRequest, Error};

/// Where change requests live. Small on purpose; object safe (`Arc<dyn ChangeStore>`).
pub trait ChangeStore: Send + Sync + Debug + 'static {
    /// Stores a new change under the next free id (`CR-<n>`), built by `make` from that
    /// id; never overwrites an existing one. Returns the stored change.
    fn create(&self, make: &mut dyn FnMut(String) -> Result<ChangeRequest, Error>) -> Result<ChangeRequest, Error>;
    /// Loads one change.
    fn load(&self, id: &str) -> Result<ChangeRequest, Error>;
    /// Replaces a stored change (atomically: readers see the old or the new one).
    fn save(&self, change: &ChangeRequest) -> Result<(), Error>;
    /// Loads, changes and saves one change as one step that no other `update` of the same
    /// store interleaves with (two approvals at once both count). Nothing is saved when
    /// `f` fails.
    fn update(
        &self,
        id: &str,
        f: &mut dyn FnMut(&mut ChangeRequest) -> Result<(), Error>,
    ) -> Result<ChangeRequest, Error>;
    /// Every change, by id number.
    fn list(&self) -> Result<Vec<ChangeRequest>, Error>;
}

/// Change requests as JSON files in a directory: `<dir>/CR-<n>.json`.
///
/// Every write goes to a temporary file in the same directory, is fsynced, then renamed
/// over the target (and the directory is fsynced), so a crash never leaves half a file.
/// A new id is claimed by hard-linking the temporary file to its name, which fails when
/// the name exists: two processes creating at once get different ids. Read-modify-write
/// ([`ChangeStore::update`]) holds an exclusive `flock` on `<dir>/.lock`, so two approvals
/// written at the same moment by two processes are both kept.
#[derive(Debug, Clone)]
pub struct JsonDirStore {
    dir: PathBuf,
}

fn io(operation: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { operation, path, source }
}

fn id_number(id: &str) -> Option<u64> {
    id.strip_prefix("CR-")?.parse().ok()
}

/// Checks an id given on a command line (`CR-12`); `field` names it.
pub fn check_change_id(field: &str, id: &str) -> Result<(), Error> {
    if id_number(id).is_some() {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("{id:?} is not a change id (expected CR-<number>)")))
    }
}

impl JsonDirStore {
    /// A store in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io("cannot create directory", &dir))?;
        Ok(JsonDirStore { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes `bytes` to a fresh temporary file in the directory and fsyncs it.
    fn write_temp(&self, bytes: &[u8]) -> Result<PathBuf, Error> {
        for attempt in 0..100u32 {
            let tmp = self.dir.join(format!(".tmp-{}-{attempt}-{}", std::process::id(), nanos()));
            let mut f = match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io("cannot write", &tmp)(e)),
            };
            let written = f.write_all(bytes).and_then(|()| f.sync_all());
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(io("cannot write", &tmp)(e));
            }
            return Ok(tmp);
        }
        Err(Error::Io {
            operation: "cannot create a temporary file in",
            path: self.dir.clone(),
            source: std::io::Error::other("too many attempts"),
        })
    }

    fn sync_dir(&self) {
        // Persists the rename; not every platform can open a directory, which is harmless.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }

    fn encode(change: &ChangeRequest) -> Result<Vec<u8>, Error> {
        let mut bytes = serde_json::to_vec_pretty(change)
            .map_err(|e| Error::invalid(format!("change {}", change.id), e.to_string()))?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

impl ChangeStore for JsonDirStore {
    fn create(&self, make: &mut dyn FnMut(String) -> Result<ChangeRequest, Error>) -> Result<ChangeRequest, Error> {
        let mut next = self.list()?.iter().filter_map(|c| id_number(&c.id)).max().unwrap_or(0) + 1;
        loop {
            let id = format!("CR-{next}");
            let change = make(id.clone())?;
            let tmp = self.write_temp(&Self::encode(&change)?)?;
            let target = self.path(&id);
            let linked = std::fs::hard_link(&tmp, &target);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    self.sync_dir();
                    return Ok(change);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => return Err(io("cannot create", &target)(e)),
            }
        }
    }

    fn load(&self, id: &str) -> Result<ChangeRequest, Error> {
        check_change_id("id", id)?;
        let path = self.path(id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::ChangeNotFound(id.to_owned())),
            Err(e) => return Err(io("cannot read", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Io {
            operation: "not a valid change request:",
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    fn save(&self, change: &ChangeRequest) -> Result<(), Error> {
        check_change_id("id", &change.id)?;
        let tmp = self.write_temp(&Self::encode(change)?)?;
        let target = self.path(&change.id);
        if let Err(e) = std::fs::rename(&tmp, &target) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("cannot replace", &target)(e));
        }
        self.sync_dir();
        Ok(())
    }

    fn update(
        &self,
        id: &str,
        f: &mut dyn FnMut(&mut ChangeRequest) -> Result<(), Error>,
    ) -> Result<ChangeRequest, Error> {
        check_change_id("id", id)?;
        let lock_path = self.dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("cannot open", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io("cannot lock", &lock_path)(e.into()))?;
        let mut change = self.load(id)?;
        f(&mut change)?;
        self.save(&change)?;
        // The lock goes with the file descriptor.
        drop(lock);
        Ok(change)
    }

    fn list(&self) -> Result<Vec<ChangeRequest>, Error> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io("cannot read directory", &self.dir))? {
            let entry = entry.map_err(io("cannot read directory", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json").filter(|id| id_number(id).is_some()) {
                out.push(self.load(id)?);
            }
        }
        out.sort_by_key(|c| id_number(&c.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::{ApprovalPolicy, ChangeState, NewChange};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("maint-release-{name}-{}-{}", std::process::id(), nanos()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn new_change(title: &str) -> NewChange {
        NewChange {
            title: title.into(),
            requester: "bob".into(),
            approvers: vec!["alice".into()],
            estimated_minutes: 30,
            ..NewChange::default()
        }
    }

    #[test]
    fn creates_numbered_changes_saves_atomically_and_lists_in_order() {
        let dir = temp_dir("store");
        let store = JsonDirStore::open(&dir).unwrap();
        let mk = |title: &'static str| move |id: String| ChangeRequest::new(id, new_change(title), Utc::now());
        let a = store.create(&mut mk("first")).unwrap();
        let b = store.create(&mut mk("second")).unwrap();
        assert_eq!((a.id.as_str(), b.id.as_str()), ("CR-1", "CR-2"));
        let mut loaded = store.load("CR-1").unwrap();
        assert_eq!(loaded, a);
        loaded.submit("bob", &ApprovalPolicy::default(), Utc::now()).unwrap();
        store.save(&loaded).unwrap();
        assert_eq!(store.load("CR-1").unwrap().state, ChangeState::Submitted);
        // A stray file claiming the next id makes create move on instead of overwriting it.
        std::fs::write(dir.join("CR-3.json"), serde_json::to_vec(&ChangeRequest { id: "CR-3".into(), ..a }).unwrap())
            .unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let d = store.create(&mut mk("fourth")).unwrap();
        assert_eq!(d.id, "CR-4");
        let ids: Vec<String> = store.list().unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, ["CR-1", "CR-2", "CR-3", "CR-4"]);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files are always removed");
        assert!(matches!(store.load("CR-99"), Err(Error::ChangeNotFound(ref id)) if id == "CR-99"));
        assert!(matches!(store.load("../etc/passwd"), Err(Error::Invalid { .. })));
        std::fs::write(dir.join("CR-5.json"), "{ half").unwrap();
        assert!(store.load("CR-5").unwrap_err().to_string().contains("not a valid change request"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_approvals_are_all_kept() {
        let dir = temp_dir("concurrent");
        let store = JsonDirStore::open(&dir).unwrap();
        let approvers: Vec<String> = (0..8).map(|i| format!("approver-{i}")).collect();
        let change = store
            .create(&mut |id| {
                let mut c = ChangeRequest::new(
                    id,
                    NewChange {
                        risk: crate::Risk::Critical,
                        rollback_plan: "undo".into(),
                        approvers: approvers.clone(),
                        ..new_change("x")
                    },
                    Utc::now(),
                )?;
                c.submit("bob", &ApprovalPolicy { critical: 8, ..ApprovalPolicy::default() }, Utc::now())?;
                Ok(c)
            })
            .unwrap();
        std::thread::scope(|scope| {
            for a in &approvers {
                let (store, id) = (store.clone(), change.id.clone());
                scope.spawn(move || store.update(&id, &mut |c| c.approve(a, None, Utc::now())).unwrap());
            }
        });
        let c = store.load(&change.id).unwrap();
        assert_eq!(c.approvals.len(), 8, "every approval written at the same time is kept");
        assert_eq!(c.state, ChangeState::Approved);
        let err = store.update(&change.id, &mut |c| c.approve("approver-0", None, Utc::now())).unwrap_err();
        assert!(err.to_string().contains("it is approved, not submitted"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_builder_stores_nothing() {
        let dir = temp_dir("builder");
        let store = JsonDirStore::open(&dir).unwrap();
        let err = store
            .create(&mut |id| ChangeRequest::new(id, NewChange { title: String::new(), ..new_change("x") }, Utc::now()))
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "title"));
        assert!(store.list().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
