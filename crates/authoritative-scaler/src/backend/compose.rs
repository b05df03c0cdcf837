//! Docker Compose services, scaled the way `docker compose up --scale` scales them.
//!
//! A new replica is a copy of the newest running one: the same configuration, the same compose
//! labels (project, service, config hash, version) with the next container number, named as the
//! project's Compose flavour names containers (`project-service-n` for v2, `project_service_n`
//! for v1), on the same networks with the service name as an alias, so that the name resolves
//! to every replica through Docker's DNS. `docker compose ps` lists it and `docker compose down`
//! removes it. Scaling down stops the highest-numbered replicas (gracefully, within their stop
//! timeout) and removes them, as Compose does. A later `docker compose up` resets the count to
//! the compose file's.

use super::{
    BackendError, Engine, MAX_LABEL, MIN_LABEL, OPT_IN_LABEL, ServiceState, bound, opted_in,
};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, ContainerSummaryStateEnum,
    EndpointSettings, NetworkConnectRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptions,
};
use std::collections::{BTreeSet, HashMap};

const PROJECT: &str = "com.docker.compose.project";
const SERVICE: &str = "com.docker.compose.service";
const NUMBER: &str = "com.docker.compose.container-number";
const ONEOFF: &str = "com.docker.compose.oneoff";
const VERSION: &str = "com.docker.compose.version";
const REPLACE: &str = "com.docker.compose.replace";
/// Marks replicas the scaler made, for audits (`docker ps --filter label=autoscaler.scaled-by`).
pub const SCALED_BY: &str = "autoscaler.scaled-by";

/// Compose services through the Engine API.
pub struct ComposeBackend {
    engine: Engine,
    /// Restrict to this project.
    project: Option<String>,
    /// Stop timeout for removed replicas; `None` lets each container's own apply.
    stop_timeout: Option<u32>,
}

