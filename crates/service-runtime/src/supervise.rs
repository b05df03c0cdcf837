//! Supervised tasks: no silent stall.
//!
//! A service's long-running parts (the consumer, the ops server, the scaler's decider and its
//! window timer) run as tasks of one [`Tasks`]. Each must run until shutdown. One that ends
//! before (an error, a panic, or simply returning) marks its component unhealthy on `/healthz`,
//! is logged with why, stops the others, and makes [`Tasks::join`] return an error, so that
//! `main` exits non-zero and the restart policy (Compose's `restart:`, Docker's, systemd's)
//! starts the service again: a service never sits up and green while doing nothing.

use crate::ops::Health;
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long the other tasks get to stop once one has ended early.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// Tasks that must all run until shutdown.
pub struct Tasks {
    set: JoinSet<(&'static str, anyhow::Result<()>)>,
    /// Cancelled at shutdown, or when a task ended early; every task watches it.
    stop: CancellationToken,
    /// Cancelled only by the caller (a signal, a test): an end after it is no failure.
    shutdown: CancellationToken,
    health: Health,
}

impl Tasks {
    /// Tasks stopped by `shutdown`, reporting on `health`.
    pub fn new(shutdown: &CancellationToken, health: &Health) -> Self {
        Self {
            set: JoinSet::new(),
            stop: shutdown.child_token(),
            shutdown: shutdown.clone(),
            health: health.clone(),
        }
    }

    /// Tasks of a service whose first is its `/metrics` and `/healthz` server on `listener`.
    pub fn with_ops(
        shutdown: &CancellationToken,
        listener: tokio::net::TcpListener,
        registry: prometheus::Registry,
        health: &Health,
    ) -> Self {
        let mut tasks = Self::new(shutdown, health);
        let served = crate::ops::serve(listener, registry, health.clone(), tasks.stop_token());
        tasks.spawn("ops", async move {
            anyhow::Context::context(served.await, "the /metrics and /healthz server failed")
        });
        tasks
    }

    /// The token the tasks must stop on: cancelled at shutdown and when any task ended early.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task` as the component `name` (its health turns unhealthy if it ends early).
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.set.spawn(async move {
            let result = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Err(anyhow::anyhow!("panicked: {what}"))
                }
            };
            (name, result)
        });
    }

    /// Waits for every task. `Ok` when they all ended after shutdown without error; an error
    /// naming the first task that ended early, failed or panicked otherwise (the others are
    /// stopped and given [`STOP_GRACE`]).
    pub async fn join(mut self) -> anyhow::Result<()> {
        let mut first_failure: Option<anyhow::Error> = None;
        while let Some(joined) = self.set.join_next().await {
            let (name, result) = match joined {
                Ok(done) => done,
                Err(e) => ("a task", Err(anyhow::anyhow!("was cancelled: {e}"))),
            };
            let early = !self.shutdown.is_cancelled();
            let failure = match result {
                Err(e) => Some(e),
                Ok(()) if early && first_failure.is_none() => {
                    Some(anyhow::anyhow!("ended before shutdown"))
                }
                Ok(()) => None,
            };
            if let Some(e) = failure {
                let e = e.context(format!("{name} stopped"));
                if first_failure.is_none() {
                    self.health.set(name, false, format!("{e:#}"));
                    if early {
                        tracing::error!(task = name, error = %format!("{e:#}"),
                            "a task of this service stopped; stopping the others and exiting non-zero so that the restart policy restarts the service");
                        self.stop.cancel();
                        return Self::drain(self.set, e).await;
                    }
                    first_failure = Some(e);
                } else {
                    tracing::warn!(task = name, error = %format!("{e:#}"), "another task stopped too");
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// Gives the remaining tasks [`STOP_GRACE`] to end, then aborts them; returns `failure`.
    async fn drain(
        mut set: JoinSet<(&'static str, anyhow::Result<()>)>,
        failure: anyhow::Error,
    ) -> anyhow::Result<()> {
        let drained = tokio::time::timeout(STOP_GRACE, async {
            while set.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace = ?STOP_GRACE,
                "tasks still running after the grace period; aborting them"
            );
            set.abort_all();
        }
        Err(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_early_fails_health_stops_the_others_and_is_the_error() {
        let shutdown = CancellationToken::new();
        let health = Health::default();
        let mut tasks = Tasks::new(&shutdown, &health);
        let stop = tasks.stop_token();
        tasks.spawn("consumer", async {
            Err(anyhow::anyhow!("offset store failed: partition revoked"))
        });
        tasks.spawn("timer", async move {
            stop.cancelled().await;
            Ok(())
        });
        let err = tokio::time::timeout(Duration::from_secs(5), tasks.join())
            .await
            .expect("the other task is stopped")
            .unwrap_err();
        assert!(format!("{err:#}").contains("consumer stopped: offset store failed"));
        let (healthy, components) = health.report();
        assert!(!healthy);
        assert!(!components["consumer"].healthy);
        assert!(
            !shutdown.is_cancelled(),
            "the caller's token is the caller's"
        );
    }

    #[tokio::test]
    async fn a_task_that_returns_early_or_panics_is_a_failure_too() {
        for panics in [false, true] {
            let shutdown = CancellationToken::new();
            let health = Health::default();
            let mut tasks = Tasks::new(&shutdown, &health);
            tasks.spawn("decider", async move {
                if panics {
                    panic!("boom");
                }
                Ok(())
            });
            let err = tasks.join().await.unwrap_err();
            let shown = format!("{err:#}");
            let expected = if panics {
                "decider stopped: panicked: boom"
            } else {
                "decider stopped: ended before shutdown"
            };
            assert!(shown.contains(expected), "{shown}");
            assert!(!health.report().0);
        }
    }

    #[tokio::test]
    async fn tasks_that_end_at_shutdown_are_fine() {
        let shutdown = CancellationToken::new();
        let health = Health::default();
        let mut tasks = Tasks::new(&shutdown, &health);
        for name in ["consumer", "ops"] {
            let stop = tasks.stop_token();
            tasks.spawn(name, async move {
                stop.cancelled().await;
                Ok(())
            });
        }
        shutdown.cancel();
        tasks.join().await.unwrap();
        assert!(health.report().0);
    }
}
