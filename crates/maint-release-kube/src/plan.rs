//! Deciding, apart from doing: whether a rollout is complete, which ReplicaSet an undo
//! goes back to, and the patches that carry the decisions out. No I/O here.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Rollout;

/// The annotation that records why a revision was made (`kubectl rollout history`'s
/// CHANGE-CAUSE column).
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The kind of a workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    #[default]
    Deployment,
    /// `argoproj.io/v1alpha1` Rollout (Argo Rollouts).
    Rollout,
}

impl WorkloadKind {
    /// The annotation that numbers the revisions of its ReplicaSets.
    pub fn revision_annotation(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment.kubernetes.io/revision",
            WorkloadKind::Rollout => "rollout.argoproj.io/revision",
        }
    }

    /// The label its controller adds to the pod template of each ReplicaSet.
    pub fn hash_label(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "pod-template-hash",
            WorkloadKind::Rollout => "rollouts-pod-template-hash",
        }
    }

    /// `deployment` or `rollout`, for messages.
    pub fn noun(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::Rollout => "rollout",
        }
    }
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Complete and healthy.
    Done,
    /// Still going; why.
    Waiting(String),
    /// It will not finish by itself; why.
    Failed(String),
}

fn count(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Judges a Deployment as `kubectl rollout status` does: the controller has observed the
/// latest generation, no `ProgressDeadlineExceeded`, all desired replicas updated, no old
/// replica left, every updated replica available. A paused deployment fails (it would
/// never finish).
pub(crate) fn judge_deployment(d: &Deployment) -> Progress {
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    if spec.paused == Some(true) {
        return Progress::Failed("is paused (spec.paused): resume it first".into());
    }
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0);
    if generation > observed {
        return Progress::Waiting(format!(
            "waiting for the controller to observe generation {generation} (observed {observed})"
        ));
    }
    let conditions = status.conditions.unwrap_or_default();
    if let Some(c) =
        conditions.iter().find(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    {
        let message = c.message.as_deref().unwrap_or_default();
        return Progress::Failed(format!("exceeded its progress deadline (ProgressDeadlineExceeded: {message})"));
    }
    let desired = spec.replicas.unwrap_or(1);
    let (replicas, updated, available) =
        (count(status.replicas), count(status.updated_replicas), count(status.available_replicas));
    if updated < desired {
        return Progress::Waiting(format!("{updated} of {desired} new replicas have been updated"));
    }
    if replicas > updated {
        return Progress::Waiting(format!("{} old replicas are pending termination", replicas - updated));
    }
    if available < updated {
        return Progress::Waiting(format!("{available} of {updated} updated replicas are available"));
    }
    Progress::Done
}

/// Whether the Argo controller has seen the latest spec (its `observedGeneration` is a
/// string; a non-numeric one is a pre-v0.10 hash and counts as observed, as Argo's CLI does).
fn rollout_generation_observed(r: &Rollout) -> bool {
    let observed = r.status.as_ref().and_then(|s| s.observed_generation.as_deref());
    let Some(observed) = observed.and_then(|o| o.parse::<i64>().ok()) else {
        return r.status.as_ref().is_some_and(|s| s.observed_generation.is_some());
    };
    observed >= r.metadata.generation.unwrap_or(0)
}

/// Judges an Argo Rollout by its controller-computed `status.phase`, as `kubectl argo
/// rollouts status` does: `Healthy` is done, `Degraded` (a progress deadline, an abort, an
/// invalid spec) fails at once, `Paused` and `Progressing` wait.
pub(crate) fn judge_rollout(r: &Rollout) -> Progress {
    let status = r.status.clone().unwrap_or_default();
    if !rollout_generation_observed(r) {
        return Progress::Waiting(format!(
            "waiting for the controller to observe generation {}",
            r.metadata.generation.unwrap_or(0)
        ));
    }
    if status.controller_pause == Some(true) && status.pause_conditions.as_ref().is_none_or(Vec::is_empty) {
        return Progress::Waiting("waiting for the rollout to unpause".into());
    }
    let message = status.message.clone().unwrap_or_default();
    match status.phase.as_deref().unwrap_or_default() {
        "Healthy" => Progress::Done,
        "Degraded" => {
            let reason = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Progressing")
                .and_then(|c| c.reason.clone())
                .unwrap_or_default();
            let message = if message.is_empty() { reason } else { message };
            Progress::Failed(format!("is Degraded ({message})"))
        }
        "" => {
            let failed = status.conditions.iter().flatten().find(|c| {
                c.type_ == "InvalidSpec"
                    || matches!(c.reason.as_deref(), Some("ProgressDeadlineExceeded" | "RolloutAborted"))
            });
            match failed {
                Some(c) => Progress::Failed(format!(
                    "is Degraded ({}: {})",
                    c.reason.as_deref().unwrap_or(&c.type_),
                    c.message.as_deref().unwrap_or_default()
                )),
                None => Progress::Waiting("no status.phase yet (Argo Rollouts 1.0 or later reports one)".into()),
            }
        }
        phase if message.is_empty() => Progress::Waiting(format!("is {phase}")),
        phase => Progress::Waiting(format!("is {phase} ({message})")),
    }
}

/// The revision number in an object's annotation `key` (`None` when absent or not a number).
pub(crate) fn revision(meta: &ObjectMeta, key: &str) -> Option<u64> {
    meta.annotations.as_ref()?.get(key)?.trim().parse().ok()
}

/// The ReplicaSets whose controller is the workload `uid`, oldest revision first; those
/// without a revision number are left out.
pub(crate) fn owned_replica_sets<'a>(
    list: &'a [ReplicaSet],
    uid: &str,
    kind: WorkloadKind,
) -> Vec<(u64, &'a ReplicaSet)> {
    let mut owned: Vec<(u64, &ReplicaSet)> = list
        .iter()
        .filter(|rs| rs.metadata.owner_references.iter().flatten().any(|o| o.controller == Some(true) && o.uid == uid))
        .filter_map(|rs| Some((revision(&rs.metadata, kind.revision_annotation())?, rs)))
        .collect();
    owned.sort_by_key(|(n, _)| *n);
    owned
}

