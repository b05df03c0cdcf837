//! At-least-once consumption of contract messages.
//!
//! The offset of a message is stored only after its handler returned `Ok` (its work is done and
//! its output acknowledged), and stored offsets are committed every second and at shutdown. A
//! failing handler is retried with backoff; it is never skipped, so a crash or a shutdown before
//! success means the message is delivered again. A message that cannot be decoded is skipped,
//! counted and logged (at most once per reason every 10 s), never fatal.
//!
//! [`AtLeastOnceConsumer::run_batches`] hands the handler every message already waiting (up to a
//! bound) at once: a service that keeps up sees batches of one and no added latency; one that
//! falls behind amortizes its model call, file write and produce round trip over the batch.

use super::{KafkaArgs, KafkaMetrics};
use contract::Message as ContractMessage;
use futures::FutureExt;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A consumer group member reading one topic.
pub struct AtLeastOnceConsumer {
    /// librdkafka's consumer, subscribed to `topic`.
    inner: StreamConsumer,
    /// The topic, for counter labels and logs.
    topic: String,
    /// Consume counters.
    metrics: KafkaMetrics,
}

/// Messages the services hand to one `run_batches` call at most: enough that a service that
/// fell behind stops paying a broker round trip per message, few enough to bound what is redone
/// after a crash mid-batch.
pub const MAX_BATCH: usize = 256;

