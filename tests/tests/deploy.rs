//! `deploy/` as operators use it: the Kubernetes manifests load (strictly) and their embedded
//! configuration passes `maint config-check`; the systemd units pass `systemd-analyze verify`;
//! the metrics textfiles of a real daily run pass `promtool check metrics`; the alert rules
//! pass `promtool check rules` and their unit tests; the Grafana dashboard queries only
//! metrics we export.
//!
//! The tools are required, not optional: `scripts/test-env` installs `promtool` (Debian's
//! `prometheus`) and `systemd-analyze`. The `maint` binary is the workspace's own build
//! (`cargo test --workspace` builds it; alone: `cargo build -p maint` first).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("maint-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a tool the suite needs; a missing one fails the test with the way to get it.
fn tool(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program).args(args).current_dir(dir).output().unwrap_or_else(|e| {
        panic!("cannot run {program}: {e}; scripts/test-env installs it (promtool: Debian package prometheus)")
    })
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The `maint` binary of this build (next to the test binaries' `deps/`).
fn maint_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("maint");
    assert!(bin.exists(), "{} is missing: build it with `cargo build -p maint`", bin.display());
    bin
}

/// Every YAML document of a file, as JSON values.
fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text).map(|doc| Value::deserialize(doc).unwrap()).collect()
}

fn manifests() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        out.extend(documents(&std::fs::read_to_string(&f).unwrap()).into_iter().map(|d| (name.clone(), d)));
    }
    out
}

