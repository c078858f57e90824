use std::sync::atomic::{AtomicU32, Ordering};

use deadpool_redis::redis;
use testcontainers::ImageExt;
use testcontainers::core::WaitFor;
use tokio::sync::OnceCell;

use crate::{Started, retry, start};

const DATABASES: u32 = 1024;

/// A Redis server in a container, shared by the tests of one binary.
#[derive(Debug)]
pub struct Redis {
    /// Host.
    pub host: String,
    /// Mapped port.
    pub port: u16,
}

/// A Redis database index of its own for one test, flushed when handed out.
#[derive(Debug, Clone)]
pub struct TestRedis {
    /// `redis://host:port/N`.
    pub url: String,
    /// The database index.
    pub db: u32,
}

static SERVER: OnceCell<(Started, Redis)> = OnceCell::const_new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl Redis {
    /// Starts the container on first use (image from `MAINT_TEST_REDIS_IMAGE`).
    pub async fn shared() -> &'static Redis {
        let (_, r) = SERVER
            .get_or_init(|| async {
                let started = start(
                    "Redis",
                    "MAINT_TEST_REDIS_IMAGE",
                    "redis:7",
                    6379,
                    WaitFor::message_on_stdout("Ready to accept connections"),
                    |image| image.with_cmd(["redis-server", "--databases", &DATABASES.to_string(), "--save", ""]),
                )
                .await;
                let r = Redis { host: started.host.clone(), port: started.port };
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

    /// An empty database index for one test.
    pub async fn fresh_db(&self) -> TestRedis {
        let db = NEXT_DB.fetch_add(1, Ordering::Relaxed) % DATABASES;
        let url = self.url(db);
        let client = redis::Client::open(url.as_str()).expect("valid Redis URL");
        let mut conn = client.get_multiplexed_async_connection().await.expect("connect to test Redis");
        let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.expect("FLUSHDB");
        TestRedis { url, db }
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