/// Log lines about bad input are limited to one per reason per this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Handler retry backoff bounds.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl AtLeastOnceConsumer {
    /// Creates the consumer and subscribes it to `topic` in consumer group `group_id`.
    pub fn new(
        args: &KafkaArgs,
        client_id: &str,
        group_id: &str,
        topic: &str,
        metrics: KafkaMetrics,
    ) -> Result<Self, KafkaError> {
        let inner: StreamConsumer = args.consumer_config(client_id, group_id).create()?;
        inner.subscribe(&[topic])?;
        // Every series this consumer can produce exists from the start, at 0.
        metrics.consumed.with_label_values(&[topic]);
        metrics.handler_retries.with_label_values(&[topic]);
        for reason in contract::DecodeError::REASONS {
            metrics.skipped.with_label_values(&[topic, reason]);
        }
        Ok(Self {
            inner,
            topic: topic.to_owned(),
            metrics,
        })
    }

    /// Hands every readable message to `handle`, one at a time, until `shutdown` is cancelled,
    /// then commits the stored offsets.
    pub async fn run<M, F>(
        &self,
        shutdown: &CancellationToken,
        mut handle: F,
    ) -> Result<(), KafkaError>
    where
        M: ContractMessage,
        F: AsyncFnMut(&M) -> anyhow::Result<()>,
    {
        let mut throttle = LogThrottle::default();
        'consume: while let Some(messages) = self.next_batch(shutdown, 1, &mut throttle).await {
            for message in self.decode::<M>(&messages, &mut throttle) {
                if !self
                    .handle_until_done(shutdown, &mut handle, &message)
                    .await
                {
                    break 'consume;
                }
                self.metrics
                    .consumed
                    .with_label_values(&[&self.topic])
                    .inc();
            }
            self.store(&messages)?;
        }
        self.commit()
    }

    /// Hands the readable messages to `handle` in batches: the next message, and those already
    /// waiting behind it, up to `max_batch`. Their offsets are stored once the batch is done.
    pub async fn run_batches<M, F>(
        &self,
        shutdown: &CancellationToken,
        max_batch: usize,
        mut handle: F,
    ) -> Result<(), KafkaError>
    where
        M: ContractMessage,
        F: AsyncFnMut(&[M]) -> anyhow::Result<()>,
    {
        let mut throttle = LogThrottle::default();
        while let Some(messages) = self.next_batch(shutdown, max_batch, &mut throttle).await {
            let decoded = self.decode::<M>(&messages, &mut throttle);
            if !decoded.is_empty() {
                if !self
                    .handle_until_done(shutdown, &mut handle, decoded.as_slice())
                    .await
                {
                    break;
                }
                self.metrics
                    .consumed
                    .with_label_values(&[&self.topic])
                    .inc_by(decoded.len() as u64);
            }
            self.store(&messages)?;
        }
        self.commit()
    }

    /// The next message and those already waiting behind it, up to `max_batch`; `None` once
    /// `shutdown` is cancelled. Consumer errors are counted and waited out.
    async fn next_batch(
        &self,
        shutdown: &CancellationToken,
        max_batch: usize,
        throttle: &mut LogThrottle,
    ) -> Option<Vec<BorrowedMessage<'_>>> {
        let first = loop {
            let received = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return None,
                received = self.inner.recv() => received,
            };
            match received {
                Ok(message) => break message,
                Err(e) => {
                    self.consume_error(&e, throttle);
                    tokio::time::sleep(RETRY_FIRST).await;
                }
            }
        };
        let mut messages = vec![first];
        while messages.len() < max_batch.max(1) {
            match self.inner.recv().now_or_never() {
                Some(Ok(message)) => messages.push(message),
                Some(Err(e)) => {
                    self.consume_error(&e, throttle);
                    break;
                }
                None => break,
            }
        }
        Some(messages)
    }

    /// The messages that can be read; the others are skipped, counted and logged.
    fn decode<M: ContractMessage>(
        &self,
        messages: &[BorrowedMessage<'_>],
        throttle: &mut LogThrottle,
    ) -> Vec<M> {
        let mut decoded = Vec::with_capacity(messages.len());
        for message in messages {
            match M::decode(message.payload().unwrap_or_default()) {
                Ok(m) => decoded.push(m),
                Err(e) => {
                    let reason = e.reason();
                    self.metrics
                        .skipped
                        .with_label_values(&[self.topic.as_str(), reason])
                        .inc();
                    if throttle.allow(reason) {
                        tracing::warn!(
                            topic = %self.topic,
                            partition = message.partition(),
                            offset = message.offset(),
                            error = %e,
                            "skipped a message that cannot be read (counted in kafka_messages_skipped_total)"
                        );
                    }
                }
            }
        }
        decoded
    }

    /// Stores the offsets of messages whose work is done (committed every second).
    fn store(&self, messages: &[BorrowedMessage<'_>]) -> Result<(), KafkaError> {
        for message in messages {
            self.inner.store_offset_from_message(message)?;
        }
        Ok(())
    }

    fn consume_error(&self, e: &KafkaError, throttle: &mut LogThrottle) {
        let kind = error_kind(e);
        self.metrics
            .consume_errors
            .with_label_values(&[&kind])
            .inc();
        if throttle.allow(&kind) {
            tracing::warn!(topic = %self.topic, error = %e, "consumer error; retrying");
        }
    }

    /// Runs the handler until it succeeds. `false` when shutdown came first (the offsets are
    /// then not stored and the messages are delivered again after a restart).
    async fn handle_until_done<T, F>(
        &self,
        shutdown: &CancellationToken,
        handle: &mut F,
        work: &T,
    ) -> bool
    where
        T: ?Sized,
        F: AsyncFnMut(&T) -> anyhow::Result<()>,
    {
        let mut backoff = RETRY_FIRST;
        loop {
            match handle(work).await {
                Ok(()) => return true,
                Err(e) => {
                    self.metrics
                        .handler_retries
                        .with_label_values(&[&self.topic])
                        .inc();
                    tracing::warn!(topic = %self.topic, error = %format!("{e:#}"), retry_in = ?backoff,
                        "processing a message failed; retrying it");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    /// Commits stored offsets synchronously; "nothing to commit" is not an error.
    fn commit(&self) -> Result<(), KafkaError> {
        match self.inner.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => Ok(()),
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A bounded label for a consumer error.
fn error_kind(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => "other".into(),
    }
}

/// Allows one log line per key per [`LOG_EVERY`].
#[derive(Default)]
struct LogThrottle {
    last: HashMap<String, Instant>,
}

impl LogThrottle {
    fn allow(&mut self, key: &str) -> bool {
        let now = Instant::now();
        match self.last.get(key) {
            Some(at) if now.duration_since(*at) < LOG_EVERY => false,
            _ => {
                self.last.insert(key.to_owned(), now);
                true
            }
        }
    }
}