/// Paths of `input` that did not survive the round trip through the typed object (fields
/// the type does not know, so Kubernetes would refuse or drop them), or changed on the way.
fn dropped(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => dropped(v, w, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                dropped(v, w, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        _ => out.push(format!("{path} (changed: {input} -> {output})")),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    Ok(serde_json::to_value(typed).unwrap())
}

/// Deserializes one object into the k8s-openapi type of its kind (Kubernetes 1.33) and
/// refuses any field the type does not know.
fn check_strictly(v: &Value) -> Result<(), String> {
    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let kind = (v["apiVersion"].as_str().unwrap_or_default(), v["kind"].as_str().unwrap_or_default());
    let out = match kind {
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(v),
        ("v1", "Secret") => round_trip::<Secret>(v),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(v),
        ("batch/v1", "CronJob") => round_trip::<CronJob>(v),
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(v),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(v),
        other => Err(format!("no type for {other:?}: add it to this test")),
    }?;
    let mut unknown = Vec::new();
    dropped(v, &out, "", &mut unknown);
    if unknown.is_empty() { Ok(()) } else { Err(format!("unknown or changed fields: {}", unknown.join(", "))) }
}

#[test]
fn every_kubernetes_object_deserializes_strictly() {
    let objects = manifests();
    let kinds: Vec<&str> = objects.iter().map(|(_, v)| v["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "CronJob").count(), 3, "{kinds:?}");
    for (file, v) in &objects {
        if let Err(e) = check_strictly(v) {
            panic!("{file}: {} {}: {e}", v["kind"], v["metadata"]["name"]);
        }
    }
    // The check catches a typo the types would otherwise drop silently.
    let monthly = std::fs::read_to_string(repo().join("deploy/kubernetes/cronjob-monthly.yaml")).unwrap();
    assert!(monthly.contains("serviceAccountName:"));
    let typo = documents(&monthly.replace("serviceAccountName:", "serviceAcountName:"));
    let err = check_strictly(&typo[0]).unwrap_err();
    assert!(err.contains(".spec.jobTemplate.spec.template.spec.serviceAcountName"), "{err}");
}

#[test]
fn the_monthly_cronjob_runs_as_the_rbac_service_account() {
    let objects = manifests();
    let find = |kind: &str, name: &str| {
        objects.iter().find(|(_, v)| v["kind"] == kind && v["metadata"]["name"] == name).map(|(_, v)| v).unwrap()
    };
    let monthly = find("CronJob", "aindusdb-maint-monthly");
    let sa = &monthly["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"];
    let account = find("ServiceAccount", sa.as_str().unwrap_or("(none)"));
    let binding = find("RoleBinding", "aindusdb-maint-update");
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
}

#[test]
fn the_configmap_is_generated_from_the_deploy_files() {
    let out = tool(&repo().join("scripts/gen-configmap").to_string_lossy(), &["--stdout"], &repo());
    assert!(out.status.success(), "{}", text(&out));
    let committed = std::fs::read_to_string(repo().join("deploy/kubernetes/config.yaml")).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "deploy/kubernetes/config.yaml drifted from deploy/maint.toml or deploy/maintenance.yaml: run scripts/gen-configmap"
    );
    let docs = documents(&committed);
    for file in ["maint.toml", "maintenance.yaml"] {
        let real = std::fs::read_to_string(repo().join("deploy").join(file)).unwrap();
        assert_eq!(docs[0]["data"][file].as_str(), Some(real.as_str()), "{file}");
    }
}

/// Runs `maint config-check` the way each CronJob would run `maint`: its ConfigMap volumes
/// written out under a scratch directory (their mount paths mapped there), its `env` and
/// the variables of its `envFrom` Secrets, its `--config`, and nothing from this process.
#[test]
fn every_embedded_config_passes_config_check() {
    let objects = manifests();
    let find = |kind: &str, name: &str| {
        objects.iter().find(|(_, v)| v["kind"] == kind && v["metadata"]["name"] == name).map(|(_, v)| v).unwrap()
    };
    let mut checked = 0;
    for (_, job) in objects.iter().filter(|(_, v)| v["kind"] == "CronJob") {
        let name = job["metadata"]["name"].as_str().unwrap();
        let pod = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        let root = scratch(name);
        let mut mounts = Vec::new();
        for (i, volume) in pod["volumes"].as_array().unwrap().iter().enumerate() {
            let Some(cm) = volume["configMap"]["name"].as_str() else { continue };
            let dir = root.join(format!("volume-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            for (file, content) in find("ConfigMap", cm)["data"].as_object().unwrap() {
                std::fs::write(dir.join(file), content.as_str().unwrap()).unwrap();
            }
            mounts.push((volume["name"].as_str().unwrap().to_owned(), dir));
        }
        for container in pod["containers"].as_array().unwrap() {
            let mut paths = Vec::new();
            for m in container["volumeMounts"].as_array().unwrap() {
                if let Some((_, dir)) = mounts.iter().find(|(n, _)| m["name"] == n.as_str()) {
                    paths.push((m["mountPath"].as_str().unwrap().to_owned(), dir.to_string_lossy().into_owned()));
                }
            }
            let map = |s: &str| paths.iter().fold(s.to_owned(), |s, (from, to)| s.replace(from, to));
            let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
            let config = args.iter().position(|a| *a == "--config").map(|i| map(args[i + 1])).unwrap();
            let mut cmd = Command::new(maint_bin());
            cmd.args(["config-check", "--config", &config]).current_dir(&root).env_clear();
            for e in container["env"].as_array().into_iter().flatten() {
                cmd.env(e["name"].as_str().unwrap(), map(e["value"].as_str().unwrap()));
            }
            for from in container["envFrom"].as_array().into_iter().flatten() {
                let secret = find("Secret", from["secretRef"]["name"].as_str().unwrap());
                for (k, v) in secret["stringData"].as_object().unwrap() {
                    cmd.env(k, v.as_str().unwrap());
                }
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{name}: maint config-check: {}", text(&out));
            assert!(String::from_utf8_lossy(&out.stdout).contains("config: ok (3 windows in "), "{}", text(&out));
            checked += 1;
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
    assert_eq!(checked, 3);
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let dir = scratch("systemd");
    let maint = maint_bin();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(repo().join("deploy/systemd")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The units run /usr/local/bin/maint: verify wants it to exist, so the copies run this build's.
        let unit = std::fs::read_to_string(&path).unwrap().replace("/usr/local/bin/maint", &maint.to_string_lossy());
        if name.ends_with(".timer") {
            assert!(unit.contains("\nPersistent=true\n"), "{name}: a missed window must be caught up");
        }
        std::fs::write(dir.join(&name), unit).unwrap();
        units.push(format!("./{name}"));
    }
    units.sort();
    assert_eq!(units.len(), 6, "{units:?}");
    let args: Vec<&str> = std::iter::once("verify").chain(units.iter().map(String::as_str)).collect();
    let out = tool("systemd-analyze", &args, &dir);
    // verify exits 0 on unknown keys but prints them: any output is a failure.
    assert!(out.status.success() && text(&out).trim().is_empty(), "systemd-analyze verify: {}", text(&out));
    // It does catch a typo.
    let daily = dir.join("aindusdb-maint-daily.service");
    let unit = std::fs::read_to_string(&daily).unwrap();
    std::fs::write(&daily, unit.replace("PrivateTmp=", "PrivatTmp=")).unwrap();
    let out = tool("systemd-analyze", &["verify", "./aindusdb-maint-daily.service"], &dir);
    assert!(text(&out).contains("Unknown key 'PrivatTmp'"), "{}", text(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = repo().join("deploy/prometheus");
    let out = tool("promtool", &["check", "rules", "alerts.yaml"], &dir);
    assert!(out.status.success(), "promtool check rules: {}", text(&out));
    let out = tool("promtool", &["test", "rules", "alerts.test.yaml"], &dir);
    assert!(out.status.success(), "promtool test rules: {}", text(&out));
}

/// The metric names `maint` and the metrics collection write, from their code.
fn exported_names() -> BTreeSet<String> {
    let run = std::fs::read_to_string(repo().join("bins/maint/src/metrics.rs")).unwrap();
    let mut names: BTreeSet<String> = run
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("maint_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    names.extend(maint_health::METRICS.iter().map(|(n, ..)| (*n).to_owned()));
    names
}

/// Metric names in a PromQL expression: identifiers of ours (`maint_`, `aindusdb_`).
fn names_in(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("maint_") || w.starts_with("aindusdb_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_dashboard_and_the_alerts_query_only_metrics_we_export() {
    let exported = exported_names();
    assert!(exported.contains("maint_task_status") && exported.contains("aindusdb_pg_database_bytes"));
    let text = std::fs::read_to_string(repo().join("deploy/grafana/aindusdb-maint.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    for key in ["uid", "title", "schemaVersion", "panels"] {
        assert!(!dash[key].is_null(), "the dashboard has no {key}");
    }
    let mut panels: Vec<&Value> = dash["panels"].as_array().unwrap().iter().collect();
    // Rows may hold panels of their own.
    panels.extend(panels.clone().iter().flat_map(|p| p["panels"].as_array().into_iter().flatten()));
    let mut seen = BTreeSet::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap();
        assert!(p["id"].is_u64() && p["gridPos"]["w"].is_u64() && p["datasource"].is_object(), "{title}");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let names = names_in(expr);
            assert!(!names.is_empty(), "{title}: {expr} names none of our metrics");
            for n in names {
                assert!(exported.contains(&n), "{title}: {n} is not a metric we export ({exported:?})");
                seen.insert(n);
            }
        }
    }
    for wanted in ["maint_window_status", "maint_task_duration_seconds", "aindusdb_pg_indexes_bytes"] {
        assert!(seen.contains(wanted), "the dashboard shows no {wanted}");
    }
    let rules = documents(&std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yaml")).unwrap());
    for rule in rules[0]["groups"][0]["rules"].as_array().unwrap() {
        for n in names_in(rule["expr"].as_str().unwrap()) {
            assert!(exported.contains(&n), "alert {}: {n} is not a metric we export", rule["alert"]);
        }
    }
}

/// A real daily run (PostgreSQL 17 over TLS, Redis, S3 with one backup) writes both
/// textfiles: `maint run`'s and the metrics collection's; promtool has nothing to say.
#[tokio::test]
async fn the_textfiles_of_a_daily_run_pass_promtool_check_metrics() {
    use maint_testkit::{ACCESS_KEY, Postgres, REGION, S3, SECRET_KEY};
    let db = Postgres::shared().await.fresh_database().await;
    let bucket = S3::shared().await.fresh_bucket().await;
    let opts = maint_backup::CreateOptions::new(maint_core::Secret::new(db.url()));
    maint_backup::create(&bucket.store(), &opts, &tokio_util::sync::CancellationToken::new()).await.unwrap();
    let redis = maint_testkit::Redis::shared().await.fresh_db().await;
    let dir = scratch(&format!("run-{}", db.name));
    let config = dir.join("maint.toml");
    std::fs::write(
        &config,
        format!(
            "calendar = \"{repo}/deploy/maintenance.yaml\"\nlock_file = \"{dir}/run.lock\"\nmetrics_textfile = \"{dir}/maint.prom\"\n\
             [notify]\ntargets = [\"log://stderr\"]\n[health]\nredis_url = \"{redis}\"\n[database]\nurl = \"{db}\"\n\
             [backup]\nstore = \"s3://{bucket}\"\n[collect]\ntextfile = \"{dir}/aindusdb.prom\"\n[logs]\npaths = [\"{dir}/app.log\"]\n",
            repo = repo().display(),
            dir = dir.display(),
            redis = redis.url,
            db = db.url(),
            bucket = bucket.bucket,
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = tokio::process::Command::new(maint_bin())
        .args(["run", "daily", "--json", "--config"])
        .arg(&config)
        .current_dir(&dir)
        .env("AWS_ENDPOINT", &bucket.endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env("AWS_ALLOW_HTTP", "true")
        .env_remove("MAINT_DATABASE_URL")
        .env_remove("MAINT_BACKUP_STORE")
        .env_remove("MAINT_CONFIG")
        .env_remove("MAINT_CALENDAR")
        .env_remove("MAINT_METRICS_TEXTFILE")
        .output()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let collect = report["tasks"].as_array().unwrap().iter().find(|t| t["task"] == "metrics-collection").unwrap();
    assert_eq!(collect["status"], "ok", "{report}");
    let exported = exported_names();
    for file in ["maint.prom", "aindusdb.prom"] {
        let content = std::fs::read_to_string(dir.join(file)).unwrap();
        let out = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(dir.join(file)).unwrap())
            .output()
            .expect("promtool: scripts/test-env installs it (Debian package prometheus)");
        assert!(
            out.status.success() && text(&out).is_empty(),
            "promtool check metrics {file}: {}\n{content}",
            text(&out)
        );
        for line in content.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(exported.contains(name), "{file}: {name} is written but not among the names the code lists");
        }
    }
    let health = std::fs::read_to_string(dir.join("aindusdb.prom")).unwrap();
    assert!(health.contains("\naindusdb_backups 1\n"), "{health}");
    assert!(health.contains("# TYPE aindusdb_pg_xact_commit_total counter\n"), "{health}");
    assert!(health.contains("\naindusdb_backup_last_timestamp_seconds "), "{health}");
    let run = std::fs::read_to_string(dir.join("maint.prom")).unwrap();
    assert!(run.contains("maint_window_last_run_timestamp_seconds{window=\"daily\"} "), "{run}");
    std::fs::remove_dir_all(&dir).unwrap();
}
