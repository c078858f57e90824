use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use testcontainers::core::WaitFor;
use tokio::sync::OnceCell;

use crate::{Started, retry, start};

/// Credentials the S3 test server accepts (any are accepted; these are used everywhere).
pub const ACCESS_KEY: &str = "maint-test";
/// Secret key for [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "maint-test-secret";
/// Region.
pub const REGION: &str = "us-east-1";

/// An S3-compatible server (moto) in a container, shared by the tests of one binary.
#[derive(Debug)]
pub struct S3 {
    /// `http://host:port`.
    pub endpoint: String,
}

/// A bucket of its own for one test.
#[derive(Debug, Clone)]
pub struct TestBucket {
    /// `http://host:port`.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
}

static SERVER: OnceCell<(Started, S3)> = OnceCell::const_new();
static NEXT_BUCKET: AtomicU32 = AtomicU32::new(0);

impl S3 {
    /// Starts the container on first use (image from `MAINT_TEST_S3_IMAGE`).
    pub async fn shared() -> &'static S3 {
        let (_, s3) = SERVER
            .get_or_init(|| async {
                let started = start(
                    "S3",
                    "MAINT_TEST_S3_IMAGE",
                    "motoserver/moto:latest",
                    5000,
                    WaitFor::message_on_stderr("Running on"),
                    |image| image.into(),
                )
                .await;
                let s3 = S3 { endpoint: format!("http://{}:{}", started.host, started.port) };
                let http = reqwest::Client::new();
                retry("S3", || http.get(&s3.endpoint).send()).await;
                (started, s3)
            })
            .await;
        s3
    }

    /// Creates an empty bucket for one test.
    pub async fn fresh_bucket(&self) -> TestBucket {
        let n = NEXT_BUCKET.fetch_add(1, Ordering::Relaxed);
        let bucket = format!("test-{}-{n}", std::process::id());
        let status = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .expect("create the test bucket")
            .status();
        assert!(status.is_success(), "creating bucket {bucket} answered {status}");
        TestBucket { endpoint: self.endpoint.clone(), bucket }
    }
}

impl TestBucket {
    /// An object_store builder for this bucket (plain HTTP allowed, path-style URLs).
    pub fn builder(&self) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(&self.bucket)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_region(REGION)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
    }

    /// The bucket as an object store.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(self.builder().build().expect("a valid S3 configuration"))
    }
}
