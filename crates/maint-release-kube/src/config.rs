use maint_core::one_line;
use maint_release::Error;
use serde::{Deserialize, Serialize};

use crate::{KubeDeployer, WorkloadKind};

/// `[kubernetes]`: the workloads are Kubernetes Deployments or Argo Rollouts.
///
/// ```toml
/// [kubernetes]
/// namespace = "aindusdb"          # default: the kubeconfig context's (in a pod: its own)
/// kind = "deployment"             # or "rollout" (Argo Rollouts)
/// container = "aindusdb"          # default: the first container
/// progress_deadline_secs = 300    # also set spec.progressDeadlineSeconds with the image
/// workloads = [{ name = "worker", kind = "rollout" }]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubeConfig {
    /// The kubeconfig context (default: the current one, or the in-cluster service account).
    pub context: Option<String>,
    /// The namespace of the workloads (default: the context's).
    pub namespace: Option<String>,
    /// The kind of every workload not listed in `workloads`.
    pub kind: WorkloadKind,
    /// The container whose image changes (default: the first of the pod template).
    pub container: Option<String>,
    /// Per-workload kind and container.
    pub workloads: Vec<KubeWorkload>,
    /// When set, `spec.progressDeadlineSeconds` is set to this in the same patch as the
    /// image, so the controller reports `ProgressDeadlineExceeded` after it.
    pub progress_deadline_secs: Option<u32>,
    /// Pause between two reads of a rollout's status, in seconds.
    pub poll_interval_secs: f64,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            context: None,
            namespace: None,
            kind: WorkloadKind::Deployment,
            container: None,
            workloads: Vec::new(),
            progress_deadline_secs: None,
            poll_interval_secs: 2.0,
        }
    }
}

/// One workload's settings in `[kubernetes] workloads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeWorkload {
    /// The Deployment's or Rollout's name (as in `[update] workloads`).
    pub name: String,
    /// Its kind (default: `[kubernetes] kind`).
    #[serde(default)]
    pub kind: Option<WorkloadKind>,
    /// Its container (default: `[kubernetes] container`, else the first).
    #[serde(default)]
    pub container: Option<String>,
}

fn non_empty(field: String, v: Option<&String>) -> Result<(), Error> {
    match v {
        Some(s) if s.trim().is_empty() => Err(Error::invalid(field, "must not be empty")),
        _ => Ok(()),
    }
}

impl KubeConfig {
    /// Checks the values, naming the offending field (`kubernetes.workloads[1].name`).
    pub fn validate(&self) -> Result<(), Error> {
        non_empty("kubernetes.context".into(), self.context.as_ref())?;
        non_empty("kubernetes.namespace".into(), self.namespace.as_ref())?;
        non_empty("kubernetes.container".into(), self.container.as_ref())?;
        if !(self.poll_interval_secs.is_finite() && self.poll_interval_secs > 0.0 && self.poll_interval_secs <= 3600.0)
        {
            return Err(Error::invalid(
                "kubernetes.poll_interval_secs",
                format!("{} is not a number of seconds between 0 and 3600", self.poll_interval_secs),
            ));
        }
        if let Some(s) = self.progress_deadline_secs
            && (s == 0 || i32::try_from(s).is_err())
        {
            return Err(Error::invalid("kubernetes.progress_deadline_secs", format!("{s} is out of range")));
        }
        for (i, w) in self.workloads.iter().enumerate() {
            if w.name.trim().is_empty() {
                return Err(Error::invalid(format!("kubernetes.workloads[{i}].name"), "must not be empty"));
            }
            if self.workloads[..i].iter().any(|o| o.name == w.name) {
                return Err(Error::invalid(
                    format!("kubernetes.workloads[{i}].name"),
                    format!("{} is listed twice", w.name),
                ));
            }
            non_empty(format!("kubernetes.workloads[{i}].container"), w.container.as_ref())?;
        }
        Ok(())
    }

    /// The deployer, with a client from the kubeconfig (`KUBECONFIG` or `~/.kube/config`,
    /// `context` when set) or, without one, the in-cluster service account.
    pub async fn deployer(&self) -> Result<KubeDeployer, Error> {
        self.validate()?;
        let config = match &self.context {
            Some(context) => {
                let opts = kube::config::KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
                kube::Config::from_kubeconfig(&opts)
                    .await
                    .map_err(|e| Error::invalid("kubernetes.context", one_line(&e)))?
            }
            None => kube::Config::infer().await.map_err(|e| Error::invalid("kubernetes", one_line(&e)))?,
        };
        let client = kube::Client::try_from(config).map_err(|e| Error::invalid("kubernetes", one_line(&e)))?;
        KubeDeployer::new(client, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: Error) -> String {
        match e {
            Error::Invalid { field, .. } => field,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn parses_the_documented_example_and_names_bad_fields() {
        let cfg: KubeConfig = toml::from_str(
            r#"
            namespace = "aindusdb"
            kind = "deployment"
            container = "aindusdb"
            progress_deadline_secs = 300
            workloads = [{ name = "worker", kind = "rollout" }]
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.workloads[0].kind, Some(WorkloadKind::Rollout));
        assert_eq!(cfg.poll_interval_secs, 2.0);
        assert!(toml::from_str::<KubeConfig>("kind = \"statefulset\"").is_err());
        assert!(toml::from_str::<KubeConfig>("timeout = 3").is_err(), "unknown fields are refused");
        let bad = |s: &str| field(toml::from_str::<KubeConfig>(s).unwrap().validate().unwrap_err());
        assert_eq!(bad("namespace = \" \""), "kubernetes.namespace");
        assert_eq!(bad("poll_interval_secs = 0"), "kubernetes.poll_interval_secs");
        assert_eq!(bad("progress_deadline_secs = 0"), "kubernetes.progress_deadline_secs");
        assert_eq!(bad("workloads = [{ name = \"api\" }, { name = \"api\" }]"), "kubernetes.workloads[1].name");
        assert_eq!(bad("workloads = [{ name = \"api\", container = \"\" }]"), "kubernetes.workloads[0].container");
    }

    #[test]
    fn the_deploy_example_parses() {
        #[derive(Deserialize)]
        struct File {
            kubernetes: KubeConfig,
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/maint-update.toml");
        let file: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let file: File = file.try_into().unwrap();
        file.kubernetes.validate().unwrap();
        assert_eq!(file.kubernetes.workloads[0].kind, Some(WorkloadKind::Rollout));
    }
}
