use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use deadpool_postgres::tokio_postgres::error::SqlState;
use deadpool_postgres::tokio_postgres::{self, NoTls};
use testcontainers::ImageExt;
use testcontainers::core::WaitFor;
use tokio::sync::OnceCell;

use crate::{Started, retry, start};

const USER: &str = "postgres";
const PASSWORD: &str = "maint-test";

/// A PostgreSQL server in a container, shared by the tests of one binary.
#[derive(Debug)]
pub struct Postgres {
    /// Host to connect to.
    pub host: String,
    /// Mapped port.
    pub port: u16,
    tls: Option<Tls>,
}

/// The test CAs of a server that serves TLS.
#[derive(Debug, Clone)]
struct Tls {
    ca: PathBuf,
    other_ca: PathBuf,
}

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Superuser name.
    pub user: String,
    /// Superuser password.
    pub password: String,
    /// The CA the server's certificate comes from, when it serves TLS.
    pub ca: Option<PathBuf>,
}

/// Which server a [`Postgres`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `MAINT_TEST_POSTGRES15_IMAGE`: PostgreSQL 15, plain text, the oldest major we claim.
    Pg15,
    /// `MAINT_TEST_POSTGRES17_IMAGE`: PostgreSQL 17, pgvector, TLS with the test CA.
    Pg17,
    /// The same image, accepting TCP connections over TLS only.
    Pg17HostsslOnly,
}

static SERVER_15: OnceCell<(Started, Postgres)> = OnceCell::const_new();
static SERVER_17: OnceCell<(Started, Postgres)> = OnceCell::const_new();
static SERVER_17_HOSTSSL: OnceCell<(Started, Postgres)> = OnceCell::const_new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A path from an environment variable that `scripts/test-env` exports; panics (no silent
/// skip) when it is unset or names no file.
pub(crate) fn path_from_env(var: &str) -> PathBuf {
    let hint = "run the tests through scripts/test-env, which builds the PostgreSQL 17 image and the test CA";
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set; {hint}"));
    assert!(path.is_file(), "{var}={} is not a file; {hint}", path.display());
    path
}

impl Postgres {
    /// The default test server: PostgreSQL 17 with pgvector, serving TLS with a certificate
    /// for `localhost` and `127.0.0.1` from the test CA ([`Postgres::ca`]), plain
    /// connections accepted too ([`Postgres::plain_url`]). Started on first use from
    /// `MAINT_TEST_POSTGRES17_IMAGE`; panics when that or `MAINT_TEST_CA`/`MAINT_TEST_OTHER_CA`
    /// is not set (run `scripts/test-env`).
    pub async fn shared() -> &'static Postgres {
        Postgres::shared_kind(&SERVER_17, Kind::Pg17).await
    }

    /// PostgreSQL 15 without TLS (`MAINT_TEST_POSTGRES15_IMAGE`), for the compatibility
    /// tests that keep the oldest major we claim proven.
    pub async fn shared_15() -> &'static Postgres {
        Postgres::shared_kind(&SERVER_15, Kind::Pg15).await
    }

    /// The PostgreSQL 17 image with `pg_hba.conf` accepting TCP over TLS only
    /// (`MAINT_PG_HOSTSSL_ONLY=1`): a plain connection gets the server's "no pg_hba.conf
    /// entry ... no encryption". [`Postgres::fresh_database`] is not available on it (the
    /// testkit connects in plain text).
    pub async fn shared_17_hostssl_only() -> &'static Postgres {
        Postgres::shared_kind(&SERVER_17_HOSTSSL, Kind::Pg17HostsslOnly).await
    }

    async fn shared_kind(cell: &'static OnceCell<(Started, Postgres)>, kind: Kind) -> &'static Postgres {
        let (_, pg) = cell
            .get_or_init(|| async {
                let (service, env_var, default_image, tls) = match kind {
                    Kind::Pg15 => ("PostgreSQL 15", "MAINT_TEST_POSTGRES15_IMAGE", "postgres:15", None),
                    Kind::Pg17 | Kind::Pg17HostsslOnly => {
                        let tls =
                            Tls { ca: path_from_env("MAINT_TEST_CA"), other_ca: path_from_env("MAINT_TEST_OTHER_CA") };
                        let image = std::env::var("MAINT_TEST_POSTGRES17_IMAGE").ok().filter(|s| !s.is_empty());
                        assert!(
                            image.is_some(),
                            "MAINT_TEST_POSTGRES17_IMAGE is not set; run the tests through scripts/test-env, \
                             which builds local/maint-postgres:17 (PostgreSQL 17, pgvector, TLS)"
                        );
                        ("PostgreSQL 17", "MAINT_TEST_POSTGRES17_IMAGE", "", Some(tls))
                    }
                };
                let hostssl_only = kind == Kind::Pg17HostsslOnly;
                let started = start(
                    service,
                    env_var,
                    default_image,
                    5432,
                    WaitFor::message_on_stderr("database system is ready to accept connections"),
                    |image| {
                        let request = image
                            .with_env_var("POSTGRES_USER", USER)
                            .with_env_var("POSTGRES_PASSWORD", PASSWORD)
                            .with_cmd(["postgres", "-c", "fsync=off", "-c", "max_connections=300"]);
                        if hostssl_only { request.with_env_var("MAINT_PG_HOSTSSL_ONLY", "1") } else { request }
                    },
                )
                .await;
                let pg = Postgres { host: started.host.clone(), port: started.port, tls };
                retry(service, || async {
                    match pg.connect("postgres").await {
                        // The TLS-only server answering a plain connection with its refusal is up.
                        Err(e) if hostssl_only && e.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => {
                            Ok(())
                        }
                        other => other.map(drop),
                    }
                })
                .await;
                (started, pg)
            })
            .await;
        pg
    }

    /// A URL for database `db` as the superuser, over verified TLS
    /// (`sslmode=verify-full&sslrootcert=<the test CA>`) on a server that serves TLS: the URL
    /// to give the code under test.
    pub fn url(&self, db: &str) -> String {
        url(&format!("postgresql://{USER}:{PASSWORD}@{}:{}/{db}", self.host, self.port), self.ca())
    }

    /// A URL for database `db` as the superuser in plain text (`sslmode=disable` on a
    /// server that serves TLS), for a test's own setup with `NoTls`.
    pub fn plain_url(&self, db: &str) -> String {
        plain_url(&format!("postgresql://{USER}:{PASSWORD}@{}:{}/{db}", self.host, self.port), self.ca())
    }

    /// The CA the server's certificate comes from, when it serves TLS.
    pub fn ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// A CA that did not sign the server's certificate (for "another CA is refused"), when
    /// the server serves TLS.
    pub fn other_ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.other_ca.as_path())
    }

    async fn connect(&self, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&self.plain_url(db), NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Creates an empty database for one test.
    pub async fn fresh_database(&self) -> TestDb {
        let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{}_{n}", std::process::id());
        let client = self.connect("postgres").await.expect("connect to the test server");
        client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create the test database");
        TestDb {
            name,
            host: self.host.clone(),
            port: self.port,
            user: USER.into(),
            password: PASSWORD.into(),
            ca: self.ca().map(Path::to_path_buf),
        }
    }
}

