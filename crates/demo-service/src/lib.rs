//! The demo target: an HTTP service whose latency depends on load the way a real service's does.
//!
//! Each replica has a fixed number of slots (its concurrency); a request takes a slot for a random
//! service time, waiting in a bounded queue while none is free. Waiting, not spinning, is what
//! makes it slow, so hundreds of replicas cost almost no CPU. It exports the histogram
//! `request_duration_seconds{service,method,route,status_code}` as Sock Shop's services do, plus
//! the process metrics, so the aggregator treats it exactly like a Sock Shop service. With
//! `RECORD_SCRAPES` it also records Prometheus' scrapes of /metrics in that histogram
//! (`route="metrics"`), as Sock Shop's Go services do.

mod config;
mod metrics;

pub use config::{
    DEFAULT_CONCURRENCY, DEFAULT_SERVICE_TIME_MS, DemoConfig, ServiceTimeDistribution,
};
/// Bucket bounds of `request_duration_seconds`, in seconds.
pub use metrics::BUCKETS as LATENCY_BUCKETS;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::DemoMetrics;
use rand::Rng;
use rand_distr::{Distribution, Exp};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A bound, not yet running replica: tests read its address before running it.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds the listener and builds the routes.
    pub async fn build(config: &DemoConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen_addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (LISTEN_ADDR): {e}", config.listen_addr)
        })?;
        let registry = service_runtime::ops::registry();
        let metrics = DemoMetrics::register(&registry)?;
        let health = service_runtime::ops::Health::default();
        health.set(
            "server",
            true,
            format!("serving as {}", config.service_name),
        );
        let state = Arc::new(Replica::new(config, metrics));
        let mut ops = service_runtime::ops::router(registry, health);
        if config.record_scrapes {
            ops = ops.layer(axum::middleware::from_fn_with_state(
                state.clone(),
                record_scrape,
            ));
        }
        if config.fault_switch {
            ops = ops.layer(axum::middleware::from_fn_with_state(
                state.clone(),
                fail_scrape,
            ));
        }
        let mut router = Router::new();
        if config.fault_switch {
            router = router.route("/fault", axum::routing::post(set_fault).delete(clear_fault));
        }
        let router = router.fallback(serve).with_state(state).merge(ops);
        Ok(Self { listener, router })
    }

    /// The address actually bound (the port is ephemeral when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    }
}

/// The state of one replica.
struct Replica {
    /// `service` label value.
    service: String,
    /// One permit per request served at once.
    slots: Semaphore,
    /// Requests waiting for a slot.
    waiting: AtomicU32,
    /// Past this many waiting, requests are refused.
    max_queue: u32,
    /// Mean service time.
    mean: Duration,
    /// Service-time sampler; `None` for a constant service time.
    exponential: Option<Exp<f64>>,
    /// Share of requests answered with 500.
    error_rate: f64,
    /// The fault switch's state, while on.
    fault: std::sync::Mutex<Option<Fault>>,
    /// Prometheus metrics.
    metrics: DemoMetrics,
}

/// A slowed or failing dependency, or a broken exporter, until `until`.
#[derive(Debug, Clone, Copy)]
struct Fault {
    until: Instant,
    slowdown: Duration,
    error_ratio: f64,
    /// `/metrics` answers 503: Prometheus' scrape of this replica fails (`up == 0`) while it
    /// goes on serving.
    metrics_down: bool,
}

impl Replica {
    fn new(config: &DemoConfig, metrics: DemoMetrics) -> Self {
        let mean = Duration::from_secs_f64(config.service_time_ms / 1000.0);
        let exponential = match config.service_time_distribution {
            ServiceTimeDistribution::Exponential => Exp::new(1.0 / mean.as_secs_f64()).ok(),
            ServiceTimeDistribution::Constant => None,
        };
        Self {
            service: config.service_name.clone(),
            slots: Semaphore::new(config.concurrency as usize),
            waiting: AtomicU32::new(0),
            max_queue: config.max_queue,
            mean,
            exponential,
            error_rate: config.error_rate,
            fault: std::sync::Mutex::new(None),
            metrics,
        }
    }

    /// The fault in force now, if any.
    fn fault(&self) -> Option<Fault> {
        let mut fault = self.fault.lock().ok()?;
        if fault.is_some_and(|f| f.until <= Instant::now()) {
            *fault = None;
            self.metrics.fault.set(0);
            tracing::info!("fault switch: off (its time ran out)");
        }
        *fault
    }

    fn service_time(&self) -> Duration {
        match &self.exponential {
            Some(exp) => Duration::from_secs_f64(exp.sample(&mut rand::rng())),
            None => self.mean,
        }
    }
}

