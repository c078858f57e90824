//! The Kubernetes deployer against kube's mock service (`tower-test`), answering with
//! API objects shaped like a real API server's responses (tests/fixtures). Every request
//! the deployer makes is checked: method, path, query, content type and patch body.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use maint_release::{Deployer, Error};
use maint_release_kube::{KubeConfig, KubeDeployer};
use serde_json::{Value, json};
use tower_test::mock::Handle;

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/aindusdb/deployments";
const ROLLOUTS: &str = "/apis/argoproj.io/v1alpha1/namespaces/aindusdb/rollouts";
const REPLICA_SETS: &str = "/apis/apps/v1/namespaces/aindusdb/replicasets";
const SELECTOR: &str = "labelSelector=app.kubernetes.io%2Fcomponent%3Dapi%2Capp.kubernetes.io%2Fname%3Daindusdb";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// One request the deployer sent.
#[derive(Debug)]
struct Call {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

fn deployer(config: &str) -> (Arc<KubeDeployer>, Handle<Request<Body>, Response<Body>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let config: KubeConfig = toml::from_str(config).unwrap();
    (Arc::new(KubeDeployer::new(client, &config).unwrap()), handle)
}

/// Runs `work` while answering its requests with `answer` (status, JSON body); returns
/// its result and the requests it made.
async fn serve<T: Send + 'static>(
    mut handle: Handle<Request<Body>, Response<Body>>,
    work: impl Future<Output = T> + Send + 'static,
    mut answer: impl FnMut(&Call) -> (u16, Value),
) -> (T, Vec<Call>) {
    let mut task = tokio::spawn(work);
    let mut calls = Vec::new();
    loop {
        tokio::select! {
            biased;
            out = &mut task => return (out.unwrap(), calls),
            next = handle.next_request() => {
                let Some((req, send)) = next else { return (task.await.unwrap(), calls) };
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let call = Call {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or_default().to_owned(),
                    content_type: parts.headers.get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default(),
                    body: if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() },
                };
                let (status, value) = answer(&call);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&value).unwrap()))
                    .unwrap();
                send.send_response(response);
                calls.push(call);
            }
        }
    }
}

