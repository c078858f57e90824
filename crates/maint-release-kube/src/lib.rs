#![doc = include_str!("../README.md")]

mod config;
mod deployer;
mod plan;
mod rollout;

pub use config::{KubeConfig, KubeWorkload};
pub use deployer::KubeDeployer;
pub use plan::{CHANGE_CAUSE, WorkloadKind};
pub use rollout::{Rollout, RolloutCondition, RolloutSpec, RolloutStatus};

/// Re-exported because [`Rollout`] is built from its types.
pub use k8s_openapi;
/// Re-exported because [`KubeDeployer::new`] takes its client.
pub use kube;
