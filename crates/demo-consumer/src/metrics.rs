//! The demo consumer's own metrics (no labels: one replica reads one topic in one group; the
//! Prometheus job and instance tell replicas apart).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

/// Bucket bounds of the processing time, in seconds: 1 ms to a minute, the range of costs
/// taken.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone)]
pub struct ConsumerMetrics {
    /// Messages whose work is done.
    pub messages: IntCounter,
    /// Time from taking a message to its work being done.
    pub processing: Histogram,
    /// Messages being worked on now.
    pub in_flight: IntGauge,
    /// Partitions of the topic assigned to this replica now.
    pub partitions: IntGauge,
    /// Partition assignments and revocations this replica went through.
    pub rebalances: IntCounter,
}

impl ConsumerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            messages: IntCounter::new(
                "demo_consumer_messages_total",
                "Messages whose work is done",
            )?,
            processing: Histogram::with_opts(
                HistogramOpts::new(
                    "demo_consumer_processing_seconds",
                    "Time from taking a message to its work being done",
                )
                .buckets(BUCKETS.to_vec()),
            )?,
            in_flight: IntGauge::new("demo_consumer_in_flight", "Messages being worked on now")?,
            partitions: IntGauge::new(
                "demo_consumer_assigned_partitions",
                "Partitions of the topic assigned to this replica",
            )?,
            rebalances: IntCounter::new(
                "demo_consumer_rebalances_total",
                "Partition assignments and revocations this replica went through",
            )?,
        };
        registry.register(Box::new(metrics.messages.clone()))?;
        registry.register(Box::new(metrics.processing.clone()))?;
        registry.register(Box::new(metrics.in_flight.clone()))?;
        registry.register(Box::new(metrics.partitions.clone()))?;
        registry.register(Box::new(metrics.rebalances.clone()))?;
        Ok(metrics)
    }
}
