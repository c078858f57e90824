//! Optional upload of each archive to an object store (S3 or a local directory).

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::{Error, Result};

/// Parses an archive URL (`s3://bucket/prefix`, `file:///dir`), naming the field on error.
pub(crate) fn parse_url(url: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let parsed = url::Url::parse(url).map_err(|e| Error::invalid("archive_url", format!("{url:?}: {e}")))?;
    // AWS_* variables configure S3 (region, endpoint, keys), as the AWS tools do.
    let opts = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect::<Vec<_>>();
    let (store, prefix) = object_store::parse_url_opts(&parsed, opts)
        .map_err(|e| Error::invalid("archive_url", format!("{url:?}: {e}")))?;
    Ok((Arc::from(store), prefix))
}

/// Where this host's archives go: the store and `<url's path>/<host name>`, so that hosts
/// uploading to one bucket never overwrite each other's archives.
pub(crate) fn destination(url: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let (store, prefix) = parse_url(url)?;
    let file = Path::new("/proc/sys/kernel/hostname");
    let host = std::fs::read_to_string(file).map_err(Error::io("read the host name from", file))?;
    match host.trim() {
        "" => Err(Error::io("read the host name from", file)(std::io::Error::other("empty"))),
        host => Ok((store, prefix.join(host))),
    }
}

/// Streams one archive, from its open file, to `prefix/<file name>` (multipart for large
/// files, bounded memory).
pub(crate) async fn upload(
    store: &Arc<dyn ObjectStore>,
    prefix: &ObjectPath,
    archive: &Path,
    file: std::fs::File,
) -> Result<String> {
    let name = archive.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dest = prefix.clone().join(name.as_str());
    let mut input = tokio::fs::File::from_std(file);
    input.seek(std::io::SeekFrom::Start(0)).await.map_err(Error::io("seek", archive))?;
    let mut w = BufWriter::new(Arc::clone(store), dest.clone());
    let copied = tokio::io::copy(&mut input, &mut w).await;
    let closed = match copied {
        Ok(_) => w.shutdown().await,
        Err(e) => {
            let _ = w.abort().await;
            Err(e)
        }
    };
    closed.map_err(|e| Error::Upload {
        path: archive.to_owned(),
        source: object_store::Error::Generic { store: "archive_url", source: Box::new(e) },
    })?;
    Ok(dest.to_string())
}
