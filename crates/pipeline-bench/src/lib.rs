//! pipeline-bench: how close the fleet's pipeline comes to the broker it runs on.
//!
//! One run, on one `tansu` broker started for it, with the services' own Kafka clients:
//! 1. the broker alone ([`broker_limit`]): round-trip latency and produce-to-consume rate;
//! 2. the pipeline ([`pipeline`]): the real `ml-inference` and `authoritative-scaler` binaries
//!    as child processes ([`services`]), decision latency, throughput, memory and CPU;
//! 3. the report ([`report`]): markdown tables and the goal checks ([`goals`]).

pub mod broker_limit;
pub mod collect;
pub mod config;
pub mod floods;
pub mod goals;
pub mod pipeline;
pub mod produce;
pub mod report;
pub mod resources;
pub mod services;
pub mod stages;
pub mod stats;
pub mod vectors;

pub use config::BenchConfig;
pub use report::Report;

use anyhow::Context;
use service_runtime::kafka::KafkaMetrics;
use services::Binaries;
use std::time::Instant;
use testkit::Broker;
use vectors::VectorSource;

/// Counters for the harness's clients; nobody scrapes them, so they live in a throwaway registry.
pub(crate) fn kafka_metrics() -> KafkaMetrics {
    let registry = prometheus::Registry::new();
    KafkaMetrics::register(&registry)
        .unwrap_or_else(|e| unreachable!("a fresh registry takes the counters: {e}"))
}

/// Runs both measures and returns their report.
pub async fn run(config: BenchConfig) -> anyhow::Result<Report> {
    let started = Instant::now();
    // Fail before minutes of measuring if the services cannot be started.
    let binaries = Binaries::next_to_this_program()?;
    let models = config.models.canonicalize().with_context(|| {
        format!(
            "the models directory {} (BENCH_MODELS) is missing: run from the repository root",
            config.models.display()
        )
    })?;
    let dir = tempfile::Builder::new()
        .prefix("pipeline-bench-")
        .tempdir()
        .context("cannot create the run's directory")?;
    tracing::info!(dir = %dir.path().display(), "starting the broker (tansu)");
    let broker = Broker::try_start().await.map_err(anyhow::Error::msg)?;
    let args = config.kafka_args(broker.bootstrap());
    let source = VectorSource::now();

    let broker_figures = broker_limit::measure(&args, &config, &source).await?;
    tracing::info!(
        round_trip = ?broker_figures.round_trip,
        rate = broker_figures.rate.per_second,
        "broker measured"
    );
    let environment = pipeline::Environment {
        args: &args,
        binaries: &binaries,
        models: &models,
        dir: dir.path(),
        broker_pid: broker.pid(),
    };
    let pipeline_figures = pipeline::measure(&environment, &config, &source).await?;
    drop(broker);
    // A run where a window went undecided or was decided twice keeps its files to look into.
    let t = &pipeline_figures.throughput;
    let keep = config.keep_dir || t.decided < t.vectors || t.repeats > 0;
    let kept_dir = keep.then(|| dir.keep());
    Ok(Report {
        config,
        broker: broker_figures,
        pipeline: pipeline_figures,
        took: started.elapsed(),
        kept_dir,
    })
}
