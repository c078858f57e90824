//! maint-backup against a real PostgreSQL (pg_dump / pg_restore) and a real S3 server.

use std::sync::Arc;

use chrono::Utc;
use maint_backup::object_store::path::Path;
use maint_backup::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use maint_backup::{
    Compression, CreateOptions, DigestMethod, DumpLayout, Error, Ledger, Manifest, RestoreOptions, SCRATCH_PREFIX,
    catalog, create, day_prefix, manifest_key, open_store, restore_test, verify_all, verify_one,
};
use maint_core::Secret;
use maint_testkit::{Postgres, S3, TestDb};
use tokio_util::sync::CancellationToken;

/// Restore tests share one server and check that no scratch database is left: they take
/// turns, so one test never sees another's live scratch database.
static RESTORES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn seeded() -> TestDb {
    let db = Postgres::shared().await.fresh_database().await;
    let client = db.pool().get().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE vectors (id bigserial PRIMARY KEY, label text, embedding float8[], created_at timestamptz DEFAULT now());
             INSERT INTO vectors (label, embedding) SELECT 'v' || g, ARRAY[g * 0.1, g * 0.2] FROM generate_series(1, 5000) g;
             CREATE TABLE \"veritas results; DROP TABLE x\" (k text, v jsonb);
             INSERT INTO \"veritas results; DROP TABLE x\" SELECT 'k' || g, jsonb_build_object('n', g) FROM generate_series(1, 300) g;
             INSERT INTO \"veritas results; DROP TABLE x\" VALUES ('dup', '{}'), ('dup', '{}');
             CREATE SCHEMA audit; CREATE TABLE audit.\"Événements\" (at timestamptz, what text);
             INSERT INTO audit.\"Événements\" VALUES (now(), 'created');
             CREATE TABLE empty_table (x int);
             CREATE TABLE settings (k text, doc json, at point);
             INSERT INTO settings SELECT 's' || g, json_build_object('g', g), point(g, -g) FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    db
}

async fn store() -> Arc<dyn ObjectStore> {
    S3::shared().await.fresh_bucket().await.store()
}

async fn admin_url() -> Secret {
    Secret::new(Postgres::shared().await.url("postgres"))
}

