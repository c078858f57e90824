//! A `file://` store that keeps its backups private: directories 0700, files 0600.

use std::fmt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

/// [`LocalFileSystem`] under `root`, where every directory it creates below the root is
/// created 0700 before anything is written into it (so a dump is never reachable by other
/// users, even while it is uploading under a staging name), and every file it writes is
/// made 0600 once written. The umask does not matter.
#[derive(Debug)]
pub(crate) struct PrivateFs {
    inner: LocalFileSystem,
    root: PathBuf,
}

impl PrivateFs {
    /// `root` must exist.
    pub(crate) fn new(root: PathBuf) -> Result<Self> {
        let inner = LocalFileSystem::new_with_prefix(&root)?;
        Ok(PrivateFs { inner, root })
    }

    /// Creates (0700) the directories between the root and `location`, and makes the
    /// existing ones 0700.
    fn prepare(&self, location: &Path) -> Result<()> {
        let file = self.inner.path_to_filesystem(location)?;
        let Some(parent) = file.parent() else { return Ok(()) };
        let Ok(below) = parent.strip_prefix(&self.root) else { return Ok(()) };
        let mut dir = self.root.clone();
        for part in below.components() {
            dir.push(part);
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => private(&dir, 0o700)?,
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(())
    }

    /// Makes the file at `location` 0600.
    fn seal(&self, location: &Path) -> Result<()> {
        private(&self.inner.path_to_filesystem(location)?, 0o600)
    }
}

fn io_error(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) }
}

fn private(path: &std::path::Path, mode: u32) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(io_error)?;
    if meta.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error)?;
    }
    Ok(())
}

impl fmt::Display for PrivateFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Private({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for PrivateFs {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.prepare(location)?;
        let put = self.inner.put_opts(location, payload, opts).await?;
        self.seal(location)?;
        Ok(put)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.prepare(location)?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(PrivateUpload { inner, file: self.inner.path_to_filesystem(location)? }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.prepare(to)?;
        self.inner.copy_opts(from, to, options).await?;
        self.seal(to)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.prepare(to)?;
        self.inner.rename_opts(from, to, options).await?;
        self.seal(to)
    }
}

/// A multipart upload whose file is made 0600 when it completes.
#[derive(Debug)]
struct PrivateUpload {
    inner: Box<dyn MultipartUpload>,
    file: PathBuf,
}

#[async_trait]
impl MultipartUpload for PrivateUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let put = self.inner.complete().await?;
        private(&self.file, 0o600)?;
        Ok(put)
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}