/// Answers a fixed sequence of (method, path, response), failing on anything else.
fn script(steps: Vec<(&'static str, String, Value)>) -> impl FnMut(&Call) -> (u16, Value) {
    let mut steps = steps.into_iter();
    move |call| {
        let (method, path, value) = steps.next().unwrap_or_else(|| panic!("unexpected request {call:?}"));
        assert_eq!((call.method.as_str(), call.path.as_str()), (method, path.as_str()), "{call:?}");
        (200, value)
    }
}

fn message(e: &Error) -> String {
    maint_core::one_line(e)
}

fn api() -> Vec<String> {
    vec!["api".to_owned()]
}

mod deployment {
    use super::*;

    const CONFIG: &str = "namespace = \"aindusdb\"\ncontainer = \"aindusdb\"\npoll_interval_secs = 0.01";

    #[tokio::test]
    async fn a_rollout_that_completes() {
        let (d, handle) = deployer(CONFIG);
        let api_path = format!("{DEPLOYMENTS}/api");
        let work = {
            let d = d.clone();
            async move {
                d.set_image(&api(), "registry.example/aindusdb:1.5.0").await?;
                d.wait_rollout(&api(), Duration::from_secs(3600)).await
            }
        };
        let (out, calls) = serve(
            handle,
            work,
            script(vec![
                ("GET", api_path.clone(), fixture("deployment-api-v1.4.2.json")),
                ("PATCH", api_path.clone(), fixture("deployment-api-rolling.json")),
                ("GET", api_path.clone(), fixture("deployment-api-rolling.json")),
                ("GET", api_path.clone(), fixture("deployment-api-complete.json")),
            ]),
        )
        .await;
        out.unwrap();
        assert_eq!(calls.len(), 4, "{calls:?}");
        // The image goes in by strategic merge on the container's name, as `kubectl set image`.
        let patch = &calls[1];
        assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
        assert!(patch.query.contains("fieldManager=maint-release"), "{}", patch.query);
        assert_eq!(
            patch.body,
            json!({
                "metadata": { "annotations": {
                    "kubernetes.io/change-cause": "maint-release: set image aindusdb=registry.example/aindusdb:1.5.0" } },
                "spec": { "template": { "spec": { "containers": [
                    { "name": "aindusdb", "image": "registry.example/aindusdb:1.5.0" }] } } }
            })
        );
        assert_eq!(d.name(), "kubernetes/aindusdb");
    }

    #[tokio::test]
    async fn a_rollout_stuck_past_its_progress_deadline_fails_at_once_and_names_the_reason() {
        let (d, handle) = deployer(CONFIG);
        let work = {
            let d = d.clone();
            // An hour of our own timeout: the controller's deadline decides, not this.
            async move { d.wait_rollout(&api(), Duration::from_secs(3600)).await }
        };
        let (out, calls) = serve(
            handle,
            work,
            script(vec![("GET", format!("{DEPLOYMENTS}/api"), fixture("deployment-api-stuck.json"))]),
        )
        .await;
        let e = out.unwrap_err();
        assert_eq!(
            message(&e),
            "deploy: deployment api in namespace aindusdb exceeded its progress deadline \
             (ProgressDeadlineExceeded: ReplicaSet \"api-6b8f9c7d54\" has timed out progressing.)"
        );
        assert_eq!(calls.len(), 1);
    }

    #[tokio::test]
    async fn our_own_timeout_ends_a_rollout_that_never_completes() {
        let (d, handle) = deployer(CONFIG);
        let work = {
            let d = d.clone();
            async move { d.wait_rollout(&api(), Duration::from_millis(100)).await }
        };
        let (out, calls) = serve(handle, work, |call| {
            assert_eq!((call.method.as_str(), call.path.as_str()), ("GET", format!("{DEPLOYMENTS}/api").as_str()));
            (200, fixture("deployment-api-rolling.json"))
        })
        .await;
        let e = out.unwrap_err();
        assert_eq!(
            message(&e),
            "deploy: deployment api in namespace aindusdb did not complete within 100ms: \
             2 of 3 new replicas have been updated"
        );
        assert!(calls.len() >= 2, "it polled: {calls:?}");
    }

    #[tokio::test]
    async fn undo_patches_back_the_previous_replica_set() {
        let (d, handle) = deployer(CONFIG);
        let api_path = format!("{DEPLOYMENTS}/api");
        let work = {
            let d = d.clone();
            async move { d.undo(&api()).await }
        };
        let (out, calls) = serve(
            handle,
            work,
            script(vec![
                ("GET", api_path.clone(), fixture("deployment-api-stuck.json")),
                ("GET", REPLICA_SETS.to_owned(), fixture("replicasets-api.json")),
                ("PATCH", api_path.clone(), fixture("deployment-api-v1.4.2.json")),
            ]),
        )
        .await;
        out.unwrap();
        assert_eq!(
            calls[1].query.trim_start_matches('&'),
            SELECTOR,
            "ReplicaSets are listed by the deployment's selector"
        );
        let patch = &calls[2];
        assert_eq!(patch.content_type, "application/json-patch+json");
        // Revision 2 (1.4.2): not revision 9, which has the same labels but another owner,
        // nor revision 3, the stuck one.
        let replica_sets = fixture("replicasets-api.json");
        let mut template = replica_sets["items"][3]["spec"]["template"].clone();
        assert_eq!(replica_sets["items"][3]["metadata"]["name"], "api-5d4f8c9b7");
        template["metadata"]["labels"].as_object_mut().unwrap().remove("pod-template-hash");
        template["metadata"].as_object_mut().unwrap().remove("creationTimestamp");
        assert_eq!(template["spec"]["containers"][0]["image"], "registry.example/aindusdb:1.4.2");
        let deployment = fixture("deployment-api-stuck.json");
        let annotations = &deployment["metadata"]["annotations"];
        assert_eq!(
            patch.body,
            json!([
                { "op": "replace", "path": "/spec/template", "value": template },
                { "op": "add", "path": "/metadata/annotations", "value": {
                    // kept from the deployment, as kubectl does
                    "deployment.kubernetes.io/revision": "3",
                    "kubectl.kubernetes.io/last-applied-configuration":
                        annotations["kubectl.kubernetes.io/last-applied-configuration"],
                    // taken from the replica set
                    "kubernetes.io/change-cause": "maint-release: set image aindusdb=registry.example/aindusdb:1.4.2",
                } }
            ])
        );
    }

    #[tokio::test]
    async fn history_lists_owned_revisions_with_image_and_change_cause() {
        let (d, handle) = deployer(CONFIG);
        let work = {
            let d = d.clone();
            async move { d.history("api").await }
        };
        let (out, _) = serve(
            handle,
            work,
            script(vec![
                ("GET", format!("{DEPLOYMENTS}/api"), fixture("deployment-api-stuck.json")),
                ("GET", REPLICA_SETS.to_owned(), fixture("replicasets-api.json")),
            ]),
        )
        .await;
        let revisions = out.unwrap();
        let seen: Vec<_> = revisions.iter().map(|r| (r.number, r.image.as_str(), r.current)).collect();
        assert_eq!(
            seen,
            [
                (1, "registry.example/aindusdb:1.3.0", false),
                (2, "registry.example/aindusdb:1.4.2", false),
                (3, "registry.example/aindusdb:1.5.0", true),
            ]
        );
        assert_eq!(
            revisions[1].change_cause.as_deref(),
            Some("maint-release: set image aindusdb=registry.example/aindusdb:1.4.2")
        );
    }

    #[tokio::test]
    async fn after_set_image_only_the_workloads_it_changed_are_undone() {
        let (d, handle) = deployer(CONFIG);
        let work = {
            let d = d.clone();
            async move {
                // Already at 1.4.2: nothing to patch, so nothing to undo either.
                d.set_image(&api(), "registry.example/aindusdb:1.4.2").await?;
                d.undo(&api()).await
            }
        };
        let (out, calls) = serve(
            handle,
            work,
            script(vec![("GET", format!("{DEPLOYMENTS}/api"), fixture("deployment-api-v1.4.2.json"))]),
        )
        .await;
        out.unwrap();
        assert_eq!(calls.len(), 1, "{calls:?}");
    }

    #[tokio::test]
    async fn api_errors_name_the_workload_and_the_server_message() {
        let (d, handle) = deployer(CONFIG);
        let work = {
            let d = d.clone();
            async move { d.set_image(&api(), "registry.example/aindusdb:1.5.0").await }
        };
        let (out, _) = serve(handle, work, |_| {
            let status = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "deployments.apps \"api\" not found", "reason": "NotFound",
                "details": { "name": "api", "group": "apps", "kind": "deployments" }, "code": 404 });
            (404, status)
        })
        .await;
        assert_eq!(
            message(&out.unwrap_err()),
            "deploy: get deployment api in namespace aindusdb: 404 NotFound: deployments.apps \"api\" not found"
        );
        let (d, handle) = deployer("namespace = \"aindusdb\"\ncontainer = \"web\"");
        let work = async move { d.set_image(&api(), "registry.example/aindusdb:1.5.0").await };
        let (out, _) = serve(
            handle,
            work,
            script(vec![("GET", format!("{DEPLOYMENTS}/api"), fixture("deployment-api-v1.4.2.json"))]),
        )
        .await;
        assert_eq!(
            message(&out.unwrap_err()),
            "deploy: deployment api in namespace aindusdb has no container named web (containers: aindusdb, log-shipper)"
        );
    }
}

