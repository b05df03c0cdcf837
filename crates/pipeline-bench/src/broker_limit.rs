//! The broker's own limit, with the harness alone and the services' client configuration: the
//! round trip of one feature vector at a steady pace (send started to consumed), and the rate of
//! a flood (first send to last message consumed). No service runs meanwhile.

use crate::collect::Collector;
use crate::config::BenchConfig;
use crate::produce::{flood, paced, warm_up};
use crate::stats::{Latency, per_second};
use crate::vectors::{Encoded, VectorSource};
use anyhow::Context;
use contract::FeatureVector;
use service_runtime::kafka::{JsonProducer, KafkaArgs, ensure_topics};
use std::time::{Duration, Instant};

/// Services the round-trip vectors take turns on, so every partition carries some.
const ROUND_TRIP_SERVICES: u64 = 8;

/// What the broker alone does.
#[derive(Debug, Clone)]
pub struct BrokerFigures {
    /// Send started to consumed, one vector at a time.
    pub round_trip: Option<Latency>,
    /// Send started to acknowledged, of the same vectors.
    pub produce_ack: Option<Latency>,
    pub round_trip_sent: u64,
    pub round_trip_missing: u64,
    /// The flood.
    pub rate: Flood,
}

/// Many messages sent at once and consumed.
#[derive(Debug, Clone)]
pub struct Flood {
    pub messages: u64,
    pub consumed: u64,
    /// First send to the last acknowledgement.
    pub produced_in: Duration,
    /// First send to the last message consumed (to the deadline when none came).
    pub elapsed: Duration,
    /// `consumed / elapsed`.
    pub per_second: f64,
}

/// Measures the broker at `args`.
pub async fn measure(
    args: &KafkaArgs,
    config: &BenchConfig,
    source: &VectorSource,
) -> anyhow::Result<BrokerFigures> {
    let topic = testkit::unique("bench-broker");
    ensure_topics(args, &[&topic])
        .await
        .with_context(|| format!("cannot create topic {topic}"))?;
    let producer = JsonProducer::new(args, "pipeline-bench", crate::kafka_metrics())
        .context("cannot create the producer")?;
    let group = testkit::unique("bench-broker");
    let mut collector = Collector::start(args, &topic, &group, |v: &FeatureVector| {
        (v.service.clone(), v.window_id)
    })?;

    tracing::info!("broker: waiting for the harness's consumer to be assigned");
    let warm = |i: u64| source.vector(format!("warm-{}", i % ROUND_TRIP_SERVICES), i, i);
    let took = warm_up(
        &producer,
        &topic,
        &mut collector,
        warm,
        |(service, _)| service.starts_with("warm-"),
        Duration::from_secs(60),
    )
    .await?;
    collector.discard_for(Duration::from_millis(500)).await?;
    tracing::info!(warm_up_messages = took, "broker: consumer assigned");

    let sent = config.round_trips();
    tracing::info!(
        messages = sent,
        per_second = config.round_trip_rate(),
        "broker: round trip, one message at a time"
    );
    let deadline = Instant::now()
        + Duration::from_secs_f64(sent as f64 / f64::from(config.round_trip_rate()))
        + Duration::from_secs(15);
    let make = |i: u64| source.vector(format!("rt-{}", i % ROUND_TRIP_SERVICES), i, i);
    let (started, gathered) = tokio::join!(
        paced(&producer, &topic, config.round_trip_rate(), sent, make),
        collector.gather("broker round trip", sent as usize, deadline, |(s, w)| {
            s.starts_with("rt-").then_some(*w)
        }),
    );
    let (sends, gathered) = (started?, gathered?);
    let samples: Vec<Duration> = gathered
        .first
        .iter()
        .filter_map(|(window_id, arrival)| {
            let sent = sends.get(source.index_of(*window_id) as usize)?;
            Some(arrival.at.saturating_duration_since(sent.started))
        })
        .collect();
    let acks = sends
        .iter()
        .map(|s| s.acknowledged.saturating_duration_since(s.started))
        .collect();
    let round_trip_missing = sent - samples.len() as u64;

    let messages = config.rate_messages;
    let batch: Vec<Encoded> = source
        .batch("rate", config.throughput_services, messages)
        .iter()
        .map(Encoded::of)
        .collect();
    tracing::info!(
        messages,
        in_flight = config.in_flight,
        "broker: produce-to-consume rate"
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60 + messages / 1_000);
    let (produced, gathered) = tokio::join!(
        async {
            flood(&producer, &topic, &batch, config.in_flight as usize)
                .await
                .map(|()| start.elapsed())
        },
        collector.gather("broker rate", messages as usize, deadline, |(s, w)| {
            s.starts_with("rate-").then(|| (s.clone(), *w))
        }),
    );
    let (produced_in, gathered) = (produced?, gathered?);
    let consumed = gathered.first.len() as u64;
    let elapsed = gathered.last_at.unwrap_or(deadline).duration_since(start);
    collector.stop().await?;
    Ok(BrokerFigures {
        round_trip: Latency::of(samples),
        produce_ack: Latency::of(acks),
        round_trip_sent: sent,
        round_trip_missing,
        rate: Flood {
            messages,
            consumed,
            produced_in,
            elapsed,
            per_second: per_second(consumed, elapsed),
        },
    })
}