fn number(c: &ContainerSummary) -> u32 {
    c.labels
        .as_ref()
        .and_then(|l| l.get(NUMBER))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn running(c: &ContainerSummary) -> bool {
    c.state == Some(ContainerSummaryStateEnum::RUNNING)
}

fn restarting(c: &ContainerSummary) -> bool {
    c.state == Some(ContainerSummaryStateEnum::RESTARTING)
}

fn created(c: &ContainerSummary) -> bool {
    c.state == Some(ContainerSummaryStateEnum::CREATED)
}

fn made_by_scaler(c: &ContainerSummary) -> bool {
    c.labels.as_ref().is_some_and(|l| l.contains_key(SCALED_BY))
}

/// Created by Compose and not started yet: at `docker compose up`, a container waits so until
/// the services it depends on are healthy, and Compose then starts it.
fn waiting(c: &ContainerSummary) -> bool {
    created(c) && !made_by_scaler(c)
}

/// Created by a scaler and never started: that scaler stopped between the two calls (killed, or
/// the engine failed it). Nothing will start it; it is not a replica, and the next change
/// removes it.
fn half_made(c: &ContainerSummary) -> bool {
    created(c) && made_by_scaler(c)
}

/// A replica the service has: running, being restarted by its restart policy, or waiting for
/// Compose to start it (without it, a scaler that starts before a service's dependencies are
/// healthy would see 0 replicas and add one beside the one Compose is about to start).
fn counted(c: &ContainerSummary) -> bool {
    running(c) || restarting(c) || waiting(c)
}

/// The order replicas are removed in: those restarting or not started first (they serve
/// nothing), then the highest numbers, as Compose removes them.
fn removal_order(mut replicas: Vec<&ContainerSummary>) -> Vec<&ContainerSummary> {
    replicas.sort_by_key(|c| (!(restarting(c) || waiting(c)), std::cmp::Reverse(number(c))));
    replicas
}

/// Waiting for Compose to start it, or running with a health check that has not passed yet
/// (`Up 2 seconds (health: starting)`).
fn starting(c: &ContainerSummary) -> bool {
    waiting(c)
        || running(c)
            && c.status
                .as_deref()
                .is_some_and(|s| s.contains("(health: starting)"))
}

impl ComposeBackend {
    pub fn new(engine: Engine, project: Option<String>, stop_timeout: Option<u32>) -> Self {
        Self {
            engine,
            project,
            stop_timeout,
        }
    }

    fn error(&self, e: bollard::errors::Error) -> BackendError {
        self.engine.error(e)
    }

    /// The containers (running or not, no one-off) with `label` (`KEY=VALUE`), in the project
    /// if one is set.
    async fn list(&self, label: String) -> Result<Vec<ContainerSummary>, BackendError> {
        let mut labels = vec![label, format!("{ONEOFF}=False")];
        if let Some(project) = &self.project {
            labels.push(format!("{PROJECT}={project}"));
        }
        let filters = HashMap::from([("label", labels)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.engine
            .client()
            .await?
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error(e))
    }

    /// The service's containers (running or not), sorted by container number.
    async fn containers(&self, service: &str) -> Result<Vec<ContainerSummary>, BackendError> {
        let mut containers = self.list(format!("{SERVICE}={service}")).await?;
        if containers.is_empty() {
            return Err(BackendError::UnknownService(format!(
                "{service}: no container of a compose service by that name{}",
                self.project
                    .as_ref()
                    .map(|p| format!(" in project {p}"))
                    .unwrap_or_default()
            )));
        }
        let projects: BTreeSet<&str> = containers
            .iter()
            .filter_map(|c| c.labels.as_ref()?.get(PROJECT).map(String::as_str))
            .collect();
        if projects.len() > 1 {
            return Err(BackendError::Failed(format!(
                "service {service} exists in compose projects {projects:?}; set COMPOSE_PROJECT_NAME"
            )));
        }
        containers.sort_by_key(number);
        Ok(containers)
    }

    /// The compose services with an opted-in container (in the project, if one is set), for
    /// the controller's rounds.
    pub async fn opted_in_services(&self) -> Result<BTreeSet<String>, BackendError> {
        let containers = self.list(format!("{OPT_IN_LABEL}=true")).await?;
        Ok(containers
            .iter()
            .filter_map(|c| c.labels.as_ref()?.get(SERVICE).cloned())
            .collect())
    }

    pub async fn inspect(&self, service: &str) -> Result<ServiceState, BackendError> {
        let containers = self.containers(service).await?;
        let labels = containers.last().and_then(|c| c.labels.as_ref());
        let count = |f: fn(&ContainerSummary) -> bool| containers.iter().filter(|c| f(c)).count();
        Ok(ServiceState {
            replicas: count(counted) as u32,
            starting: count(starting) as u32,
            restarting: count(restarting) as u32,
            opted_in: opted_in(labels),
            min: bound(labels, MIN_LABEL),
            max: bound(labels, MAX_LABEL),
        })
    }

    pub async fn scale(&self, service: &str, _from: u32, to: u32) -> Result<u32, BackendError> {
        let containers = self.containers(service).await?;
        if !opted_in(containers.last().and_then(|c| c.labels.as_ref())) {
            return Err(BackendError::NotOptedIn(format!(
                "compose service {service}"
            )));
        }
        for c in containers.iter().filter(|c| half_made(c)) {
            if let Some(id) = &c.id {
                self.discard(id).await?;
            }
        }
        let up: Vec<&ContainerSummary> = containers.iter().filter(|c| counted(c)).collect();
        let have = up.len() as u32;
        if to > have {
            // The newest running replica is the template (a restarting one may be broken).
            let template_id = containers
                .iter()
                .rev()
                .find(|c| running(c))
                .or(containers.last())
                .and_then(|c| c.id.clone())
                .ok_or_else(|| BackendError::Failed(format!("{service}: no container to copy")))?;
            let template = self
                .engine
                .client()
                .await?
                .inspect_container(&template_id, None)
                .await
                .map_err(|e| self.error(e))?;
            let first = containers.iter().map(number).max().unwrap_or(0) + 1;
            for number in first..first + (to - have) {
                self.create_replica(service, &template, number).await?;
            }
        } else {
            for c in removal_order(up).into_iter().take((have - to) as usize) {
                if let Some(id) = &c.id {
                    self.remove_replica(id).await?;
                }
            }
        }
        Ok(self.inspect(service).await?.replicas)
    }

    async fn remove_replica(&self, id: &str) -> Result<(), BackendError> {
        let stop = StopContainerOptions {
            t: (self.stop_timeout).map(|t| i32::try_from(t).unwrap_or(i32::MAX)),
            signal: None,
        };
        let docker = self.engine.client().await?;
        docker
            .stop_container(id, Some(stop))
            .await
            .map_err(|e| self.error(e))?;
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        docker
            .remove_container(id, Some(remove))
            .await
            .map_err(|e| self.error(e))?;
        tracing::info!(container = %&id[..12.min(id.len())], "replica stopped and removed");
        Ok(())
    }

    /// Removes a container that never started.
    async fn discard(&self, id: &str) -> Result<(), BackendError> {
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        self.engine
            .client()
            .await?
            .remove_container(id, Some(remove))
            .await
            .map_err(|e| self.error(e))?;
        tracing::info!(container = %&id[..12.min(id.len())], "a replica created and never started was removed");
        Ok(())
    }

    async fn create_replica(
        &self,
        service: &str,
        template: &ContainerInspectResponse,
        number: u32,
    ) -> Result<(), BackendError> {
        let spec = replica_spec(template, service, number)?;
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let docker = self.engine.client().await?;
        let created = docker
            .create_container(Some(options), spec.body)
            .await
            .map_err(|e| self.error(e))?;
        let attached: Result<(), BackendError> = async {
            // Engines before API 1.44 take one network at create; the others are joined before start.
            for (network, aliases) in &spec.other_networks {
                let request = NetworkConnectRequest {
                    container: created.id.clone(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: Some(aliases.clone()),
                        ..Default::default()
                    }),
                };
                docker
                    .connect_network(network, request)
                    .await
                    .map_err(|e| self.error(e))?;
            }
            docker
                .start_container(&created.id, None)
                .await
                .map_err(|e| self.error(e))
        }
        .await;
        if let Err(e) = attached {
            // Leave no half-made replica behind.
            let _ = self.discard(&created.id).await;
            return Err(e);
        }
        tracing::info!(%service, name = %spec.name, "replica created and started");
        Ok(())
    }
}

/// How to create one replica.
#[derive(Debug)]
pub struct ReplicaSpec {
    pub name: String,
    pub body: ContainerCreateBody,
    /// Networks to join after create, with their aliases.
    pub other_networks: Vec<(String, Vec<String>)>,
}

/// Builds the new replica number `number` of `service` from an existing replica's inspect data.
pub fn replica_spec(
    template: &ContainerInspectResponse,
    service: &str,
    number: u32,
) -> Result<ReplicaSpec, BackendError> {
    let config = template
        .config
        .clone()
        .ok_or_else(|| BackendError::Failed("the replica to copy has no config".into()))?;
    let mut labels = config.labels.clone().unwrap_or_default();
    let project = labels.get(PROJECT).cloned().ok_or_else(|| {
        BackendError::Failed(format!(
            "{service}: the replica to copy has no compose project label"
        ))
    })?;
    let template_name = template
        .name
        .clone()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned();
    // Compose v1 names with underscores and labels version 1.x; v2 with dashes.
    let v1 = labels.get(VERSION).is_some_and(|v| v.starts_with("1."))
        || template_name.starts_with(&format!("{project}_{service}_"));
    let name = if v1 {
        format!("{project}_{service}_{number}")
    } else {
        format!("{project}-{service}-{number}")
    };
    labels.insert(NUMBER.into(), number.to_string());
    labels.remove(REPLACE);
    labels.insert(SCALED_BY.into(), "authoritative-scaler".into());

    let template_id = template.id.clone().unwrap_or_default();
    let short_id: String = template_id.chars().take(12).collect();
    let mut host_config = template.host_config.clone().unwrap_or_default();
    // A fixed host port would conflict with the copied replica's: let the engine choose one.
    if let Some(bindings) = host_config.port_bindings.as_mut() {
        for binding in bindings.values_mut().flatten().flatten() {
            binding.host_port = None;
        }
    }
    let networks = template
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default();
    let aliases_for = |endpoint: &EndpointSettings| -> Vec<String> {
        let mut aliases: Vec<String> = vec![service.to_owned()];
        if !v1 {
            aliases.push(name.clone());
        }
        for alias in endpoint.aliases.iter().flatten() {
            let own = *alias == template_name || *alias == short_id || *alias == template_id;
            if !own && !aliases.contains(alias) {
                aliases.push(alias.clone());
            }
        }
        aliases
    };
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    let primary = host_config
        .network_mode
        .as_ref()
        .filter(|mode| networks.contains_key(*mode))
        .or(names.first().copied())
        .cloned();
    let mut endpoints = HashMap::new();
    let mut other_networks = Vec::new();
    for (network, endpoint) in &networks {
        let aliases = aliases_for(endpoint);
        if Some(network) == primary.as_ref() {
            endpoints.insert(
                network.clone(),
                EndpointSettings {
                    aliases: Some(aliases),
                    ..Default::default()
                },
            );
        } else {
            other_networks.push((network.clone(), aliases));
        }
    }
    other_networks.sort();
    let hostname = config
        .hostname
        .clone()
        .filter(|h| *h != short_id && !template_id.starts_with(h.as_str()));
    let body = ContainerCreateBody {
        hostname,
        domainname: config.domainname,
        user: config.user,
        exposed_ports: config.exposed_ports,
        tty: config.tty,
        open_stdin: config.open_stdin,
        stdin_once: config.stdin_once,
        env: config.env,
        cmd: config.cmd,
        healthcheck: config.healthcheck,
        image: config.image,
        volumes: config.volumes,
        working_dir: config.working_dir,
        entrypoint: config.entrypoint,
        labels: Some(labels),
        stop_signal: config.stop_signal,
        stop_timeout: config.stop_timeout,
        shell: config.shell,
        host_config: Some(host_config),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    };
    Ok(ReplicaSpec {
        name,
        body,
        other_networks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, HostConfig, NetworkSettings, PortBinding};

    fn summary(number: u32, state: ContainerSummaryStateEnum, status: &str) -> ContainerSummary {
        ContainerSummary {
            id: Some(format!("c{number}")),
            labels: Some(HashMap::from([(NUMBER.to_owned(), number.to_string())])),
            state: Some(state),
            status: Some(status.to_owned()),
            ..Default::default()
        }
    }

    fn made(mut c: ContainerSummary) -> ContainerSummary {
        if let Some(labels) = c.labels.as_mut() {
            labels.insert(SCALED_BY.into(), "authoritative-scaler".into());
        }
        c
    }

    /// A container Compose created waits for its dependencies and counts; one a scaler created
    /// and never started (its scaler was killed in between) is not a replica.
    #[test]
    fn restarting_and_waiting_replicas_are_counted_and_removed_first() {
        use ContainerSummaryStateEnum::{CREATED, EXITED, RESTARTING, RUNNING};
        let all = [
            summary(1, RUNNING, "Up 2 hours (healthy)"),
            summary(2, RESTARTING, "Restarting (1) 3 seconds ago"),
            summary(3, RUNNING, "Up 2 seconds (health: starting)"),
            summary(4, EXITED, "Exited (0) 1 hour ago"),
            summary(5, CREATED, "Created"),
            made(summary(6, CREATED, "Created")),
        ];
        let count = |f: fn(&ContainerSummary) -> bool| all.iter().filter(|c| f(c)).count();
        assert_eq!(
            (count(counted), count(starting), count(restarting)),
            (4, 2, 1)
        );
        assert_eq!(count(half_made), 1);
        let order: Vec<u32> = removal_order(all.iter().filter(|c| counted(c)).collect())
            .into_iter()
            .map(number)
            .collect();
        assert_eq!(
            order,
            [5, 2, 3, 1],
            "the ones that serve nothing, then the highest numbers"
        );
    }

    fn template(name: &str, version: &str) -> ContainerInspectResponse {
        let labels = HashMap::from([
            (PROJECT.to_owned(), "shop".to_owned()),
            (SERVICE.to_owned(), "orders".to_owned()),
            (NUMBER.to_owned(), "1".to_owned()),
            (VERSION.to_owned(), version.to_owned()),
            (REPLACE.to_owned(), "old".to_owned()),
            (
                "com.docker.compose.config-hash".to_owned(),
                "abc".to_owned(),
            ),
        ]);
        let endpoint = |aliases: &[&str]| EndpointSettings {
            aliases: Some(aliases.iter().map(|a| a.to_string()).collect()),
            ip_address: Some("172.18.0.5".into()),
            ..Default::default()
        };
        ContainerInspectResponse {
            id: Some("0123456789abcdef0123".into()),
            name: Some(format!("/{name}")),
            config: Some(ContainerConfig {
                hostname: Some("0123456789ab".into()),
                image: Some("demo-service:local".into()),
                labels: Some(labels),
                env: Some(vec!["SERVICE_NAME=orders".into()]),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some("shop_default".into()),
                port_bindings: Some(HashMap::from([(
                    "8080/tcp".to_owned(),
                    Some(vec![PortBinding {
                        host_ip: Some("0.0.0.0".into()),
                        host_port: Some("8080".into()),
                    }]),
                )])),
                ..Default::default()
            }),
            network_settings: Some(NetworkSettings {
                networks: Some(HashMap::from([
                    (
                        "shop_default".to_owned(),
                        endpoint(&[name, "orders", "0123456789ab"]),
                    ),
                    (
                        "shop_backend".to_owned(),
                        endpoint(&["orders", "db-client"]),
                    ),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_v2_replica_is_labelled_named_and_networked_as_compose_does() {
        let spec = replica_spec(&template("shop-orders-1", "2.24.5"), "orders", 3).unwrap();
        assert_eq!(spec.name, "shop-orders-3");
        let labels = spec.body.labels.as_ref().unwrap();
        assert_eq!(labels[NUMBER], "3");
        assert_eq!(
            labels["com.docker.compose.config-hash"], "abc",
            "the hash is kept: no recreate on up"
        );
        assert!(!labels.contains_key(REPLACE));
        assert_eq!(labels[SCALED_BY], "authoritative-scaler");
        assert_eq!(
            spec.body.hostname, None,
            "the engine's default hostname is not copied"
        );
        let endpoints = spec
            .body
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap();
        assert_eq!(endpoints.len(), 1, "one network at create");
        assert_eq!(
            endpoints["shop_default"].aliases.as_ref().unwrap(),
            &["orders", "shop-orders-3"]
        );
        assert_eq!(endpoints["shop_default"].ip_address, None);
        assert_eq!(
            spec.other_networks,
            vec![(
                "shop_backend".to_owned(),
                vec![
                    "orders".to_owned(),
                    "shop-orders-3".to_owned(),
                    "db-client".to_owned()
                ]
            )]
        );
        let ports = spec
            .body
            .host_config
            .as_ref()
            .unwrap()
            .port_bindings
            .as_ref()
            .unwrap();
        assert_eq!(
            ports["8080/tcp"].as_ref().unwrap()[0].host_port,
            None,
            "no fixed host port"
        );
    }

    #[test]
    fn a_v1_project_gets_v1_names() {
        let spec = replica_spec(&template("shop_orders_1", "1.29.2"), "orders", 2).unwrap();
        assert_eq!(spec.name, "shop_orders_2");
        let endpoints = spec
            .body
            .networking_config
            .unwrap()
            .endpoints_config
            .unwrap();
        assert_eq!(
            endpoints["shop_default"].aliases.as_ref().unwrap(),
            &["orders"]
        );
    }
}
