//! Client tools that match the server: `pg_dump` refuses a server of a newer major than its
//! own, so the tool is picked by the server's major before anything is written.

use std::path::{Path, PathBuf};

use deadpool_postgres::tokio_postgres::Client;

use crate::Error;

/// Where Debian (and PGDG's packages) install each major's clients: `<root>/<major>/bin/`.
pub const CLIENT_ROOT: &str = "/usr/lib/postgresql";

/// The server's major (`server_version_num` / 10000) and its version as it names it (`17.12`).
pub(crate) async fn server_version(client: &Client) -> Result<(u32, String), Error> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, split_part(current_setting('server_version'), ' ', 1)",
            &[],
        )
        .await?;
    let num: i32 = row.get(0);
    Ok((u32::try_from(num / 10000).unwrap_or(0), row.get(1)))
}

/// The `tool` to run against a server of `major` (`version` names it in the error).
///
/// An `explicit` path is used as given. Otherwise `<root>/<m>/bin/<tool>` with the lowest
/// installed `m` at least the server's (a newer client dumps and restores an older server;
/// an older one refuses), and when `root` holds no such tool at all (not Debian's layout),
/// `tool` from `PATH`. Installed clients all older than the server: a failure naming the
/// server's version and the package to install.
pub(crate) fn pick(
    tool: &'static str,
    explicit: Option<&Path>,
    root: &Path,
    major: u32,
    version: &str,
) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let path = |m: u32| root.join(m.to_string()).join("bin").join(tool);
    let mut installed: Vec<u32> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&m| path(m).is_file())
        .collect();
    installed.sort_unstable();
    let picked = match (installed.iter().find(|&&m| m >= major), installed.last()) {
        (Some(&m), _) => path(m),
        (None, None) => PathBuf::from(tool),
        (None, Some(&newest)) => {
            return Err(Error::NoClient {
                tool,
                message: format!(
                    "the server is PostgreSQL {version} and the newest {tool} under {} is {newest}; \
                     install postgresql-client-{major}",
                    root.display()
                ),
            });
        }
    };
    tracing::debug!(tool, path = %picked.display(), server = version, "client tool");
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_lowest_major_at_least_the_servers() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("maint-backup-tools-{}", std::process::id()));
        for m in ["14", "16", "18", "9.6", "junk"] {
            let bin = root.join(m).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("pg_dump"), "").unwrap();
            std::fs::set_permissions(bin.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::create_dir_all(root.join("17/bin")).unwrap(); // no pg_dump in it
        let dump = |major| pick("pg_dump", None, &root, major, "x");
        assert_eq!(dump(14).unwrap(), root.join("14/bin/pg_dump"));
        assert_eq!(dump(15).unwrap(), root.join("16/bin/pg_dump"));
        assert_eq!(dump(17).unwrap(), root.join("18/bin/pg_dump"));
        let e = dump(19).unwrap_err().to_string();
        assert!(
            e.contains("newest pg_dump") && e.contains("is 18") && e.ends_with("install postgresql-client-19"),
            "{e}"
        );
        assert_eq!(pick("pg_restore", None, &root, 17, "17.1").unwrap(), PathBuf::from("pg_restore"));
        let own = Path::new("/opt/pg/bin/pg_dump");
        assert_eq!(pick("pg_dump", Some(own), &root, 19, "19.0").unwrap(), own);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
