//! Where replica changes go: Docker Compose containers, a Docker Swarm service, or nowhere
//! (log only). Every backend answers two questions, how many replicas a service has (whether
//! it is opted in, and its bounds, from labels) and "make it N", and classifies its failures so
//! that the scaler can count them and decide whether a retry can help. A service whose labels
//! do not opt in (`autoscaler.enable=true`) is never changed: the decider refuses it, and the
//! Compose and Swarm backends refuse it again on their own.

mod compose;
mod swarm;

pub use compose::ComposeBackend;
pub use swarm::SwarmBackend;

use bollard::errors::Error as DockerError;
use bollard::{ClientVersion, Docker};
use std::collections::{BTreeSet, HashMap};

/// Labels that opt a service in and set its bounds (on its containers, or on the Swarm
/// service); the Docker guard reads the same ones.
pub use service_runtime::labels::{MAX_LABEL, MIN_LABEL, OPT_IN_LABEL};

/// What a backend knows about a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceState {
    /// Replicas the service has: those running, those its restart policy is restarting, and
    /// those created and about to start (they come, or come back, without the scaler; adding
    /// replicas for them would overshoot).
    pub replicas: u32,
    /// Of `replicas`, those created and not started yet, or running with a health check that
    /// has not passed yet.
    pub starting: u32,
    /// Of `replicas`, those between two starts of their restart policy.
    pub restarting: u32,
    /// Whether the operator opted the service in to autoscaling (its label
    /// `autoscaler.enable=true`); a service that is not is never changed.
    pub opted_in: bool,
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
    #[error(
        "no such service: {0} (through the Docker guard, a service that is not opted in looks the same)"
    )]
    UnknownService(String),
    #[error(
        "{0} is not opted in to autoscaling: label its containers (or Swarm service) autoscaler.enable=true to let the scaler change it"
    )]
    NotOptedIn(String),
    #[error("{0}")]
    Failed(String),
}

impl BackendError {
    /// Every value [`BackendError::kind`] can take.
    pub const KINDS: [&'static str; 5] = [
        "unreachable",
        "permission_denied",
        "unknown_service",
        "not_opted_in",
        "failed",
    ];

    /// A bounded label for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendError::Unreachable { .. } => "unreachable",
            BackendError::PermissionDenied(_) => "permission_denied",
            BackendError::UnknownService(_) => "unknown_service",
            BackendError::NotOptedIn(_) => "not_opted_in",
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
    /// Seconds one request may take before it fails (`DOCKER_TIMEOUT_SEC`): an engine that
    /// accepts and never answers must not hold the decisions longer.
    timeout_sec: u64,
    client: tokio::sync::Mutex<Option<Docker>>,
}

/// [`Engine::new`]'s request timeout: more than a replica's default stop timeout (10 s).
pub const DEFAULT_TIMEOUT_SEC: u32 = 60;

impl Engine {
    pub fn new(host: &str) -> Self {
        Self::with_timeout(host, u64::from(DEFAULT_TIMEOUT_SEC))
    }

    /// An engine whose requests fail after `timeout_sec` seconds.
    pub fn with_timeout(host: &str, timeout_sec: u64) -> Self {
        Self {
            host: host.to_owned(),
            timeout_sec,
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
            Docker::connect_with_socket(path, self.timeout_sec, &API_VERSION)
        } else {
            Docker::connect_with_http(&self.host, self.timeout_sec, &API_VERSION)
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
/// change is logged, never made, so the next window sees the real count again. There are no
/// labels to read: every service counts as opted in (SCALED_SERVICES can still narrow them).
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

    /// The services the engine has opted in, for the controller's rounds: Compose lists them;
    /// a Swarm service and the log backend's are known from their votes only.
    pub async fn opted_in_services(&self) -> Result<BTreeSet<String>, BackendError> {
        match self {
            Backend::Compose(c) => c.opted_in_services().await,
            Backend::Swarm(_) | Backend::Log(_) => Ok(BTreeSet::new()),
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
                starting: 0,
                restarting: 0,
                opted_in: true,
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

/// Whether a label set opts its service in.
fn opted_in(labels: Option<&HashMap<String, String>>) -> bool {
    service_runtime::labels::opted_in(|key| labels?.get(key).map(String::as_str))
}
