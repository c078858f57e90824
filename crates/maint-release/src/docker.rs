//! The Docker deployer ([`DockerDeployer`], on bollard): N replicas of a service
//! replaced in batches, each new container admitted once its readiness endpoint answers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, ContainerSummary, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use serde::{Deserialize, Serialize};

use crate::{Deployer, Error, Revision};

const LABEL_SERVICE: &str = "maint.release.service";
const LABEL_REVISION: &str = "maint.release.revision";
const LABEL_IMAGE: &str = "maint.release.image";
const LABEL_PREVIOUS: &str = "maint.release.previous-image";

/// One service run as N identical containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerService {
    /// The workload name (`api`); containers are named `<name>-r<revision>-<n>`.
    pub name: String,
    /// How many containers serve.
    pub replicas: u32,
    /// The container port of the readiness endpoint (published on a port the engine
    /// picks, on `host_ip`; readiness is asked through that address).
    pub port: u16,
    /// The host address the port is published on (default `127.0.0.1`: only this host
    /// reaches it; `0.0.0.0` publishes it on every interface, readiness then goes through
    /// 127.0.0.1).
    #[serde(default = "loopback")]
    pub host_ip: String,
    /// The readiness path (`/health/ready`); a container is admitted when it answers 200.
    pub readiness_path: String,
    /// Environment (`KEY=value`).
    #[serde(default)]
    pub env: Vec<String>,
    /// Extra labels on every container.
    #[serde(default)]
    pub labels: HashMap<String, String>,
    /// How many containers above `replicas` a rollout may run at once (default 1).
    #[serde(default = "one")]
    pub max_surge: u32,
    /// How many of the `replicas` may be missing during a rollout (default 0). Not both 0.
    #[serde(default)]
    pub max_unavailable: u32,
}

fn one() -> u32 {
    1
}

fn loopback() -> String {
    "127.0.0.1".into()
}

impl DockerService {
    /// A service with no environment, no extra labels, max surge 1, max unavailable 0.
    pub fn new(name: impl Into<String>, replicas: u32, port: u16, readiness_path: impl Into<String>) -> Self {
        DockerService {
            name: name.into(),
            replicas,
            port,
            host_ip: loopback(),
            readiness_path: readiness_path.into(),
            env: Vec::new(),
            labels: HashMap::new(),
            max_surge: 1,
            max_unavailable: 0,
        }
    }
}

/// [`Deployer`] on a Docker engine (bollard).
///
/// A rollout replaces containers in batches bounded by `max_surge` (containers above
/// `replicas`) and `max_unavailable` (replicas missing), 1 and 0 by default, so one at
/// a time: a new container is started, admitted only when its readiness endpoint answers
/// 200 within `readiness_timeout`, and only then is an old container removed. A new
/// container that never becomes ready is removed and the step fails; the old containers
/// still running are untouched (all of them with `max_unavailable` 0).
/// Undo converges back to the image the last rollout replaced (or, after a restart of this
/// process, the `maint.release.previous-image` label of the running containers).
#[derive(Debug)]
pub struct DockerDeployer {
    docker: Docker,
    services: Vec<DockerService>,
    readiness_timeout: Duration,
    http: reqwest::Client,
    replaced: Mutex<HashMap<String, String>>,
}

fn docker_err(what: &str) -> impl FnOnce(bollard::errors::Error) -> Error {
    let what = what.to_owned();
    move |e| Error::Deploy(format!("{what}: {}", maint_core::one_line(&e)))
}

fn label<'a>(c: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    c.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str)
}

fn revision_of(c: &ContainerSummary) -> u64 {
    label(c, LABEL_REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// What a new container of `s` is created with: the image, the service's environment and
/// labels plus ours, and the readiness port published on `host_ip`, on a port the engine
/// picks.
fn container_body(s: &DockerService, image: &str, revision: u64, previous: &str) -> ContainerCreateBody {
    let port_key = format!("{}/tcp", s.port);
    let mut labels = s.labels.clone();
    labels.extend([
        (LABEL_SERVICE.to_owned(), s.name.clone()),
        (LABEL_REVISION.to_owned(), revision.to_string()),
        (LABEL_IMAGE.to_owned(), image.to_owned()),
        (LABEL_PREVIOUS.to_owned(), previous.to_owned()),
    ]);
    ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some(s.env.clone()),
        labels: Some(labels),
        exposed_ports: Some(vec![port_key.clone()]),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                port_key,
                Some(vec![PortBinding { host_ip: Some(s.host_ip.clone()), host_port: Some(String::new()) }]),
            )])),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