async fn scratch_databases() -> Vec<String> {
    let pg = Postgres::shared().await;
    let (client, conn) =
        maint_backup::tokio_postgres::connect(&pg.plain_url("postgres"), maint_backup::tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client
        .query("SELECT datname FROM pg_database WHERE datname LIKE 'maint\\_restore\\_%'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn make(store: &Arc<dyn ObjectStore>, db: &TestDb, compression: Compression) -> Manifest {
    let mut opts = CreateOptions::new(Secret::new(db.url()));
    opts.compression = compression;
    create(store, &opts, &CancellationToken::new()).await.unwrap()
}

async fn catalog_all(store: &Arc<dyn ObjectStore>) -> usize {
    use futures::TryStreamExt;
    let all: Vec<_> = store.list(Some(&Path::from("backups"))).try_collect().await.unwrap();
    all.iter().filter(|o| o.location.as_ref().contains("ledger")).count()
}

async fn entry(store: &Arc<dyn ObjectStore>, key: &str) -> maint_backup::BackupEntry {
    let day = key.rsplit_once('/').unwrap().0.to_owned();
    catalog(store, &day).await.unwrap().into_iter().find(|e| e.key == key).unwrap()
}

#[tokio::test]
async fn round_trip_create_verify_restore() {
    let _turn = RESTORES.lock().await;
    let (db, store) = (seeded().await, store().await);
    let m = make(&store, &db, Compression::Gzip).await;
    assert!(m.key.starts_with(&format!("{}/{}-", day_prefix(Utc::now().date_naive()), db.name)), "{}", m.key);
    assert!(m.key.ends_with(".dump.gz"));
    assert_eq!(m.tables.len(), 5);
    let hostile = m.tables.iter().find(|t| t.table == "veritas results; DROP TABLE x").unwrap();
    assert_eq!(hostile.rows, 302);
    assert_eq!(hostile.method, DigestMethod::Record);
    // json and point have no hash function: that table is digested as text, the others not.
    let settings = m.tables.iter().find(|t| t.table == "settings").unwrap();
    assert_eq!((settings.rows, settings.method), (50, DigestMethod::Text));
    assert!(m.dump_bytes > m.stored_bytes / 2 && m.stored_bytes > 0);

    let entries = catalog(&store, &day_prefix(Utc::now().date_naive())).await.unwrap();
    assert_eq!(entries.len(), 1);
    let v = verify_one(&store, &entries[0]).await;
    assert!(v.ok, "{v:?}");
    assert_eq!(v.bytes_read, m.stored_bytes);

    let opts = RestoreOptions::new(admin_url().await);
    let r = restore_test(&store, &m.key, &opts, &CancellationToken::new()).await.unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    assert_eq!(r.tables_compared, 5);
    assert!(r.scratch_database.starts_with(SCRATCH_PREFIX));
    assert!(scratch_databases().await.is_empty(), "the scratch database is dropped");

    // A second backup of the same database never overwrites the first.
    let again = make(&store, &db, Compression::Zstd).await;
    assert_ne!(again.key, m.key);
    assert!(again.key.ends_with(".dump.zst"));
    let plain = make(&store, &db, Compression::None).await;
    let all = catalog(&store, "backups").await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(verify_all(&store, &all, 2).await.iter().all(|v| v.ok));
    assert_eq!(again.dump_sha256.len(), 64);
    assert_eq!(plain.stored_sha256, plain.dump_sha256, "uncompressed: stored bytes are the dump");
}

async fn rewrite(store: &Arc<dyn ObjectStore>, key: &str, f: impl FnOnce(Vec<u8>) -> Vec<u8>) {
    let path = Path::from(key);
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
    store.put(&path, PutPayload::from(f(bytes))).await.unwrap();
}

#[tokio::test]
async fn corruption_of_every_kind_is_caught_and_named() {
    let (db, store) = (seeded().await, store().await);
    let mut keys = Vec::new();
    for _ in 0..6 {
        keys.push(make(&store, &db, Compression::Gzip).await.key);
    }
    let offset = (Utc::now().timestamp_subsec_nanos() as usize) % 1000 + 100;
    rewrite(&store, &keys[0], |mut b| {
        b[offset] ^= 0x01;
        b
    })
    .await;
    rewrite(&store, &keys[1], |b| b[..b.len() / 2].to_vec()).await;
    store.delete(&Path::from(manifest_key(&keys[2]))).await.unwrap();
    // Swap two backups' manifests.
    let m3 = store.get(&Path::from(manifest_key(&keys[3]))).await.unwrap().bytes().await.unwrap();
    let m4 = store.get(&Path::from(manifest_key(&keys[4]))).await.unwrap().bytes().await.unwrap();
    store.put(&Path::from(manifest_key(&keys[3])), PutPayload::from(m4)).await.unwrap();
    store.put(&Path::from(manifest_key(&keys[4])), PutPayload::from(m3)).await.unwrap();
    // Not gzip at all under .gz.
    rewrite(&store, &keys[5], |_| b"PGDMP this is not gzip".to_vec()).await;
    // A manifest without its dump.
    let orphan = keys[5].replace(".dump.gz", "-orphan.dump.gz");
    let mut m: Manifest =
        serde_json::from_slice(&store.get(&Path::from(manifest_key(&keys[0]))).await.unwrap().bytes().await.unwrap())
            .unwrap();
    m.key = orphan.clone();
    store.put(&Path::from(manifest_key(&orphan)), PutPayload::from(serde_json::to_vec(&m).unwrap())).await.unwrap();

    let entries = catalog(&store, "backups").await.unwrap();
    let results = verify_all(&store, &entries, 3).await;
    let problems = |key: &str| results.iter().find(|r| r.key == key).unwrap().problems.join("; ");
    assert!(results.iter().all(|r| !r.ok), "{results:#?}");
    let p0 = problems(&keys[0]);
    assert!(p0.contains("SHA-256 of the stored bytes") || p0.contains("cannot read as gzip"), "bit flip: {p0}");
    let p1 = problems(&keys[1]);
    assert!(p1.contains("cannot read as gzip") || p1.contains("stored size"), "truncation: {p1}");
    assert!(problems(&keys[2]).contains("no manifest"), "{}", problems(&keys[2]));
    assert!(problems(&keys[3]).contains("belongs to another backup"), "{}", problems(&keys[3]));
    assert!(problems(&keys[4]).contains("belongs to another backup"));
    assert!(problems(&keys[5]).contains("cannot read as gzip"), "{}", problems(&keys[5]));
    assert!(problems(&orphan).contains("dump object is missing"), "{}", problems(&orphan));
}

#[tokio::test]
async fn a_manifest_of_another_day_names_the_drifted_table() {
    let _turn = RESTORES.lock().await;
    let (db, store) = (seeded().await, store().await);
    let before = make(&store, &db, Compression::Gzip).await;
    db.pool().get().await.unwrap().batch_execute("UPDATE vectors SET label = 'drifted' WHERE id = 42").await.unwrap();
    let mut after = make(&store, &db, Compression::Gzip).await;
    let changed: Vec<&str> =
        before.tables.iter().zip(&after.tables).filter(|(a, b)| a != b).map(|(a, _)| a.table.as_str()).collect();
    assert_eq!(changed, ["vectors"], "only the changed table's fingerprint moves");
    // Restore `before` against `after`'s fingerprints.
    after.key = before.key.clone();
    store
        .put(&Path::from(manifest_key(&before.key)), PutPayload::from(serde_json::to_vec(&after).unwrap()))
        .await
        .unwrap();
    let opts = RestoreOptions::new(admin_url().await);
    let r = restore_test(&store, &before.key, &opts, &CancellationToken::new()).await.unwrap();
    assert_eq!(r.mismatches.len(), 1, "{:?}", r.mismatches);
    assert_eq!(r.mismatches[0].table, "public.vectors");
    assert!(scratch_databases().await.is_empty());
}

#[tokio::test]
async fn failed_cancelled_and_crashed_restores_leave_no_scratch_database() {
    let _turn = RESTORES.lock().await;
    let (db, store) = (seeded().await, store().await);
    let good = make(&store, &db, Compression::Gzip).await;
    let bad = make(&store, &db, Compression::Gzip).await;
    // Valid gzip, but not a dump: pg_restore fails midway.
    rewrite(&store, &bad.key, |_| {
        use std::io::Write;
        let mut gz = flate2_free_gzip();
        gz.write_all(b"PGDMP garbage").unwrap();
        gz.into_inner()
    })
    .await;
    let opts = RestoreOptions::new(admin_url().await);
    let err = restore_test(&store, &bad.key, &opts, &CancellationToken::new()).await.unwrap_err();
    // pg_restore runs with --verbose (to fingerprint tables as they load): the message keeps
    // its error lines, not the info lines.
    match &err {
        Error::Tool { tool: "pg_restore", message } => {
            assert!(message.contains("error"), "{message}");
            assert!(!message.contains("connecting to database"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(scratch_databases().await.is_empty());

    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = restore_test(&store, &good.key, &opts, &cancel).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(scratch_databases().await.is_empty());

    // A crashed run left its scratch database behind, commented as such: the next run drops it.
    let pg = Postgres::shared().await;
    let (client, conn) =
        maint_backup::tokio_postgres::connect(&pg.plain_url("postgres"), maint_backup::tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client.batch_execute(&format!("CREATE DATABASE {SCRATCH_PREFIX}19990101000000000_1")).await.unwrap();
    client
        .batch_execute(&format!(
            "COMMENT ON DATABASE {SCRATCH_PREFIX}19990101000000000_1 IS '{}{}; safe to drop'",
            maint_backup::SCRATCH_MARKER,
            good.key
        ))
        .await
        .unwrap();
    let r = restore_test(&store, &good.key, &opts, &CancellationToken::new()).await.unwrap();
    assert_eq!(r.leftovers_dropped, [format!("{SCRATCH_PREFIX}19990101000000000_1")]);
    assert!(scratch_databases().await.is_empty());
}

/// A minimal gzip member writer (stored blocks), so the test needs no compression crate.
struct Gz(Vec<u8>, Vec<u8>);
fn flate2_free_gzip() -> Gz {
    Gz(Vec::new(), Vec::new())
}
impl std::io::Write for Gz {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl Gz {
    fn into_inner(mut self) -> Vec<u8> {
        let data = std::mem::take(&mut self.1);
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        out.push(1); // final stored block
        let len = data.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(&crc32(&data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.0 = out;
        self.0
    }
}
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test]
async fn ledger_tracks_verifications_and_survives_corruption() {
    let (db, store) = (seeded().await, store().await);
    let m = make(&store, &db, Compression::Gzip).await;
    let entries = vec![entry(&store, &m.key).await];
    let (mut ledger, warning) = Ledger::load(&store, true).await.unwrap();
    assert!(warning.is_none());
    assert_eq!(ledger.due(&entries, Utc::now(), 7).len(), 1, "never verified: due");
    let v = verify_one(&store, &entries[0]).await;
    let e = ledger.entries.entry(v.key.clone()).or_default();
    e.verified_at = Some(Utc::now());
    e.verified_ok = Some(v.ok);
    ledger.save(&store).await.unwrap();
    let (loaded, _) = Ledger::load(&store, true).await.unwrap();
    assert_eq!(loaded, ledger);
    assert!(loaded.due(&entries, Utc::now(), 7).is_empty());
    assert_eq!(loaded.due(&entries, Utc::now() + chrono::TimeDelta::days(8), 7).len(), 1);

    store.put(&Path::from(maint_backup::LEDGER_KEY), PutPayload::from_static(b"{not json")).await.unwrap();
    let (dry, warning) = Ledger::load(&store, false).await.unwrap();
    assert!(dry.entries.is_empty() && warning.unwrap().contains("is corrupt"));
    assert_eq!(catalog_all(&store).await, 1, "a dry load writes nothing");
    let (empty, warning) = Ledger::load(&store, true).await.unwrap();
    assert!(empty.entries.is_empty());
    assert!(warning.unwrap().contains("set aside as backups/ledger.json.corrupt-"));
}

#[tokio::test]
async fn bad_input_is_named() {
    for (url, want) in
        [("ftp://bucket/x", "unknown scheme \"ftp\""), ("s3://ab/x", "no bucket name"), ("not a url", "not a URL")]
    {
        let e = open_store(url).err().unwrap();
        assert!(e.is_bad_input() && e.to_string().contains(want), "{url}: {e}");
    }
    let store = store().await;
    let opts = RestoreOptions::new(admin_url().await);
    let e =
        restore_test(&store, "backups/2026/01/01/none.dump.gz", &opts, &CancellationToken::new()).await.unwrap_err();
    assert!(e.is_bad_input() && e.to_string().contains("no manifest"), "{e}");
    let pg = Postgres::shared().await;
    let wrong = Secret::new(format!("postgresql://postgres:wrong@{}:{}/postgres", pg.host, pg.port));
    let e = create(&store, &CreateOptions::new(wrong), &CancellationToken::new()).await.unwrap_err();
    assert!(maint_core::one_line(&e).contains("password authentication failed"), "{}", maint_core::one_line(&e));
    let db = Postgres::shared().await.fresh_database().await;
    let mut opts = CreateOptions::new(Secret::new(db.url()));
    opts.pg_dump = Some("/nonexistent/pg_dump".into());
    let e = create(&store, &opts, &CancellationToken::new()).await.unwrap_err();
    assert_eq!(e.to_string(), "pg_dump failed: not found (install the PostgreSQL client tools)");
}

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(std::path::PathBuf);
impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TempDir(std::env::temp_dir().join(format!("maint-backup-{what}-{}-{n}", std::process::id())))
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_file_store_keeps_its_dumps_private() {
    use std::os::unix::fs::PermissionsExt;
    let db = seeded().await;
    let dir = TempDir::new("private");
    let root = dir.0.join("store");
    let store = open_store(&format!("file://{}", root.display())).unwrap();
    make(&store, &db, Compression::Gzip).await;
    make(&store, &db, Compression::Zstd).await;
    // The ledger, written by a verification.
    let report = maint_backup::verify_report(&store, "backups", None, 2, false).await.unwrap();
    assert_eq!(report.metrics["backups_verified"], 2.0, "{report:?}");
    let (mut files, mut dirs) = (Vec::new(), vec![root.clone()]);
    let mut todo = vec![root.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p.clone());
                todo.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert_eq!(files.len(), 5, "two dumps, two manifests, the ledger: {files:?}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for f in &files {
        assert_eq!(mode(f), 0o600, "{} is {:o}", f.display(), mode(f));
    }
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{} is {:o}", d.display(), mode(d));
    }
}

/// A `pg_restore` that waits before restoring, so a test can look at a live run.
fn slow_pg_restore(dir: &TempDir, seconds: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("pg_restore");
    std::fs::write(&path, format!("#!/bin/sh\nsleep {seconds}\nexec '{}' \"$@\"\n", pg17_tool("pg_restore").display()))
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn connect(url: &str) -> maint_backup::tokio_postgres::Client {
    let (client, conn) = maint_backup::tokio_postgres::connect(url, maint_backup::tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Waits for a scratch database (not one of `known`) to appear with a comment; returns
/// its name and the comment.
async fn live_scratch(admin: &maint_backup::tokio_postgres::Client, known: &[String]) -> (String, String) {
    for _ in 0..400 {
        let rows = admin
            .query(
                "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database
                 WHERE datname LIKE 'maint\\_restore\\_%' AND shobj_description(oid, 'pg_database') IS NOT NULL",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = rows.iter().find(|r| !known.contains(&r.get::<_, String>(0))) {
            return (row.get(0), row.get(1));
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no live scratch database appeared");
}

const MARKER: &str = "aindusdb-maint restore test of ";

#[tokio::test]
async fn cleanup_drops_only_marked_leftovers_and_never_a_live_run() {
    let _turn = RESTORES.lock().await;
    let (db, store) = (seeded().await, store().await);
    let m = make(&store, &db, Compression::Gzip).await;
    let pg = Postgres::shared().await;
    let admin = connect(&pg.plain_url("postgres")).await;
    // A live run through another admin database, slowed down so it is live for a while.
    let tmp = TempDir::new("slow");
    let other_admin = pg.fresh_database().await;
    let opts = RestoreOptions {
        pg_restore: Some(slow_pg_restore(&tmp, 3)),
        ..RestoreOptions::new(Secret::new(other_admin.url()))
    };
    let (store2, key) = (store.clone(), m.key.clone());
    let live = tokio::spawn(async move { restore_test(&store2, &key, &opts, &CancellationToken::new()).await });
    let (scratch, _) = live_scratch(&admin, &[]).await;
    // Someone's database that merely has the prefix, and a crashed run's leftover.
    let unmarked = format!("{SCRATCH_PREFIX}x_{}", std::process::id());
    let crashed = format!("{SCRATCH_PREFIX}19990101000000000_{}", std::process::id());
    admin.batch_execute(&format!("CREATE DATABASE {unmarked}")).await.unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {crashed}")).await.unwrap();
    admin
        .batch_execute(&format!("COMMENT ON DATABASE {crashed} IS '{MARKER}backups/x.dump.gz; safe to drop'"))
        .await
        .unwrap();

    let dropped = maint_backup::drop_leftovers(&admin).await.unwrap();
    let left = scratch_databases().await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {unmarked}")).await.unwrap();
    assert_eq!(dropped, [crashed], "only the marked leftover of a dead run goes");
    assert!(left.contains(&unmarked), "a database without the marker survives: {left:?}");
    assert!(left.contains(&scratch), "the live run's scratch database survives: {left:?}");
    let outcome = live.await.unwrap().unwrap();
    assert!(outcome.mismatches.is_empty(), "{:?}", outcome.mismatches);
    assert_eq!(outcome.scratch_database, scratch);
    assert!(scratch_databases().await.is_empty());
}

#[tokio::test]
async fn a_hostile_key_reaches_the_comment_as_one_literal() {
    let _turn = RESTORES.lock().await;
    let (db, store) = (seeded().await, store().await);
    let m = make(&store, &db, Compression::Gzip).await;
    // The same backup under a key full of quotes, backslashes and dollar quotes.
    let pwned = format!("maint_pwned_{}", std::process::id());
    let key =
        format!("backups/2026/01/01/x\\'; CREATE TABLE {pwned} (); -- $$ '' \\\\ $q$-20260101T000000000Z.dump.gz");
    let dump = store.get(&Path::from(m.key.as_str())).await.unwrap().bytes().await.unwrap();
    store.put(&Path::from(key.as_str()), PutPayload::from(dump)).await.unwrap();
    let mut manifest = m.clone();
    manifest.key = key.clone();
    store.put(&Path::from(manifest_key(&key)), PutPayload::from(serde_json::to_vec(&manifest).unwrap())).await.unwrap();

    // An admin connection where backslashes escape in plain literals.
    let other_admin = Postgres::shared().await.fresh_database().await;
    let admin_url = format!("{}&options=-c%20standard_conforming_strings%3Doff", other_admin.url());
    let tmp = TempDir::new("hostile");
    let opts =
        RestoreOptions { pg_restore: Some(slow_pg_restore(&tmp, 1)), ..RestoreOptions::new(Secret::new(admin_url)) };
    let (store2, key2) = (store.clone(), key.clone());
    let run = tokio::spawn(async move { restore_test(&store2, &key2, &opts, &CancellationToken::new()).await });
    let admin = connect(&Postgres::shared().await.plain_url("postgres")).await;
    let (_, comment) = live_scratch(&admin, &[]).await;
    let outcome = run.await.unwrap();
    assert_eq!(comment, format!("{MARKER}{key}; safe to drop"));
    let injected: i64 = connect(&other_admin.plain_url())
        .await
        .query_one("SELECT count(*) FROM pg_class WHERE relname = $1", &[&pwned])
        .await
        .unwrap()
        .get(0);
    assert_eq!(injected, 0, "nothing but the comment ran");
    assert!(outcome.unwrap().mismatches.is_empty());
    assert!(scratch_databases().await.is_empty());
}

/// A store where "another runner" records a verification in the ledger at a chosen moment:
/// the first time an operation of the chosen kind (`put` or not) touches `trigger`, just
/// before that operation.
#[derive(Debug)]
struct Interloper {
    inner: Arc<dyn ObjectStore>,
    trigger: String,
    on_put: bool,
    entry: String,
    fired: std::sync::atomic::AtomicBool,
}

impl std::fmt::Display for Interloper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interloper({})", self.inner)
    }
}

impl Interloper {
    fn wrap(inner: &Arc<dyn ObjectStore>, trigger: &str, on_put: bool, entry: &str) -> Arc<dyn ObjectStore> {
        Arc::new(Interloper {
            inner: inner.clone(),
            trigger: trigger.into(),
            on_put,
            entry: entry.into(),
            fired: false.into(),
        })
    }

    async fn maybe_interlope(&self, location: &Path, put: bool) {
        if location.as_ref() == self.trigger
            && put == self.on_put
            && !self.fired.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let (mut ledger, _) = Ledger::load(&self.inner, false).await.unwrap();
            let e = ledger.entries.entry(self.entry.clone()).or_default();
            e.verified_at = Some(Utc::now());
            e.verified_ok = Some(true);
            ledger.save(&self.inner).await.unwrap();
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for Interloper {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: maint_backup::object_store::PutOptions,
    ) -> maint_backup::object_store::Result<maint_backup::object_store::PutResult> {
        self.maybe_interlope(location, true).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: maint_backup::object_store::PutMultipartOptions,
    ) -> maint_backup::object_store::Result<Box<dyn maint_backup::object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: maint_backup::object_store::GetOptions,
    ) -> maint_backup::object_store::Result<maint_backup::object_store::GetResult> {
        self.maybe_interlope(location, false).await;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<'static, maint_backup::object_store::Result<Path>>,
    ) -> futures::stream::BoxStream<'static, maint_backup::object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, maint_backup::object_store::Result<maint_backup::object_store::ObjectMeta>>
    {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> maint_backup::object_store::Result<maint_backup::object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: maint_backup::object_store::CopyOptions,
    ) -> maint_backup::object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_verification_recorded_during_a_restore_test_survives_it() {
    let _turn = RESTORES.lock().await;
    let (db, store) = (seeded().await, store().await);
    let m = make(&store, &db, Compression::Gzip).await;
    // While the dump is being read (hours, for a big one), another run records a verification.
    let interloped = Interloper::wrap(&store, &m.key, false, "backups/2026/01/01/other-20260101T000000000Z.dump.gz");
    let opts = RestoreOptions::new(admin_url().await);
    let report =
        maint_backup::restore_report(&interloped, Some(m.key.clone()), &opts, false, &CancellationToken::new())
            .await
            .unwrap();
    assert_eq!(report.status, maint_core::Status::Ok, "{report:?}");
    let (ledger, _) = Ledger::load(&store, false).await.unwrap();
    let other = &ledger.entries["backups/2026/01/01/other-20260101T000000000Z.dump.gz"];
    assert_eq!(other.verified_ok, Some(true), "the verification written meanwhile survives: {ledger:?}");
    assert_eq!(ledger.entries[&m.key].restore_ok, Some(true), "{ledger:?}");
}

#[tokio::test]
async fn a_ledger_update_retries_when_another_run_wrote_first() {
    let store = store().await;
    let mine = "backups/2026/01/01/mine-20260101T000000000Z.dump.gz";
    for existing in [false, true] {
        if existing {
            // The ledger exists: the write is conditional on its ETag (If-Match).
            Ledger::default().save(&store).await.unwrap();
        } else {
            store.delete(&Path::from(maint_backup::LEDGER_KEY)).await.unwrap();
        }
        // Another run writes the ledger between this update's read and its write.
        let theirs = format!("backups/2026/01/01/theirs-{existing}-20260101T000000000Z.dump.gz");
        let interloped = Interloper::wrap(&store, maint_backup::LEDGER_KEY, true, &theirs);
        let mut applied = 0;
        let warning = Ledger::update(&interloped, |l| {
            applied += 1;
            l.entries.entry(mine.to_owned()).or_default().restore_ok = Some(true);
        })
        .await
        .unwrap();
        assert!(warning.is_none());
        assert_eq!(applied, 2, "read again and applied again after the conflict");
        let (ledger, _) = Ledger::load(&store, false).await.unwrap();
        assert_eq!(ledger.entries[&theirs].verified_ok, Some(true), "{ledger:?}");
        assert_eq!(ledger.entries[mine].restore_ok, Some(true), "{ledger:?}");
    }

    // A corrupt ledger is set aside and replaced.
    store.put(&Path::from(maint_backup::LEDGER_KEY), PutPayload::from_static(b"{not json")).await.unwrap();
    let warning = Ledger::update(&store, |l| l.entries.entry(mine.to_owned()).or_default().verified_ok = Some(false))
        .await
        .unwrap()
        .unwrap();
    assert!(warning.contains("set aside as backups/ledger.json.corrupt-"), "{warning}");
    let (ledger, warning) = Ledger::load(&store, false).await.unwrap();
    assert!(warning.is_none());
    assert_eq!(ledger.entries.len(), 1);
}

/// A backup and a restore test give up at the URL's `connect_timeout` on a server that
/// accepts the connection and never answers the startup (the driver's own timeout covers
/// only the TCP connect: they waited forever): a failure (exit 1) naming the host and port.
#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_connect_timeout() {
    let store = store().await;
    let m = make(&store, &Postgres::shared().await.fresh_database().await, Compression::Gzip).await;
    let port = maint_testkit::silent_server();
    let url = Secret::new(format!("postgresql://maint:HUNTER2@127.0.0.1:{port}/postgres?connect_timeout=2"));
    let (backup, restore) = (CreateOptions::new(url.clone()), RestoreOptions::new(url));
    let cancel = CancellationToken::new();
    let both =
        async { tokio::join!(create(&store, &backup, &cancel), restore_test(&store, &m.key, &restore, &cancel)) };
    let (created, restored) =
        tokio::time::timeout(std::time::Duration::from_secs(30), both).await.expect("gave up within 30 s");
    let want = format!("cannot connect to PostgreSQL at 127.0.0.1:{port}/postgres: no answer within 2s");
    for e in [created.unwrap_err(), restored.unwrap_err()] {
        let msg = maint_core::one_line(&e);
        assert!(msg.starts_with(&want) && !msg.contains("HUNTER2"), "{msg}");
        assert!(!e.is_bad_input(), "{msg}");
    }
}

/// The PostgreSQL 17 client tools `scripts/test-env` installs (`MAINT_TEST_PG17_CLIENT`).
fn pg17_tool(tool: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("MAINT_TEST_PG17_CLIENT")
        .filter(|d| !d.is_empty())
        .expect("MAINT_TEST_PG17_CLIENT is not set; run the tests through scripts/test-env");
    std::path::Path::new(&dir).join(tool)
}

/// Over `sslmode=verify-full&sslrootcert=<CA>` (which the driver alone refuses), against
/// PostgreSQL 17 with its own client tools: the backup is made, verified and restored, and
/// `pg_dump` got the TLS settings through the environment libpq reads (a wrapper records
/// them; libpq with `verify-full` connects only when the certificate verifies).
#[tokio::test]
async fn create_verify_and_restore_over_verified_tls_with_the_17_clients() {
    use std::os::unix::fs::PermissionsExt;
    let _turn = RESTORES.lock().await;
    let pg = Postgres::shared().await;
    let db = pg.fresh_database().await;
    let client = db.pool().get().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE docs (id bigserial PRIMARY KEY, body text);
             INSERT INTO docs (body) SELECT 'd' || g FROM generate_series(1, 500) g;",
        )
        .await
        .unwrap();
    let tmp = TempDir::new("tls");
    std::fs::create_dir_all(&tmp.0).unwrap();
    let seen = tmp.0.join("env");
    let wrapper = tmp.0.join("pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf 'PGSSLMODE=%s\\nPGSSLROOTCERT=%s\\n' \"$PGSSLMODE\" \"$PGSSLROOTCERT\" > '{}'\nexec '{}' \"$@\"\n",
            seen.display(),
            pg17_tool("pg_dump").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();

    let store = store().await;
    let mut opts = CreateOptions::new(Secret::new(db.url()));
    opts.pg_dump = Some(wrapper);
    let m = create(&store, &opts, &CancellationToken::new()).await.unwrap();
    assert!(m.server_version.starts_with("17"), "{}", m.server_version);
    assert_eq!(m.tables.len(), 1);
    let env = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(env, format!("PGSSLMODE=verify-full\nPGSSLROOTCERT={}\n", pg.ca().unwrap().display()));

    let v = verify_one(&store, &entry(&store, &m.key).await).await;
    assert!(v.ok, "{v:?}");
    let mut restore = RestoreOptions::new(Secret::new(pg.url("postgres")));
    restore.pg_restore = Some(pg17_tool("pg_restore"));
    let r = restore_test(&store, &m.key, &restore, &CancellationToken::new()).await.unwrap();
    assert!(r.mismatches.is_empty() && r.tables_compared == 1, "{r:?}");
}

/// A search root in Debian's layout (`<root>/<major>/bin/<tool>`) holding the given tools.
fn client_root(dir: &TempDir, tools: &[(&str, &str)]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.0.join("postgresql");
    for (major_tool, script) in tools {
        let path = root.join(major_tool);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

/// A PostgreSQL 17 server and only a 15 client installed: the backup fails before the
/// store is touched, with one line naming the server's version and the package to install
/// (a failure, exit 1, not bad input).
#[tokio::test]
async fn a_server_newer_than_every_client_fails_before_the_store_is_touched() {
    let pg = Postgres::shared().await;
    let db = pg.fresh_database().await;
    let tmp = TempDir::new("old-client");
    let root = client_root(&tmp, &[("15/bin/pg_dump", "#!/bin/sh\necho ran > \"$0.ran\"\nexit 1\n")]);
    let store = store().await;
    let mut opts = CreateOptions::new(Secret::new(db.url()));
    opts.client_root = root.clone();
    let e = create(&store, &opts, &CancellationToken::new()).await.unwrap_err();
    let msg = maint_core::one_line(&e);
    assert!(!e.is_bad_input(), "{msg}");
    let newest = format!("the newest pg_dump under {} is 15; install postgresql-client-17", root.display());
    assert!(msg.starts_with("pg_dump: the server is PostgreSQL 17.") && msg.ends_with(&newest), "{msg}");
    assert!(!root.join("15/bin/pg_dump.ran").exists(), "the old client never ran");
    use futures::TryStreamExt;
    let all: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert!(all.is_empty(), "the bucket stays empty: {all:?}");

    // The restore test fails alike, before its scratch database is created.
    let _turn = RESTORES.lock().await;
    let m = {
        let mut ok = CreateOptions::new(Secret::new(db.url()));
        ok.pg_dump = Some(pg17_tool("pg_dump"));
        create(&store, &ok, &CancellationToken::new()).await.unwrap()
    };
    let old = client_root(&tmp, &[("15/bin/pg_restore", "#!/bin/sh\nexit 1\n")]);
    let mut restore = RestoreOptions::new(Secret::new(pg.url("postgres")));
    restore.client_root = old;
    let e = restore_test(&store, &m.key, &restore, &CancellationToken::new()).await.unwrap_err();
    let msg = maint_core::one_line(&e);
    assert!(msg.contains("PostgreSQL 17") && msg.contains("postgresql-client-17") && !e.is_bad_input(), "{msg}");
    let (client, conn) =
        maint_backup::tokio_postgres::connect(&pg.plain_url("postgres"), maint_backup::tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    let scratch =
        client.query("SELECT datname FROM pg_database WHERE datname LIKE 'maint\\_restore\\_%'", &[]).await.unwrap();
    assert!(scratch.is_empty(), "no scratch database was created");
}

/// With the 17 client installed next to older ones, it is the one used (the lowest major
/// that is at least the server's).
#[tokio::test]
async fn the_client_matching_the_server_is_used() {
    let pg = Postgres::shared().await;
    let db = pg.fresh_database().await;
    db.pool().get().await.unwrap().batch_execute("CREATE TABLE t AS SELECT 1 AS x").await.unwrap();
    let tmp = TempDir::new("new-client");
    let wrap = |tool: &str| format!("#!/bin/sh\necho ran > \"$0.ran\"\nexec '{}' \"$@\"\n", pg17_tool(tool).display());
    let root = client_root(
        &tmp,
        &[
            ("15/bin/pg_dump", "#!/bin/sh\nexit 1\n"),
            ("17/bin/pg_dump", &wrap("pg_dump")),
            ("17/bin/pg_restore", &wrap("pg_restore")),
            ("18/bin/pg_dump", "#!/bin/sh\nexit 1\n"),
        ],
    );
    let store = store().await;
    let mut opts = CreateOptions::new(Secret::new(db.url()));
    opts.client_root = root.clone();
    let m = create(&store, &opts, &CancellationToken::new()).await.unwrap();
    assert!(root.join("17/bin/pg_dump.ran").exists(), "the 17 pg_dump was used");
    assert_eq!(m.tables.len(), 1);
    let _turn = RESTORES.lock().await;
    let mut restore = RestoreOptions::new(Secret::new(pg.url("postgres")));
    restore.client_root = root.clone();
    let r = restore_test(&store, &m.key, &restore, &CancellationToken::new()).await.unwrap();
    assert!(r.mismatches.is_empty() && r.tables_compared == 1, "{r:?}");
    assert!(root.join("17/bin/pg_restore.ran").exists(), "the 17 pg_restore was used");
}

/// A table like AindusDB's `documents`: row-level security enabled and forced, with a
/// policy that hides every row from a session that has not set a tenant.
async fn with_forced_row_security() -> TestDb {
    let db = Postgres::shared().await.fresh_database().await;
    db.pool()
        .get()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE docs (id int PRIMARY KEY, tenant text, body text);
             INSERT INTO docs SELECT g, 't' || (g % 3), 'doc ' || g FROM generate_series(1, 300) g;
             ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
             ALTER TABLE docs FORCE ROW LEVEL SECURITY;
             CREATE POLICY tenant_isolation ON docs USING (tenant = current_setting('app.current_tenant_id', true));
             CREATE TABLE plain (x int); INSERT INTO plain VALUES (1);",
        )
        .await
        .unwrap();
    db
}

/// Gives a role of `db` (see `TestDb::as_role`) an attribute, as the superuser.
async fn alter_role(db: &TestDb, role: &TestDb, attribute: &str) {
    db.pool().get().await.unwrap().batch_execute(&format!("ALTER ROLE \"{}\" {attribute}", role.user)).await.unwrap();
}

/// Least privilege: backed up by a role with pg_read_all_data and BYPASSRLS, restore-tested
/// by a role with CREATEDB only (it owns the scratch copy, where FORCE ROW LEVEL SECURITY
/// would apply the policy to it): the fingerprints cover all 300 rows on both sides.
#[tokio::test]
async fn a_table_with_forced_row_security_is_fingerprinted_whole() {
    let _turn = RESTORES.lock().await;
    let (db, store) = (with_forced_row_security().await, store().await);
    let backup = db.as_role("backup").await;
    alter_role(&db, &backup, "BYPASSRLS").await;
    let m = make(&store, &backup, Compression::Zstd).await;
    let docs = m.tables.iter().find(|t| t.table == "docs").unwrap();
    assert_eq!(docs.rows, 300, "every row, whatever the policy");
    let v = verify_one(&store, &entry(&store, &m.key).await).await;
    assert!(v.ok, "{v:?}");

    let restorer = db.as_role("restore").await;
    alter_role(&db, &restorer, "CREATEDB").await;
    let admin = TestDb { name: "postgres".into(), ..restorer };
    let opts = RestoreOptions::new(Secret::new(admin.url()));
    let r = restore_test(&store, &m.key, &opts, &CancellationToken::new()).await.unwrap();
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    assert_eq!(r.tables_compared, 2);
    assert!(scratch_databases().await.is_empty());
}

/// A backup role the policy applies to (no BYPASSRLS, not the owner) gets one line naming
/// the table and the privilege it needs, before anything is written: never a short
/// fingerprint.
#[tokio::test]
async fn a_role_subject_to_row_security_is_told_what_it_needs() {
    let (db, store) = (with_forced_row_security().await, store().await);
    let reader = db.as_role("reader").await;
    let opts = CreateOptions::new(Secret::new(reader.url()));
    let e = create(&store, &opts, &CancellationToken::new()).await.unwrap_err();
    let msg = maint_core::one_line(&e);
    assert!(matches!(e, Error::RowSecurity { .. }), "{e:?}");
    assert!(!e.is_bad_input() && !msg.contains('\n'), "{msg}");
    assert!(msg.contains("public.docs") && msg.contains("BYPASSRLS") && msg.contains("owner"), "{msg}");
    assert!(!msg.contains("maint-test"), "no password: {msg}");
    use futures::TryStreamExt;
    let all: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert!(all.is_empty(), "nothing is written: {all:?}");
}

/// A backup made before pg_dump ran with `--compress=0` (pg_dump's default compression,
/// gzip on top, a manifest without `layout`) still verifies and restore-tests; new ones
/// name their layout.
#[tokio::test]
async fn a_backup_made_the_old_way_verifies_and_restores() {
    use sha2::{Digest, Sha256};
    let _turn = RESTORES.lock().await;
    let (db, store) = (seeded().await, store().await);
    let dump = std::process::Command::new(pg17_tool("pg_dump"))
        .args(["--format=custom", "--dbname", &db.plain_url()])
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let gzip = {
        use std::io::Write;
        let mut child = std::process::Command::new("gzip")
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = dump.stdout.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out.stdout
    };
    let (client, conn) =
        maint_backup::tokio_postgres::connect(&db.plain_url(), maint_backup::tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    let tables = maint_backup::fingerprint(&client).await.unwrap();
    let hex = |b: &[u8]| Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>();
    let key = maint_backup::backup_key(&db.name, Utc::now(), Compression::Gzip);
    let manifest = serde_json::json!({
        "format_version": 1, "key": key, "database": db.name, "server_version": "17.12",
        "compression": "gzip", "started_at": Utc::now(), "finished_at": Utc::now(),
        "stored_bytes": gzip.len(), "stored_sha256": hex(&gzip),
        "dump_bytes": dump.stdout.len(), "dump_sha256": hex(&dump.stdout), "tables": tables,
    });
    store.put(&Path::from(key.as_str()), PutPayload::from(gzip)).await.unwrap();
    store.put(&Path::from(manifest_key(&key)), PutPayload::from(serde_json::to_vec(&manifest).unwrap())).await.unwrap();

    let old = Manifest::parse(&serde_json::to_vec(&manifest).unwrap()).unwrap();
    assert_eq!(old.layout, DumpLayout::PgDumpCompressed);
    let v = verify_one(&store, &entry(&store, &key).await).await;
    assert!(v.ok, "{v:?}");
    let r =
        restore_test(&store, &key, &RestoreOptions::new(admin_url().await), &CancellationToken::new()).await.unwrap();
    assert!(r.mismatches.is_empty() && r.tables_compared == 5, "{r:?}");

    // A new backup of the same data: pg_dump -Z0, compressed once (zstd by default).
    let new = create(&store, &CreateOptions::new(Secret::new(db.url())), &CancellationToken::new()).await.unwrap();
    assert_eq!((new.layout, new.compression), (DumpLayout::PgDumpZ0, Compression::Zstd));
    assert!(new.dump_bytes > old.dump_bytes, "pg_dump did not compress: {} vs {}", new.dump_bytes, old.dump_bytes);
    assert!(verify_one(&store, &entry(&store, &new.key).await).await.ok);
}

/// The restore's index builds get their memory and workers: `PGOPTIONS` reaches the
/// server (a wrapper asks it with psql over pg_restore's own connection settings), and
/// `--jobs` is passed (with a spooled file) or not (streamed), and the restore matches.
#[tokio::test]
async fn the_restore_sets_its_index_build_memory_jobs_and_workers() {
    let _turn = RESTORES.lock().await;
    let (db, store) = (seeded().await, store().await);
    let m = make(&store, &db, Compression::Zstd).await;
    let tmp = TempDir::new("restore-settings");
    let wrapper = format!(
        "#!/bin/sh\necho \"args: $*\" > \"$0.log\"\necho \"pgoptions: $PGOPTIONS\" >> \"$0.log\"\n\
         '{}' -Atc 'SHOW maintenance_work_mem' -c 'SHOW max_parallel_maintenance_workers' >> \"$0.log\" 2>&1\n\
         exec '{}' \"$@\"\n",
        pg17_tool("psql").display(),
        pg17_tool("pg_restore").display()
    );
    let root = client_root(&tmp, &[("17/bin/pg_restore", &wrapper)]);
    let log = || std::fs::read_to_string(root.join("17/bin/pg_restore.log")).unwrap();

    let mut opts = RestoreOptions::new(admin_url().await);
    opts.client_root = root.clone();
    opts.jobs = 3;
    opts.maintenance_work_mem = Some("300MB".into());
    opts.max_parallel_maintenance_workers = 1;
    let r = restore_test(&store, &m.key, &opts, &CancellationToken::new()).await.unwrap();
    assert!(r.mismatches.is_empty() && r.tables_compared == 5, "{r:?}");
    let seen = log();
    assert!(seen.contains("--jobs=3") && seen.contains(".dump"), "a spooled file, 3 jobs: {seen}");
    assert!(
        seen.contains("pgoptions: -c maintenance_work_mem=307200kB -c max_parallel_maintenance_workers=1"),
        "{seen}"
    );
    assert!(seen.contains("\n300MB\n1\n"), "the server has them: {seen}");

    // One job: streamed, no --jobs; the default memory (the superuser reads /proc/meminfo:
    // far more than 4 GiB here, so 1 GiB) and no parallel workers.
    opts.jobs = 1;
    opts.maintenance_work_mem = None;
    opts.max_parallel_maintenance_workers = 0;
    let r = restore_test(&store, &m.key, &opts, &CancellationToken::new()).await.unwrap();
    assert!(r.mismatches.is_empty(), "{r:?}");
    let seen = log();
    assert!(!seen.contains("--jobs") && !seen.contains(".dump"), "streamed: {seen}");
    assert!(seen.contains("\n1GB\n0\n"), "{seen}");
    assert!(scratch_databases().await.is_empty());
}

/// The default `maintenance_work_mem` is capped by what the role can read of the server's
/// memory; a configured one is parsed by the server, and a bad one is bad input.
#[tokio::test]
async fn maintenance_work_mem_is_capped_by_the_memory_the_role_can_see() {
    use maint_backup::{DEFAULT_MAINTENANCE_WORK_MEM, maintenance_work_mem};
    let db = Postgres::shared().await.fresh_database().await;
    let connect = |url: String| async move {
        let (client, conn) =
            maint_backup::tokio_postgres::connect(&url, maint_backup::tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    };
    let admin = connect(db.plain_url()).await;
    assert_eq!(maintenance_work_mem(&admin, None, 1).await.unwrap(), DEFAULT_MAINTENANCE_WORK_MEM);
    assert_eq!(maintenance_work_mem(&admin, Some("2GB"), 4).await.unwrap(), 2 << 30, "as configured");
    let e = maintenance_work_mem(&admin, Some("lots"), 1).await.unwrap_err();
    assert!(e.is_bad_input() && e.to_string().starts_with("maintenance_work_mem: \"lots\""), "{e}");
    // Not allowed to read /proc/meminfo: four times shared_buffers (128MB here) is the
    // memory, a quarter of it shared by 2 jobs is 64 MB, PostgreSQL's default and the floor.
    let user = connect(db.as_role("mwm").await.plain_url()).await;
    assert_eq!(maintenance_work_mem(&user, None, 2).await.unwrap(), 64 << 20);
    assert_eq!(maintenance_work_mem(&user, None, 1).await.unwrap(), 128 << 20);
}
