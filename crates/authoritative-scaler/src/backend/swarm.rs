//! Docker Swarm services: the path past one host. The service's replica count is set in its
//! spec, with the spec's version so that a concurrent update is refused rather than overwritten;
//! Swarm then places the replicas on the cluster's nodes.

use super::{BackendError, Engine, MAX_LABEL, MIN_LABEL, ServiceState, bound, opted_in};
use bollard::models::{Service, ServiceSpecMode, ServiceSpecModeReplicated};
use bollard::query_parameters::UpdateServiceOptions;

/// Swarm services through the Engine API of a manager node.
pub struct SwarmBackend {
    engine: Engine,
}

impl SwarmBackend {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    async fn service(&self, name: &str) -> Result<Service, BackendError> {
        self.engine
            .client()
            .await?
            .inspect_service(name, None)
            .await
            .map_err(|e| match self.engine.error(e) {
                BackendError::UnknownService(m) => {
                    BackendError::UnknownService(format!("{name}: {m}"))
                }
                BackendError::Failed(m) if m.contains("503") => BackendError::Failed(format!(
                    "{m} (SCALER_BACKEND=swarm needs a swarm manager: docker swarm init)"
                )),
                other => other,
            })
    }

    pub async fn inspect(&self, name: &str) -> Result<ServiceState, BackendError> {
        let service = self.service(name).await?;
        let spec = service.spec.unwrap_or_default();
        let replicas = spec
            .mode
            .as_ref()
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas)
            .ok_or_else(|| BackendError::Failed(format!("{name} is not a replicated service")))?;
        // Swarm's count is the desired one; its tasks' states are Swarm's own business.
        Ok(ServiceState {
            replicas: replicas.max(0) as u32,
            starting: 0,
            restarting: 0,
            opted_in: opted_in(spec.labels.as_ref()),
            min: bound(spec.labels.as_ref(), MIN_LABEL),
            max: bound(spec.labels.as_ref(), MAX_LABEL),
        })
    }

    pub async fn scale(&self, name: &str, to: u32) -> Result<u32, BackendError> {
        let service = self.service(name).await?;
        let version = service.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = service.spec.unwrap_or_default();
        if !opted_in(spec.labels.as_ref()) {
            return Err(BackendError::NotOptedIn(format!("swarm service {name}")));
        }
        spec.mode = Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(to)),
            }),
            ..Default::default()
        });
        let options = UpdateServiceOptions {
            version: version as i32,
            registry_auth_from: "spec".into(),
            rollback: None,
        };
        self.engine
            .client()
            .await?
            .update_service(name, spec, options, None)
            .await
            .map_err(|e| self.engine.error(e))?;
        tracing::info!(service = %name, replicas = to, "swarm service updated");
        Ok(to)
    }
}
