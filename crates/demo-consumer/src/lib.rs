//! The demo consumer: the Kafka counterpart of the demo HTTP target (`demo-service`), a
//! consumer-group member whose capacity is known, for scaling consumers on lag.
//!
//! Each replica joins consumer group GROUP on TOPIC (created with TOPIC_PARTITIONS partitions
//! when missing), so the broker shares the partitions among the replicas; it works on up to
//! CONCURRENCY messages at once, each for MESSAGE_COST_MS, and commits a message's offset only
//! once it and every earlier message of its partition are done ([`offsets`]). A replica reads
//! about CONCURRENCY * 1000 / MESSAGE_COST_MS messages a second; replicas beyond the partition
//! count read nothing. On /metrics: `demo_consumer_messages_total`,
//! `demo_consumer_processing_seconds`, `demo_consumer_in_flight`,
//! `demo_consumer_assigned_partitions`, `demo_consumer_rebalances_total`, the shared Kafka
//! counters and the process metrics.

mod config;
mod consumer;
mod metrics;
pub mod offsets;

pub use config::{ConsumerConfig, MAX_MESSAGE_COST_MS};

use anyhow::Context;
use consumer::WorkConsumer;
use metrics::ConsumerMetrics;
use prometheus::Registry;
use service_runtime::kafka::{KafkaMetrics, ensure_topics};
use service_runtime::ops::Health;
use service_runtime::supervise::Tasks;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A built, not yet running replica: tests read its ops address before running it.
pub struct Application {
    config: ConsumerConfig,
    ops_listener: TcpListener,
    registry: Registry,
    health: Health,
    metrics: ConsumerMetrics,
    kafka_metrics: KafkaMetrics,
}

impl Application {
    /// Binds the ops listener and registers the metrics.
    pub async fn build(config: ConsumerConfig) -> anyhow::Result<Self> {
        let ops_listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {} (LISTEN_ADDR)", config.listen_addr))?;
        let registry = service_runtime::ops::registry();
        let metrics = ConsumerMetrics::register(&registry)?;
        let kafka_metrics = KafkaMetrics::register(&registry)?;
        Ok(Self {
            config,
            ops_listener,
            registry,
            health: Health::default(),
            metrics,
            kafka_metrics,
        })
    }

    /// Where /metrics and /healthz are served.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener
            .local_addr()
            .unwrap_or(self.config.listen_addr)
    }

    /// Creates the topic if missing, then consumes until `shutdown` is cancelled; the consumer
    /// and the ops server run supervised: one that stops early makes this return an error.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = Tasks::with_ops(&shutdown, self.ops_listener, self.registry, &self.health);
        let stop = tasks.stop_token();
        let config = self.config;
        let mut topic_args = config.kafka.clone();
        topic_args.kafka_topic_partitions = config.topic_partitions;
        let topics = [config.topic.as_str()];
        let create = || ensure_topics(&topic_args, &topics);
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
        let consumer = WorkConsumer::new(&config, self.metrics, self.kafka_metrics)
            .context("cannot create the Kafka consumer")?;
        match consumer.partition_count().await {
            Some(n) if i32::try_from(n).ok() != Some(config.topic_partitions) => {
                tracing::warn!(topic = %config.topic, partitions = n, topic_partitions = config.topic_partitions,
                    "the topic exists with another partition count than TOPIC_PARTITIONS: at most that many replicas read");
            }
            _ => {}
        }
        self.health.set(
            "consumer",
            true,
            format!("a member of {} on {}", config.group, config.topic),
        );
        tracing::info!(
            topic = %config.topic,
            group = %config.group,
            message_cost_ms = config.message_cost_ms,
            concurrency = config.concurrency,
            capacity_per_second = config.capacity_per_second(),
            "consuming"
        );
        tasks.spawn("consumer", async move {
            consumer.run(stop).await.context("consuming failed")
        });
        tasks.join().await?;
        tracing::info!("demo-consumer stopped");
        Ok(())
    }
}

/// Started by [`service_runtime::service::main`].
impl service_runtime::service::Service for Application {
    const NAME: &'static str = "demo-consumer";
    type Config = ConsumerConfig;

    fn log_args(config: &ConsumerConfig) -> &service_runtime::telemetry::LogArgs {
        &config.log
    }

    async fn build(config: ConsumerConfig) -> anyhow::Result<Self> {
        Application::build(config).await
    }

    fn ops_addr(&self) -> SocketAddr {
        Application::ops_addr(self)
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        Application::run(self, shutdown).await
    }
}
