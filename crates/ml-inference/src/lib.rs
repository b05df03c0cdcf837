//! An inference service: one model, voting on every feature vector.
//!
//! For each feature vector on `metrics` (its own consumer group, at-least-once), the model
//! forecasts the service's peak request rate over the next windows, on the blocking pool, and
//! the vote rule ([`models::vote`]) sizes it with the capacity per replica the aggregator learned. The prediction is
//! appended to `output/predictions_<model>.csv`, the vote is published to `model-votes` keyed
//! by service, and only then is the vector's offset stored. A redelivered vector can thus give a
//! second vote for the same window and model; the scaler counts one.
//!
//! Vectors that are already waiting are voted on together (up to [`service_runtime::kafka::MAX_BATCH`]):
//! one model call, one file write and the votes' deliveries awaited together, so a burst of
//! services costs one round trip to the broker, not one per service.

pub mod config;

pub use config::InferenceConfig;

use anyhow::Context;
use chrono::Utc;
use contract::{FeatureVector, Vote};
use models::{Calibrator, LoadedModel, VoteDecision};
use prometheus::{GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use service_runtime::csv_log::CsvLog;
use service_runtime::kafka::{
    AtLeastOnceConsumer, JsonProducer, KafkaMetrics, dead_letter_topic, ensure_topics,
};
use service_runtime::ops::Health;
use service_runtime::supervise::Tasks;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Counters of the service.
#[derive(Clone)]
struct InferenceMetrics {
    /// Votes published, by action.
    votes: IntCounterVec,
    /// Model failures, by kind.
    errors: IntCounterVec,
    /// Time to vote on one vector (all candidate replica counts).
    duration: Histogram,
    /// Confidence of the votes, by action.
    confidence: HistogramVec,
    /// The online calibration's offset of each service's forecasts, by horizon.
    offset: GaugeVec,
    /// Share of each service's windows whose peak rose above the calibrated forecast, by
    /// horizon (the level's complement when calibrated).
    missed: GaugeVec,
}

impl InferenceMetrics {
    fn register(registry: &Registry, model: &str) -> prometheus::Result<Self> {
        let votes = IntCounterVec::new(
            Opts::new("inference_votes_total", "Votes published, by action")
                .const_label("model", model),
            &["action"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("inference_errors_total", "Predictions that failed, by kind")
                .const_label("model", model),
            &["kind"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "inference_duration_seconds",
                "Time to vote on one feature vector: its share of its batch's model call",
            )
            .const_label("model", model)
            .buckets(vec![
                1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.01,
            ]),
        )?;
        let confidence = HistogramVec::new(
            HistogramOpts::new(
                "inference_vote_confidence",
                "Confidence of the votes, by action",
            )
            .const_label("model", model)
            .buckets(vec![
                0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0,
            ]),
            &["action"],
        )?;
        let offset = GaugeVec::new(
            Opts::new(
                "inference_forecast_offset",
                "Added to the service's forecasts (log ratio of peak to rate) by the online \
                 calibration, by horizon",
            )
            .const_label("model", model),
            &["service", "horizon"],
        )?;
        let missed = GaugeVec::new(
            Opts::new(
                "inference_forecast_missed_ratio",
                "Share of the service's windows whose peak rose above the calibrated forecast \
                 at the vote's quantile, by horizon",
            )
            .const_label("model", model),
            &["service", "horizon"],
        )?;
        registry.register(Box::new(offset.clone()))?;
        registry.register(Box::new(missed.clone()))?;
        registry.register(Box::new(votes.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(confidence.clone()))?;
        for action in contract::Action::ALL {
            votes.with_label_values(&[action.as_str()]);
            confidence.with_label_values(&[action.as_str()]);
        }
        errors.with_label_values(&["predict"]);
        Ok(Self {
            votes,
            errors,
            duration,
            confidence,
            offset,
            missed,
        })
    }

    /// Exports what `calibrator` knows of `services`, and drops what was exported of the
    /// services it forgot (so the series stay as bounded as the calibrator).
    fn calibration<'a>(
        &self,
        calibrator: &mut Calibrator,
        services: impl Iterator<Item = &'a str>,
    ) {
        for service in calibrator.take_forgotten() {
            for horizon in ["up", "down"] {
                let _ = self.offset.remove_label_values(&[&service, horizon]);
                let _ = self.missed.remove_label_values(&[&service, horizon]);
            }
        }
        for service in services {
            let Some(c) = calibrator.service(service) else {
                continue;
            };
            for (horizon, offset, resolved, missed) in [
                ("up", c.offset.up, c.resolved.up, c.missed.up),
                ("down", c.offset.down, c.resolved.down, c.missed.down),
            ] {
                self.offset
                    .with_label_values(&[service, horizon])
                    .set(offset);
                if resolved > 0 {
                    self.missed
                        .with_label_values(&[service, horizon])
                        .set(missed as f64 / resolved as f64);
                }
            }
        }
    }
}

/// A built, not yet running inference service.
pub struct Application {
    config: InferenceConfig,
    ops_listener: TcpListener,
    registry: Registry,
    health: Health,
    model: Arc<LoadedModel>,
    metrics: InferenceMetrics,
    kafka_metrics: KafkaMetrics,
    predictions: CsvLog,
}

impl Application {
    /// Loads the model and opens the predictions CSV; fails with a clear error on either.
    pub async fn build(config: InferenceConfig) -> anyhow::Result<Self> {
        let path = config.model_path();
        let model = models::load(&path, config.model)?;
        let predictions = CsvLog::open(
            &config.predictions_csv(),
            &formats::predictions::header(),
            "PREDICTIONS_CSV",
        )?;
        let ops_listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {} (LISTEN_ADDR)", config.listen_addr))?;
        let registry = service_runtime::ops::registry();
        let metrics = InferenceMetrics::register(&registry, config.model.as_str())?;
        let kafka_metrics = KafkaMetrics::register(&registry)?;
        let health = Health::default();
        health.set("model", true, model.metadata().model_version.clone());
        tracing::info!(
            model = %config.model,
            version = %model.metadata().model_version,
            features = ?model.metadata().features,
            quantile = config.forecast_quantile.unwrap_or(model.metadata().forecast.default_quantile),
            horizons = ?model.metadata().forecast.horizons,
            "model loaded"
        );
        Ok(Self {
            config,
            ops_listener,
            registry,
            health,
            model: Arc::new(model),
            metrics,
            kafka_metrics,
            predictions,
        })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener
            .local_addr()
            .unwrap_or(self.config.listen_addr)
    }

    /// Consumes and votes until `shutdown` is cancelled; the consumer and the ops server run
    /// supervised ([`service_runtime::supervise`]): one that stops early makes this return an error.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = Tasks::with_ops(&shutdown, self.ops_listener, self.registry, &self.health);
        let stop = tasks.stop_token();
        let config = &self.config;
        let dead_letters = dead_letter_topic(&config.metrics_topic);
        let topics = [
            config.metrics_topic.as_str(),
            config.votes_topic.as_str(),
            dead_letters.as_str(),
        ];
        let create = || ensure_topics(&config.kafka, &topics);
        if !service_runtime::retry::until_ok(
            &stop,
            &self.health,
            "kafka",
            "creating the topics",
            create,
        )
        .await
        {
            return tasks.join().await;
        }
        let client_id = format!("ml-{}", config.model);
        let producer = JsonProducer::new(&config.kafka, &client_id, self.kafka_metrics.clone())?;
        let consumer = AtLeastOnceConsumer::sole(
            &config.kafka,
            &client_id,
            &config.consumer_group(),
            &config.metrics_topic,
            self.kafka_metrics.clone(),
        )?
        .dead_letters(producer.clone());
        tracing::info!(from = %config.metrics_topic, to = %config.votes_topic, group = %config.consumer_group(), "voting");
        let level = config
            .forecast_quantile
            .unwrap_or(self.model.metadata().forecast.default_quantile);
        let calibrator = self
            .model
            .calibrator(level, config.forecast_calibration_step);
        let voter = Arc::new(Voter {
            model: self.model.clone(),
            producer: producer.clone(),
            votes_topic: config.votes_topic.clone(),
            predictions: self.predictions.clone(),
            metrics: self.metrics.clone(),
            interval_warned: AtomicBool::new(false),
            level,
            calibrator: Arc::new(Mutex::new(calibrator)),
        });
        tasks.spawn("consumer", async move {
            consumer
                .run_batches(
                    &stop,
                    service_runtime::kafka::MAX_BATCH,
                    move |vectors: &[FeatureVector]| {
                        let (voter, vectors) = (voter.clone(), vectors.to_vec());
                        async move { voter.vote(vectors.into()).await }
                    },
                )
                .await
                .context("consuming feature vectors failed")
        });
        let result = tasks.join().await;
        if let Err(e) = producer.flush(Duration::from_secs(10)).await {
            tracing::error!(error = %e, "votes still queued at shutdown were not delivered");
        }
        result?;
        tracing::info!("ml-inference stopped");
        Ok(())
    }
}

/// What voting on one vector needs.
struct Voter {
    model: Arc<LoadedModel>,
    producer: JsonProducer,
    votes_topic: String,
    predictions: CsvLog,
    metrics: InferenceMetrics,
    /// Set once the window-length mismatch has been logged.
    interval_warned: AtomicBool,
    /// The forecast quantile replicas are sized for.
    level: f64,
    /// What the online calibration learned of each service (used on the blocking pool, one
    /// batch at a time).
    calibrator: Arc<Mutex<Calibrator>>,
}

impl Voter {
    /// Votes on `vectors`, logs the predictions, publishes the votes; `Ok` once every vote is
    /// acknowledged by the broker.
    async fn vote(&self, vectors: Arc<[FeatureVector]>) -> anyhow::Result<()> {
        let metadata = self.model.metadata();
        if vectors
            .iter()
            .any(|v| v.poll_interval_sec != metadata.window_sec)
            && !self.interval_warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                model_window_sec = metadata.window_sec,
                "feature vectors come at another interval than the model was trained on; \
                 its horizons count windows of the model's interval (retrain on data of this interval)"
            );
        }
        let model = self.model.clone();
        let level = self.level;
        let batch = vectors.clone();
        let (calibrator, metrics) = (self.calibrator.clone(), self.metrics.clone());
        let (decisions, took) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut calibrator = calibrator.lock().unwrap_or_else(|e| e.into_inner());
            let decisions = model.votes_on(&batch, level, Some(&mut calibrator));
            let took = started.elapsed();
            metrics.calibration(&mut calibrator, batch.iter().map(|v| v.service.as_str()));
            (decisions, took)
        })
        .await?;
        let decisions: Vec<VoteDecision> = decisions
            .inspect_err(|_| {
                self.metrics.errors.with_label_values(&["predict"]).inc();
            })
            .map_err(|e| anyhow::anyhow!("prediction failed: {e}"))?;
        // Each vector's share of the batch's model call.
        let each = took.as_secs_f64() / vectors.len().max(1) as f64;
        let voted_at = Utc::now();
        let votes: Vec<Vote> = vectors
            .iter()
            .zip(&decisions)
            .map(|(vector, decision)| Vote {
                service: vector.service.clone(),
                window_id: vector.window_id,
                model: metadata.model.as_str().to_owned(),
                model_version: metadata.model_version.clone(),
                action: decision.action,
                confidence: decision.confidence,
                violation_probability: decision.violation_probability,
                current_replicas: vector.features.replicas.round().max(1.0) as u32,
                safe_replicas: decision.safe_replicas,
                inference_us: each * 1e6,
                features_produced_at: vector.produced_at,
                voted_at,
            })
            .collect();
        // Queued in order, so a service's votes reach their partition in its windows' order
        // (sends racing for room in a full queue could reorder them); then the log and the
        // deliveries at once: the offsets wait for both anyway.
        let mut deliveries = Vec::with_capacity(votes.len());
        for vote in &votes {
            deliveries.push(self.producer.queue(&self.votes_topic, vote).await);
        }
        let rows = votes
            .iter()
            .zip(&decisions)
            .zip(vectors.iter())
            .map(|((vote, decision), vector)| {
                formats::predictions::row(vote, decision.forecast_rps, vector)
            })
            .collect();
        let (logged, published) = tokio::join!(
            self.predictions.append(rows),
            futures::future::try_join_all(deliveries)
        );
        logged.context("cannot append to the predictions CSV")?;
        published.context("cannot publish the votes")?;
        for vote in &votes {
            self.metrics.duration.observe(each);
            self.metrics
                .votes
                .with_label_values(&[vote.action.as_str()])
                .inc();
            self.metrics
                .confidence
                .with_label_values(&[vote.action.as_str()])
                .observe(vote.confidence);
            tracing::debug!(service = %vote.service, window_id = vote.window_id, action = %vote.action,
                probability = vote.violation_probability, safe = vote.safe_replicas, "voted");
        }
        Ok(())
    }
}

/// Started by [`service_runtime::service::main`].
impl service_runtime::service::Service for Application {
    const NAME: &'static str = "ml-inference";
    type Config = InferenceConfig;

    fn log_args(config: &InferenceConfig) -> &service_runtime::telemetry::LogArgs {
        &config.log
    }

    async fn build(config: InferenceConfig) -> anyhow::Result<Self> {
        Application::build(config).await
    }

    fn ops_addr(&self) -> SocketAddr {
        Application::ops_addr(self)
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        Application::run(self, shutdown).await
    }
}
