//! `load-testing`: open-loop load against Sock Shop or the demo target, or messages to a Kafka
//! topic for the demo consumer, in the shapes real traffic takes (constant, ramp, step, spike,
//! daily cycle, recorded traces), and the experiment runner that records what ran while the
//! aggregator collects training data.

pub mod cli;
pub mod engine;
pub mod experiment;
pub mod kafka;
pub mod pattern;
pub mod progress;
pub mod scenario;
pub mod stats;
pub mod targets;
pub mod trace;

use cli::LoadArgs;
use kafka::KafkaTarget;
use scenario::Scenario;
use stats::{Snapshot, Stats};
use std::sync::Arc;
use std::time::{Duration, Instant};
use targets::Targets;
use tokio_util::sync::CancellationToken;

/// Runs the load the arguments describe, with progress, and returns the totals and run time:
/// HTTP requests, or Kafka messages with `--kafka-topic`.
pub async fn run_load(
    args: &LoadArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Snapshot, Duration)> {
    let spec = args.spec()?;
    let stats = Arc::new(Stats::default());
    let load = match &args.kafka_topic {
        Some(topic) => {
            let target = KafkaTarget::connect(&args.kafka, topic, spec.timeout).await?;
            tracing::info!(
                pattern = %spec.pattern.describe(),
                duration = %humantime::format_duration(spec.duration),
                topic = target.topic(),
                partitions = target.partitions(),
                "load starts: one message per arrival"
            );
            Load::Kafka(target)
        }
        None => {
            let targets = Arc::new(Targets::new(&args.targets, &args.targets_files).await?);
            let scenario = args.scenario();
            tracing::info!(
                pattern = %spec.pattern.describe(),
                duration = %humantime::format_duration(spec.duration),
                scenario = scenario.name(),
                replicas_found = targets.len(),
                "load starts"
            );
            Load::Http(scenario, targets)
        }
    };
    let stop_progress = CancellationToken::new();
    let progress = tokio::spawn(progress::report(
        stats.clone(),
        spec.pattern.clone(),
        spec.duration,
        stop_progress.clone(),
    ));
    let started = Instant::now();
    let result = match load {
        Load::Http(scenario, targets) => {
            engine::run(&spec, &scenario, targets, stats.clone(), shutdown).await
        }
        Load::Kafka(target) => kafka::run(&spec, &target, stats.clone(), shutdown).await,
    };
    let took = started.elapsed();
    stop_progress.cancel();
    let _ = progress.await;
    result?;
    Ok((stats.snapshot(), took))
}

/// Where the load goes.
enum Load {
    /// Requests of a scenario to the targets' replicas.
    Http(Scenario, Arc<Targets>),
    /// Messages to a topic.
    Kafka(KafkaTarget),
}
