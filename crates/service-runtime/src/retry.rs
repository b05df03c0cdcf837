//! Retrying a dependency at start until it answers: the service stays up (its /healthz says what
//! it waits for) instead of exiting and leaving the restart to Docker.

use crate::ops::Health;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs `attempt` until it succeeds, backing off from 0.5 s to 30 s. The first failure is logged
/// at WARN with `what`; `component` on /healthz is unhealthy meanwhile. `false` when `shutdown`
/// came first.
pub async fn until_ok<F, Fut, E>(
    shutdown: &CancellationToken,
    health: &Health,
    component: &'static str,
    what: &str,
    mut attempt: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut backoff = Duration::from_millis(500);
    let mut logged = false;
    loop {
        match attempt().await {
            Ok(()) => {
                health.set(component, true, format!("{what}: done"));
                if logged {
                    tracing::info!(component, "{what}: done after retries");
                }
                return true;
            }
            Err(e) => {
                health.set(component, false, format!("{what}: {e}"));
                if !logged {
                    tracing::warn!(component, error = %e, "{what} failed; retrying with backoff");
                    logged = true;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
