//! The pipeline: the real services on the same broker, fed by the harness and read back on
//! `scaling-decisions`. Decision latency (paced vectors; `decided_at - features_produced_at` of
//! each decision, both stamped on this host), throughput (a flood of vectors over many services;
//! first vector sent to last decision consumed), and the processes' memory and CPU.

use crate::collect::{Collector, Gathered};
use crate::config::BenchConfig;
use crate::floods::{self, FloodFigures};
use crate::produce::{flood, paced, warm_up};
use crate::resources::{self, ProcessFigures, Watched};
use crate::services::{Binaries, Fleet, Settings, Topics};
use crate::stages::{self, Stage};
use crate::stats::{Latency, per_second};
use crate::vectors::{Encoded, VectorSource};
use anyhow::Context;
use chrono::{DateTime, Utc};
use contract::DecisionRecord;
use models::ModelKind;
use service_runtime::kafka::{JsonProducer, KafkaArgs, ensure_topics};
use std::path::Path;
use std::time::{Duration, Instant};

/// What the harness keeps of a decision record.
pub(crate) struct Decided {
    service: String,
    window_id: u64,
    /// Votes counted (fewer than the models: the window timed out waiting for one).
    votes: usize,
    /// `decided_at - features_produced_at`.
    latency: Duration,
}

impl Decided {
    fn of(record: &DecisionRecord) -> Self {
        Self {
            service: record.service.clone(),
            window_id: record.window_id,
            votes: record.votes.len(),
            latency: (record.decided_at - record.features_produced_at)
                .to_std()
                .unwrap_or_default(),
        }
    }

    /// The (service, window) of a decision of the phase whose services start with `prefix`.
    pub(crate) fn key_in(&self, prefix: &str) -> Option<(String, u64)> {
        self.service
            .starts_with(prefix)
            .then(|| (self.service.clone(), self.window_id))
    }
}

/// Windows decided without every model's vote, among those gathered.
fn incomplete<K>(gathered: &Gathered<K, Decided>) -> u64 {
    let models = ModelKind::ALL.len();
    gathered
        .first
        .values()
        .filter(|a| a.item.votes < models)
        .count() as u64
}

/// Decision latency.
#[derive(Debug, Clone)]
pub struct LatencyFigures {
    pub latency: Option<Latency>,
    /// The harness's sends of these vectors, started to acknowledged.
    pub produce_ack: Option<Latency>,
    pub sent: u64,
    pub missing: u64,
    /// Second decisions on a window already decided (must be 0).
    pub repeats: u64,
    /// Decisions made without every model's vote (the window waited DECISION_WINDOW_SEC).
    pub incomplete: u64,
}

/// Throughput.
#[derive(Debug, Clone)]
pub struct ThroughputFigures {
    pub vectors: u64,
    pub decided: u64,
    pub repeats: u64,
    /// Decided without every model's vote (a window that timed out: a vote refused while the
    /// scaler's tally was full, or late).
    pub incomplete: u64,
    /// First send to the last acknowledgement.
    pub produced_in: Duration,
    /// First send to the last decision consumed (to the deadline when none came).
    pub elapsed: Duration,
    /// `decided / elapsed`.
    pub per_second: f64,
    /// How far each service got, and when (from their CSV files).
    pub stages: Vec<Stage>,
    /// When the first vector was sent (the stages' origin).
    pub started_at: DateTime<Utc>,
}

/// Everything measured on the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineFigures {
    pub latency: LatencyFigures,
    pub throughput: ThroughputFigures,
    pub processes: Vec<ProcessFigures>,
    /// The floods after it, and the processes read after them (`None`: BENCH_FLOOD_MESSAGES=0).
    pub floods: Option<(FloodFigures, Vec<ProcessFigures>)>,
    /// The scaler's votes by what its tally did with them, after the throughput phase and
    /// after the floods (`scaler_votes_total`).
    pub scaler_votes: Vec<(&'static str, Vec<(String, u64)>)>,
    /// Services that were no longer running at the end.
    pub exited: Vec<String>,
}

/// Where the pipeline runs.
pub struct Environment<'a> {
    pub args: &'a KafkaArgs,
    pub binaries: &'a Binaries,
    pub models: &'a Path,
    pub dir: &'a Path,
    /// The broker process, for its memory and CPU.
    pub broker_pid: Option<u32>,
}