/// The ReplicaSet an undo goes back to: the second newest revision, as `kubectl rollout
/// undo` picks it; or the newest when the controller has not yet observed the latest spec
/// (no ReplicaSet exists for it yet, so the newest one is what still runs).
pub(crate) fn undo_target<'a>(owned: &[(u64, &'a ReplicaSet)], spec_observed: bool) -> Option<(u64, &'a ReplicaSet)> {
    let skip = if spec_observed { 2 } else { 1 };
    owned.len().checked_sub(skip).map(|i| owned[i])
}

/// The pod template of a ReplicaSet without its controller's hash label: what goes back
/// into the workload.
pub(crate) fn template_without_hash(rs: &ReplicaSet, kind: WorkloadKind) -> Option<PodTemplateSpec> {
    let mut template = rs.spec.as_ref()?.template.clone()?;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(kind.hash_label());
    }
    Some(template)
}

/// Annotations `kubectl rollout undo` keeps from the Deployment instead of taking them
/// from the ReplicaSet.
const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// The JSON patch (RFC 6902) of an undo. A Deployment gets `kubectl rollout undo`'s:
/// the template replaced, and the annotations those of the ReplicaSet (its change cause
/// among them) except the controller's own, which are kept from the Deployment. A Rollout
/// gets `kubectl argo rollouts undo`'s: the template replaced.
pub(crate) fn undo_patch(
    kind: WorkloadKind,
    workload: &ObjectMeta,
    rs: &ReplicaSet,
    template: &PodTemplateSpec,
) -> Value {
    let replace = json!({ "op": "replace", "path": "/spec/template", "value": template });
    match kind {
        WorkloadKind::Rollout => json!([replace]),
        WorkloadKind::Deployment => {
            let mut annotations = BTreeMap::new();
            let current = workload.annotations.clone().unwrap_or_default();
            for key in ANNOTATIONS_TO_SKIP {
                if let Some(v) = current.get(key) {
                    annotations.insert(key.to_owned(), v.clone());
                }
            }
            for (k, v) in rs.metadata.annotations.iter().flatten() {
                if !ANNOTATIONS_TO_SKIP.contains(&k.as_str()) {
                    annotations.insert(k.clone(), v.clone());
                }
            }
            json!([replace, { "op": "add", "path": "/metadata/annotations", "value": annotations }])
        }
    }
}

