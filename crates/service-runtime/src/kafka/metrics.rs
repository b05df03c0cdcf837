//! Counters of the Kafka plumbing, with bounded labels (topic names and fixed reasons).

use crate::telemetry::LogThrottle;
use prometheus::{IntCounterVec, Opts, Registry};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Produce and consume counters of one service.
#[derive(Debug, Clone)]
pub struct KafkaMetrics {
    /// Messages handed to a handler and finished, by topic.
    pub consumed: IntCounterVec,
    /// Messages skipped because they could not be read, by topic and reason.
    pub skipped: IntCounterVec,
    /// Messages copied to the dead-letter topic, by source topic and reason.
    pub dead_letters: IntCounterVec,
    /// Handler failures that were retried, by topic.
    pub handler_retries: IntCounterVec,
    /// Errors the consumer reported (broker unreachable, rebalance failures), by kind.
    pub consume_errors: IntCounterVec,
    /// Messages the broker acknowledged, by topic.
    pub produced: IntCounterVec,
    /// Messages that could not be delivered, by topic.
    pub produce_errors: IntCounterVec,
}

impl KafkaMetrics {
    /// Creates the counters and registers them in `registry`.
    /// Counts one message to `topic`: acknowledged, or not delivered.
    pub fn count(&self, topic: &str, delivered: bool) {
        let counter = if delivered {
            &self.produced
        } else {
            &self.produce_errors
        };
        counter.with_label_values(&[topic]).inc();
    }

    /// Counts an error the consumer reported, by its librdkafka code, and warns of it (once per
    /// code every interval of `throttle`).
    pub fn consume_error(&self, topic: &str, e: &KafkaError, throttle: &mut LogThrottle) {
        let kind = match e.rdkafka_error_code() {
            Some(code) => format!("{code:?}"),
            None => "other".into(),
        };
        self.consume_errors.with_label_values(&[&kind]).inc();
        if throttle.allow(&kind).is_some() {
            tracing::warn!(topic, error = %e, "consumer error; retrying");
        }
    }

    /// The outcome of storing the offset of `partition`'s message at `offset`: a partition
    /// revoked meanwhile cannot take it, and its new owner reads the message again, which
    /// at-least-once allows: counted (`offset_store_revoked`) and logged, not an error. Other
    /// errors are returned.
    pub fn revoked_store(
        &self,
        stored: Result<(), KafkaError>,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), KafkaError> {
        match stored {
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::State | RDKafkaErrorCode::UnknownPartition)
                ) =>
            {
                self.consume_errors
                    .with_label_values(&["offset_store_revoked"])
                    .inc();
                tracing::info!(
                    topic,
                    partition,
                    offset,
                    "the partition was revoked before this offset could be stored; its new owner reads it again"
                );
                Ok(())
            }
            other => other,
        }
    }

    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        Ok(Self {
            consumed: counter(
                "kafka_messages_consumed_total",
                "Messages consumed and processed",
                &["topic"],
            )?,
            skipped: counter(
                "kafka_messages_skipped_total",
                "Messages skipped because they could not be read",
                &["topic", "reason"],
            )?,
            dead_letters: counter(
                "kafka_dead_letters_total",
                "Messages that could not be processed, copied to the dead-letter topic; by source topic and reason",
                &["topic", "reason"],
            )?,
            handler_retries: counter(
                "kafka_handler_retries_total",
                "Message handler failures that were retried",
                &["topic"],
            )?,
            consume_errors: counter(
                "kafka_consume_errors_total",
                "Errors reported by the consumer",
                &["kind"],
            )?,
            produced: counter(
                "kafka_messages_produced_total",
                "Messages acknowledged by the broker",
                &["topic"],
            )?,
            produce_errors: counter(
                "kafka_produce_errors_total",
                "Messages that could not be delivered",
                &["topic"],
            )?,
        })
    }
}
