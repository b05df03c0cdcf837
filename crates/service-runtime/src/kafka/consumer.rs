//! At-least-once consumption of contract messages, with a dead-letter topic.
//!
//! The offset of a message is stored only after its handler returned `Ok` (its work is done and
//! its output acknowledged), and stored offsets are committed every second and at shutdown. A
//! crash or a shutdown before that means the message is delivered again.
//!
//! A consumer given a dead-letter producer ([`AtLeastOnceConsumer::dead_letters`]) never stalls
//! on one message: a message it cannot decode (malformed, too large, out of bounds), or whose
//! handler still fails after [`MAX_TRIES`] tries with backoff, is copied unchanged to
//! `<topic>-dead-letters` ([`dead_letter_topic`]) with headers saying why and where it came from,
//! counted in `kafka_dead_letters_total`, logged (at most once per reason every 10 s), and its
//! offset is stored: the consumer moves on, and the message is kept for a human. Its offset is
//! stored only once the dead letter is acknowledged, so nothing is lost while the broker is down.
//! A consumer without one (benchmarks, tests) skips what it cannot decode and retries a failing
//! handler until it succeeds or shutdown.
//!
//! A service that is the only reader of its group (each voter, the active scaler) uses
//! [`AtLeastOnceConsumer::sole`]: it assigns itself every partition of the topic and takes no
//! part in the group protocol, so that a process killed without leaving its group holds no
//! partition after its restart: a member's partitions stay with its ghost until the broker's
//! session timeout (45 s), and in the end-to-end runs that killed the fleet with `kill -9`,
//! restarted members took up to a minute to read again on the tansu broker, and once one never
//! did. Its offsets are still committed under the group;
//! partitions added to the topic later are read after a restart (the tansu broker cannot add
//! them).
//!
//! [`AtLeastOnceConsumer::run_batches`] hands the handler every message already waiting (up to a
//! bound) at once: a service that keeps up sees batches of one and no added latency; one that
//! falls behind amortizes its model call, file write and produce round trip over the batch.

use super::{JsonProducer, KafkaArgs, KafkaMetrics};
use crate::telemetry::LogThrottle;
use contract::Message as ContractMessage;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A consumer of one topic: a member of its group ([`AtLeastOnceConsumer::new`]) or the group's
/// sole reader ([`AtLeastOnceConsumer::sole`]).
pub struct AtLeastOnceConsumer {
    /// librdkafka's consumer, subscribed to `topic` or assigned all its partitions.
    inner: StreamConsumer,
    /// The topic, for counter labels and logs.
    topic: String,
    /// The consumer group, recorded on dead letters.
    group: String,
    /// Where messages that cannot be processed go; `None`: they are skipped or retried forever.
    dead_letters: Option<DeadLetters>,
    /// Consume counters.
    metrics: KafkaMetrics,
}

/// How long the metadata request of a sole reader may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// The dead-letter topic and the producer that writes to it.
struct DeadLetters {
    producer: JsonProducer,
    topic: String,
}

/// The topic that receives the messages of `topic` that could not be processed.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}-dead-letters")
}

/// Tries of a message whose handler fails before it goes to the dead-letter topic (with backoff:
/// 0.1 + 0.2 + 0.4 + 0.8 s between them).
pub const MAX_TRIES: u32 = 5;

/// Why a message went to the dead-letter topic (header `dead-letter.reason`): a decode reason
/// ([`contract::DecodeError::reason`]) or this one.
pub const HANDLER_FAILED: &str = "handler_failed";

/// A message that could not be decoded (its position in the batch), with why.
struct Rejected {
    index: usize,
    reason: &'static str,
    detail: String,
}

/// What became of one message.
enum Step {
    Done,
    DeadLettered,
    Stop,
}

/// How handling a batch ended.
enum Handled {
    Done,
    Shutdown,
    Failed(anyhow::Error),
}

