//! `load-testing`: open-loop load against Sock Shop or the demo target, in the shapes real traffic
//! takes (constant, ramp, step, spike, daily cycle, recorded traces), and the experiment runner
//! that records what ran while the aggregator collects training data.

pub mod cli;
pub mod engine;
pub mod experiment;
pub mod pattern;
pub mod progress;
pub mod scenario;
pub mod stats;
pub mod targets;
pub mod trace;

use cli::LoadArgs;
use stats::{Snapshot, Stats};
use std::sync::Arc;
use std::time::{Duration, Instant};
use targets::Targets;
use tokio_util::sync::CancellationToken;

/// Runs the load the arguments describe, with progress, and returns the totals and run time.
pub async fn run_load(
    args: &LoadArgs,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Snapshot, Duration)> {
    let spec = args.spec()?;
    let scenario = args.scenario();
    let targets = Arc::new(Targets::new(&args.targets, &args.targets_files).await?);
    tracing::info!(
        pattern = %spec.pattern.describe(),
        duration = %humantime::format_duration(spec.duration),
        scenario = scenario.name(),
        replicas_found = targets.len(),
        "load starts"
    );
    let stats = Arc::new(Stats::default());
    let stop_progress = CancellationToken::new();
    let progress = tokio::spawn(progress::report(
        stats.clone(),
        spec.pattern.clone(),
        spec.duration,
        stop_progress.clone(),
    ));
    let started = Instant::now();
    let result = engine::run(&spec, &scenario, targets, stats.clone(), shutdown).await;
    let took = started.elapsed();
    stop_progress.cancel();
    let _ = progress.await;
    result?;
    Ok((stats.snapshot(), took))
}
