//! The ops endpoints every service serves: `/metrics` for Prometheus and `/healthz` for Docker
//! healthchecks and humans.
//!
//! `/healthz` answers 200 while every component reports healthy and 503 when one does not, with a
//! JSON body that says which and why. A dependency being down (Prometheus, the broker) makes the
//! service unhealthy but does not stop it: it keeps retrying.

mod process;

pub use process::{ProcessCollector, ProcessSample, sample_process};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The health of one component of a service.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentHealth {
    pub healthy: bool,
    pub detail: String,
}

/// Shared, cheaply cloned health state: components report, `/healthz` reads.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Arc<Mutex<BTreeMap<&'static str, ComponentHealth>>>,
}

impl Health {
    /// Records a component's state.
    pub fn set(&self, component: &'static str, healthy: bool, detail: impl Into<String>) {
        let state = ComponentHealth {
            healthy,
            detail: detail.into(),
        };
        self.lock().insert(component, state);
    }

    /// Whether every component is healthy, and each one's state.
    pub fn report(&self) -> (bool, BTreeMap<&'static str, ComponentHealth>) {
        let components = self.lock().clone();
        (components.values().all(|c| c.healthy), components)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, ComponentHealth>> {
        // A panic while holding this lock cannot leave the map half-written; keep serving.
        self.components
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A registry with the process collector (CPU, memory, file descriptors) already in it.
pub fn registry() -> Registry {
    let registry = Registry::new();
    match ProcessCollector::new() {
        Ok(collector) => {
            if let Err(e) = registry.register(Box::new(collector)) {
                tracing::warn!(error = %e, "process metrics unavailable");
            }
        }
        Err(e) => tracing::warn!(error = %e, "process metrics unavailable"),
    }
    registry
}

#[derive(Clone)]
struct OpsState {
    registry: Registry,
    health: Health,
}

/// The `/metrics` and `/healthz` routes, to serve alone or merged into a service's own router.
pub fn router(registry: Registry, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(OpsState { registry, health })
}

/// Serves [`router`] on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(registry, health))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string().into_bytes(),
        ),
    }
}

async fn healthz(State(state): State<OpsState>) -> impl IntoResponse {
    let (healthy, components) = state.health.report();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "components": components,
    });
    (status, axum::Json(body))
}
