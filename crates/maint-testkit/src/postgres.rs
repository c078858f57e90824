use std::sync::atomic::{AtomicU32, Ordering};

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
}

static SERVER: OnceCell<(Started, Postgres)> = OnceCell::const_new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl Postgres {
    /// Starts the container on first use (image from `MAINT_TEST_POSTGRES_IMAGE`).
    pub async fn shared() -> &'static Postgres {
        let (_, pg) = SERVER
            .get_or_init(|| async {
                let started = start(
                    "PostgreSQL",
                    "MAINT_TEST_POSTGRES_IMAGE",
                    "postgres:16",
                    5432,
                    WaitFor::message_on_stderr("database system is ready to accept connections"),
                    |image| {
                        image
                            .with_env_var("POSTGRES_USER", USER)
                            .with_env_var("POSTGRES_PASSWORD", PASSWORD)
                            .with_cmd(["postgres", "-c", "fsync=off", "-c", "max_connections=300"])
                    },
                )
                .await;
                let pg = Postgres { host: started.host.clone(), port: started.port };
                retry("PostgreSQL", || pg.connect("postgres")).await;
                (started, pg)
            })
            .await;
        pg
    }

    /// A URL for database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://{USER}:{PASSWORD}@{}:{}/{db}", self.host, self.port)
    }

    async fn connect(&self, db: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&self.url(db), NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Creates an empty database for one test.
    pub async fn fresh_database(&self) -> TestDb {
        let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{}_{n}", std::process::id());
        let client = self.connect("postgres").await.expect("connect to the test server");
        client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create the test database");
        TestDb { name, host: self.host.clone(), port: self.port, user: USER.into(), password: PASSWORD.into() }
    }
}

impl TestDb {
    /// A connection URL.
    pub fn url(&self) -> String {
        format!("postgresql://{}:{}@{}:{}/{}", self.user, self.password, self.host, self.port, self.name)
    }

    /// A deadpool-postgres configuration for this database.
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
}
