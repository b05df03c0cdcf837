//! Kafka plumbing on rdkafka (librdkafka), with nothing that depends on which broker answers:
//! Apache Kafka in production, the Kafka-compatible `tansu` broker in local runs and tests.
//!
//! - [`KafkaArgs`]: `KAFKA_BOOTSTRAP_SERVERS` plus raw librdkafka properties passed through
//!   (`KAFKA_PROPERTIES`), so SASL and TLS need no code change.
//! - [`ensure_topics`]: creates missing topics with the configured partitions.
//! - [`JsonProducer`]: idempotent producer of contract messages keyed by service.
//! - [`AtLeastOnceConsumer`]: a consumer group member that stores an offset only after the
//!   handler finished the message's work, and sends what it cannot process to a dead-letter
//!   topic with why.
//! - [`GroupProbe`]: where another consumer group stands on its topic (end and committed
//!   offsets, members), and from two readings its rates and lag.

mod admin;
mod args;
mod consumer;
mod lag;
mod metrics;
mod producer;

pub use admin::ensure_topics;
pub use args::{KafkaArgs, parse_property};
pub use consumer::{AtLeastOnceConsumer, HANDLER_FAILED, MAX_BATCH, MAX_TRIES, dead_letter_topic};
pub use lag::{GroupProbe, GroupRates, GroupReading, PartitionPosition};
pub use metrics::KafkaMetrics;
pub use producer::JsonProducer;