mod rollout {
    use super::*;

    const CONFIG: &str = "namespace = \"aindusdb\"\nkind = \"rollout\"\npoll_interval_secs = 0.01";

    #[tokio::test]
    async fn a_rollout_that_completes() {
        let (d, handle) = deployer(CONFIG);
        let path = format!("{ROLLOUTS}/api");
        let work = {
            let d = d.clone();
            async move {
                d.set_image(&api(), "registry.example/aindusdb:1.5.0").await?;
                d.wait_rollout(&api(), Duration::from_secs(3600)).await
            }
        };
        let (out, calls) = serve(
            handle,
            work,
            script(vec![
                ("GET", path.clone(), fixture("rollout-api-v1.4.2.json")),
                ("PATCH", path.clone(), fixture("rollout-api-progressing.json")),
                ("GET", path.clone(), fixture("rollout-api-progressing.json")),
                ("GET", path.clone(), fixture("rollout-api-paused.json")),
                ("GET", path.clone(), fixture("rollout-api-healthy.json")),
            ]),
        )
        .await;
        out.unwrap();
        let patch = &calls[1];
        assert_eq!(patch.content_type, "application/json-patch+json");
        assert_eq!(
            patch.body,
            json!([
                { "op": "test", "path": "/spec/template/spec/containers/0/name", "value": "aindusdb" },
                { "op": "replace", "path": "/spec/template/spec/containers/0/image",
                  "value": "registry.example/aindusdb:1.5.0" },
                { "op": "add", "path": "/metadata/annotations/kubernetes.io~1change-cause",
                  "value": "maint-release: set image aindusdb=registry.example/aindusdb:1.5.0" }
            ])
        );
    }

