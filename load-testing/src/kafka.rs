//! Load as Kafka messages: the open-loop schedule of an HTTP run ([`Schedule`]), each arrival
//! one message produced to a topic instead of one request, for scaling consumers on lag.
//!
//! A message is a small JSON work item, its sequence number and when it was sent
//! ([`WorkItem`]), keyed by its sequence number and sent to the topic's partitions in turn, so
//! that each partition gets an even share. A message counts as produced once the broker
//! acknowledged it; one not acknowledged within the timeout (librdkafka's
//! `message.timeout.ms`) counts as failed. When librdkafka's local queue is full, or
//! `max_in_flight` messages await their acknowledgement, arrivals are dropped and counted,
//! never delayed.

use crate::engine::{RunSpec, Schedule};
use crate::stats::{Outcome, Stats};
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::{Deserialize, Serialize};
use service_runtime::kafka::{KafkaArgs, ensure_topics};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long the topic's metadata may take to come.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The payload of one message: a work item (its consumers need not read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// The message's number in its run, from 0.
    pub seq: u64,
    /// When it was handed to the producer.
    pub sent_at: DateTime<Utc>,
}

impl WorkItem {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A topic to produce to, and the producer.
pub struct KafkaTarget {
    producer: FutureProducer,
    topic: String,
    /// The topic's partitions, sent to in turn.
    partitions: i32,
}

impl KafkaTarget {
    /// Creates the topic if it is missing (with KAFKA_TOPIC_PARTITIONS partitions, unless
    /// KAFKA_CREATE_TOPICS=false) and the producer, and reads the topic's partition count.
    /// `timeout` bounds each message's delivery.
    pub async fn connect(args: &KafkaArgs, topic: &str, timeout: Duration) -> anyhow::Result<Self> {
        ensure_topics(args, &[topic]).await.with_context(|| {
            format!(
                "cannot create topic {topic} on {}",
                args.kafka_bootstrap_servers
            )
        })?;
        let mut config = args.producer_config("load-testing");
        let properties = args.properties();
        let given = |key: &str| properties.iter().any(|(k, _)| k == key);
        if !given("message.timeout.ms") {
            let millis = timeout.as_millis().clamp(1, i32::MAX as u128);
            config.set("message.timeout.ms", millis.to_string());
        }
        // A producer's metadata request may create the topic on a broker that allows it: a
        // topic is created above, with its partitions, or not at all (never by a typo).
        if !given("allow.auto.create.topics") {
            config.set("allow.auto.create.topics", "false");
        }
        let producer: FutureProducer = config
            .create()
            .context("cannot create the Kafka producer")?;
        let partitions = partition_count(&producer, topic).await?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            partitions,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }
}

/// The number of partitions of `topic`; an error if the broker does not know it.
async fn partition_count(producer: &FutureProducer, topic: &str) -> anyhow::Result<i32> {
    let (producer, name) = (producer.clone(), topic.to_owned());
    let metadata = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&name), METADATA_TIMEOUT)
    })
    .await?
    .with_context(|| format!("cannot read topic {topic}'s metadata"))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    if partitions == 0 {
        bail!(
            "topic {topic} does not exist (or has no partitions): start its consumers first, or let load-testing create it (KAFKA_CREATE_TOPICS)"
        );
    }
    Ok(i32::try_from(partitions).unwrap_or(i32::MAX))
}

/// Produces one message per arrival of `spec` to `target` until its duration has passed or
/// `shutdown` is cancelled, then waits (up to the timeout) for the acknowledgements.
pub async fn run(
    spec: &RunSpec,
    target: &KafkaTarget,
    stats: Arc<Stats>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut schedule = Schedule::start(spec);
    let mut seq: u64 = 0;
    while schedule.next_arrival(shutdown).await {
        if in_flight.load(Ordering::Relaxed) >= spec.max_in_flight {
            stats.dropped();
            continue;
        }
        let item = WorkItem {
            seq,
            sent_at: Utc::now(),
        };
        let (key, payload) = (seq.to_string(), item.encode());
        let partition = i32::try_from(seq % target.partitions.max(1) as u64).unwrap_or(0);
        let record = FutureRecord::to(&target.topic)
            .partition(partition)
            .key(&key)
            .payload(&payload);
        let sent_at = Instant::now();
        match target.producer.send_result(record) {
            Ok(delivery) => {
                seq += 1;
                stats.sent();
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (stats, in_flight) = (stats.clone(), in_flight.clone());
                tokio::spawn(async move {
                    let outcome = match delivery.await {
                        Ok(Ok(_)) => Outcome::Ok,
                        Ok(Err((e, _))) => failure(&e),
                        Err(_canceled) => Outcome::Transport,
                    };
                    stats.record(outcome, sent_at.elapsed());
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                stats.dropped();
            }
            Err((e, _)) => {
                seq += 1;
                stats.sent();
                stats.record(failure(&e), Duration::ZERO);
            }
        }
    }
    // Each message still waiting is acknowledged or failed within the timeout; a moment more
    // for librdkafka to report it.
    let drain_until = Instant::now() + spec.timeout + Duration::from_secs(1);
    while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// How a message that was not produced counts.
fn failure(e: &KafkaError) -> Outcome {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageTimedOut) => Outcome::Timeout,
        _ => Outcome::Transport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_item_is_small_json_with_its_number_and_time() {
        let item = WorkItem {
            seq: 42,
            sent_at: "2025-01-02T03:04:05.678Z".parse().unwrap(),
        };
        let bytes = item.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text, r#"{"seq":42,"sent_at":"2025-01-02T03:04:05.678Z"}"#);
        assert_eq!(serde_json::from_slice::<WorkItem>(&bytes).unwrap(), item);
    }
}
