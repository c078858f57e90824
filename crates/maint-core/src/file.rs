use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::Error;

/// Writes a file so readers see the old content or the new, never a part: a temp file with
/// a random name (`tempfile`) in the same directory, created with `O_CREAT|O_EXCL`, which
/// never opens an existing file nor follows a symlink planted at the name; fsync, rename
/// over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut prefix = path.file_name().unwrap_or_default().to_os_string();
    prefix.push(".");
    // 0666 less the umask, as `File::create` gave (the metrics textfiles are read by
    // node_exporter); tempfile's own default is 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

/// Where `maint` keeps its run lock and daemon state by default, a directory only the runner
/// may write: `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`), `/run/aindusdb-maint`
/// as root, else `$XDG_RUNTIME_DIR/aindusdb-maint`, else `/var/lib/aindusdb-maint` (to be
/// created for the service user). Never a shared directory such as `/tmp`.
pub fn runtime_dir() -> PathBuf {
    // systemd lists several directories separated by ':' when the unit names several.
    if let Some(dirs) = std::env::var("RUNTIME_DIRECTORY").ok().filter(|v| !v.is_empty()) {
        return PathBuf::from(dirs.split(':').next().unwrap_or_default());
    }
    if rustix::process::geteuid().is_root() {
        return "/run/aindusdb-maint".into();
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("aindusdb-maint"),
        None => "/var/lib/aindusdb-maint".into(),
    }
}

/// Refuses a directory that someone other than the runner could use to replace, plant or
/// remove what the tool keeps in it: owned by another user (root excepted), or writable by
/// group or others without the sticky bit.
pub fn check_private_dir(dir: &Path) -> Result<(), Error> {
    let refuse = |reason: String| Error::Unsafe { path: dir.to_owned(), reason };
    let meta = std::fs::metadata(dir).map_err(Error::io("use", dir))?;
    if !meta.is_dir() {
        return Err(refuse("not a directory".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(refuse(format!("owned by uid {}, not by the runner (uid {me})", meta.uid())));
    }
    if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
        return Err(refuse(format!(
            "mode {:04o}: writable by group or others without the sticky bit (chmod go-w)",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Creates `dir` (mode 0700, with its parents) if missing, then checks it as
/// [`check_private_dir`] does.
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(Error::io("create", dir))?;
    check_private_dir(dir)
}

/// Opens `path` for reading and writing, creating it (0600) if missing, never following a
/// symlink, never truncating, and refusing anything but a regular file the runner owns.
pub fn open_private(path: &Path) -> Result<File, Error> {
    let refuse = |reason: &str| Error::Unsafe { path: path.to_owned(), reason: reason.to_owned() };
    // NONBLOCK: a FIFO planted at the name cannot hang the open.
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(path, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => return Err(refuse("it is a symbolic link")),
        Err(e) => return Err(Error::io("open", path)(e.into())),
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(Error::io("open", path))?;
    if !meta.is_file() {
        return Err(refuse("not a regular file"));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refuse(&format!("owned by uid {}, not by the runner (uid {me})", meta.uid())));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("maint-core-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temp file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Someone who can write the directory plants a symlink at the temp name the old code
    /// used (`<name>.<pid>.tmp`): it is not followed, its target keeps its content.
    #[test]
    fn a_planted_symlink_at_the_old_temp_name_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("maint-core-atomic-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.join("state.json");
        let planted = dir.join(format!("state.json.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "the symlink's target is unchanged");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "the file is a file");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn private_dirs_and_files_refuse_what_others_could_replace() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("maint-core-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let inner = dir.join("a/b");
        ensure_private_dir(&inner).unwrap();
        assert_eq!(std::fs::metadata(&inner).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = check_private_dir(&inner).unwrap_err();
        assert!(err.to_string().starts_with(&format!("refusing {}: mode 0770", inner.display())), "{err}");
        assert_eq!(err.exit_code(), crate::ExitCode::Failed);
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_private_dir(&inner).unwrap();
        let file = inner.join("f");
        std::fs::write(&file, "kept").unwrap();
        drop(open_private(&file).unwrap());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "kept", "not truncated");
        std::os::unix::fs::symlink(&file, inner.join("link")).unwrap();
        let err = open_private(&inner.join("link")).unwrap_err();
        assert!(err.to_string().ends_with("link: it is a symbolic link"), "{err}");
        assert!(open_private(&inner).is_err(), "a directory is no lock file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