impl DockerDeployer {
    /// A deployer over `docker` for `services`.
    pub fn new(docker: Docker, services: Vec<DockerService>, readiness_timeout: Duration) -> Result<Self, Error> {
        for (i, s) in services.iter().enumerate() {
            if s.name.is_empty() || s.replicas == 0 || s.port == 0 || !s.readiness_path.starts_with('/') {
                return Err(Error::invalid(
                    format!("docker.services[{i}]"),
                    "needs a name, replicas >= 1, a port and a readiness_path starting with /",
                ));
            }
            if s.host_ip.parse::<IpAddr>().is_err() {
                return Err(Error::invalid(
                    format!("docker.services[{i}].host_ip"),
                    format!("{:?} is not an IP address", s.host_ip),
                ));
            }
            if s.max_surge == 0 && s.max_unavailable == 0 {
                return Err(Error::invalid(
                    format!("docker.services[{i}].max_surge"),
                    "max_surge and max_unavailable cannot both be 0 (no rollout could make progress)",
                ));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::invalid("docker", maint_core::one_line(&e)))?;
        Ok(DockerDeployer { docker, services, readiness_timeout, http, replaced: Mutex::new(HashMap::new()) })
    }

    /// Connects to the local engine (`DOCKER_HOST` or the default socket).
    pub fn connect_local(services: Vec<DockerService>, readiness_timeout: Duration) -> Result<Self, Error> {
        let docker =
            Docker::connect_with_local_defaults().map_err(|e| Error::invalid("docker", maint_core::one_line(&e)))?;
        Self::new(docker, services, readiness_timeout)
    }

    fn service(&self, name: &str) -> Result<&DockerService, Error> {
        self.services
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::Deploy(format!("no docker service named {name}")))
    }

    /// The running containers of a service, oldest revision first.
    async fn containers(&self, service: &str) -> Result<Vec<ContainerSummary>, Error> {
        let filters = HashMap::from([("label", vec![format!("{LABEL_SERVICE}={service}")])]);
        let opts = ListContainersOptionsBuilder::new().all(false).filters(&filters).build();
        let mut list = self.docker.list_containers(Some(opts)).await.map_err(docker_err("list containers"))?;
        list.sort_by_key(revision_of);
        Ok(list)
    }

    async fn remove(&self, c: &ContainerSummary) -> Result<(), Error> {
        let id = c.id.as_deref().unwrap_or_default();
        let opts = RemoveContainerOptionsBuilder::new().force(true).build();
        self.docker.remove_container(id, Some(opts)).await.map_err(docker_err("remove container"))
    }

    /// The published host port of `port` on a container.
    fn host_port(c: &ContainerSummary, port: u16) -> Option<u16> {
        c.ports.as_ref()?.iter().find(|p| p.private_port == port).and_then(|p| p.public_port)
    }