/// Messages the services hand to one `run_batches` call at most: enough that a service that
/// fell behind stops paying a broker round trip per message, few enough to bound what is redone
/// after a crash mid-batch.
pub const MAX_BATCH: usize = 256;

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
        Ok(Self::with(inner, group_id, topic, metrics))
    }

    /// Creates a consumer that reads every partition of `topic` by itself, outside the group
    /// protocol, from the offsets committed under `group_id` (see the module's header). For a
    /// service that is the only reader of its group; two such readers would both read
    /// everything. The topic must exist (`ensure_topics`).
    pub fn sole(
        args: &KafkaArgs,
        client_id: &str,
        group_id: &str,
        topic: &str,
        metrics: KafkaMetrics,
    ) -> Result<Self, KafkaError> {
        let inner: StreamConsumer = args.consumer_config(client_id, group_id).create()?;
        let partitions = partition_count(&inner, topic)?;
        inner.assign(&from_stored(topic, 0..partitions)?)?;
        tracing::info!(%topic, group = %group_id, partitions, "reading every partition (sole reader of the group)");
        Ok(Self::with(inner, group_id, topic, metrics))
    }

    fn with(inner: StreamConsumer, group_id: &str, topic: &str, metrics: KafkaMetrics) -> Self {
        // Every series this consumer can produce exists from the start, at 0.
        metrics.consumed.with_label_values(&[topic]);
        metrics.handler_retries.with_label_values(&[topic]);
        for reason in contract::DecodeError::REASONS {
            metrics.skipped.with_label_values(&[topic, reason]);
        }
        metrics
            .dead_letters
            .with_label_values(&[topic, HANDLER_FAILED]);
        for reason in contract::DecodeError::REASONS {
            metrics.dead_letters.with_label_values(&[topic, reason]);
        }
        Self {
            inner,
            topic: topic.to_owned(),
            group: group_id.to_owned(),
            dead_letters: None,
            metrics,
        }
    }

    /// Sends what cannot be processed to [`dead_letter_topic`] through `producer` (the topic must
    /// exist: pass it to `ensure_topics`) instead of skipping or retrying it forever.
    pub fn dead_letters(mut self, producer: JsonProducer) -> Self {
        self.dead_letters = Some(DeadLetters {
            producer,
            topic: dead_letter_topic(&self.topic),
        });
        self
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
            let Some((indices, values)) =
                self.readable::<M>(shutdown, &messages, &mut throttle).await
            else {
                break;
            };
            for (index, value) in indices.into_iter().zip(&values) {
                match self
                    .handle_or_give_up(
                        shutdown,
                        &mut handle,
                        value,
                        &messages[index],
                        &mut throttle,
                    )
                    .await
                {
                    Step::Done => self
                        .metrics
                        .consumed
                        .with_label_values(&[&self.topic])
                        .inc(),
                    Step::DeadLettered => {}
                    Step::Stop => break 'consume,
                }
            }
            self.store(&messages)?;
        }
        self.commit()
    }

    /// Hands the readable messages to `handle` in batches: the next message, and those already
    /// waiting behind it, up to `max_batch`. Their offsets are stored once the batch is done.
    /// A batch that still fails is retried message by message, so that only the culprit goes to
    /// the dead-letter topic.
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
        'consume: while let Some(messages) =
            self.next_batch(shutdown, max_batch, &mut throttle).await
        {
            let Some((indices, values)) =
                self.readable::<M>(shutdown, &messages, &mut throttle).await
            else {
                break;
            };
            if values.is_empty() {
                self.store(&messages)?;
                continue;
            }
            match self.handle(shutdown, &mut handle, values.as_slice()).await {
                Handled::Done => {}
                Handled::Shutdown => break,
                Handled::Failed(e) if values.len() == 1 => {
                    if !self
                        .give_up(shutdown, &messages[indices[0]], &e, &mut throttle)
                        .await
                    {
                        break;
                    }
                }
                Handled::Failed(_) => {
                    for (index, value) in indices.iter().zip(&values) {
                        let one = std::slice::from_ref(value);
                        let message = &messages[*index];
                        if let Step::Stop = self
                            .handle_or_give_up(shutdown, &mut handle, one, message, &mut throttle)
                            .await
                        {
                            break 'consume;
                        }
                    }
                }
            }
            self.metrics
                .consumed
                .with_label_values(&[&self.topic])
                .inc_by(values.len() as u64);
            self.store(&messages)?;
        }
        self.commit()
    }

    /// The decoded messages of a batch (their positions and values), once those that cannot be
    /// read went to the dead-letter topic; `None` when shutdown came first.
    async fn readable<M: ContractMessage>(
        &self,
        shutdown: &CancellationToken,
        messages: &[BorrowedMessage<'_>],
        throttle: &mut LogThrottle,
    ) -> Option<(Vec<usize>, Vec<M>)> {
        let (decoded, rejected) = self.decode::<M>(messages, throttle);
        self.reject(shutdown, messages, rejected, throttle)
            .await
            .then_some(decoded)
    }

    /// Runs the handler on `work` ([`Self::handle`]); what still fails goes to the dead-letter
    /// topic as `message`.
    async fn handle_or_give_up<T, F>(
        &self,
        shutdown: &CancellationToken,
        handle: &mut F,
        work: &T,
        message: &BorrowedMessage<'_>,
        throttle: &mut LogThrottle,
    ) -> Step
    where
        T: ?Sized,
        F: AsyncFnMut(&T) -> anyhow::Result<()>,
    {
        match self.handle(shutdown, handle, work).await {
            Handled::Done => Step::Done,
            Handled::Shutdown => Step::Stop,
            Handled::Failed(e) => {
                if self.give_up(shutdown, message, &e, throttle).await {
                    Step::DeadLettered
                } else {
                    Step::Stop
                }
            }
        }
    }

    /// Sends a message whose handler kept failing to the dead-letter topic, and logs it. `false`
    /// when shutdown came first.
    async fn give_up(
        &self,
        shutdown: &CancellationToken,
        message: &BorrowedMessage<'_>,
        error: &anyhow::Error,
        throttle: &mut LogThrottle,
    ) -> bool {
        let detail = format!("{error:#}");
        if !self
            .dead_letter(shutdown, message, HANDLER_FAILED, &detail)
            .await
        {
            return false;
        }
        self.log_dead_letter(message, HANDLER_FAILED, &detail, throttle);
        true
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

    /// The messages that can be read, and those that cannot with why.
    fn decode<M: ContractMessage>(
        &self,
        messages: &[BorrowedMessage<'_>],
        throttle: &mut LogThrottle,
    ) -> ((Vec<usize>, Vec<M>), Vec<Rejected>) {
        let (mut indices, mut decoded) = (Vec::new(), Vec::with_capacity(messages.len()));
        let mut rejected = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            match M::decode(message.payload().unwrap_or_default()) {
                Ok(m) => {
                    indices.push(index);
                    decoded.push(m);
                }
                Err(e) => {
                    let reason = e.reason();
                    self.metrics
                        .skipped
                        .with_label_values(&[self.topic.as_str(), reason])
                        .inc();
                    if self.dead_letters.is_none() && throttle.allow(reason).is_some() {
                        tracing::warn!(
                            topic = %self.topic,
                            partition = message.partition(),
                            offset = message.offset(),
                            error = %e,
                            "skipped a message that cannot be read (counted in kafka_messages_skipped_total)"
                        );
                    }
                    rejected.push(Rejected {
                        index,
                        reason,
                        detail: e.to_string(),
                    });
                }
            }
        }
        ((indices, decoded), rejected)
    }

    /// Sends the messages that cannot be read to the dead-letter topic, if there is one, all at
    /// once (a flood of bad messages costs one round trip per batch). `false` when shutdown came
    /// first.
    async fn reject(
        &self,
        shutdown: &CancellationToken,
        messages: &[BorrowedMessage<'_>],
        rejected: Vec<Rejected>,
        throttle: &mut LogThrottle,
    ) -> bool {
        if rejected.is_empty() || self.dead_letters.is_none() {
            return true;
        }
        let sent = futures::future::join_all(
            rejected
                .iter()
                .map(|r| self.dead_letter(shutdown, &messages[r.index], r.reason, &r.detail)),
        )
        .await;
        // One log line per reason for the whole flood, through the shared throttle.
        for r in &rejected {
            self.log_dead_letter(&messages[r.index], r.reason, &r.detail, throttle);
        }
        sent.into_iter().all(|done| done)
    }

    /// Copies `message` to the dead-letter topic with why, until the broker acknowledges it; the
    /// caller logs ([`Self::log_dead_letter`]).
    /// `false` when shutdown came first (the offset is then not stored: it is read again). Does
    /// nothing without a dead-letter topic.
    async fn dead_letter(
        &self,
        shutdown: &CancellationToken,
        message: &BorrowedMessage<'_>,
        reason: &'static str,
        detail: &str,
    ) -> bool {
        let Some(dead) = &self.dead_letters else {
            return true;
        };
        // A detail quotes what it could not read; keep the header short.
        let detail: String = detail.chars().take(500).collect();
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = [
            ("dead-letter.reason", reason),
            ("dead-letter.detail", detail.as_str()),
            ("dead-letter.topic", self.topic.as_str()),
            ("dead-letter.partition", partition.as_str()),
            ("dead-letter.offset", offset.as_str()),
            ("dead-letter.group", self.group.as_str()),
        ];
        let key = message
            .key()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let payload = message.payload().unwrap_or_default();
        let mut backoff = RETRY_FIRST;
        loop {
            let sent = dead
                .producer
                .send_with_headers(&dead.topic, &key, payload, &headers);
            let sent = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return false,
                sent = sent => sent,
            };
            match sent {
                Ok(_) => break,
                Err(e) if backoff == RETRY_FIRST => {
                    tracing::warn!(topic = %dead.topic, error = %e,
                        "cannot write a dead letter; retrying with backoff (the message's offset waits for it)");
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
        self.metrics
            .dead_letters
            .with_label_values(&[self.topic.as_str(), reason])
            .inc();
        true
    }

    /// One line per reason every ten seconds at most ([`LogThrottle`]).
    fn log_dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &'static str,
        detail: &str,
        throttle: &mut LogThrottle,
    ) {
        let Some(dead) = &self.dead_letters else {
            return;
        };
        if throttle.allow(reason).is_some() {
            tracing::warn!(
                topic = %self.topic,
                partition = message.partition(),
                offset = message.offset(),
                reason,
                error = %detail,
                dead_letters = %dead.topic,
                "a message that cannot be processed went to the dead-letter topic (counted in kafka_dead_letters_total); moving on"
            );
        }
    }

    /// Stores the offsets of messages whose work is done (committed every second).
    /// A partition revoked while its messages were processed cannot take their offsets: its new
    /// owner reads them again, which at-least-once allows. That is counted, not fatal.
    fn store(&self, messages: &[BorrowedMessage<'_>]) -> Result<(), KafkaError> {
        for message in messages {
            self.metrics.revoked_store(
                self.inner.store_offset_from_message(message),
                &self.topic,
                message.partition(),
                message.offset(),
            )?;
        }
        Ok(())
    }

    fn consume_error(&self, e: &KafkaError, throttle: &mut LogThrottle) {
        self.metrics.consume_error(&self.topic, e, throttle);
    }

    /// Runs the handler until it succeeds: at most [`MAX_TRIES`] times with a dead-letter topic,
    /// else until shutdown (the offsets are then not stored and the messages are delivered again
    /// after a restart).
    async fn handle<T, F>(&self, shutdown: &CancellationToken, handle: &mut F, work: &T) -> Handled
    where
        T: ?Sized,
        F: AsyncFnMut(&T) -> anyhow::Result<()>,
    {
        let mut backoff = RETRY_FIRST;
        let mut tries = 0;
        loop {
            tries += 1;
            match handle(work).await {
                Ok(()) => return Handled::Done,
                Err(e) if self.dead_letters.is_some() && tries >= MAX_TRIES => {
                    return Handled::Failed(e);
                }
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
                _ = shutdown.cancelled() => return Handled::Shutdown,
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

/// The number of partitions of `topic`, from the broker's metadata.
fn partition_count(consumer: &StreamConsumer, topic: &str) -> Result<i32, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    match found {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            i32::try_from(t.partitions().len())
                .map_err(|_| KafkaError::MetadataFetch(RDKafkaErrorCode::InvalidPartitions))
        }
        _ => Err(KafkaError::MetadataFetch(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        )),
    }
}

/// Partitions `range` of `topic`, each to be read from its committed offset.
fn from_stored(topic: &str, range: std::ops::Range<i32>) -> Result<TopicPartitionList, KafkaError> {
    let mut list = TopicPartitionList::with_capacity(range.len());
    for partition in range {
        list.add_partition_offset(topic, partition, Offset::Stored)?;
    }
    Ok(list)
}
