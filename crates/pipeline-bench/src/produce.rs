//! The harness's writing side, on the services' own [`JsonProducer`]: a paced stream of vectors
//! each stamped when its send starts, and a flood with many sends outstanding.

use crate::collect::Collector;
use crate::vectors::Encoded;
use anyhow::Context;
use contract::FeatureVector;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use service_runtime::kafka::JsonProducer;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

/// When one paced send started and when the broker acknowledged it.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    /// Before the vector was built and encoded.
    pub started: Instant,
    pub acknowledged: Instant,
}

/// Sends `count` vectors at `rate` per second, vector `i` built by `make(i)` when its turn comes.
/// A send does not wait for the previous one's acknowledgement, so a slow acknowledgement does
/// not delay the schedule. Returns when every send was acknowledged, with each send's times, by
/// index.
pub async fn paced<F>(
    producer: &JsonProducer,
    topic: &str,
    rate: u32,
    count: u64,
    mut make: F,
) -> anyhow::Result<Vec<Sent>>
where
    F: FnMut(u64) -> FeatureVector,
{
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sends = JoinSet::new();
    for i in 0..count {
        tick.tick().await;
        let started = Instant::now();
        let vector = make(i);
        let (producer, topic) = (producer.clone(), topic.to_owned());
        sends.spawn(async move {
            let delivered = producer.send(&topic, &vector).await;
            delivered.map(|_| {
                let sent = Sent {
                    started,
                    acknowledged: Instant::now(),
                };
                (i, sent)
            })
        });
    }
    let mut sent = vec![None; count as usize];
    while let Some(done) = sends.join_next().await {
        let (i, times) = done
            .context("a send task failed")?
            .with_context(|| format!("cannot produce to {topic}"))?;
        sent[i as usize] = Some(times);
    }
    Ok(sent.into_iter().flatten().collect())
}

/// Sends every message with at most `in_flight` sends outstanding (librdkafka batches them);
/// returns when all were acknowledged. Messages are queued in order, so each key's messages
/// reach their partition in the order given, as the aggregator sends a service's windows: sends
/// raced for room in a full producer queue (each retrying on its own) once put a service's
/// window behind later ones, and the scaler, rightly, refused it as older than a window it had
/// decided and forgotten (1,264 windows of a burst were never decided).
pub async fn flood(
    producer: &JsonProducer,
    topic: &str,
    messages: &[Encoded],
    in_flight: usize,
) -> anyhow::Result<()> {
    let mut pending = FuturesUnordered::new();
    for message in messages {
        pending.push(
            producer
                .queue_raw(topic, &message.key, &message.payload)
                .await,
        );
        if pending.len() >= in_flight.max(1)
            && let Some(sent) = pending.next().await
        {
            sent.with_context(|| format!("cannot produce to {topic}"))?;
        }
    }
    while let Some(sent) = pending.next().await {
        sent.with_context(|| format!("cannot produce to {topic}"))?;
    }
    Ok(())
}

/// Sends one vector every 200 ms until `ready` holds for something `collector` read: the
/// consumers on the way have joined their groups and been assigned their partitions (they start
/// at the end of the topic, as the services do, so earlier messages are not seen). Returns how
/// many vectors it took.
pub async fn warm_up<T, F, R>(
    producer: &JsonProducer,
    topic: &str,
    collector: &mut Collector<T>,
    mut make: F,
    ready: R,
    timeout: Duration,
) -> anyhow::Result<u64>
where
    T: Send + 'static,
    F: FnMut(u64) -> FeatureVector,
    R: Fn(&T) -> bool,
{
    let deadline = Instant::now() + timeout;
    let mut sent = 0;
    while Instant::now() < deadline {
        let vector = make(sent);
        producer
            .send(topic, &vector)
            .await
            .with_context(|| format!("cannot produce to {topic} (warm-up)"))?;
        sent += 1;
        let pause = (Instant::now() + Duration::from_millis(200)).min(deadline);
        while let Some(arrival) = collector.next_before(pause).await? {
            if ready(&arrival.item) {
                return Ok(sent);
            }
        }
    }
    anyhow::bail!(
        "warm-up: nothing came back after {sent} messages in {timeout:?} (see the services' logs)"
    )
}
