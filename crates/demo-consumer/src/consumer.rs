//! The consumer loop: a member of the group (subscribed, so that the broker shares the topic's
//! partitions among the replicas and lists each as a member), up to CONCURRENCY messages worked
//! on at once, each for the message's cost.
//!
//! One task does it all: it takes a message when a slot is free, and as each message's work
//! ends it stores the offset its partition may now be committed at ([`Offsets`]); librdkafka
//! commits the stored offsets every second. On shutdown it stops taking messages, lets those in
//! flight finish, stores and commits their offsets, and closes the consumer, which leaves the
//! group at once: the replicas that stay get its partitions after one rebalance instead of
//! after the broker's session timeout.
//!
//! The payload is never read: a message is a work item whatever its bytes, and it is never
//! copied (librdkafka's fetch queue, bounded by the shared consumer settings, holds it).

use crate::config::ConsumerConfig;
use crate::metrics::ConsumerMetrics;
use crate::offsets::{Offsets, Ticket};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message};
use service_runtime::kafka::KafkaMetrics;
use service_runtime::telemetry::LogThrottle;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Wait after a consumer error before asking again.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// How long the final commit and leaving the group may take at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the metadata request for the topic's partition count may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// What librdkafka's rebalance callbacks tell the loop. They run inside `recv`, on the loop's
/// own task, before any message of a new assignment is returned.
struct GroupContext {
    topic: String,
    /// Partitions assigned or revoked since the loop last looked.
    moved: Mutex<Vec<i32>>,
    metrics: ConsumerMetrics,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (what, list) = match rebalance {
            Rebalance::Assign(list) => ("assigned", list),
            Rebalance::Revoke(list) => ("revoked", list),
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance failed; the broker will retry it");
                return;
            }
        };
        let partitions: Vec<i32> = list
            .elements_for_topic(&self.topic)
            .iter()
            .map(|p| p.partition())
            .collect();
        self.moved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(&partitions);
        // The assignment after the change, whether the protocol is eager or cooperative.
        let now = consumer
            .assignment()
            .map(|a| a.elements_for_topic(&self.topic).len())
            .unwrap_or(0);
        self.metrics
            .partitions
            .set(i64::try_from(now).unwrap_or(i64::MAX));
        self.metrics.rebalances.inc();
        tracing::info!(topic = %self.topic, ?partitions, assigned_now = now, "partitions {what}");
    }
}

/// One replica's member of the group.
pub struct WorkConsumer {
    /// Subscribed to `topic`. Closing it (when its last handle is dropped) waits for the
    /// broker, so it is closed on a thread of its own ([`WorkConsumer::close`], or the `Drop`
    /// of a consumer whose task was aborted); `None` once handed to that thread.
    inner: Option<Arc<StreamConsumer<GroupContext>>>,
    topic: String,
    /// What each message costs.
    cost: Duration,
    /// Messages worked on at once.
    concurrency: usize,
    metrics: ConsumerMetrics,
    /// Consumer errors and offsets a revoked partition could not take.
    kafka_metrics: KafkaMetrics,
}

impl WorkConsumer {
    /// Creates the consumer and subscribes it to the configured topic and group. A new group
    /// reads the topic from its start (work produced before the first replica came is still
    /// work) unless KAFKA_PROPERTIES says otherwise.
    pub fn new(
        config: &ConsumerConfig,
        metrics: ConsumerMetrics,
        kafka_metrics: KafkaMetrics,
    ) -> Result<Self, KafkaError> {
        let (args, topic) = (&config.kafka, config.topic.as_str());
        let mut client = args.consumer_config("demo-consumer", &config.group);
        if !args
            .properties()
            .iter()
            .any(|(key, _)| key == "auto.offset.reset")
        {
            client.set("auto.offset.reset", "earliest");
        }
        let context = GroupContext {
            topic: topic.to_owned(),
            moved: Mutex::new(Vec::new()),
            metrics: metrics.clone(),
        };
        let inner: StreamConsumer<GroupContext> = client.create_with_context(context)?;
        inner.subscribe(&[topic])?;
        kafka_metrics.consumed.with_label_values(&[topic]);
        Ok(Self {
            inner: Some(Arc::new(inner)),
            topic: topic.to_owned(),
            cost: config.message_cost(),
            concurrency: usize::try_from(config.concurrency).unwrap_or(1).max(1),
            metrics,
            kafka_metrics,
        })
    }

    /// The topic's partition count from the broker's metadata, if it answers.
    pub async fn partition_count(&self) -> Option<usize> {
        let (consumer, topic) = (self.inner.clone()?, self.topic.clone());
        tokio::task::spawn_blocking(move || {
            let metadata = consumer
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .ok()?;
            let found = metadata.topics().iter().find(|t| t.name() == topic)?;
            Some(found.partitions().len())
        })
        .await
        .ok()
        .flatten()
    }

