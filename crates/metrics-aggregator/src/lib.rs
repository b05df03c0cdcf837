//! The metrics aggregator: Prometheus in, one feature vector per service per poll out.
//!
//! [`Application::build`] checks what can be checked before running (the CSV's header, the
//! ops port) and returns the bound application, so tests can read its address;
//! [`Application::run`] polls until the shutdown token is cancelled, then flushes.

pub mod config;
pub mod groups;
mod metrics;
mod poller;
pub mod prometheus;
pub mod sink;

pub use config::{AggregatorConfig, Mode};
pub use poller::PollSettings;

use anyhow::Context;
use metrics::AggregatorMetrics;
use poller::Poller;
use prometheus::PrometheusClient;
use service_runtime::csv_log::CsvLog;
use service_runtime::kafka::{JsonProducer, KafkaMetrics, ensure_topics};
use service_runtime::ops::Health;
use service_runtime::supervise::Tasks;
use sink::Sink;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Time allowed at shutdown for queued Kafka messages to be delivered.
const FLUSH_GRACE: Duration = Duration::from_secs(10);

/// A built, not yet running aggregator.
pub struct Application {
    /// The settings in force.
    config: AggregatorConfig,
    /// Bound listener of /metrics and /healthz.
    ops_listener: TcpListener,
    /// The metrics registry served on /metrics.
    registry: ::prometheus::Registry,
    /// Health state served on /healthz.
    health: Health,
    /// The poll loop, ready to run.
    poller: Poller,
    /// The producer, kept to flush it at shutdown (production mode).
    producer: Option<JsonProducer>,
    /// The consumer groups read from the broker (`CONSUMER_GROUPS`), if any.
    groups: Option<groups::GroupWatcher>,
}

impl Application {
    /// Builds everything that can fail on bad configuration.
    pub async fn build(config: AggregatorConfig) -> anyhow::Result<Self> {
        let ops_listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {} (LISTEN_ADDR)", config.listen_addr))?;
        let registry = service_runtime::ops::registry();
        let sink_name = match config.mode {
            Mode::Production => "kafka",
            Mode::Development => "csv",
        };
        let metrics = AggregatorMetrics::register(&registry, sink_name)?;
        let health = Health::default();
        let (sink, producer) = match config.mode {
            Mode::Production => {
                let kafka_metrics = KafkaMetrics::register(&registry)?;
                let producer =
                    JsonProducer::new(&config.kafka, "metrics-aggregator", kafka_metrics)
                        .context("invalid Kafka settings (KAFKA_PROPERTIES)")?;
                let sink = Sink::Kafka {
                    producer: producer.clone(),
                    topic: config.metrics_topic.clone(),
                    anomalies_topic: config.anomalies_topic.clone(),
                };
                (sink, Some(producer))
            }
            Mode::Development => {
                let csv = CsvLog::open(
                    &config.dev_csv_path,
                    &formats::dev_csv::header(),
                    "DEV_CSV_PATH",
                )?;
                (Sink::Csv(csv), None)
            }
        };
        let timeout = Duration::from_secs(config.poll_interval_sec.get().clamp(1, 10));
        let client = PrometheusClient::new(&config.prometheus_url, timeout)?;
        let settings = PollSettings {
            plan: prometheus::QueryPlan {
                window_secs: config.rate_window_sec(),
                interval_secs: config.poll_interval_sec.get(),
                histograms: config.histograms(),
                seasons: [
                    config.daily_period_sec.get(),
                    config.weekly_period_sec.get(),
                ],
            },
            features: features::FeatureSettings {
                capacity: features::CapacitySettings {
                    prior_rps: config.capacity_prior_rps,
                    sla: config.sla(),
                },
                anomalies: config.anomaly_detection,
                anomaly_min_windows: config.anomaly_min_windows,
                ..features::FeatureSettings::new(
                    config.trend_windows as usize,
                    config.poll_interval_sec.get(),
                )
            },
            fixed_services: config.fixed_services(),
            capacity_state_path: config.capacity_state_path.clone(),
            anomaly_state_path: config.anomaly_state_path(),
            group_services: config
                .consumer_groups
                .0
                .iter()
                .map(|g| g.service.clone())
                .collect(),
        };

        let targets = config.group_targets();
        let groups = if targets.is_empty() {
            None
        } else {
            let metrics = groups::GroupMetrics::register(&registry, &targets)?;
            let watcher = groups::GroupWatcher::new(config.kafka.clone(), targets, metrics);
            Some(match &sink {
                Sink::Kafka { .. } => watcher.with_vectors(groups::VectorSettings {
                    sink: sink.clone(),
                    interval_secs: config.poll_interval_sec.get(),
                    features: settings.features,
                    capacity_prior: config.consumer_capacity_prior,
                    lag_target_sec: config.consumer_lag_target_sec,
                    state_path: Some(config.consumer_capacity_state_path()),
                }),
                // The development CSV is the HTTP services' training data.
                Sink::Csv(_) => watcher,
            })
        };
        let poller = Poller::new(client, sink, settings, metrics, health.clone());
        Ok(Self {
            config,
            ops_listener,
            registry,
            health,
            poller,
            producer,
            groups,
        })
    }

