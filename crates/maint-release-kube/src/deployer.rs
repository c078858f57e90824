use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use maint_core::one_line;
use maint_release::{Deployer, Error, Revision};
use serde_json::Value;
use tokio::time::Instant;

use crate::plan::{self, CHANGE_CAUSE, Progress, WorkloadKind};
use crate::{KubeConfig, Rollout};

const FIELD_MANAGER: &str = "maint-release";

/// [`Deployer`] on Kubernetes (kube-rs): `apps/v1` Deployments and Argo Rollouts
/// (`argoproj.io/v1alpha1`).
///
/// - `set_image` patches the container's image with a `kubernetes.io/change-cause`
///   (a strategic merge patch on a Deployment, as `kubectl set image`; a JSON patch with a
///   `test` of the container's name on a Rollout).
/// - `wait_rollout` judges completion as `kubectl rollout status` does and fails at once on
///   `ProgressDeadlineExceeded` (a Rollout: on phase `Degraded`, which Argo reaches on its
///   progress deadline without aborting by default), or after the overall timeout.
/// - `undo` patches back the pod template of the previous revision found in the
///   workload's ReplicaSets, as `kubectl rollout undo` (and `kubectl argo rollouts undo`) do.
///   After a `set_image` of this deployer, only the workloads it changed are undone.
pub struct KubeDeployer {
    client: Client,
    namespace: String,
    config: KubeConfig,
    poll_interval: Duration,
    progress_deadline: Option<i32>,
    /// `None` until `set_image` runs; then the workloads it changed.
    changed: Mutex<Option<HashSet<String>>>,
}

impl std::fmt::Debug for KubeDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDeployer")
            .field("namespace", &self.namespace)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A Deployment or a Rollout, as read from the API server.
enum Workload {
    Deployment(Box<Deployment>),
    Rollout(Box<Rollout>),
}

impl Workload {
    fn kind(&self) -> WorkloadKind {
        match self {
            Workload::Deployment(_) => WorkloadKind::Deployment,
            Workload::Rollout(_) => WorkloadKind::Rollout,
        }
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::Rollout(r) => &r.metadata,
        }
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Workload::Rollout(r) => r.spec.template.as_ref(),
        }
    }

    fn selector(&self) -> Option<&LabelSelector> {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().map(|s| &s.selector),
            Workload::Rollout(r) => r.spec.selector.as_ref(),
        }
    }

    fn paused(&self) -> bool {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().and_then(|s| s.paused) == Some(true),
            Workload::Rollout(r) => r.spec.paused == Some(true),
        }
    }

    /// Whether the controller has acted on the latest spec.
    fn spec_observed(&self) -> bool {
        let generation = self.meta().generation.unwrap_or(0);
        match self {
            Workload::Deployment(d) => d.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0) >= generation,
            Workload::Rollout(r) => r
                .status
                .as_ref()
                .and_then(|s| s.observed_generation.as_deref())
                .is_none_or(|o| o.parse::<i64>().map_or(true, |o| o >= generation)),
        }
    }

    fn judge(&self) -> Progress {
        match self {
            Workload::Deployment(d) => plan::judge_deployment(d),
            Workload::Rollout(r) => plan::judge_rollout(r),
        }
    }
}

fn api_err(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |e| match &e {
        kube::Error::Api(s) => Error::Deploy(format!("{what}: {} {}: {}", s.code, s.reason, s.message)),
        _ => Error::Deploy(format!("{what}: {}", one_line(&e))),
    }
}

/// `k=v,k2=v2` from a selector's `matchLabels` (ReplicaSets are then filtered by owner,
/// so `matchExpressions` may be left out).
fn label_selector(selector: Option<&LabelSelector>) -> String {
    let labels = selector.and_then(|s| s.match_labels.as_ref());
    labels.iter().flat_map(|m| m.iter()).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec, kind: WorkloadKind) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(kind.hash_label());
        }
        t
    };
    strip(a) == strip(b)
}

impl KubeDeployer {
    /// A deployer over `client` with the settings of `config` (checked here).
    pub fn new(client: Client, config: &KubeConfig) -> Result<Self, Error> {
        config.validate()?;
        let namespace = config.namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
        let progress_deadline = config.progress_deadline_secs.map(|s| i32::try_from(s).unwrap_or(i32::MAX));
        Ok(KubeDeployer {
            client,
            namespace,
            poll_interval: Duration::from_secs_f64(config.poll_interval_secs),
            progress_deadline,
            config: config.clone(),
            changed: Mutex::new(None),
        })
    }