    /// Works on messages until `stop` is cancelled, then finishes those in flight, commits,
    /// and leaves the group.
    pub async fn run(self, stop: CancellationToken) -> Result<(), KafkaError> {
        let Some(consumer) = self.inner.as_deref() else {
            return Ok(());
        };
        let mut offsets = Offsets::default();
        let mut in_flight = FuturesUnordered::new();
        let mut throttle = LogThrottle::default();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some((ticket, took)) = in_flight.next(), if !in_flight.is_empty() => {
                    self.done(&mut offsets, ticket, took)?;
                }
                received = consumer.recv(), if in_flight.len() < self.concurrency => {
                    self.apply_rebalances(&mut offsets);
                    match received {
                        Ok(message) => {
                            let ticket = offsets.start(message.partition(), message.offset());
                            self.metrics.in_flight.inc();
                            in_flight.push(work(ticket, self.cost));
                        }
                        Err(e) => {
                            self.consume_error(&e, &mut throttle);
                            tokio::time::sleep(ERROR_BACKOFF).await;
                        }
                    }
                }
            }
        }
        let draining = in_flight.len();
        while let Some((ticket, took)) = in_flight.next().await {
            self.done(&mut offsets, ticket, took)?;
        }
        tracing::info!(
            finished = draining,
            "stopped taking messages; committing and leaving the group"
        );
        self.close().await
    }

    /// A message's work is done: count it and store the offset its partition may move to.
    fn done(
        &self,
        offsets: &mut Offsets,
        ticket: Ticket,
        took: Duration,
    ) -> Result<(), KafkaError> {
        // A rebalance served by a `recv` that has not returned yet still counts.
        self.apply_rebalances(offsets);
        self.metrics.in_flight.dec();
        self.metrics.messages.inc();
        self.metrics.processing.observe(took.as_secs_f64());
        self.kafka_metrics
            .consumed
            .with_label_values(&[&self.topic])
            .inc();
        match offsets.finish(ticket) {
            Some(next) => self.store(ticket.partition, next),
            None => Ok(()),
        }
    }

    /// Forgets the partitions the last rebalances moved.
    fn apply_rebalances(&self, offsets: &mut Offsets) {
        let Some(consumer) = &self.inner else {
            return;
        };
        let moved = std::mem::take(
            &mut *consumer
                .context()
                .moved
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for partition in moved {
            offsets.forget(partition);
        }
    }

    /// Stores `next` as the offset `partition` is to be read from (committed within a second).
    /// A partition revoked meanwhile cannot take it: its new owner reads those messages again,
    /// which at-least-once allows; that is counted, not fatal.
    fn store(&self, partition: i32, next: i64) -> Result<(), KafkaError> {
        let Some(consumer) = &self.inner else {
            return Ok(());
        };
        // librdkafka stores the offset after the one given: the last message done.
        self.kafka_metrics.revoked_store(
            consumer.store_offset(&self.topic, partition, next - 1),
            &self.topic,
            partition,
            next - 1,
        )
    }

    fn consume_error(&self, e: &KafkaError, throttle: &mut LogThrottle) {
        self.kafka_metrics.consume_error(&self.topic, e, throttle);
    }

    /// Commits the stored offsets and closes the consumer (leaving the group), on a thread
    /// of its own: both wait for the broker, and a broker that does not answer must hold
    /// neither an async thread nor the process's exit.
    async fn close(mut self) -> Result<(), KafkaError> {
        let Some(consumer) = self.inner.take() else {
            return Ok(());
        };
        let (done, closed) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("kafka-close".into())
            .spawn(move || {
                let committed = match consumer.commit_consumer_state(CommitMode::Sync) {
                    Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
                    other => other,
                };
                // Dropping the last handle closes the consumer: it revokes its partitions and
                // sends LeaveGroup.
                drop(consumer);
                let _ = done.send(committed);
            })
            .map_err(|_| KafkaError::Canceled)?;
        match tokio::time::timeout(CLOSE_TIMEOUT, closed).await {
            Ok(Ok(committed)) => committed,
            Ok(Err(_gone)) => Err(KafkaError::Canceled),
            Err(_) => {
                tracing::warn!(timeout = ?CLOSE_TIMEOUT, "the final commit and leaving the group did not finish in time; the group's session timeout will remove this member");
                Ok(())
            }
        }
    }
}

impl Drop for WorkConsumer {
    /// A consumer whose task was aborted (not stopped) is closed on a thread of its own too.
    fn drop(&mut self) {
        if let Some(consumer) = self.inner.take() {
            let _ = std::thread::Builder::new()
                .name("kafka-close".into())
                .spawn(move || drop(consumer));
        }
    }
}

/// The work a message costs: waiting, as an I/O-bound service waits for what it calls.
async fn work(ticket: Ticket, cost: Duration) -> (Ticket, Duration) {
    let started = Instant::now();
    tokio::time::sleep(cost).await;
    (ticket, started.elapsed())
}