/// Every route of the service: wait for a slot, hold it for the service time, answer.
async fn serve(State(replica): State<Arc<Replica>>, method: Method, uri: Uri) -> StatusCode {
    let started = Instant::now();
    let route = metrics::route_label(uri.path());
    let status = match admit(&replica).await {
        Some(permit) => {
            tokio::time::sleep(replica.service_time()).await;
            let fault = replica.fault();
            if let Some(f) = fault {
                // The slowed dependency, waited for with the slot held.
                tokio::time::sleep(f.slowdown).await;
            }
            drop(permit);
            let error_rate = fault.map_or(replica.error_rate, |f| {
                f.error_ratio.max(replica.error_rate)
            });
            if error_rate > 0.0 && rand::rng().random_bool(error_rate.min(1.0)) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
        None => StatusCode::SERVICE_UNAVAILABLE,
    };
    replica
        .metrics
        .observe(&replica.service, &method, route, status, started.elapsed());
    status
}

/// What `POST /fault` takes.
#[derive(Debug, serde::Deserialize)]
struct FaultParams {
    #[serde(default)]
    slowdown_ms: f64,
    #[serde(default)]
    error_ratio: f64,
    #[serde(default)]
    metrics_down: bool,
    for_sec: f64,
}

/// Longest fault the switch takes, seconds.
const MAX_FAULT_SEC: f64 = 3_600.0;
/// Longest slowdown per request, milliseconds.
const MAX_SLOWDOWN_MS: f64 = 60_000.0;

/// `POST /fault`: turns the fault on for `for_sec` seconds.
async fn set_fault(
    State(replica): State<Arc<Replica>>,
    params: Result<axum::extract::Query<FaultParams>, axum::extract::rejection::QueryRejection>,
) -> (StatusCode, String) {
    let usage = "POST /fault?slowdown_ms=M&error_ratio=E&metrics_down=B&for_sec=S: M 0 to 60000, E 0 to 1, B true or false, S above 0 and at most 3600";
    let Ok(axum::extract::Query(p)) = params else {
        return (StatusCode::BAD_REQUEST, format!("{usage}\n"));
    };
    let valid = (0.0..=MAX_SLOWDOWN_MS).contains(&p.slowdown_ms)
        && (0.0..=1.0).contains(&p.error_ratio)
        && p.for_sec > 0.0
        && p.for_sec <= MAX_FAULT_SEC;
    if !valid {
        return (StatusCode::BAD_REQUEST, format!("{usage}\n"));
    }
    let fault = Fault {
        until: Instant::now() + Duration::from_secs_f64(p.for_sec),
        slowdown: Duration::from_secs_f64(p.slowdown_ms / 1000.0),
        error_ratio: p.error_ratio,
        metrics_down: p.metrics_down,
    };
    if let Ok(mut slot) = replica.fault.lock() {
        *slot = Some(fault);
    }
    replica.metrics.fault.set(1);
    tracing::warn!(
        slowdown_ms = p.slowdown_ms,
        error_ratio = p.error_ratio,
        metrics_down = p.metrics_down,
        for_sec = p.for_sec,
        "fault switch: on (a slowed or failing dependency, or a broken exporter)"
    );
    (
        StatusCode::OK,
        format!(
            "fault on for {} s: +{} ms a request, {} errors, /metrics {}\n",
            p.for_sec,
            p.slowdown_ms,
            p.error_ratio,
            if p.metrics_down { "down" } else { "up" }
        ),
    )
}

/// `DELETE /fault`: turns the fault off.
async fn clear_fault(State(replica): State<Arc<Replica>>) -> StatusCode {
    if let Ok(mut slot) = replica.fault.lock() {
        *slot = None;
    }
    replica.metrics.fault.set(0);
    tracing::info!("fault switch: off");
    StatusCode::NO_CONTENT
}

/// Sock Shop's label for its own /metrics route (the route's path without the slash).
pub const SCRAPE_ROUTE: &str = "metrics";

/// Records a scrape of /metrics in the request histogram after answering it, as the
/// instrumentation that wraps a Sock Shop service's whole router does: each scrape is seen by
/// the next one.
async fn record_scrape(
    State(replica): State<Arc<Replica>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != "/metrics" {
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    replica.metrics.observe(
        &replica.service,
        &method,
        SCRAPE_ROUTE,
        response.status(),
        started.elapsed(),
    );
    response
}

/// The fault switch's broken exporter: `/metrics` answers 503 while a fault with
/// `metrics_down` is on, so that Prometheus' scrape of the replica fails as it would behind a
/// broken exporter or network path, while requests are served as before.
async fn fail_scrape(
    State(replica): State<Arc<Replica>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == "/metrics" && replica.fault().is_some_and(|f| f.metrics_down) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics down: the fault switch is on (DELETE /fault)\n",
        )
            .into_response();
    }
    next.run(request).await
}

/// Waits for a slot, or refuses when the queue is full.
async fn admit(replica: &Replica) -> Option<tokio::sync::SemaphorePermit<'_>> {
    if let Ok(permit) = replica.slots.try_acquire() {
        return Some(permit);
    }
    let before = replica.waiting.fetch_add(1, Ordering::AcqRel);
    if before >= replica.max_queue {
        replica.waiting.fetch_sub(1, Ordering::AcqRel);
        replica.metrics.rejected.inc();
        return None;
    }
    replica.metrics.queue_depth.inc();
    let permit = replica.slots.acquire().await.ok();
    replica.waiting.fetch_sub(1, Ordering::AcqRel);
    replica.metrics.queue_depth.dec();
    permit
}