    /// The namespace of the workloads.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The kind and container (`None`: the first) configured for a workload.
    fn target(&self, workload: &str) -> (WorkloadKind, Option<&str>) {
        let w = self.config.workloads.iter().find(|w| w.name == workload);
        let kind = w.and_then(|w| w.kind).unwrap_or(self.config.kind);
        let container = w.and_then(|w| w.container.as_deref()).or(self.config.container.as_deref());
        (kind, container)
    }

    fn what(&self, kind: WorkloadKind, name: &str) -> String {
        format!("{} {name} in namespace {}", kind.noun(), self.namespace)
    }

    async fn get(&self, kind: WorkloadKind, name: &str) -> Result<Workload, Error> {
        let what = format!("get {}", self.what(kind, name));
        Ok(match kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
                Workload::Deployment(Box::new(api.get(name).await.map_err(api_err(what))?))
            }
            WorkloadKind::Rollout => {
                let api: Api<Rollout> = Api::namespaced(self.client.clone(), &self.namespace);
                Workload::Rollout(Box::new(api.get(name).await.map_err(api_err(what))?))
            }
        })
    }

    async fn patch(&self, kind: WorkloadKind, name: &str, patch: Value, json_patch: bool) -> Result<(), Error> {
        let what = format!("patch {}", self.what(kind, name));
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
        let patch = if json_patch {
            let ops: json_patch::Patch =
                serde_json::from_value(patch).map_err(|e| Error::Deploy(format!("{what}: bad JSON patch: {e}")))?;
            Patch::Json::<Value>(ops)
        } else {
            Patch::Strategic(patch)
        };
        match kind {
            WorkloadKind::Deployment => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
                api.patch(name, &params, &patch).await.map(drop).map_err(api_err(what))
            }
            WorkloadKind::Rollout => {
                let api: Api<Rollout> = Api::namespaced(self.client.clone(), &self.namespace);
                api.patch(name, &params, &patch).await.map(drop).map_err(api_err(what))
            }
        }
    }

    /// The ReplicaSets the workload controls, oldest revision first.
    async fn replica_sets(&self, w: &Workload, name: &str) -> Result<Vec<ReplicaSet>, Error> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = label_selector(w.selector());
        let params = if selector.is_empty() { ListParams::default() } else { ListParams::default().labels(&selector) };
        let what = format!("list the replica sets of {}", self.what(w.kind(), name));
        Ok(api.list(&params).await.map_err(api_err(what))?.items)
    }

    fn template<'a>(&self, w: &'a Workload, name: &str) -> Result<&'a PodTemplateSpec, Error> {
        w.template().ok_or_else(|| {
            Error::Deploy(format!("{}: no spec.template (a workloadRef is not supported)", self.what(w.kind(), name)))
        })
    }

    async fn set_one(&self, name: &str, image: &str) -> Result<bool, Error> {
        let (kind, container) = self.target(name);
        let w = self.get(kind, name).await?;
        if w.paused() {
            return Err(Error::Deploy(format!("{} is paused (spec.paused): resume it first", self.what(kind, name))));
        }
        let template = self.template(&w, name)?;
        let (index, c) = plan::container(template, container)
            .map_err(|m| Error::Deploy(format!("{} {m}", self.what(kind, name))))?;
        if c.image.as_deref() == Some(image) {
            tracing::info!("{} already runs {image}", self.what(kind, name));
            return Ok(false);
        }
        let cname = c.name.clone();
        match &w {
            Workload::Deployment(_) => {
                self.patch(kind, name, plan::deployment_image_patch(&cname, image, self.progress_deadline), false)
                    .await?;
            }
            Workload::Rollout(r) => {
                let patch = plan::rollout_image_patch(r, index, &cname, image, self.progress_deadline);
                self.patch(kind, name, patch, true).await?;
            }
        }
        tracing::info!("{}: set image {cname}={image}", self.what(kind, name));
        Ok(true)
    }

    async fn wait_one(&self, name: &str, deadline: Instant, timeout: Duration) -> Result<(), Error> {
        let (kind, _) = self.target(name);
        loop {
            let w = self.get(kind, name).await?;
            match w.judge() {
                Progress::Done => return Ok(()),
                Progress::Failed(why) => return Err(Error::Deploy(format!("{} {why}", self.what(kind, name)))),
                Progress::Waiting(why) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::Deploy(format!(
                            "{} did not complete within {timeout:?}: {why}",
                            self.what(kind, name)
                        )));
                    }
                    tracing::debug!("{}: {why}", self.what(kind, name));
                    tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
                }
            }
        }
    }

    async fn undo_one(&self, name: &str) -> Result<(), Error> {
        let (kind, _) = self.target(name);
        let w = self.get(kind, name).await?;
        if kind == WorkloadKind::Deployment && w.paused() {
            return Err(Error::Deploy(format!(
                "{} is paused (spec.paused): a paused deployment cannot be rolled back, resume it first",
                self.what(kind, name)
            )));
        }
        let uid = w.meta().uid.clone().unwrap_or_default();
        let list = self.replica_sets(&w, name).await?;
        let owned = plan::owned_replica_sets(&list, &uid, kind);
        let (number, rs) = plan::undo_target(&owned, w.spec_observed()).ok_or_else(|| {
            Error::Deploy(format!("{}: no previous revision in its ReplicaSet history", self.what(kind, name)))
        })?;
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        let template = plan::template_without_hash(rs, kind).ok_or_else(|| {
            Error::Deploy(format!("{}: replica set {rs_name} has no pod template", self.what(kind, name)))
        })?;
        if w.template().is_some_and(|t| same_template(t, &template, kind)) {
            tracing::info!("{}: already at the template of revision {number}", self.what(kind, name));
            return Ok(());
        }
        self.patch(kind, name, plan::undo_patch(kind, w.meta(), rs, &template), true).await?;
        tracing::info!("{}: rolled back to revision {number} (replica set {rs_name})", self.what(kind, name));
        Ok(())
    }
}

