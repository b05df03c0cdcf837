//! docker-guard: the boundary between the fleet and the Docker engine.
//!
//! The authoritative-scaler is the only client (in docker-compose.yml the guard and the scaler
//! share a network no other container is on). The guard listens on TCP, reads each request,
//! and sends it on to the engine's unix socket only when it is a call the scaler makes, on a
//! service the operator opted in (label `autoscaler.enable=true`), in the form the scaler makes
//! it ([`policy`]). Everything else is answered 403 with one line saying what was refused and
//! why, counted in `docker_guard_refusals_total` and logged.
//!
//! Bounds: request headers 64 KiB and 10 s to arrive, request bodies 1 MiB, engine answers
//! 4 MiB and `ENGINE_TIMEOUT_SEC`, `MAX_CONNECTIONS` connections at once.

pub mod config;
pub mod engine;
mod metrics;
pub mod policy;
mod proxy;

pub use config::GuardConfig;
pub use proxy::MAX_BODY;

use anyhow::Context;
use engine::Engine;
use hyper::Method;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::GuardMetrics;
use prometheus::Registry;
use proxy::Guard;
use service_runtime::ops::Health;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Most bytes of a request's head (request line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Time a caller gets to send a request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection is kept, however busy.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(600);
/// Time connections get to finish at shutdown.
const GRACE: Duration = Duration::from_secs(5);
/// How often the engine is pinged for `/healthz`.
const PING_EVERY: Duration = Duration::from_secs(10);

/// A built, not yet running guard: its listeners are bound, so tests read their ports.
pub struct Application {
    config: GuardConfig,
    listener: TcpListener,
    ops_listener: TcpListener,
    registry: Registry,
    health: Health,
    guard: Arc<Guard>,
    engine: Engine,
}

impl Application {
    pub async fn build(config: GuardConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {} (LISTEN_ADDR)", config.listen_addr))?;
        let ops_listener = TcpListener::bind(config.metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {} (METRICS_ADDR)", config.metrics_addr))?;
        let registry = service_runtime::ops::registry();
        let metrics = GuardMetrics::register(&registry)?;
        let engine = Engine::new(&config.docker_socket, config.engine_timeout_sec.std());
        let guard = Arc::new(Guard::new(engine.clone(), metrics));
        Ok(Self {
            config,
            listener,
            ops_listener,
            registry,
            health: Health::default(),
            guard,
            engine,
        })
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.config.listen_addr)
    }

    /// Where `/metrics` and `/healthz` are served.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener
            .local_addr()
            .unwrap_or(self.config.metrics_addr)
    }

    /// Serves until `shutdown` is cancelled, then gives open connections [`GRACE`] to finish.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let ops = tokio::spawn(service_runtime::ops::serve(
            self.ops_listener,
            self.registry,
            self.health.clone(),
            shutdown.clone(),
        ));
        let pinger = tokio::spawn(ping(self.engine, self.health.clone(), shutdown.clone()));
        self.health.set(
            "proxy",
            true,
            format!("listening on {}", self.config.listen_addr),
        );
        let permits = Arc::new(Semaphore::new(self.config.max_connections as usize));
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = permits.clone().acquire_owned() => permit?,
            };
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let (guard, stop) = (self.guard.clone(), shutdown.clone());
            connections.spawn(async move {
                let _permit = permit;
                serve_connection(stream, guard, stop).await;
            });
        }
        let drained = tokio::time::timeout(GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            connections.abort_all();
        }
        pinger.abort();
        ops.await??;
        tracing::info!("docker-guard stopped");
        Ok(())
    }
}

/// One client connection: HTTP/1 with bounded heads, closed gracefully at shutdown.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    guard: Arc<Guard>,
    stop: CancellationToken,
) {
    let service = service_fn(move |request| {
        let guard = guard.clone();
        async move { Ok::<_, std::convert::Infallible>(guard.handle(request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::time::timeout(CONNECTION_LIFETIME, async {
        tokio::select! {
            result = connection.as_mut() => result,
            _ = stop.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        }
    })
    .await;
    if let Ok(Err(e)) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Pings the engine for `/healthz`: the guard is healthy while the engine answers.
async fn ping(engine: Engine, health: Health, stop: CancellationToken) {
    let mut tick = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match engine.send(Method::GET, "/_ping", None).await {
            Ok(answer) if answer.status.is_success() => health.set("engine", true, "answers"),
            Ok(answer) => health.set("engine", false, format!("_ping answered {}", answer.status)),
            Err(e) => health.set("engine", false, e.to_string()),
        }
    }
}

/// Started by [`service_runtime::service::main`].
impl service_runtime::service::Service for Application {
    const NAME: &'static str = "docker-guard";
    type Config = GuardConfig;

    fn log_args(config: &GuardConfig) -> &service_runtime::telemetry::LogArgs {
        &config.log
    }

    async fn build(config: GuardConfig) -> anyhow::Result<Self> {
        Application::build(config).await
    }

    fn ops_addr(&self) -> SocketAddr {
        Application::ops_addr(self)
    }

    fn announce(&self) {
        tracing::info!(proxy = %self.addr(), ops = %self.ops_addr(), "guarding the Docker engine");
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        Application::run(self, shutdown).await
    }
}