    #[tokio::test]
    async fn a_degraded_rollout_fails_and_undo_restores_the_stable_template() {
        let (d, handle) = deployer(&format!("{CONFIG}\nprogress_deadline_secs = 120"));
        let path = format!("{ROLLOUTS}/api");
        let work = {
            let d = d.clone();
            async move {
                let waited = d.wait_rollout(&api(), Duration::from_secs(3600)).await;
                d.undo(&api()).await.map(|()| waited)
            }
        };
        let (out, calls) = serve(
            handle,
            work,
            script(vec![
                ("GET", path.clone(), fixture("rollout-api-degraded.json")),
                ("GET", path.clone(), fixture("rollout-api-degraded.json")),
                ("GET", REPLICA_SETS.to_owned(), fixture("replicasets-rollout-api.json")),
                ("PATCH", path.clone(), fixture("rollout-api-progressing.json")),
            ]),
        )
        .await;
        let waited = out.unwrap();
        assert_eq!(
            message(&waited.unwrap_err()),
            "deploy: rollout api in namespace aindusdb is Degraded \
             (ProgressDeadlineExceeded: ReplicaSet \"api-84f6b7c9d5\" has timed out progressing.)"
        );
        assert_eq!(calls[2].query.trim_start_matches('&'), SELECTOR);
        // The stable ReplicaSet (revision 1, 1.4.2) without Argo's hash label; only the
        // template is replaced, as `kubectl argo rollouts undo` does.
        let replica_sets = fixture("replicasets-rollout-api.json");
        let stable = &replica_sets["items"][1];
        assert_eq!(stable["metadata"]["annotations"]["rollout.argoproj.io/revision"], "1");
        let mut template = stable["spec"]["template"].clone();
        template["metadata"]["labels"].as_object_mut().unwrap().remove("rollouts-pod-template-hash");
        template["metadata"].as_object_mut().unwrap().remove("creationTimestamp");
        assert_eq!(template["spec"]["containers"][0]["image"], "registry.example/aindusdb:1.4.2");
        assert_eq!(calls[3].body, json!([{ "op": "replace", "path": "/spec/template", "value": template }]));
    }

    #[tokio::test]
    async fn set_image_can_set_the_progress_deadline_too() {
        let (d, handle) = deployer(&format!("{CONFIG}\nprogress_deadline_secs = 120"));
        let path = format!("{ROLLOUTS}/api");
        let work = async move { d.set_image(&api(), "registry.example/aindusdb:1.5.0").await };
        let (out, calls) = serve(
            handle,
            work,
            script(vec![
                ("GET", path.clone(), fixture("rollout-api-v1.4.2.json")),
                ("PATCH", path.clone(), fixture("rollout-api-progressing.json")),
            ]),
        )
        .await;
        out.unwrap();
        assert_eq!(calls[1].body[3], json!({ "op": "add", "path": "/spec/progressDeadlineSeconds", "value": 120 }));
    }
}
