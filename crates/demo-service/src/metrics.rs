//! The demo service's metrics, named and labelled as Sock Shop's services name theirs.

use axum::http::{Method, StatusCode};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntGauge, Registry};
use std::time::Duration;

/// Bucket bounds in seconds: Prometheus' defaults, refined between 50 ms and 1 s where SLA
/// thresholds usually sit, so histogram_quantile interpolates over narrow buckets there.
pub const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5,
    5.0, 10.0,
];

/// Routes of Sock Shop's front end and APIs that get their own label; anything else is `other`,
/// so that a client cannot blow up label cardinality.
const ROUTES: &[&str] = &[
    "/",
    "/addresses",
    "/basket.html",
    "/cards",
    "/cart",
    "/catalogue",
    "/category.html",
    "/customers",
    "/detail.html",
    "/index.html",
    "/login",
    "/orders",
    "/register",
    "/tags",
];

/// The label for a request path: its first segment when known.
pub fn route_label(path: &str) -> &'static str {
    let first = path.split('/').nth(1).unwrap_or("");
    ROUTES
        .iter()
        .find(|r| r[1..] == *first)
        .copied()
        .unwrap_or("other")
}

#[derive(Clone)]
pub struct DemoMetrics {
    /// Sock Shop's request histogram.
    pub duration: HistogramVec,
    /// Requests waiting for a slot right now.
    pub queue_depth: IntGauge,
    /// Requests refused because the queue was full.
    pub rejected: IntCounter,
    /// 1 while the fault switch is on.
    pub fault: IntGauge,
}

impl DemoMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time (in seconds) spent serving HTTP requests.",
            )
            .buckets(BUCKETS.to_vec()),
            &["service", "method", "route", "status_code"],
        )?;
        let queue_depth = IntGauge::new("demo_queue_depth", "Requests waiting for a slot")?;
        let rejected = IntCounter::new(
            "demo_rejected_requests_total",
            "Requests refused with 503 because the queue was full",
        )?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        let fault = IntGauge::new(
            "demo_fault_active",
            "1 while the fault switch slows the dependency or injects errors",
        )?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(fault.clone()))?;
        Ok(Self {
            duration,
            queue_depth,
            rejected,
            fault,
        })
    }

    pub fn observe(
        &self,
        service: &str,
        method: &Method,
        route: &str,
        status: StatusCode,
        took: Duration,
    ) {
        self.duration
            .with_label_values(&[service, method.as_str(), route, status.as_str()])
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn routes_are_bounded() {
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/catalogue/3395a43e"), "/catalogue");
        assert_eq!(route_label("/detail.html"), "/detail.html");
        assert_eq!(route_label("/random/abc"), "other");
    }
}
