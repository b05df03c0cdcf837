//! The floods: after the throughput phase, messages no service should act on, as many as the
//! fault tests send (`crates/e2e`, `crates/*/tests`): on `metrics`, bytes that are not JSON,
//! vectors of another version, vectors out of bounds (a billion replicas) and vectors of
//! made-up services; on the votes topic, bytes that are not JSON and votes forged for made-up
//! services and windows (each opens a window in the scaler's tally until it times out). Then a
//! few real vectors after them on every partition, the next window of services of the throughput
//! phase: once these are decided, every service has read past the flood, and the memory it took
//! is in each process's peak. (A service never seen before would have its first window refused
//! while the flood's windows fill the budget of services not known, `MAX_OPEN_NEW_WINDOWS`.)

use crate::collect::Collector;
use crate::config::BenchConfig;
use crate::pipeline::{Decided, THROUGHPUT_PREFIX};
use crate::produce::flood;
use crate::services::Topics;
use crate::vectors::{Encoded, VectorSource};
use anyhow::Context as _;
use chrono::Utc;
use contract::{Action, FeatureVector, Message, Vote};
use service_runtime::kafka::JsonProducer;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Real vectors sent after the flood, over this many services (keys), so that every partition
/// has some.
const SENTINELS: u64 = 24;

/// What was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodFigures {
    /// Messages on `metrics`, of which vectors of made-up services.
    pub metrics: u64,
    pub made_up_vectors: u64,
    /// Messages on the votes topic, of which forged votes.
    pub votes: u64,
    pub forged_votes: u64,
    /// The real vectors after them, and how many were decided.
    pub sentinels: u64,
    pub sentinels_decided: u64,
    /// First flood message sent to the last sentinel decided.
    pub took: Duration,
}

/// Message `i` of the flood on `metrics`.
fn bad_vector(source: &VectorSource, i: u64) -> Encoded {
    let key = format!("flood-{i}");
    let valid = source.vector(key.clone(), 0, i);
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut json: serde_json::Value =
            serde_json::from_slice(&valid.encode()).unwrap_or_default();
        edit(&mut json);
        serde_json::to_vec(&json).unwrap_or_default()
    };
    let payload = match i % 4 {
        0 => format!("\u{0}not json {i}").into_bytes(),
        1 => edited(&|j| j["version"] = "99".into()),
        2 => edited(&|j| j["features"]["replicas"] = 1e9.into()),
        _ => valid.encode(),
    };
    Encoded { key, payload }
}

/// Message `i` of the flood on the votes topic.
fn bad_vote(i: u64) -> Encoded {
    let key = format!("forged-{i}");
    let payload = if i.is_multiple_of(2) {
        format!("{{\"version\":\"1\",\"service\":\"forged-{i}\"").into_bytes()
    } else {
        let now = Utc::now();
        Vote {
            service: key.clone(),
            window_id: 1_000_000 + i,
            model: "xgboost".into(),
            model_version: "forged".into(),
            action: Action::ScaleUp,
            confidence: 1.0,
            violation_probability: 1.0,
            current_replicas: 1,
            safe_replicas: 10,
            inference_us: 1.0,
            features_produced_at: now,
            voted_at: now,
        }
        .encode()
    };
    Encoded { key, payload }
}

/// Sends `config.flood_messages` bad messages to each topic, then the sentinels, and waits for
/// the sentinels' decisions (until the throughput phase's timeout).
pub(crate) async fn run(
    producer: &JsonProducer,
    topics: &Topics,
    decisions: &mut Collector<Decided>,
    source: &VectorSource,
    config: &BenchConfig,
) -> anyhow::Result<FloodFigures> {
    let count = config.flood_messages;
    let in_flight = config.in_flight as usize;
    let timeout = config.throughput_timeout_sec.std();
    tracing::info!(count, "floods: bad and made-up messages on both topics");
    let vectors: Vec<Encoded> = (0..count).map(|i| bad_vector(source, i)).collect();
    let votes: Vec<Encoded> = (0..count).map(bad_vote).collect();
    let start = Instant::now();
    let (sent_vectors, sent_votes) = tokio::join!(
        flood(producer, &topics.metrics, &vectors, in_flight),
        flood(producer, &topics.votes, &votes, in_flight),
    );
    sent_vectors.context("the flood on metrics")?;
    sent_votes.context("the flood on the votes")?;
    drop((vectors, votes));
    let sentinels: Vec<FeatureVector> = (0..SENTINELS.min(config.throughput_services))
        .map(|k| {
            source.vector(
                format!("{THROUGHPUT_PREFIX}-{k}"),
                config.throughput_windows,
                k,
            )
        })
        .collect();
    let keys: HashSet<(String, u64)> = sentinels
        .iter()
        .map(|v| (v.service.clone(), v.window_id))
        .collect();
    let encoded: Vec<Encoded> = sentinels.iter().map(Encoded::of).collect();
    let prefix = format!("{THROUGHPUT_PREFIX}-");
    flood(producer, &topics.metrics, &encoded, in_flight).await?;
    let gathered = decisions
        .gather(
            "sentinels after the floods",
            keys.len(),
            start + timeout,
            |d| d.key_in(&prefix).filter(|key| keys.contains(key)),
        )
        .await?;
    Ok(FloodFigures {
        metrics: count,
        made_up_vectors: (0..count).filter(|i| i % 4 == 3).count() as u64,
        votes: count,
        forged_votes: count / 2,
        sentinels: keys.len() as u64,
        sentinels_decided: gathered.first.len() as u64,
        took: gathered
            .last_at
            .unwrap_or_else(Instant::now)
            .duration_since(start),
    })
}
