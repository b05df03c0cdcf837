//! Settings of the Docker guard.

use clap::Parser;
use service_runtime::config::{Secs, Validate, positive_secs};
use service_runtime::telemetry::LogArgs;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A proxy in front of the Docker engine's socket for the authoritative-scaler: it lets
/// through the calls the scaler makes, on services opted in to autoscaling (label
/// autoscaler.enable=true), and answers 403 to everything else. A container create passes only
/// as a replica of an existing container of such a service (same image, user, binds, mounts,
/// capabilities, devices, namespaces and security options; never privileged); a Swarm service
/// update only changes the replica count.
#[derive(Debug, Clone, Parser)]
#[command(name = "docker-guard", version)]
pub struct GuardConfig {
    /// Address the proxy listens on; the scaler's DOCKER_HOST points here. Reachable only by
    /// the scaler: in docker-compose.yml, on a network of their own.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:2375")]
    pub listen_addr: SocketAddr,
    /// Address of the /metrics and /healthz endpoints.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9106")]
    pub metrics_addr: SocketAddr,
    /// The Docker engine's unix socket.
    #[arg(long, env = "DOCKER_SOCKET", default_value = "/var/run/docker.sock")]
    pub docker_socket: PathBuf,
    /// Seconds an engine call may take (a stop waits for the container's stop timeout).
    #[arg(long, env = "ENGINE_TIMEOUT_SEC", default_value = "120", value_parser = positive_secs)]
    pub engine_timeout_sec: Secs,
    /// Connections served at once; more wait to be accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_connections: u32,
    #[command(flatten)]
    pub log: LogArgs,
}

impl GuardConfig {
    /// A guard of `socket` on free ports of 127.0.0.1, for tests and tools.
    pub fn local(socket: impl Into<PathBuf>) -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            docker_socket: socket.into(),
            engine_timeout_sec: Secs::new(60),
            max_connections: 16,
            log: LogArgs {
                log_format: service_runtime::telemetry::LogFormat::Human,
                log_level: "info".into(),
            },
        }
    }
}

impl Validate for GuardConfig {
    fn validate(&self) -> Result<(), String> {
        if self.docker_socket.as_os_str().is_empty() {
            return Err("DOCKER_SOCKET (--docker-socket) is empty".into());
        }
        if self.listen_addr == self.metrics_addr {
            return Err(format!(
                "LISTEN_ADDR and METRICS_ADDR are both {}: the proxy and /metrics need their own ports",
                self.listen_addr
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_into_their_types() {
        let config = GuardConfig::try_parse_from(["docker-guard"]).unwrap();
        assert_eq!(config.engine_timeout_sec, Secs::new(120));
        let config =
            GuardConfig::try_parse_from(["docker-guard", "--engine-timeout-sec", "5"]).unwrap();
        assert_eq!(config.engine_timeout_sec.std().as_secs(), 5);
        assert!(
            GuardConfig::try_parse_from(["docker-guard", "--engine-timeout-sec", "0"]).is_err()
        );
    }
}
