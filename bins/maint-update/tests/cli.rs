//! The maint-update binary, run as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use maint_testkit::Postgres;

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("maint-update-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn update(config: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maint-update"));
    cmd.env_remove("MAINT_CONFIG").env_remove("MAINT_UPDATE_IMAGE");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

#[tokio::test]
async fn plan_lists_every_step_with_the_pending_migrations_of_a_real_database() {
    let db = Postgres::shared().await.fresh_database().await;
    let dir = temp_dir("plan");
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("V1__users.sql"), "CREATE TABLE users (id int);").unwrap();
    std::fs::write(migrations.join("V2__drop.sql"), "-- maint:contract\nDROP TABLE users;").unwrap();
    let config = dir.join("maint.toml");
    std::fs::write(
        &config,
        format!(
            "[update]\nworkloads = [\"api\", \"worker\"]\nimage = \"registry.example/aindusdb\"\n\n\
             [migrations]\ndir = \"{}\"\ndatabase_url = \"{}\"\n",
            migrations.display(),
            db.url()
        ),
    )
    .unwrap();
    let out = update(Some(&config), &["--json", "plan", "--to", "1.5.0", "--from", "1.4.2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(
        (r["task"].as_str(), r["status"].as_str(), r["dry_run"].as_bool()),
        (Some("system-updates"), Some("ok"), Some(true))
    );
    let steps: Vec<(&str, &str)> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["step"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("version", "ok"),
            ("change", "skipped"),
            ("expand-migrations", "planned"),
            ("rollout", "planned"),
            ("contract-migrations", "planned"),
        ]
    );
    assert_eq!(r["items"][2]["detail"], "would apply V1__users");
    assert_eq!(r["items"][4]["detail"], "would apply V2__drop");
    assert!(
        r["items"][3]["detail"]
            .as_str()
            .unwrap()
            .starts_with("would set registry.example/aindusdb:1.5.0 on api, worker")
    );

    let human = update(Some(&config), &["run", "--dry-run", "--to", "1.5.0", "--from", "1.4.2"]);
    assert!(human.status.success(), "{}", stderr(&human));
    let text = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(text.contains("expand-migrations    planned  would apply V1__users"), "{text}");
    assert!(text.contains("system-updates: ok (dry run)"), "{text}");

    let major = update(Some(&config), &["--json", "plan", "--to", "2.0.0", "--from", "1.4.2"]);
    assert_eq!(major.status.code(), Some(1));
    assert!(json(&major)["error"].as_str().unwrap().contains("a change request is required"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn without_a_deployer_a_run_is_refused_and_a_plan_needs_from() {
    let run = update(None, &["run", "--to", "1.5.0", "--image", "aindusdb"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).starts_with("maint-update: deployer: no deployer configured"), "{}", stderr(&run));
    let plan = update(None, &["--json", "plan", "--to", "1.5.0", "--image", "aindusdb"]);
    assert_eq!(plan.status.code(), Some(1));
    let r = json(&plan);
    assert_eq!(r["status"], "failed");
    assert!(r["error"].as_str().unwrap().starts_with("deploy: cannot read the running version"), "{r}");
}

#[test]
fn a_kubernetes_section_selects_the_kubernetes_deployer() {
    let dir = temp_dir("kube");
    // A kubeconfig whose API server is a closed port on this machine.
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
         clusters:\n- name: local\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n\
         contexts:\n- name: test\n  context:\n    cluster: local\n    user: maint\n    namespace: aindusdb\n\
         users:\n- name: maint\n  user:\n    token: not-a-secret\n",
    )
    .unwrap();
    let run = |config: &str, args: &[&str]| {
        let path = dir.join("maint.toml");
        std::fs::write(
            &path,
            format!("[update]\nworkloads = [\"api\"]\nimage = \"registry.example/aindusdb\"\n{config}"),
        )
        .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_maint-update"));
        cmd.env_remove("MAINT_CONFIG").env_remove("MAINT_UPDATE_IMAGE").env("KUBECONFIG", &kubeconfig);
        cmd.arg("--config").arg(&path).args(args).output().unwrap()
    };
    let plan = run("[kubernetes]\nkind = \"rollout\"\n", &["--json", "plan", "--to", "1.5.0", "--from", "1.4.2"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let r = json(&plan);
    let rollout = r["items"].as_array().unwrap().iter().find(|i| i["step"] == "rollout").unwrap();
    assert!(rollout["detail"].as_str().unwrap().contains("kubernetes/aindusdb"), "{rollout}");

    // A real run reaches the API server (here: nothing listens) and fails the rollout.
    let failed = run("[kubernetes]\n", &["--json", "run", "--to", "1.5.0", "--from", "1.4.2"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let r = json(&failed);
    assert!(r["error"].as_str().unwrap().contains("get deployment api in namespace aindusdb"), "{}", r["error"]);

    let both = run(
        "[kubernetes]\n[docker]\nservices = [{ name = \"api\", replicas = 1, port = 80, readiness_path = \"/\" }]\n",
        &["plan", "--to", "1.5.0", "--from", "1.4.2"],
    );
    assert_eq!(both.status.code(), Some(2));
    assert_eq!(stderr(&both).trim(), "maint-update: kubernetes: configure [kubernetes] or [docker] services, not both");
    let context = run("[kubernetes]\ncontext = \"prod\"\n", &["plan", "--to", "1.5.0", "--from", "1.4.2"]);
    assert_eq!(context.status.code(), Some(2));
    assert!(stderr(&context).starts_with("maint-update: kubernetes.context: "), "{}", stderr(&context));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_is_one_line_naming_the_field_with_exit_code_2() {
    let dir = temp_dir("bad");
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[update]\nworkload = [\"api\"]\n").unwrap();
    let bad_check = dir.join("check.toml");
    std::fs::write(&bad_check, "[update]\nimage = \"x\"\nchecks = [{ url = \"ftp://x\" }]\n").unwrap();
    let bad_url = dir.join("url.toml");
    std::fs::write(
        &bad_url,
        format!("[migrations]\ndir = \"{}\"\ndatabase_url = \"postgresql://u:hunter2@h:notaport/db\"\n", dir.display()),
    )
    .unwrap();
    let cases: Vec<(Option<&Path>, Vec<&str>, &str)> = vec![
        (None, vec!["plan", "--to", "1.5", "--image", "x"], "maint-update: --to: \"1.5\" is not a semantic version"),
        (None, vec!["plan", "--to", "1.5.0", "--from", "x", "--image", "x"], "maint-update: --from:"),
        (None, vec!["plan", "--to", "1.5.0"], "maint-update: --image: required"),
        (None, vec!["plan", "--to", "1.5.0", "--image", "x", "--change", "12"], "maint-update: --change:"),
        (
            None,
            vec!["plan", "--to", "1.5.0", "--image", "x", "--change", "CR-1"],
            "maint-update: changes.database_url: required",
        ),
        (Some(&unknown), vec!["plan", "--to", "1.5.0"], "maint-update: update.workload: unknown field `workload`"),
        (Some(&bad_check), vec!["plan", "--to", "1.5.0"], "maint-update: update.checks[0].url:"),
        (Some(&bad_url), vec!["plan", "--to", "1.5.0", "--image", "x"], "maint-update: migrations.database_url:"),
    ];
    for (config, args, expected) in cases {
        let out = update(config, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(!err.contains("hunter2"), "the password is never printed: {err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The stand-in images scripts/test-env builds: 1.0.0, 1.1.0, 1.2.0-broken (readiness
/// fails), 1.3.0-wrong (VERITAS answers off by 0.5), 1.4.0-lost (queries miss the upserted
/// vectors), 1.5.0-open (no token needed), 1.6.0-slow (700 ms per request).
fn standin_repo() -> String {
    let repo = std::env::var("MAINT_TEST_STANDIN_IMAGE").unwrap_or_else(|_| "local/aindusdb-standin".into());
    for tag in ["1.0.0", "1.1.0", "1.2.0-broken", "1.3.0-wrong", "1.4.0-lost", "1.5.0-open", "1.6.0-slow"] {
        let image = format!("{repo}:{tag}");
        let found = Command::new("docker").args(["image", "inspect", &image]).output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "no image {image}: run the tests through scripts/test-env, which builds the stand-in images"
        );
    }
    repo
}

/// A load balancer in front of the containers of `service`: each connection goes to the
/// running container whose name sorts first (sticky: a stand-in keeps its indexes in
/// memory, so a suite must talk to one replica). Runs on its own thread, because the test
/// blocks on the maint-update process.
fn sticky_proxy(service: String) -> String {
    use maint_release::bollard::Docker;
    use maint_release::bollard::query_parameters::ListContainersOptionsBuilder;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let docker = Docker::connect_with_local_defaults().unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let filters =
                std::collections::HashMap::from([("label", vec![format!("maint.release.service={service}")])]);
            while let Ok((mut client, _)) = listener.accept().await {
                let opts = ListContainersOptionsBuilder::new().filters(&filters).build();
                let list = docker.list_containers(Some(opts)).await.unwrap_or_default();
                let port = list
                    .iter()
                    .filter_map(|c| {
                        let name = c.names.as_ref()?.first()?.clone();
                        Some((name, c.ports.as_ref()?.iter().find(|p| p.private_port == 8080)?.public_port?))
                    })
                    .min()
                    .map(|(_, port)| port);
                tokio::spawn(async move {
                    let Some(port) = port else { return };
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
    });
    format!("http://{addr}")
}

fn running_images(service: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "--filter", &format!("label=maint.release.service={service}"), "--format", "{{.Image}}"])
        .output()
        .unwrap();
    let mut images: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    images.sort();
    images
}

#[tokio::test]
async fn run_updates_docker_replicas_around_migrations_and_rolls_back_a_broken_version() {
    use maint_core::chrono::{TimeDelta, Utc};
    use maint_release::{ApprovalPolicy, ChangeStore, NewChange, PgChangeStore};

    let standin = standin_repo();
    let db = Postgres::shared().await.fresh_database().await;
    let dir = temp_dir("run");
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("V1__users.sql"), "CREATE TABLE users (id int, legacy text);").unwrap();
    std::fs::write(migrations.join("V2__drop_legacy.sql"), "-- maint:contract\nALTER TABLE users DROP COLUMN legacy;")
        .unwrap();
    let store = PgChangeStore::new(db.pool());
    let alice = PgChangeStore::new(db.as_role("alice").await.pool());
    let start = Utc::now() - TimeDelta::minutes(1);
    for version in ["1.1.0", "1.2.0-broken"] {
        let new = NewChange {
            title: format!("AindusDB {version}"),
            requester: "bob".into(),
            approvers: vec!["alice".into()],
            estimated_minutes: 60,
            target_version: Some(version.into()),
            ..NewChange::default()
        };
        let created = store.create(new, &ApprovalPolicy::default(), start).await.unwrap();
        // alice approves through a database role of her own: the requester's cannot.
        alice.update(&created.id, &mut |c| c.approve("alice", None, start)).await.unwrap();
        store.update(&created.id, &mut |c| c.schedule("ops", start, None, start)).await.unwrap();
    }
    let service = format!("cli-standin-{}", std::process::id());
    // The built-in AindusDB suite through a load balancer, before and after each rollout.
    let proxy = sticky_proxy(service.clone());
    let junit = dir.join("smoke-junit.xml");
    // AindusDB's database (pgvector) for the suite's read; a tight performance budget
    // (the slow version answers in 700 ms).
    let (setup, conn) = maint_release::deadpool_postgres::tokio_postgres::connect(
        &db.plain_url(),
        maint_release::deadpool_postgres::tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    setup.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").await.unwrap();
    let smoke = format!(
        "[smoke]\nbase_url = \"{proxy}\"\ntoken = \"standin-token\"\npre_checks = true\njunit = \"{}\"\n\
         variables = {{ perf_requests = \"5\", p95_budget_ms = \"400\", database_url = \"{}\" }}\n",
        junit.display(),
        db.url()
    );
    let config = dir.join("maint.toml");
    std::fs::write(
        &config,
        format!(
            "[update]\nworkloads = [\"{service}\"]\nimage = \"{standin}\"\nrollout_timeout_secs = 60\n\n\
             [migrations]\ndir = \"{}\"\ndatabase_url = \"{}\"\n\n\
             [changes]\ndatabase_url = \"{}\"\n\n\
             [docker]\nreadiness_timeout_secs = 5\n\
             services = [{{ name = \"{service}\", replicas = 3, port = 8080, readiness_path = \"/health/ready\", labels = {{ maint-testkit = \"1\" }} }}]\n\n\
             [notify]\ntargets = [\"log://stderr\"]\n\n\
             [audit]\ndatabase_url = \"{}\"\n\n{smoke}",
            migrations.display(),
            db.url(),
            db.url(),
            db.url()
        ),
    )
    .unwrap();

    // First deployment (a patch from the release candidate): nothing runs yet, so no
    // pre-checks; the suite runs after the rollout.
    let first_config = dir.join("first.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&first_config, text.replace("pre_checks = true", "pre_checks = false")).unwrap();
    let first = update(Some(&first_config), &["--json", "run", "--to", "1.0.0", "--from", "1.0.0-rc.1"]);
    assert!(first.status.success(), "{}\n{}", String::from_utf8_lossy(&first.stdout), stderr(&first));
    assert_eq!(running_images(&service), vec![format!("{standin}:1.0.0"); 3]);

    // 1.0.0 -> 1.1.0 under change CR-1: expand before, contract after, change done.
    let out = update(Some(&config), &["--json", "run", "--to", "1.1.0", "--change", "CR-1", "--actor", "ops-alice"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let r = json(&out);
    assert_eq!(r["status"], "ok", "{r:#}");
    assert_eq!(r["items"][0]["detail"], "minor update 1.0.0 -> 1.1.0");
    let detail = |r: &serde_json::Value, step: &str| -> String {
        let items = r["items"].as_array().unwrap();
        let item = items.iter().find(|i| i["step"] == step).unwrap_or_else(|| panic!("no {step} step: {r:#}"));
        format!("{} {}", item["status"].as_str().unwrap(), item["detail"].as_str().unwrap())
    };
    assert_eq!(detail(&r, "pre-checks"), "ok 16 check(s) passed", "the suite ran on 1.0.0");
    assert_eq!(detail(&r, "smoke"), "ok 16 check(s) passed", "and on 1.1.0");
    assert_eq!(r["items"][1]["detail"], "CR-1 is scheduled and in its window");
    assert!(
        r["items"].as_array().unwrap().iter().any(|i| i["step"] == "change" && i["detail"] == "CR-1: now in_progress")
    );
    assert_eq!(
        r["items"].as_array().unwrap().last().unwrap(),
        &serde_json::json!({ "change": "CR-1", "state": "completed" })
    );
    assert_eq!(r["metrics"]["notifications_delivered"], 1.0);
    assert!(stderr(&out).contains("AindusDB updated from 1.0.0 to 1.1.0"), "{}", stderr(&out));
    assert_eq!(running_images(&service), vec![format!("{standin}:1.1.0"); 3]);
    let stored = store.load("CR-1").await.unwrap();
    assert_eq!(stored.state, maint_release::ChangeState::Completed);
    let actors: Vec<(&str, &str)> = stored.history.iter().map(|e| (e.action.as_str(), e.by.as_str())).collect();
    assert_eq!(&actors[3..], [("start", "ops-alice"), ("complete", "ops-alice")]);
    let (client, conn) = maint_release::deadpool_postgres::tokio_postgres::connect(
        &db.plain_url(),
        maint_release::deadpool_postgres::tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let applied: i64 = client.query_one("SELECT count(*) FROM maint_release_migrations", &[]).await.unwrap().get(0);
    assert_eq!(applied, 2);

    // A broken version is rolled back and says so; so does its change.
    let broken = update(Some(&config), &["--json", "run", "--to", "1.2.0-broken", "--change", "CR-2"]);
    assert_eq!(broken.status.code(), Some(1), "{}", stderr(&broken));
    let r = json(&broken);
    assert_eq!(r["metrics"]["rolled_back"], 1.0);
    assert!(r["error"].as_str().unwrap().contains("1.2.0-broken) not ready after"), "{r:#}");
    assert!(stderr(&broken).contains("AindusDB update failed and was rolled back"), "{}", stderr(&broken));
    assert_eq!(running_images(&service), vec![format!("{standin}:1.1.0"); 3], "1.1.0 serves again");
    assert_eq!(store.load("CR-2").await.unwrap().state, maint_release::ChangeState::RolledBack);

    // A version whose VERITAS answers are wrong is ready, so the rollout completes; the
    // smoke suite catches it and the rollout is undone.
    let wrong = update(Some(&config), &["--json", "run", "--to", "1.3.0-wrong"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    let r = json(&wrong);
    assert!(
        r["error"].as_str().unwrap().starts_with(
            "smoke: smoke checks failed on 1.3.0-wrong: veritas-sqrt: $.answer: expected 4 (±0.000001), got 4.5; \
             veritas-sum: $.answer: expected 5 (±0.000001), got 5.5"
        ),
        "{r:#}"
    );
    assert_eq!(detail(&r, "rollout"), format!("ok {standin}:1.3.0-wrong on {service} complete and healthy"));
    assert!(detail(&r, "rollback").starts_with("ok "), "{r:#}");
    assert_eq!(r["metrics"]["rolled_back"], 1.0);
    assert!(stderr(&wrong).contains("AindusDB update failed and was rolled back"), "{}", stderr(&wrong));
    assert_eq!(running_images(&service), vec![format!("{standin}:1.1.0"); 3], "1.1.0 serves again");
    // The JUnit file is the latest suite run's: the one on 1.3.0-wrong.
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite name=\"aindusdb\" tests=\"16\" failures=\"3\""), "{xml}");

    // The other faults the suite must catch, each rolled back: a query that does not
    // return the inserted vector, no token needed, a p95 over the budget.
    let faults = [
        ("1.4.0-lost", "query-vector: $.results[0].id: missing"),
        ("1.5.0-open", "auth-missing-token: HTTP 200 (expected 401)"),
        ("1.6.0-slow", "performance-health: p95 "),
    ];
    for (version, expected) in faults {
        let out = update(Some(&config), &["--json", "run", "--to", version]);
        assert_eq!(out.status.code(), Some(1), "{version}: {}", stderr(&out));
        let r = json(&out);
        let error = r["error"].as_str().unwrap();
        assert!(error.starts_with(&format!("smoke: smoke checks failed on {version}: ")), "{r:#}");
        assert!(error.contains(expected), "{version}: {error}");
        assert_eq!(r["metrics"]["rolled_back"], 1.0, "{r:#}");
        assert_eq!(running_images(&service), vec![format!("{standin}:1.1.0"); 3], "{version}: 1.1.0 serves again");
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(" ms is over the budget of 400 ms; 5 requests: p50 "), "the figures are reported: {xml}");

    type Row = (String, Option<String>, String, Option<String>, String);
    let audit: Vec<Row> = client
        .query("SELECT actor, from_version, to_version, change_id, status FROM maint_release_audit ORDER BY id", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(audit.len(), 7, "{audit:?}");
    assert_eq!(audit[1], ("ops-alice".into(), Some("1.0.0".into()), "1.1.0".into(), Some("CR-1".into()), "ok".into()));
    assert_eq!((audit[2].2.as_str(), audit[2].4.as_str()), ("1.2.0-broken", "failed"));
    assert_eq!((audit[3].2.as_str(), audit[3].4.as_str()), ("1.3.0-wrong", "failed"));
    assert_eq!((audit[6].2.as_str(), audit[6].4.as_str()), ("1.6.0-slow", "failed"));

    let ids = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=maint.release.service={service}")])
        .output()
        .unwrap();
    for id in String::from_utf8_lossy(&ids.stdout).lines() {
        Command::new("docker").args(["rm", "-f", id]).output().unwrap();
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Serves the AindusDB stand-in on its own thread (the test blocks on maint-update).
fn serve_standin(opts: aindusdb_standin::Options) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, aindusdb_standin::app(opts)).await.unwrap();
        });
    });
    format!("http://{addr}")
}

fn smoke(token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maint-update"));
    cmd.env_remove("MAINT_CONFIG").env_remove("MAINT_SMOKE_BASE_URL").env_remove("MAINT_SMOKE_TOKEN");
    if let Some(t) = token {
        cmd.env("MAINT_SMOKE_TOKEN", t);
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn smoke_runs_the_builtin_suite_writes_junit_and_fails_on_a_wrong_answer() {
    let dir = temp_dir("smoke");
    let good = serve_standin(aindusdb_standin::Options::default());
    let junit = dir.join("junit.xml");
    let junit_arg = junit.display().to_string();
    let out = smoke(Some("standin-token"), &["--json", "smoke", "--base-url", &good, "--junit", &junit_arg]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let r = json(&out);
    // No database URL: the database step is not configured, a warning, never a pass.
    assert_eq!((r["task"].as_str(), r["status"].as_str()), (Some("smoke"), Some("warning")));
    assert_eq!(
        (r["metrics"]["passed"].as_f64(), r["metrics"]["failed"].as_f64(), r["metrics"]["skipped"].as_f64()),
        (Some(15.0), Some(0.0), Some(1.0))
    );
    assert_eq!(r["items"][11]["name"], "database-read");
    assert!(r["items"][11]["error"].as_str().unwrap().starts_with("not configured: "), "{r:#}");
    assert!(r["items"][12]["detail"].as_str().unwrap().starts_with("20 requests: p50 "), "{r:#}");
    assert_eq!(r["items"][15]["name"], "delete-index");
    assert_eq!(r["items"][15]["phase"], "teardown");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"aindusdb\" tests=\"16\" failures=\"0\" errors=\"0\" skipped=\"1\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 16);

    // The service answers 4.5 for sqrt(16): exit 1, the failures named, in JUnit too.
    let wrong = serve_standin(aindusdb_standin::Options { veritas_offset: 0.5, ..Default::default() });
    let out = smoke(Some("standin-token"), &["smoke", "--base-url", &wrong, "--junit", &junit_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(
            "veritas-sqrt         failed   POST /v1/veritas/calculate $.answer: expected 4 (±0.000001), got 4.5"
        ),
        "{text}"
    );
    assert!(text.contains("delete-index         passed   DELETE /v1/vectors/indexes/idx-1"), "{text}");
    assert!(text.contains("error: aindusdb: 12 passed, 3 failed, 1 skipped; veritas-sqrt: "), "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"16\" failures=\"3\""), "{xml}");
    assert!(xml.contains("<failure message=\"$.answer: expected 5 (±0.000001), got 5.5\""), "{xml}");

    // A suite file of one's own, with a variable from --var.
    let suite = dir.join("suite.toml");
    std::fs::write(
        &suite,
        "name = \"mine\"\n[[steps]]\nname = \"version\"\npath = \"/version\"\n\
         assert = [{ path = \"$.version\", equals = \"${expected}\" }]\n",
    )
    .unwrap();
    let suite_arg = suite.display().to_string();
    let ok = smoke(None, &["smoke", "--base-url", &good, "--suite", &suite_arg, "--var", "expected=0.1.0"]);
    assert!(ok.status.success(), "{}\n{}", String::from_utf8_lossy(&ok.stdout), stderr(&ok));
    let bad = smoke(None, &["smoke", "--base-url", &good, "--suite", &suite_arg, "--var", "expected=9.9.9"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("$.version: expected \"9.9.9\", got \"0.1.0\""));

    // Bad input: one line naming the field, exit 2, nothing sent.
    std::fs::write(&suite, "name = \"mine\"\n[[steps]]\nname = \"v\"\npath = \"version\"\n").unwrap();
    let cases: Vec<(Option<&str>, Vec<&str>, String)> = vec![
        (
            None,
            vec!["smoke", "--base-url", &good],
            "maint-update: smoke.token: the built-in suite needs a bearer token".into(),
        ),
        (Some("t"), vec!["smoke"], "maint-update: --base-url: required".into()),
        (Some("t"), vec!["smoke", "--base-url", "ftp://x"], "maint-update: smoke.base_url:".into()),
        (
            Some("t"),
            vec!["smoke", "--base-url", "http://ops:hunter2@aindusdb:8080"],
            "maint-update: smoke.base_url: credentials in the URL are not supported".into(),
        ),
        (
            None,
            vec!["smoke", "--base-url", &good, "--suite", &suite_arg],
            format!("maint-update: smoke.suite: {suite_arg}: steps[0].path:"),
        ),
        (Some("t"), vec!["smoke", "--base-url", &good, "--var", "novalue"], "maint-update: --var:".into()),
    ];
    for (token, args, expected) in cases {
        let out = smoke(token, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with(&expected), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("hunter2"), "the password is never repeated");
        assert_eq!(stderr(&out).trim_end().lines().count(), 1);
    }
    std::fs::remove_dir_all(dir).unwrap();
}
