//! The producer of contract messages: JSON payload, keyed by service, delivery awaited.

use super::{KafkaArgs, KafkaMetrics};
use contract::Message;
use futures::future::BoxFuture;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::time::Duration;

/// Where a message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// An idempotent producer of contract messages.
#[derive(Clone)]
pub struct JsonProducer {
    /// librdkafka's producer; it buffers and retries while the broker is unreachable, for up to
    /// `message.timeout.ms` (5 minutes unless configured).
    inner: FutureProducer,
    /// Produce counters.
    metrics: KafkaMetrics,
}

impl JsonProducer {
    /// Creates the producer. Fails only on invalid configuration; the broker is contacted lazily.
    pub fn new(
        args: &KafkaArgs,
        client_id: &str,
        metrics: KafkaMetrics,
    ) -> Result<Self, KafkaError> {
        let inner = args.producer_config(client_id).create()?;
        Ok(Self { inner, metrics })
    }

    /// Sends `message` to `topic`, keyed by its service, and waits for the broker's
    /// acknowledgement. If the local queue is full it waits up to 5 s for room.
    pub async fn send<M: Message>(
        &self,
        topic: &str,
        message: &M,
    ) -> Result<Delivered, KafkaError> {
        self.send_raw(topic, message.key(), &message.encode()).await
    }

    /// Queues `message` for `topic` now, in call order, and returns the wait for the broker's
    /// acknowledgement, to be awaited elsewhere: a caller that must not hold its loop for a
    /// round trip per batch (the scaler's decision records) keeps the order of its messages
    /// and still learns of each failure. If the local queue is full, it waits for the delivery
    /// here, as [`JsonProducer::send`] does.
    pub async fn queue<M: Message>(
        &self,
        topic: &str,
        message: &M,
    ) -> BoxFuture<'static, Result<Delivered, KafkaError>> {
        self.queue_raw(topic, message.key(), &message.encode())
            .await
    }

    /// [`JsonProducer::queue`] for bytes already encoded: queued in call order (if the local
    /// queue is full, this one's delivery is awaited here before the next can be queued).
    pub async fn queue_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> BoxFuture<'static, Result<Delivered, KafkaError>> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        match self.inner.send_result(record) {
            Ok(delivery) => {
                let (metrics, topic) = (self.metrics.clone(), topic.to_owned());
                Box::pin(async move {
                    let result = match delivery.await {
                        Ok(Ok(delivery)) => Ok(Delivered {
                            partition: delivery.partition,
                            offset: delivery.offset,
                        }),
                        Ok(Err((error, _message))) => Err(error),
                        Err(_canceled) => Err(KafkaError::Canceled),
                    };
                    metrics.count(&topic, result.is_ok());
                    result
                })
            }
            Err(_full) => {
                let result = self.send_raw(topic, key, payload).await;
                Box::pin(async move { result })
            }
        }
    }

    /// Sends already encoded bytes (used by benchmarks to take encoding out of the measure).
    pub async fn send_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<Delivered, KafkaError> {
        self.deliver(topic, FutureRecord::to(topic).key(key).payload(payload))
            .await
    }

    /// Sends bytes with headers (dead letters carry why in theirs).
    pub async fn send_with_headers(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Delivered, KafkaError> {
        let headers = headers.iter().fold(
            OwnedHeaders::new_with_capacity(headers.len()),
            |h, (key, value)| {
                h.insert(Header {
                    key,
                    value: Some(*value),
                })
            },
        );
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        self.deliver(topic, record).await
    }

    async fn deliver(
        &self,
        topic: &str,
        record: FutureRecord<'_, str, [u8]>,
    ) -> Result<Delivered, KafkaError> {
        match self
            .inner
            .send(record, Timeout::After(Duration::from_secs(5)))
            .await
        {
            Ok(delivery) => {
                self.metrics.count(topic, true);
                Ok(Delivered {
                    partition: delivery.partition,
                    offset: delivery.offset,
                })
            }
            Err((error, _message)) => {
                self.metrics.count(topic, false);
                Err(error)
            }
        }
    }

    /// Waits up to `timeout` for every queued message to be delivered (at shutdown), on the
    /// blocking pool: librdkafka's flush blocks its thread.
    pub async fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.flush(Timeout::After(timeout)))
            .await
            .unwrap_or(Err(KafkaError::Canceled))
    }
}
