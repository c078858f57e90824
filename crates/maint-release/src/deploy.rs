//! The [`Deployer`] trait (set image, wait for the rollout, undo, history), a
//! workload's [`Revision`], and [`image_tag`].

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Error;

/// One revision of a workload (a Kubernetes ReplicaSet, a Docker image generation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The workload (`api`).
    pub workload: String,
    /// Revision number, higher is newer.
    pub number: u64,
    /// The image it runs (`registry.example/aindusdb:1.4.2`).
    pub image: String,
    /// Whether this is the revision running now.
    pub current: bool,
    /// Why it was made (Kubernetes: the `kubernetes.io/change-cause` annotation), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
}

/// The tag of an image reference (`repo:1.4.2` -> `1.4.2`), ignoring a registry port
/// and a digest.
pub fn image_tag(image: &str) -> Option<&str> {
    let image = image.split('@').next().unwrap_or(image);
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, tag)| tag).filter(|t| !t.is_empty())
}

/// A place where the service's workloads run (Kubernetes Deployments or Argo Rollouts,
/// Docker containers). Object safe: the orchestrator holds an `Arc<dyn Deployer>`.
///
/// Implementations make one attempt per call and fail a step that cannot finish (a
/// progress deadline, a readiness that never comes) instead of waiting forever.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Deployer: Send + Sync + Debug + 'static {
    /// A name for reports (`kubernetes/aindusdb`, `docker`).
    fn name(&self) -> String;
    /// Sets `image` on every named workload, starting their rollout.
    async fn set_image(&self, workloads: &[String], image: &str) -> Result<(), Error>;
    /// Waits until the rollout of every workload is complete and healthy (all replicas
    /// updated and available), failing after `timeout`.
    async fn wait_rollout(&self, workloads: &[String], timeout: Duration) -> Result<(), Error>;
    /// Rolls every workload back to its previous revision.
    async fn undo(&self, workloads: &[String]) -> Result<(), Error>;
    /// The revisions of a workload, oldest first.
    async fn history(&self, workload: &str) -> Result<Vec<Revision>, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_ignore_registry_ports_and_digests() {
        assert_eq!(image_tag("registry.example:5000/aindusdb:1.4.2"), Some("1.4.2"));
        assert_eq!(image_tag("aindusdb:v2.0.0-rc.1@sha256:abc"), Some("v2.0.0-rc.1"));
        assert_eq!(image_tag("registry.example:5000/aindusdb"), None);
        assert_eq!(image_tag("aindusdb:"), None);
    }
}