/// The container to change: the one named `name`, or the first.
pub(crate) fn container<'a>(
    template: &'a PodTemplateSpec,
    name: Option<&str>,
) -> Result<(usize, &'a Container), String> {
    let containers = template.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    match name {
        None => containers.first().map(|c| (0, c)).ok_or_else(|| "has no containers".to_owned()),
        Some(name) => containers.iter().enumerate().find(|(_, c)| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
            format!("has no container named {name} (containers: {})", names.join(", "))
        }),
    }
}

/// The change cause recorded with a new image.
pub(crate) fn change_cause(container: &str, image: &str) -> String {
    format!("maint-release: set image {container}={image}")
}

/// The strategic merge patch that sets a Deployment's image, as `kubectl set image`
/// does, with the change cause (and a progress deadline when one is configured).
pub(crate) fn deployment_image_patch(container: &str, image: &str, progress_deadline: Option<i32>) -> Value {
    let mut patch = json!({
        "metadata": { "annotations": { CHANGE_CAUSE: change_cause(container, image) } },
        "spec": { "template": { "spec": { "containers": [{ "name": container, "image": image }] } } }
    });
    if let Some(secs) = progress_deadline {
        patch["spec"]["progressDeadlineSeconds"] = json!(secs);
    }
    patch
}

/// The JSON patch that sets a Rollout's image (custom resources take no strategic merge,
/// and a merge patch would replace the whole container list): a `test` that the container
/// at `index` is still the one we looked at, then the image, the change cause and the
/// progress deadline.
pub(crate) fn rollout_image_patch(
    rollout: &Rollout,
    index: usize,
    container: &str,
    image: &str,
    progress_deadline: Option<i32>,
) -> Value {
    let base = format!("/spec/template/spec/containers/{index}");
    let mut ops = vec![
        json!({ "op": "test", "path": format!("{base}/name"), "value": container }),
        json!({ "op": "replace", "path": format!("{base}/image"), "value": image }),
    ];
    let cause = change_cause(container, image);
    if rollout.metadata.annotations.is_some() {
        ops.push(json!({ "op": "add", "path": "/metadata/annotations/kubernetes.io~1change-cause", "value": cause }));
    } else {
        ops.push(json!({ "op": "add", "path": "/metadata/annotations", "value": { CHANGE_CAUSE: cause } }));
    }
    if let Some(secs) = progress_deadline {
        ops.push(json!({ "op": "add", "path": "/spec/progressDeadlineSeconds", "value": secs }));
    }
    Value::Array(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(v: Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    fn base(status: Value) -> Deployment {
        let mut v = json!({
            "metadata": { "name": "api", "generation": 4 },
            "spec": { "replicas": 3, "selector": {}, "template": {} },
        });
        v["status"] = status;
        deployment(v)
    }

    #[test]
    fn deployments_are_judged_as_kubectl_does() {
        let done = json!({ "observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3 });
        assert_eq!(judge_deployment(&base(done)), Progress::Done);
        let cases = [
            (
                json!({ "observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3 }),
                "observe generation 4",
            ),
            (
                json!({ "observedGeneration": 4, "replicas": 4, "updatedReplicas": 2, "availableReplicas": 3 }),
                "2 of 3 new replicas",
            ),
            (
                json!({ "observedGeneration": 4, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3 }),
                "1 old replicas",
            ),
            (
                json!({ "observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2 }),
                "2 of 3 updated replicas",
            ),
        ];
        for (status, expected) in cases {
            match judge_deployment(&base(status)) {
                Progress::Waiting(m) => assert!(m.contains(expected), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        let stuck = json!({ "observedGeneration": 4, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
            "conditions": [{ "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                             "message": "ReplicaSet \"api-1\" has timed out progressing." }] });
        match judge_deployment(&base(stuck)) {
            Progress::Failed(m) => assert!(m.contains("ProgressDeadlineExceeded: ReplicaSet \"api-1\""), "{m}"),
            other => panic!("{other:?}"),
        }
        // The deadline of an older generation does not count until the new one is observed.
        let stale = json!({ "observedGeneration": 3, "conditions": [{ "type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded" }] });
        assert!(matches!(judge_deployment(&base(stale)), Progress::Waiting(_)));
        let mut paused = base(json!({}));
        paused.spec.as_mut().unwrap().paused = Some(true);
        assert!(matches!(judge_deployment(&paused), Progress::Failed(m) if m.contains("paused")));
    }

    fn rollout(generation: i64, status: Value) -> Rollout {
        let mut v = json!({ "metadata": { "name": "api", "generation": generation } });
        v["status"] = status;
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rollouts_are_judged_by_their_phase() {
        assert_eq!(
            judge_rollout(&rollout(5, json!({ "observedGeneration": "5", "phase": "Healthy" }))),
            Progress::Done
        );
        assert!(matches!(
            judge_rollout(&rollout(6, json!({ "observedGeneration": "5", "phase": "Healthy" }))),
            Progress::Waiting(m) if m.contains("generation 6")
        ));
        assert!(matches!(
            judge_rollout(&rollout(5, json!({ "observedGeneration": "5", "phase": "Paused", "message": "CanaryPauseStep" }))),
            Progress::Waiting(m) if m == "is Paused (CanaryPauseStep)"
        ));
        assert!(matches!(
            judge_rollout(&rollout(5, json!({ "observedGeneration": "5", "phase": "Healthy", "controllerPause": true }))),
            Progress::Waiting(m) if m.contains("unpause")
        ));
        let degraded = json!({ "observedGeneration": "5", "phase": "Degraded",
            "message": "ProgressDeadlineExceeded: ReplicaSet \"api-2\" has timed out progressing." });
        assert!(matches!(
            judge_rollout(&rollout(5, degraded)),
            Progress::Failed(m) if m.starts_with("is Degraded (ProgressDeadlineExceeded: ReplicaSet \"api-2\"")
        ));
        // A pre-1.0 controller without phase: conditions still fail the step.
        let old = json!({ "observedGeneration": "5", "conditions": [{ "type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "timed out" }] });
        assert!(
            matches!(judge_rollout(&rollout(5, old)), Progress::Failed(m) if m.contains("ProgressDeadlineExceeded: timed out"))
        );
        assert!(matches!(judge_rollout(&rollout(5, json!({}))), Progress::Waiting(_)));
    }

    fn rs(name: &str, owner: &str, revision: Option<&str>) -> ReplicaSet {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = revision {
            annotations.insert("deployment.kubernetes.io/revision".into(), json!(r));
        }
        serde_json::from_value(json!({
            "metadata": { "name": name, "annotations": annotations, "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": owner, "controller": true }] },
            "spec": { "selector": {}, "template": { "metadata": { "labels": { "app": "api", "pod-template-hash": "h" } } } }
        }))
        .unwrap()
    }

    #[test]
    fn undo_picks_the_second_newest_owned_revision() {
        let list = vec![
            rs("a", "u1", Some("10")),
            rs("b", "u1", Some("9")),
            rs("c", "u2", Some("11")),
            rs("d", "u1", Some("x")),
            rs("e", "u1", Some("2")),
        ];
        let owned = owned_replica_sets(&list, "u1", WorkloadKind::Deployment);
        let names: Vec<_> = owned.iter().map(|(n, rs)| (*n, rs.metadata.name.clone().unwrap())).collect();
        assert_eq!(names, [(2, "e".to_owned()), (9, "b".into()), (10, "a".into())]);
        assert_eq!(undo_target(&owned, true).map(|(n, _)| n), Some(9));
        assert_eq!(undo_target(&owned, false).map(|(n, _)| n), Some(10));
        assert!(undo_target(&owned[..1], true).is_none());
        let t = template_without_hash(owned[1].1, WorkloadKind::Deployment).unwrap();
        assert_eq!(t.metadata.unwrap().labels.unwrap().into_keys().collect::<Vec<_>>(), ["app"]);
    }

    #[test]
    fn containers_are_chosen_by_name_or_first() {
        let t: PodTemplateSpec = serde_json::from_value(json!({ "spec": { "containers": [
            { "name": "api", "image": "a:1" }, { "name": "sidecar", "image": "s:1" }] } }))
        .unwrap();
        assert_eq!(container(&t, None).unwrap().0, 0);
        assert_eq!(container(&t, Some("sidecar")).unwrap().1.image.as_deref(), Some("s:1"));
        assert_eq!(container(&t, Some("x")).unwrap_err(), "has no container named x (containers: api, sidecar)");
        assert_eq!(container(&PodTemplateSpec::default(), None).unwrap_err(), "has no containers");
    }
}