/// `base` in plain text: `sslmode=disable` when the server serves TLS.
fn plain_url(base: &str, ca: Option<&Path>) -> String {
    if ca.is_some() { format!("{base}?sslmode=disable") } else { base.to_owned() }
}

/// `base` with `sslmode=verify-full` and `sslrootcert` (percent-encoded as a URL wants it)
/// when the server serves TLS, else `base`.
fn url(base: &str, ca: Option<&Path>) -> String {
    let Some(ca) = ca else { return base.to_owned() };
    let mut encoded = String::new();
    for b in ca.to_str().expect("a UTF-8 CA path").bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => encoded.push(b as char),
            _ => encoded.push_str(&format!("%{b:02X}")),
        }
    }
    format!("{base}?sslmode=verify-full&sslrootcert={encoded}")
}

impl TestDb {
    /// The connection URL to give the code under test: over verified TLS
    /// (`sslmode=verify-full` with the test CA) on a server that serves TLS.
    pub fn url(&self) -> String {
        url(&self.base_url(), self.ca.as_deref())
    }

    /// A connection URL in plain text (`sslmode=disable` on a server that serves TLS), for
    /// a test's own setup with `NoTls`.
    pub fn plain_url(&self) -> String {
        plain_url(&self.base_url(), self.ca.as_deref())
    }

    fn base_url(&self) -> String {
        format!("postgresql://{}:{}@{}:{}/{}", self.user, self.password, self.host, self.port, self.name)
    }

    /// A deadpool-postgres configuration for this database (plain text).
    pub fn config(&self) -> deadpool_postgres::Config {
        let mut cfg = deadpool_postgres::Config::new();
        cfg.host = Some(self.host.clone());
        cfg.port = Some(self.port);
        cfg.user = Some(self.user.clone());
        cfg.password = Some(self.password.clone());
        cfg.dbname = Some(self.name.clone());
        cfg
    }

    /// A new pool (pools belong to the runtime of the test that makes them).
    pub fn pool(&self) -> deadpool_postgres::Pool {
        self.config().create_pool(Some(deadpool_postgres::Runtime::Tokio1), NoTls).expect("a valid pool configuration")
    }

    /// This database as a LOGIN role of its own (`<database>_<name>`, created on first use)
    /// that has only the data privileges an operator grants to people (`pg_read_all_data`,
    /// `pg_write_all_data`, no right to create anything): for tests where who is connected
    /// matters, such as approvals counted per `session_user`.
    pub async fn as_role(&self, name: &str) -> TestDb {
        let role = format!("{}_{name}", self.name);
        let client = self.pool().get().await.expect("connect as the superuser");
        client
            .batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE \"{role}\" LOGIN PASSWORD '{PASSWORD}'; \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
                 GRANT pg_read_all_data, pg_write_all_data TO \"{role}\";"
            ))
            .await
            .expect("create the role");
        TestDb { user: role, password: PASSWORD.to_owned(), ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tls_urls_carry_the_ca_percent_encoded() {
        let url = super::url("postgresql://u:p@localhost:1/db", Some(std::path::Path::new("/tmp/a b/ca.crt")));
        assert_eq!(url, "postgresql://u:p@localhost:1/db?sslmode=verify-full&sslrootcert=/tmp/a%20b/ca.crt");
        assert_eq!(super::url("postgresql://u:p@localhost:1/db", None), "postgresql://u:p@localhost:1/db");
    }
}