#[async_trait]
impl Deployer for KubeDeployer {
    fn name(&self) -> String {
        format!("kubernetes/{}", self.namespace)
    }

    async fn set_image(&self, workloads: &[String], image: &str) -> Result<(), Error> {
        self.changed.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashSet::new);
        for w in workloads {
            if self.set_one(w, image).await? {
                let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
                changed.get_or_insert_with(HashSet::new).insert(w.clone());
            }
        }
        Ok(())
    }

    async fn wait_rollout(&self, workloads: &[String], timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        for w in workloads {
            self.wait_one(w, deadline, timeout).await?;
        }
        Ok(())
    }

    /// Undoes every workload (after a `set_image` of this deployer: every one it changed),
    /// going on after a failure and reporting all of them.
    async fn undo(&self, workloads: &[String]) -> Result<(), Error> {
        let changed = self.changed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut errors = Vec::new();
        for w in workloads {
            if changed.as_ref().is_some_and(|c| !c.contains(w)) {
                tracing::info!("{w}: not changed by this run, nothing to undo");
                continue;
            }
            match self.undo_one(w).await {
                Ok(()) => {
                    if let Some(c) = self.changed.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        c.remove(w);
                    }
                }
                Err(e) => errors.push(e.to_string().trim_start_matches("deploy: ").to_owned()),
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(Error::Deploy(errors.join("; "))) }
    }

    async fn history(&self, workload: &str) -> Result<Vec<Revision>, Error> {
        let (kind, container) = self.target(workload);
        let w = self.get(kind, workload).await?;
        let uid = w.meta().uid.clone().unwrap_or_default();
        let list = self.replica_sets(&w, workload).await?;
        let owned = plan::owned_replica_sets(&list, &uid, kind);
        let current = plan::revision(w.meta(), kind.revision_annotation()).or_else(|| owned.last().map(|(n, _)| *n));
        Ok(owned
            .iter()
            .map(|(number, rs)| {
                let template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
                let image = template
                    .and_then(|t| plan::container(t, container).ok())
                    .and_then(|(_, c)| c.image.clone())
                    .unwrap_or_default();
                Revision {
                    workload: workload.to_owned(),
                    number: *number,
                    image,
                    current: Some(*number) == current,
                    change_cause: rs.metadata.annotations.as_ref().and_then(|a| a.get(CHANGE_CAUSE)).cloned(),
                }
            })
            .collect())
    }
}