    /// Address of /metrics and /healthz.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener
            .local_addr()
            .unwrap_or(self.config.listen_addr)
    }

    /// Creates the topic if needed (production), then polls until `shutdown` is cancelled. The
    /// poll loop and the ops server run supervised ([`service_runtime::supervise`]): one that stops early
    /// makes this return an error.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = Tasks::with_ops(&shutdown, self.ops_listener, self.registry, &self.health);
        let stop = tasks.stop_token();
        match self.config.mode {
            Mode::Production => {
                let topic = self.config.metrics_topic.as_str();
                let topics = [topic, self.config.anomalies_topic.as_str()];
                let create = || ensure_topics(&self.config.kafka, &topics);
                if !service_runtime::retry::until_ok(
                    &stop,
                    &self.health,
                    "kafka",
                    "creating the topic",
                    create,
                )
                .await
                {
                    return tasks.join().await;
                }
                tracing::info!(topic, "publishing feature vectors to Kafka");
            }
            Mode::Development => tracing::info!(
                csv = %self.config.dev_csv_path.display(),
                "development mode: appending feature vectors to the CSV"
            ),
        }
        if let Some(watcher) = self.groups {
            let (stop, every) = (stop.clone(), self.config.poll_interval_sec.get());
            tracing::info!(scaled = ?self.config.consumer_groups, watched = ?self.config.watch_consumer_groups,
                "reading consumer groups from the broker");
            tasks.spawn("consumer-groups", async move {
                watcher.run(stop, every).await;
                Ok(())
            });
        }
        let poller = self.poller;
        tasks.spawn("poller", async move {
            poller.run(stop).await;
            Ok(())
        });
        let result = tasks.join().await;
        if let Some(producer) = self.producer
            && let Err(e) = producer.flush(FLUSH_GRACE).await
        {
            tracing::error!(error = %e, "feature vectors still queued at shutdown were not delivered");
        }
        result?;
        tracing::info!("metrics-aggregator stopped");
        Ok(())
    }
}

/// Started by [`service_runtime::service::main`].
impl service_runtime::service::Service for Application {
    const NAME: &'static str = "metrics-aggregator";
    type Config = AggregatorConfig;

    fn log_args(config: &AggregatorConfig) -> &service_runtime::telemetry::LogArgs {
        &config.log
    }

    async fn build(config: AggregatorConfig) -> anyhow::Result<Self> {
        Application::build(config).await
    }

    fn ops_addr(&self) -> SocketAddr {
        Application::ops_addr(self)
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        Application::run(self, shutdown).await
    }
}
