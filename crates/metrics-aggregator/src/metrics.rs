//! The aggregator's own metrics, served on /metrics. Labels are bounded: sink names, error kinds
//! and skip reasons; the capacity gauges carry the service, one of the jobs the operator's
//! Prometheus scrapes (never a name from a message).

use prometheus::{GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct AggregatorMetrics {
    /// Polls by outcome (`ok`, `failed`).
    pub polls: IntCounterVec,
    /// Failed Prometheus queries by kind (`unreachable`, `http_status`, `malformed`, `refused`).
    pub prometheus_errors: IntCounterVec,
    /// Feature vectors delivered, by sink (`kafka`, `csv`).
    pub vectors: IntCounterVec,
    /// Feature vectors that could not be delivered, by sink.
    pub publish_errors: IntCounterVec,
    /// Service windows without a feature vector, by reason.
    pub skipped: IntCounterVec,
    /// Service windows whose CPU or memory came from the process metrics because cAdvisor had
    /// none, by resource (`cpu`, `memory`).
    pub resource_fallbacks: IntCounterVec,
    /// Services seen in the last poll.
    pub services: IntGauge,
    /// Time from the start of a poll to its vectors delivered.
    pub poll_duration: Histogram,
    /// Unix time of the last poll that delivered.
    pub last_success: IntGauge,
    /// Requests per second one replica carries within the SLA, learned, per service.
    pub capacity: GaugeVec,
    /// Load per replica over that capacity, per service.
    pub capacity_utilization: GaugeVec,
    /// Anomalies found, by kind.
    pub anomalies: IntCounterVec,
    /// 1 while a service's last window showed an anomaly of a kind, else 0.
    pub anomaly: GaugeVec,
}

impl AggregatorMetrics {
    /// Registers the metrics; every label value they can take starts at 0 (`sink` is the
    /// aggregator's one sink).
    pub fn register(registry: &Registry, sink: &str) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, label: &str| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let services = IntGauge::new("aggregator_services", "Services seen in the last poll")?;
        let last_success = IntGauge::new(
            "aggregator_last_success_timestamp_seconds",
            "Unix time of the last poll whose vectors were delivered",
        )?;
        let poll_duration = Histogram::with_opts(
            HistogramOpts::new(
                "aggregator_poll_duration_seconds",
                "Poll time, queries to delivery",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let gauge = |name: &str, help: &str| -> prometheus::Result<GaugeVec> {
            let g = GaugeVec::new(Opts::new(name, help), &["service"])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        registry.register(Box::new(services.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        registry.register(Box::new(poll_duration.clone()))?;
        let metrics = Self {
            polls: counter("aggregator_polls_total", "Polls by outcome", "outcome")?,
            prometheus_errors: counter(
                "aggregator_prometheus_errors_total",
                "Failed Prometheus queries by kind",
                "kind",
            )?,
            vectors: counter(
                "aggregator_feature_vectors_total",
                "Feature vectors delivered, by sink",
                "sink",
            )?,
            publish_errors: counter(
                "aggregator_publish_errors_total",
                "Feature vectors that could not be delivered, by sink",
                "sink",
            )?,
            skipped: counter(
                "aggregator_windows_skipped_total",
                "Service windows without a feature vector, by reason",
                "reason",
            )?,
            resource_fallbacks: counter(
                "aggregator_resource_fallbacks_total",
                "Service windows whose CPU or memory came from the process metrics because cAdvisor had none, by resource",
                "resource",
            )?,
            services,
            poll_duration,
            last_success,
            capacity: gauge(
                "aggregator_capacity_rps",
                "Requests per second one replica carries within the SLA, learned from the service's windows",
            )?,
            capacity_utilization: gauge(
                "aggregator_capacity_utilization",
                "Load per replica over the learned capacity",
            )?,
            anomalies: counter(
                "aggregator_anomalies_total",
                "Anomalies found in the services' windows (published on ANOMALIES_TOPIC), by kind",
                "kind",
            )?,
            anomaly: {
                let g = GaugeVec::new(
                    Opts::new(
                        "aggregator_anomaly",
                        "1 while the service's last window showed an anomaly of this kind, else 0",
                    ),
                    &["service", "kind"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
        };
        for kind in contract::AnomalyKind::ALL {
            metrics.anomalies.with_label_values(&[kind.as_str()]);
        }
        for outcome in ["ok", "failed"] {
            metrics.polls.with_label_values(&[outcome]);
        }
        for kind in crate::prometheus::QueryError::KINDS {
            metrics.prometheus_errors.with_label_values(&[kind]);
        }
        let skips = [
            "prometheus_unavailable",
            crate::prometheus::Missing::RequestRate.reason(),
        ];
        for reason in skips.into_iter().chain(features::Skip::REASONS) {
            metrics.skipped.with_label_values(&[reason]);
        }
        for resource in crate::prometheus::Fallbacks::RESOURCES {
            metrics.resource_fallbacks.with_label_values(&[resource]);
        }
        metrics.vectors.with_label_values(&[sink]);
        metrics.publish_errors.with_label_values(&[sink]);
        Ok(metrics)
    }
}
