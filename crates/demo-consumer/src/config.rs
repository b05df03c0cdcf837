//! Settings of one demo-consumer replica.

use clap::Parser;
use service_runtime::config::Validate;
use service_runtime::kafka::KafkaArgs;
use service_runtime::telemetry::LogArgs;
use std::net::SocketAddr;
use std::time::Duration;

/// The longest cost of a message taken, in milliseconds: a minute. A replica busy for longer
/// without asking the broker for a message would be taken out of its group (librdkafka's
/// `max.poll.interval.ms`, 5 minutes), and longer is a typo, not a plan.
pub const MAX_MESSAGE_COST_MS: f64 = 60_000.0;

/// A stand-in for a Kafka consumer service: it reads TOPIC as a member of consumer group GROUP,
/// so that its replicas share the topic's partitions, and every message holds one of
/// CONCURRENCY slots for MESSAGE_COST_MS (waiting, not computing). One replica thus reads at
/// most CONCURRENCY * 1000 / MESSAGE_COST_MS messages a second, and the group's lag grows when
/// production is faster than that times the replicas. Offsets are committed at least once: a
/// message's offset only after its work and every earlier one's on its partition is done.
#[derive(Debug, Clone, Parser)]
#[command(name = "demo-consumer", version)]
pub struct ConsumerConfig {
    /// Topic of the work items.
    #[arg(long, env = "TOPIC", default_value = "demo-work")]
    pub topic: String,

    /// Consumer group the replicas share the topic's partitions in.
    #[arg(long, env = "GROUP", default_value = "demo-consumer")]
    pub group: String,

    /// Partitions the topic is created with when it is missing: the most replicas that can all
    /// read at once. (KAFKA_TOPIC_PARTITIONS does not apply: this is the only topic created.)
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 8,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub topic_partitions: i32,

    /// Time one message costs, in milliseconds (a sleep, so replicas cost almost no CPU).
    #[arg(long, env = "MESSAGE_COST_MS", default_value_t = 50.0)]
    pub message_cost_ms: f64,

    /// Messages one replica works on at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// Address of the /metrics and /healthz endpoints.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:9107")]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

impl Validate for ConsumerConfig {
    fn validate(&self) -> Result<(), String> {
        let cost = self.message_cost_ms;
        if !(cost.is_finite() && cost > 0.0 && cost <= MAX_MESSAGE_COST_MS) {
            return Err(format!(
                "MESSAGE_COST_MS (--message-cost-ms): {cost} is not a number of milliseconds above 0 and at most {MAX_MESSAGE_COST_MS}"
            ));
        }
        if self.topic.trim().is_empty() {
            return Err("TOPIC (--topic) is empty".into());
        }
        if self.group.trim().is_empty() {
            return Err("GROUP (--group) is empty".into());
        }
        self.kafka.validate()
    }
}

impl ConsumerConfig {
    /// A replica of `group` on `topic` at `bootstrap`, its ops endpoints on an ephemeral
    /// loopback port, reading a new group's topic from its start: for tests and tools.
    pub fn local(
        bootstrap: &str,
        topic: &str,
        group: &str,
        cost_ms: f64,
        concurrency: u32,
    ) -> Self {
        Self {
            topic: topic.to_owned(),
            group: group.to_owned(),
            topic_partitions: 8,
            message_cost_ms: cost_ms,
            concurrency,
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            kafka: KafkaArgs::local(bootstrap),
            log: LogArgs {
                log_format: service_runtime::telemetry::LogFormat::Human,
                log_level: "info".into(),
            },
        }
    }

    /// The time one message costs.
    pub fn message_cost(&self) -> Duration {
        Duration::from_secs_f64(self.message_cost_ms.clamp(0.0, MAX_MESSAGE_COST_MS) / 1000.0)
    }

    /// Messages a second one replica can read.
    pub fn capacity_per_second(&self) -> f64 {
        f64::from(self.concurrency) * 1000.0 / self.message_cost_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ConsumerConfig, String> {
        let mut argv = vec!["demo-consumer"];
        argv.extend_from_slice(args);
        let config = ConsumerConfig::try_parse_from(argv)
            .map_err(|e| service_runtime::config::one_line(&e))?;
        config.validate().map(|()| config)
    }

    #[test]
    fn defaults_and_capacity() {
        let config = parse(&[]).unwrap();
        assert_eq!(
            (config.topic.as_str(), config.group.as_str()),
            ("demo-work", "demo-consumer")
        );
        assert_eq!(config.topic_partitions, 8);
        assert_eq!(config.listen_addr.port(), 9107);
        assert_eq!(config.capacity_per_second(), 20.0);
        let config = parse(&["--message-cost-ms", "20", "--concurrency", "2"]).unwrap();
        assert_eq!(config.capacity_per_second(), 100.0);
        assert_eq!(config.message_cost(), Duration::from_millis(20));
    }

    #[test]
    fn invalid_settings_are_one_line_naming_the_setting() {
        for (args, names) in [
            (vec!["--message-cost-ms", "0"], "MESSAGE_COST_MS"),
            (vec!["--message-cost-ms", "NaN"], "MESSAGE_COST_MS"),
            (vec!["--message-cost-ms", "1e300"], "MESSAGE_COST_MS"),
            (vec!["--concurrency", "0"], "--concurrency"),
            (vec!["--topic-partitions", "0"], "--topic-partitions"),
            (vec!["--topic", " "], "TOPIC"),
            (vec!["--group", ""], "GROUP"),
            (
                vec!["--kafka-bootstrap-servers", "kafka"],
                "KAFKA_BOOTSTRAP_SERVERS",
            ),
        ] {
            let e = parse(&args).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains(names), "{args:?}: {e}");
        }
    }
}
