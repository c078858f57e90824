//! The crate diagram in docs/architecture.md is the workspace's real dependency graph:
//! generated from `cargo metadata` and compared here, so it cannot go stale again.
//! `MAINT_BLESS=1 cargo test -p maint-tests --test layout` rewrites it after a change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const START: &str = "<!-- crate-graph:start (generated: MAINT_BLESS=1 cargo test -p maint-tests --test layout) -->";
const END: &str = "<!-- crate-graph:end -->";

/// Each workspace package (by its directory) with the workspace packages it depends on
/// (normal dependencies; dev and build dependencies are not layering).
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let dir = |p: &serde_json::Value| {
        let manifest = Path::new(p["manifest_path"].as_str().unwrap());
        manifest.parent().unwrap().strip_prefix(root).unwrap().display().to_string()
    };
    let by_name: BTreeMap<&str, String> = packages.iter().map(|p| (p["name"].as_str().unwrap(), dir(p))).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| by_name.get(d["name"].as_str().unwrap()).cloned())
                .collect();
            (dir(p), deps)
        })
        .collect()
}

fn render(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    let width = graph.keys().map(String::len).max().unwrap_or(0);
    let mut out = format!("```text\n{:width$}  depends on (inside the workspace)\n", "package");
    for (pkg, deps) in graph {
        let deps = if deps.is_empty() { "-".to_owned() } else { deps.iter().cloned().collect::<Vec<_>>().join(", ") };
        out.push_str(&format!("{pkg:width$}  {deps}\n"));
    }
    out.push_str("```\n");
    out
}

#[test]
fn the_crate_diagram_is_the_real_dependency_graph() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let doc_path = root.join("docs/architecture.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let (Some(start), Some(end)) = (doc.find(START), doc.find(END)) else {
        panic!("docs/architecture.md has no `{START}` ... `{END}` block");
    };
    let body_start = start + START.len() + 1;
    let want = render(&graph(root));
    if std::env::var_os("MAINT_BLESS").is_some() {
        std::fs::write(&doc_path, format!("{}{want}{}", &doc[..body_start], &doc[end..])).unwrap();
        return;
    }
    assert_eq!(
        &doc[body_start..end],
        want,
        "docs/architecture.md's crate diagram is stale: rerun with MAINT_BLESS=1 and describe the change"
    );
}

#[test]
fn binaries_never_depend_on_binaries_and_libraries_never_on_binaries() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // Known today (issue 15 item 7 moves maint-update's library part to a crate): listed so
    // that no new edge of the kind appears unnoticed.
    let known: BTreeSet<(&str, &str)> = [("bins/maint", "bins/maint-update")].into();
    for (pkg, deps) in graph(root) {
        for dep in deps.iter().filter(|d| d.starts_with("bins/")) {
            assert!(known.contains(&(pkg.as_str(), dep.as_str())), "{pkg} depends on the binary package {dep}");
        }
    }
}