    async fn ready(&self, s: &DockerService, c: &ContainerSummary) -> bool {
        let Some(port) = Self::host_port(c, s.port) else { return false };
        let host = match s.host_ip.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => s.host_ip.clone(),
        };
        let url = format!("http://{host}:{port}{}", s.readiness_path);
        matches!(self.http.get(&url).send().await, Ok(r) if r.status().as_u16() == 200)
    }

    async fn find(&self, service: &str, id: &str) -> Result<Option<ContainerSummary>, Error> {
        Ok(self.containers(service).await?.into_iter().find(|c| c.id.as_deref() == Some(id)))
    }

    /// Starts one container and waits until it is ready; removes it when it is not.
    async fn start_one(
        &self,
        s: &DockerService,
        image: &str,
        revision: u64,
        n: usize,
        previous: &str,
    ) -> Result<(), Error> {
        let name = format!("{}-r{revision}-{n}", s.name);
        let body = container_body(s, image, revision, previous);
        // The engine can fail to start a container for reasons of its own (a published
        // port it picked is already taken): such a start is retried, three times in all.
        let mut attempt = 1;
        let created = loop {
            let opts = CreateContainerOptionsBuilder::new().name(&name).build();
            let created = self
                .docker
                .create_container(Some(opts), body.clone())
                .await
                .map_err(docker_err(&format!("create {name}")))?;
            match self.docker.start_container(&created.id, None).await {
                Ok(()) => break created,
                Err(e) => {
                    let _ = self
                        .docker
                        .remove_container(&created.id, Some(RemoveContainerOptionsBuilder::new().force(true).build()))
                        .await;
                    if attempt >= 3 {
                        return Err(docker_err(&format!("start {name}"))(e));
                    }
                    tracing::warn!("start {name} failed, trying again: {}", maint_core::one_line(&e));
                    attempt += 1;
                }
            }
        };
        let started = Instant::now();
        loop {
            match self.find(&s.name, &created.id).await? {
                Some(c) if self.ready(s, &c).await => return Ok(()),
                Some(_) if started.elapsed() < self.readiness_timeout => {}
                found => {
                    let state = if found.is_some() { "not ready" } else { "exited" };
                    let opts = RemoveContainerOptionsBuilder::new().force(true).build();
                    let _ = self.docker.remove_container(&created.id, Some(opts)).await;
                    return Err(Error::Deploy(format!(
                        "{}: new container {name} ({image}) {state} after {:?}; the old containers still running are kept",
                        s.name,
                        started.elapsed().min(self.readiness_timeout)
                    )));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Brings a service to `replicas` ready containers of `image`: old containers are
    /// removed while more than `replicas - max_unavailable` containers run, new ones are
    /// started (a batch at once) while fewer than `replicas + max_surge` run.
    async fn converge(&self, s: &DockerService, image: &str, previous: &str) -> Result<(), Error> {
        let current = self.containers(&s.name).await?;
        let next_revision = current.iter().map(revision_of).max().unwrap_or(0) + 1;
        let (keep, mut old): (Vec<_>, Vec<_>) = current.into_iter().partition(|c| label(c, LABEL_IMAGE) == Some(image));
        let replicas = s.replicas as usize;
        let min_running = replicas.saturating_sub(s.max_unavailable as usize);
        let max_running = replicas + s.max_surge as usize;
        let mut ready = keep.len();
        let mut n = 0;
        while ready < replicas {
            let removable = (ready + old.len()).saturating_sub(min_running).min(old.len());
            for c in old.drain(..removable) {
                self.remove(&c).await?;
            }
            let batch = max_running.saturating_sub(ready + old.len()).min(replicas - ready);
            if batch == 0 {
                // Unreachable when max_surge or max_unavailable is above 0 (checked in new).
                return Err(Error::Deploy(format!("{}: the rollout cannot make progress", s.name)));
            }
            let started =
                futures::future::join_all((n..n + batch).map(|i| self.start_one(s, image, next_revision, i, previous)))
                    .await;
            n += batch;
            let failed = started.into_iter().find_map(Result::err);
            if let Some(e) = failed {
                return Err(e);
            }
            ready += batch;
        }
        for c in old {
            self.remove(&c).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Deployer for DockerDeployer {
    fn name(&self) -> String {
        "docker".into()
    }

    async fn set_image(&self, workloads: &[String], image: &str) -> Result<(), Error> {
        for w in workloads {
            let s = self.service(w)?;
            let current = self.containers(w).await?;
            let before = current.last().and_then(|c| label(c, LABEL_IMAGE)).unwrap_or_default().to_owned();
            if !before.is_empty() && before != image {
                self.replaced.lock().unwrap_or_else(|e| e.into_inner()).insert(w.clone(), before.clone());
            }
            self.converge(s, image, &before).await?;
        }
        Ok(())
    }

    async fn wait_rollout(&self, workloads: &[String], timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        for w in workloads {
            let s = self.service(w)?;
            loop {
                let list = self.containers(w).await?;
                let images: Vec<&str> = list.iter().filter_map(|c| label(c, LABEL_IMAGE)).collect();
                let one_image = images.windows(2).all(|p| p[0] == p[1]);
                let mut all_ready = list.len() == s.replicas as usize && one_image;
                for c in &list {
                    all_ready = all_ready && self.ready(s, c).await;
                }
                if all_ready {
                    break;
                }
                if started.elapsed() >= timeout {
                    return Err(Error::Deploy(format!(
                        "{w}: {} of {} container(s) running {:?}, not all ready after {timeout:?}",
                        list.len(),
                        s.replicas,
                        images
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    async fn undo(&self, workloads: &[String]) -> Result<(), Error> {
        for w in workloads {
            let s = self.service(w)?;
            let recorded = self.replaced.lock().unwrap_or_else(|e| e.into_inner()).get(w).cloned();
            let current = self.containers(w).await?;
            let target = match recorded {
                Some(t) => t,
                None => current
                    .last()
                    .and_then(|c| label(c, LABEL_PREVIOUS))
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| Error::Deploy(format!("{w}: no previous revision to go back to")))?,
            };
            let now = current.last().and_then(|c| label(c, LABEL_IMAGE)).unwrap_or_default().to_owned();
            let previous = if now == target {
                current.last().and_then(|c| label(c, LABEL_PREVIOUS)).unwrap_or_default().to_owned()
            } else {
                now
            };
            self.converge(s, &target, &previous).await?;
            self.replaced.lock().unwrap_or_else(|e| e.into_inner()).remove(w);
        }
        Ok(())
    }

    async fn history(&self, workload: &str) -> Result<Vec<Revision>, Error> {
        self.service(workload)?;
        let current = self.containers(workload).await?;
        let Some(c) = current.last() else { return Ok(Vec::new()) };
        let number = revision_of(c);
        let mut out = Vec::new();
        if let Some(prev) = label(c, LABEL_PREVIOUS).filter(|p| !p.is_empty()) {
            out.push(Revision {
                workload: workload.to_owned(),
                number: number.saturating_sub(1),
                image: prev.to_owned(),
                current: false,
                change_cause: None,
            });
        }
        out.push(Revision {
            workload: workload.to_owned(),
            number,
            image: label(c, LABEL_IMAGE).unwrap_or_default().to_owned(),
            current: true,
            change_cause: None,
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readiness_port_is_published_on_loopback_only() {
        let s = DockerService::new("api", 3, 8080, "/health/ready");
        let body = container_body(&s, "registry.example/aindusdb:1.1.0", 4, "registry.example/aindusdb:1.0.0");
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let binding = &bindings["8080/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"), "never on every interface by default");
        assert_eq!(binding.host_port.as_deref(), Some(""), "the engine picks the host port");
        assert_eq!(body.labels.unwrap()[LABEL_REVISION], "4");
        let everywhere = DockerService { host_ip: "0.0.0.0".into(), ..s.clone() };
        let body = container_body(&everywhere, "i:1", 1, "");
        assert_eq!(
            body.host_config.unwrap().port_bindings.unwrap()["8080/tcp"].as_ref().unwrap()[0].host_ip.as_deref(),
            Some("0.0.0.0")
        );
        let parsed: DockerService =
            toml::from_str("name = \"api\"\nreplicas = 1\nport = 80\nreadiness_path = \"/\"").unwrap();
        assert_eq!(parsed.host_ip, "127.0.0.1", "the default of the configuration file too");
        let bad = DockerService { host_ip: "localhost".into(), ..s };
        let err =
            DockerDeployer::new(Docker::connect_with_local_defaults().unwrap(), vec![bad], Duration::from_secs(1))
                .unwrap_err();
        assert_eq!(err.to_string(), "docker.services[0].host_ip: \"localhost\" is not an IP address");
    }
}