/// Starts the services and measures them.
pub async fn measure(
    env: &Environment<'_>,
    config: &BenchConfig,
    source: &VectorSource,
) -> anyhow::Result<PipelineFigures> {
    let topics = Topics::unique();
    ensure_topics(
        env.args,
        &[&topics.metrics, &topics.votes, &topics.decisions],
    )
    .await
    .context("cannot create the pipeline's topics")?;
    let producer = JsonProducer::new(env.args, "pipeline-bench", crate::kafka_metrics())
        .context("cannot create the producer")?;
    let mut decisions = Collector::start(
        env.args,
        &topics.decisions,
        &testkit::unique("bench-decisions"),
        Decided::of,
    )?;
    let mut fleet = Fleet::start(&Settings {
        binaries: env.binaries,
        models: env.models,
        dir: env.dir,
        bootstrap: &env.args.kafka_bootstrap_servers,
        kafka_properties: &config.kafka_properties,
        topics: &topics,
        decision_window_sec: config.decision_window_sec.get(),
        max_vote_age_sec: config.max_vote_age_sec.get(),
    })?;
    fleet.wait_healthy(Duration::from_secs(60)).await?;
    tracing::info!("pipeline: every service is healthy; warming up until a window is decided");

    // Every consumer on the way (three voters, the scaler, the harness) starts at the end of its
    // topic once assigned: a decision with every model's vote proves all of them are reading.
    let models = ModelKind::ALL.len();
    let took = warm_up(
        &producer,
        &topics.metrics,
        &mut decisions,
        |i| source.vector(format!("warm-{}", i % 4), i, i),
        |d: &Decided| d.service.starts_with("warm-") && d.votes == models,
        Duration::from_secs(120),
    )
    .await?;
    // Windows of vectors some voter missed while joining close after DECISION_WINDOW_SEC.
    let settle = Duration::from_secs(config.decision_window_sec.get() + 2);
    let late = decisions.discard_for(settle).await?;
    tracing::info!(
        warm_up_vectors = took,
        late_warm_up_decisions = late,
        "pipeline: warmed up"
    );

    let latency = decision_latency(&producer, &topics, &mut decisions, config, source).await?;

    let mut watched: Vec<Watched> = fleet
        .services
        .iter()
        .map(|s| Watched {
            name: s.name.clone(),
            pid: s.pid(),
        })
        .collect();
    watched.push(Watched {
        name: "tansu (broker)".into(),
        pid: env.broker_pid,
    });
    watched.push(Watched {
        name: "pipeline-bench (harness)".into(),
        pid: Some(std::process::id()),
    });
    let before = resources::sample_all(&watched);
    let throughput = throughput(&producer, &topics, &mut decisions, config, source, env).await?;
    let processes = resources::figures_since(&watched, &before);
    let mut scaler_votes = vec![("after the throughput phase", fleet.scaler_votes().await)];
    let floods = if config.flood_messages > 0 {
        let before = resources::sample_all(&watched);
        let figures = floods::run(&producer, &topics, &mut decisions, source, config).await?;
        Some((figures, resources::figures_since(&watched, &before)))
    } else {
        None
    };
    if floods.is_some() {
        scaler_votes.push(("after the floods", fleet.scaler_votes().await));
    }
    let exited = fleet.exited();
    fleet.stop().await;
    decisions.stop().await?;
    Ok(PipelineFigures {
        latency,
        throughput,
        processes,
        floods,
        scaler_votes,
        exited,
    })
}

/// Paced vectors, one decision each.
async fn decision_latency(
    producer: &JsonProducer,
    topics: &Topics,
    decisions: &mut Collector<Decided>,
    config: &BenchConfig,
    source: &VectorSource,
) -> anyhow::Result<LatencyFigures> {
    let sent = config.latency_vectors();
    let services = config.latency_services;
    tracing::info!(
        vectors = sent,
        per_second = config.latency_rate,
        services,
        "pipeline: decision latency"
    );
    let deadline = Instant::now()
        + Duration::from_secs_f64(sent as f64 / f64::from(config.latency_rate))
        + Duration::from_secs(config.decision_window_sec.get() + 15);
    let make = |i: u64| source.vector(format!("lat-{}", i % services), i / services, i);
    let (started, gathered) = tokio::join!(
        paced(producer, &topics.metrics, config.latency_rate, sent, make),
        decisions.gather("decision latency", sent as usize, deadline, |d| {
            d.key_in("lat-")
        }),
    );
    let (sends, gathered) = (started?, gathered?);
    let acks = sends
        .iter()
        .map(|s| s.acknowledged.saturating_duration_since(s.started))
        .collect();
    let incomplete = incomplete(&gathered);
    let samples: Vec<Duration> = gathered.first.values().map(|a| a.item.latency).collect();
    Ok(LatencyFigures {
        missing: sent - samples.len() as u64,
        latency: Latency::of(samples),
        produce_ack: Latency::of(acks),
        sent,
        repeats: gathered.repeats,
        incomplete,
    })
}

/// The throughput phase's services are `svc-0`, `svc-1`, ...
pub(crate) const THROUGHPUT_PREFIX: &str = "svc";

/// Vectors over many services, as fast as the producer takes them.
async fn throughput(
    producer: &JsonProducer,
    topics: &Topics,
    decisions: &mut Collector<Decided>,
    config: &BenchConfig,
    source: &VectorSource,
    env: &Environment<'_>,
) -> anyhow::Result<ThroughputFigures> {
    let vectors = config.throughput_vectors();
    let batch: Vec<Encoded> = source
        .batch(THROUGHPUT_PREFIX, config.throughput_services, vectors)
        .iter()
        .map(Encoded::of)
        .collect();
    tracing::info!(
        vectors,
        services = config.throughput_services,
        windows = config.throughput_windows,
        "pipeline: throughput"
    );
    let keys = format!("{THROUGHPUT_PREFIX}-");
    let started_at = Utc::now();
    let start = Instant::now();
    let deadline = start + config.throughput_timeout_sec.std();
    let (produced, gathered) = tokio::join!(
        async {
            flood(producer, &topics.metrics, &batch, config.in_flight as usize)
                .await
                .map(|()| start.elapsed())
        },
        decisions.gather("throughput decisions", vectors as usize, deadline, |d| {
            d.key_in(&keys)
        }),
    );
    let (produced_in, gathered) = (produced?, gathered?);
    let decided = gathered.first.len() as u64;
    let incomplete = incomplete(&gathered);
    let elapsed = gathered.last_at.unwrap_or(deadline).duration_since(start);
    let mut stages = Vec::new();
    for kind in ModelKind::ALL {
        let path = env.dir.join(format!("predictions_{kind}.csv"));
        stages.push(stages::read(
            &format!("{kind} votes"),
            &path,
            "voted_at",
            &keys,
        )?);
    }
    stages.push(stages::read(
        "scaler decisions",
        &env.dir.join("decisions.csv"),
        "decided_at",
        &keys,
    )?);
    Ok(ThroughputFigures {
        vectors,
        decided,
        repeats: gathered.repeats,
        incomplete,
        produced_in,
        elapsed,
        per_second: per_second(decided, elapsed),
        stages,
        started_at,
    })
}
