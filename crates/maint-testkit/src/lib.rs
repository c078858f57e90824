#![doc = include_str!("../README.md")]

pub mod aindusdb;
mod postgres;
mod redis;
mod s3;

pub use postgres::{Postgres, TestDb};
pub use redis::{Redis, TestRedis};
pub use s3::{ACCESS_KEY, REGION, S3, SECRET_KEY, TestBucket};

pub use deadpool_postgres;
pub use deadpool_redis;
pub use object_store;

/// A TCP server on 127.0.0.1 that accepts connections and never answers (a blackholed
/// PostgreSQL, webhook or gateway): for tests of connect and request timeouts. Returns its
/// port; the connections are held for a minute.
pub fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("a bound port").port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(16).collect();
        std::thread::sleep(std::time::Duration::from_secs(60));
        drop(held);
    });
    port
}

use testcontainers::core::{ContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// A started container: kept alive for the whole test binary.
struct Started {
    _container: ContainerAsync<GenericImage>,
    host: String,
    port: u16,
}

/// `name:tag` from an environment variable, or the default.
fn image_from_env(var: &str, default: &str) -> (String, String) {
    let spec = std::env::var(var).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_owned());
    let slash = spec.rfind('/').map_or(0, |i| i + 1);
    match spec[slash..].rfind(':') {
        Some(i) => (spec[..slash + i].to_owned(), spec[slash + i + 1..].to_owned()),
        None => (spec, "latest".to_owned()),
    }
}

async fn start(
    service: &str,
    env_var: &str,
    default_image: &str,
    port: u16,
    wait: WaitFor,
    configure: impl FnOnce(GenericImage) -> testcontainers::ContainerRequest<GenericImage>,
) -> Started {
    let (name, tag) = image_from_env(env_var, default_image);
    let image = GenericImage::new(&name, &tag).with_exposed_port(ContainerPort::Tcp(port)).with_wait_for(wait);
    // The run label lets `scripts/test` remove this run's containers (they live as long as
    // the test binary's statics, which are never dropped) and no other run's.
    let run = std::env::var("MAINT_TEST_RUN_ID").unwrap_or_else(|_| "none".to_owned());
    let request = configure(image)
        .with_label("maint-testkit", "1")
        .with_label("maint-testkit.run", run)
        .with_startup_timeout(std::time::Duration::from_secs(120));
    let hint = "is Docker running and is the image there? Run scripts/test-env (it installs Docker, \
                builds the local images and exports MAINT_TEST_*_IMAGE)";
    let container = request
        .start()
        .await
        .unwrap_or_else(|e| panic!("cannot start the {service} test container ({name}:{tag}): {e}; {hint}"));
    let mapped = container
        .get_host_port_ipv4(port)
        .await
        .unwrap_or_else(|e| panic!("the {service} test container has no mapped port {port}: {e}"));
    // Inside a container (/.dockerenv) testcontainers answers the bridge gateway, right for a
    // socket mounted from the outer host; scripts/test-env starts dockerd in this very
    // namespace, where the port is published on 127.0.0.1, the address on the test
    // certificates (verify-full against the gateway fails). Use it when it answers.
    let loopback = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, mapped)),
    )
    .await;
    let host = if matches!(loopback, Ok(Ok(_))) {
        "127.0.0.1".to_owned()
    } else {
        container.get_host().await.map(|h| h.to_string()).unwrap_or_else(|_| "127.0.0.1".into())
    };
    Started { _container: container, host, port: mapped }
}

/// Retries `f` every 200 ms for up to 30 s; the official images print their ready
/// message once before the final server is listening.
async fn retry<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let mut last = String::new();
    for _ in 0..150 {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{what} did not become ready: {last}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_names_split_at_the_tag() {
        let split = |s: &str| {
            // SAFETY of the test: each call uses its own variable name.
            super::image_from_env(&format!("MAINT_TESTKIT_UNSET_{}", s.len()), s)
        };
        assert_eq!(split("postgres:16"), ("postgres".into(), "16".into()));
        assert_eq!(split("local/maint-s3:latest"), ("local/maint-s3".into(), "latest".into()));
        assert_eq!(split("registry:5000/redis"), ("registry:5000/redis".into(), "latest".into()));
    }
}
