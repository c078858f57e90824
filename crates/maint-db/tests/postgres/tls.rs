//! The connector against the real PostgreSQL 17 + pgvector image serving TLS with the test
//! CA: libpq's `sslmode` semantics, one-line errors without the URL or the password.

use maint_core::{ExitCode, Secret, one_line};
use maint_db::{Db, Error, PgConnector, Settings, SslMode};
use maint_testkit::{Postgres, TestDb};

async fn fresh17() -> TestDb {
    Postgres::shared().await.fresh_database().await
}

/// `postgresql://user:password@host:port/db` without any parameter.
fn base(db: &TestDb) -> String {
    format!("postgresql://{}:{}@{}:{}/{}", db.user, db.password, db.host, db.port, db.name)
}

fn ca(db: &TestDb) -> String {
    db.ca.as_ref().expect("the 17 server serves TLS").display().to_string()
}

/// Whether the session of `client` is encrypted, as the server sees it.
async fn encrypted(client: &maint_db::deadpool_postgres::tokio_postgres::Client) -> bool {
    client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
}

/// Connects to `url` expecting a failure: an [`Error::Connect`] (exit 1) whose one line
/// names `host:port` and repeats neither the password nor the URL.
async fn refused(url: &str, password: &str, host_port: &str) -> String {
    let err = maint_db::connect(&Secret::new(url)).await.expect_err("the connection must be refused");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Failed);
    let msg = one_line(&err);
    assert!(msg.contains(host_port), "names {host_port}: {msg}");
    for secret in [password, "postgresql://", "sslrootcert", "sslmode"] {
        assert!(!msg.contains(secret), "repeats {secret}: {msg}");
    }
    msg
}

#[tokio::test]
async fn verify_full_with_the_test_ca_is_encrypted_for_sessions_pools_and_the_run_lock() {
    let db = fresh17().await;
    let url = Secret::new(db.url());
    assert_eq!(PgConnector::new(&url).unwrap().ssl_mode(), SslMode::VerifyFull);
    let client = maint_db::connect(&url).await.unwrap();
    assert!(encrypted(&client).await);
    // The IP address SAN verifies too.
    let by_ip = Secret::new(format!(
        "host=127.0.0.1 port={} user={} password={} dbname={} sslmode=verify-full sslrootcert={}",
        db.port,
        db.user,
        db.password,
        db.name,
        ca(&db)
    ));
    assert!(encrypted(&maint_db::connect(&by_ip).await.unwrap()).await);
    // Db's pool and its run-lock session go through the same connector.
    let handle = Db::connect(&url, &Settings::default()).unwrap();
    assert!(encrypted(&handle.client().await.unwrap()).await);
    match handle.try_lock_run().await.unwrap() {
        maint_db::RunLockAttempt::Acquired(lock) => lock.release().await,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn pgvector_is_there_over_tls() {
    let db = fresh17().await;
    let client = maint_db::connect(&Secret::new(db.url())).await.unwrap();
    client.batch_execute("CREATE EXTENSION vector").await.unwrap();
    let version: String =
        client.query_one("SELECT extversion FROM pg_extension WHERE extname = 'vector'", &[]).await.unwrap().get(0);
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(parts >= vec![0, 8, 0], "pgvector {version}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let pg = Postgres::shared().await;
    let db = pg.fresh_database().await;
    let other = pg.other_ca().unwrap().display().to_string();
    let host_port = format!("{}:{}", db.host, db.port);
    for mode in ["verify-ca", "verify-full", "require"] {
        // libpq: `require` with a root certificate checks the chain as `verify-ca` does.
        let url = format!("{}?sslmode={mode}&sslrootcert={other}", base(&db));
        let msg = refused(&url, &db.password, &host_port).await;
        assert!(msg.contains("UnknownIssuer"), "{mode}: {msg}");
    }
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_name_and_verify_ca_accepts_it() {
    let db = fresh17().await;
    // The TCP connection goes to 127.0.0.1; the name checked is `host`.
    let conninfo = |mode: &str| {
        format!(
            "host=not-in-the-certificate.test hostaddr=127.0.0.1 port={} user={} password={} dbname={} \
             sslmode={mode} sslrootcert={}",
            db.port,
            db.user,
            db.password,
            db.name,
            ca(&db)
        )
    };
    let msg =
        refused(&conninfo("verify-full"), &db.password, &format!("not-in-the-certificate.test:{}", db.port)).await;
    assert!(msg.contains("not valid for name"), "{msg}");
    let client = maint_db::connect(&Secret::new(conninfo("verify-ca"))).await.unwrap();
    assert!(encrypted(&client).await);
}

#[tokio::test]
async fn require_and_prefer_encrypt_without_a_ca_and_disable_does_not() {
    let db = fresh17().await;
    for (query, tls) in [("?sslmode=require", true), ("", true), ("?sslmode=prefer", true), ("?sslmode=disable", false)]
    {
        let client = maint_db::connect(&Secret::new(format!("{}{query}", base(&db)))).await.unwrap();
        assert_eq!(encrypted(&client).await, tls, "{query}");
    }
}

#[tokio::test]
async fn disable_against_a_hostssl_only_server_fails_with_the_servers_message() {
    let pg = Postgres::shared_17_hostssl_only().await;
    let host_port = format!("{}:{}", pg.host, pg.port);
    let msg = refused(&pg.plain_url("postgres"), "maint-test", &host_port).await;
    assert!(msg.contains("no pg_hba.conf entry") && msg.contains("no encryption"), "{msg}");
    // The same server over TLS: verified, and with the default `prefer`.
    assert!(encrypted(&maint_db::connect(&Secret::new(pg.url("postgres"))).await.unwrap()).await);
    let prefer = pg.plain_url("postgres").replace("?sslmode=disable", "");
    assert!(encrypted(&maint_db::connect(&Secret::new(prefer)).await.unwrap()).await);
}
