//! Where replica changes go: Docker Compose containers, a Docker Swarm service, or nowhere
//! (log only). Every backend answers two questions, how many replicas a service has (and its
//! bounds, from labels) and "make it N", and classifies its failures so that the scaler can
//! count them and decide whether a retry can help.

mod compose;
mod swarm;

pub use compose::ComposeBackend;
pub use swarm::SwarmBackend;

use bollard::errors::Error as DockerError;
use bollard::{ClientVersion, Docker};
use std::collections::HashMap;

/// Labels that set a service's bounds (on its containers, or on the Swarm service).
pub const MIN_LABEL: &str = "autoscaler.min_replicas";
pub const MAX_LABEL: &str = "autoscaler.max_replicas";

/// What a backend knows about a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceState {
    /// Replicas running now.
    pub replicas: u32,
    /// Bounds set by labels, if any.
    pub min: Option<u32>,
    pub max: Option<u32>,
}

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(
        "cannot reach the Docker engine at {host}: {detail}; is DOCKER_HOST right and the engine (or socket proxy) running?"
    )]
    Unreachable { host: String, detail: String },
    #[error(
        "the Docker engine refused: {0}; the scaler needs access to the containers API (see docs/ARCHITECTURE.md, least privilege)"
    )]
    PermissionDenied(String),
    #[error("no such service: {0}")]
    UnknownService(String),
    #[error("{0}")]
    Failed(String),
}

impl BackendError {
    /// Every value [`BackendError::kind`] can take.
    pub const KINDS: [&'static str; 4] = [
        "unreachable",
        "permission_denied",
        "unknown_service",
        "failed",
    ];

    /// A bounded label for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendError::Unreachable { .. } => "unreachable",
            BackendError::PermissionDenied(_) => "permission_denied",
            BackendError::UnknownService(_) => "unknown_service",
            BackendError::Failed(_) => "failed",
        }
    }

    /// Whether trying again may help.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            BackendError::Unreachable { .. } | BackendError::Failed(_)
        )
    }

    /// Classifies an engine error.
    pub fn from_docker(host: &str, e: DockerError) -> Self {
        match e {
            DockerError::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                401 | 403 => BackendError::PermissionDenied(message),
                404 => BackendError::UnknownService(message),
                _ => BackendError::Failed(format!("HTTP {status_code}: {message}")),
            },
            other => {
                let detail = other.to_string();
                if detail.contains("ermission denied") {
                    BackendError::PermissionDenied(detail)
                } else {
                    BackendError::Unreachable {
                        host: host.to_owned(),
                        detail,
                    }
                }
            }
        }
    }
}

/// The engine version this is written and tested against (Docker 20.10). bollard's default
/// (1.53) is refused by older engines, and bollard 0.21 drops the version from request paths
/// anyway (its issue #736), so the version is pinned here rather than negotiated.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// A connection to the engine at `unix://PATH` or `tcp://HOST:PORT`, made when first needed and
/// made again after it failed: an engine (or socket proxy) that is not there yet is an error of
/// the calls that need it, not of the scaler's start.
pub struct Engine {
    host: String,
    client: tokio::sync::Mutex<Option<Docker>>,
}

impl Engine {
    pub fn new(host: &str) -> Self {
        Self {
            host: host.to_owned(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The client, connecting if needed.
    pub async fn client(&self) -> Result<Docker, BackendError> {
        let mut client = self.client.lock().await;
        if let Some(docker) = client.as_ref() {
            return Ok(docker.clone());
        }
        let connected = if let Some(path) = self.host.strip_prefix("unix://") {
            Docker::connect_with_socket(path, 120, &API_VERSION)
        } else {
            Docker::connect_with_http(&self.host, 120, &API_VERSION)
        };
        let docker = connected.map_err(|e| BackendError::from_docker(&self.host, e))?;
        *client = Some(docker.clone());
        Ok(docker)
    }

    /// Classifies an engine error of this host.
    pub fn error(&self, e: bollard::errors::Error) -> BackendError {
        BackendError::from_docker(&self.host, e)
    }
}

/// No Docker (`SCALER_BACKEND=log`): the replica count is the one the models observed, and a
/// change is logged, never made, so the next window sees the real count again.
#[derive(Debug, Default)]
pub struct LogBackend;

/// The configured backend.
pub enum Backend {
    Compose(ComposeBackend),
    Swarm(SwarmBackend),
    Log(LogBackend),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Compose(_) => "compose",
            Backend::Swarm(_) => "swarm",
            Backend::Log(_) => "log",
        }
    }

    /// The service's replicas and bounds. The log backend answers `observed`, the count the
    /// models saw.
    pub async fn inspect(
        &self,
        service: &str,
        observed: u32,
    ) -> Result<ServiceState, BackendError> {
        match self {
            Backend::Compose(c) => c.inspect(service).await,
            Backend::Swarm(s) => s.inspect(service).await,
            Backend::Log(_) => Ok(ServiceState {
                replicas: observed.max(1),
                min: None,
                max: None,
            }),
        }
    }

    /// Changes the service from `from` to `to` replicas; returns the count reached.
    pub async fn scale(&self, service: &str, from: u32, to: u32) -> Result<u32, BackendError> {
        match self {
            Backend::Compose(c) => c.scale(service, from, to).await,
            Backend::Swarm(s) => s.scale(service, to).await,
            Backend::Log(_) => {
                tracing::info!(%service, from, to, "log backend: the change is logged, not made");
                Ok(to)
            }
        }
    }
}

/// Reads a bound label.
fn bound(labels: Option<&HashMap<String, String>>, key: &str) -> Option<u32> {
    labels?.get(key)?.trim().parse().ok().filter(|v| *v > 0)
}
