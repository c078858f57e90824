use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use deadpool_redis::redis;
use testcontainers::ImageExt;
use testcontainers::core::{ContainerPort, WaitFor};
use tokio::sync::OnceCell;

use crate::postgres::path_from_env;
use crate::{Started, retry, start};

const DATABASES: u32 = 1024;
/// The port the local image serves TLS on (scripts/images/redis-entrypoint.sh).
const TLS_PORT: u16 = 6380;

/// A Redis server in a container, shared by the tests of one binary.
#[derive(Debug)]
pub struct Redis {
    /// Host.
    pub host: String,
    /// Mapped port.
    pub port: u16,
    /// Mapped TLS port (the container's 6380).
    pub tls_port: u16,
}

/// A Redis database index of its own for one test, flushed when handed out.
#[derive(Debug, Clone)]
pub struct TestRedis {
    /// `redis://host:port/N`.
    pub url: String,
    /// `rediss://localhost:tls_port/N` (see [`Redis::tls_url`]).
    pub tls_url: String,
    /// The database index.
    pub db: u32,
}

static SERVER: OnceCell<(Started, Redis)> = OnceCell::const_new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl Redis {
    /// Starts the container on first use (image from `MAINT_TEST_REDIS_IMAGE`). The local image
    /// built by `scripts/test-env` also serves TLS (see [`Redis::tls_url`]).
    pub async fn shared() -> &'static Redis {
        let (_, r) = SERVER
            .get_or_init(|| async {
                let started = start(
                    "Redis",
                    "MAINT_TEST_REDIS_IMAGE",
                    "redis:7",
                    6379,
                    WaitFor::message_on_stdout("Ready to accept connections"),
                    |image| {
                        image.with_exposed_port(ContainerPort::Tcp(TLS_PORT)).with_cmd([
                            "redis-server",
                            "--databases",
                            &DATABASES.to_string(),
                            "--save",
                            "",
                        ])
                    },
                )
                .await;
                let tls_port = started
                    ._container
                    .get_host_port_ipv4(TLS_PORT)
                    .await
                    .unwrap_or_else(|e| panic!("the Redis test container has no mapped port {TLS_PORT}: {e}"));
                let r = Redis { host: started.host.clone(), port: started.port, tls_port };
                let url = r.url(0);
                retry("Redis", || ping(&url)).await;
                (started, r)
            })
            .await;
        r
    }

    /// The URL of database `db`.
    pub fn url(&self, db: u32) -> String {
        format!("redis://{}:{}/{db}", self.host, self.port)
    }

    /// The TLS URL of database `db`: `rediss://localhost:<TLS port>/db`, whose server certificate
    /// (for `localhost` and `127.0.0.1`) chains to [`Redis::ca`]. Only the local image serves
    /// TLS; the official `redis:7` does not.
    pub fn tls_url(&self, db: u32) -> String {
        format!("rediss://localhost:{}/{db}", self.tls_port)
    }

    /// The test CA that signed the server's certificate (`MAINT_TEST_CA`).
    pub fn ca(&self) -> PathBuf {
        path_from_env("MAINT_TEST_CA")
    }

    /// A CA that signed nothing the server has (`MAINT_TEST_OTHER_CA`).
    pub fn other_ca(&self) -> PathBuf {
        path_from_env("MAINT_TEST_OTHER_CA")
    }

    /// An empty database index for one test.
    pub async fn fresh_db(&self) -> TestRedis {
        let db = NEXT_DB.fetch_add(1, Ordering::Relaxed) % DATABASES;
        let url = self.url(db);
        let client = redis::Client::open(url.as_str()).expect("valid Redis URL");
        let mut conn = client.get_multiplexed_async_connection().await.expect("connect to test Redis");
        let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.expect("FLUSHDB");
        TestRedis { url, tls_url: self.tls_url(db), db }
    }
}

async fn ping(url: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut conn).await
}

impl TestRedis {
    /// A new pool for this database.
    pub fn pool(&self) -> deadpool_redis::Pool {
        deadpool_redis::Config::from_url(&self.url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .expect("a valid pool configuration")
    }
}
