//! Kafka connection settings shared by every service, and the librdkafka configurations built
//! from them.

use clap::{ArgAction, Args};
use rdkafka::ClientConfig;
use std::fmt;

/// Kafka options, flattened into every service's configuration.
#[derive(Clone, Args)]
pub struct KafkaArgs {
    /// Kafka brokers to bootstrap from, as a comma-separated host:port list.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    pub kafka_bootstrap_servers: String,

    /// Extra librdkafka properties as KEY=VALUE, repeatable; in the environment a comma-separated
    /// list. They override the defaults, e.g. security.protocol=SASL_SSL,sasl.mechanism=PLAIN.
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_delimiter = ','
    )]
    pub kafka_properties: Vec<String>,

    /// Partitions of the topics this service creates when they are missing.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub kafka_topic_partitions: i32,

    /// Replication factor of the topics this service creates.
    #[arg(long, env = "KAFKA_TOPIC_REPLICATION_FACTOR", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub kafka_topic_replication_factor: i32,

    /// Create missing topics at start (turn off where an operator manages topics).
    #[arg(long, env = "KAFKA_CREATE_TOPICS", default_value_t = true, action = ArgAction::Set)]
    pub kafka_create_topics: bool,
}

/// clap value parser for `KEY=VALUE`.
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("{s:?} has an empty key"));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// Property names whose values are secrets and never logged.
fn is_secret(key: &str) -> bool {
    [
        "password",
        "secret",
        "jaas",
        "token",
        "key.pem",
        "ssl.key",
        "credentials",
    ]
    .iter()
    .any(|word| key.contains(word))
}

impl fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: Vec<String> = self
            .properties()
            .iter()
            .map(|(k, v)| {
                if is_secret(k) {
                    format!("{k}=<redacted>")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        f.debug_struct("KafkaArgs")
            .field("kafka_bootstrap_servers", &self.kafka_bootstrap_servers)
            .field("kafka_properties", &properties)
            .field("kafka_topic_partitions", &self.kafka_topic_partitions)
            .field(
                "kafka_topic_replication_factor",
                &self.kafka_topic_replication_factor,
            )
            .field("kafka_create_topics", &self.kafka_create_topics)
            .finish()
    }
}

impl KafkaArgs {
    /// Settings for a local broker: for tests and tools.
    pub fn local(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            kafka_bootstrap_servers: bootstrap_servers.into(),
            kafka_properties: Vec::new(),
            kafka_topic_partitions: 3,
            kafka_topic_replication_factor: 1,
            kafka_create_topics: true,
        }
    }

    /// The pass-through properties: empty entries (an empty `KAFKA_PROPERTIES=`) are none;
    /// entries that are not `KEY=VALUE` are refused by [`KafkaArgs::validate`].
    pub fn properties(&self) -> Vec<(String, String)> {
        self.kafka_properties
            .iter()
            .filter(|p| !p.trim().is_empty())
            .filter_map(|p| parse_property(p).ok())
            .collect()
    }

    /// Adds a pass-through property (tests and tools).
    pub fn with_property(mut self, key: &str, value: &str) -> Self {
        self.kafka_properties.push(format!("{key}={value}"));
        self
    }

    /// A one-line check of the bootstrap list and the properties, for start-up validation.
    pub fn validate(&self) -> Result<(), String> {
        for property in self
            .kafka_properties
            .iter()
            .filter(|p| !p.trim().is_empty())
        {
            parse_property(property)
                .map_err(|e| format!("KAFKA_PROPERTIES (--kafka-property): {e}"))?;
        }
        for server in self.kafka_bootstrap_servers.split(',') {
            let server = server.trim();
            let port = server.rsplit_once(':').map(|(_, p)| p);
            if server.is_empty() || port.is_none_or(|p| p.parse::<u16>().is_err()) {
                return Err(format!(
                    "KAFKA_BOOTSTRAP_SERVERS (--kafka-bootstrap-servers): {server:?} is not host:port"
                ));
            }
        }
        Ok(())
    }

    /// The base configuration: brokers, client id, defaults, then the user's properties.
    fn client_config(&self, client_id: &str, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.kafka_bootstrap_servers)
            .set("client.id", client_id);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in self.properties() {
            config.set(key, value);
        }
        config
    }

    /// Producer: idempotent, all in-sync replicas acknowledge, a short linger for low latency.
    pub fn producer_config(&self, client_id: &str) -> ClientConfig {
        self.client_config(
            client_id,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "1"),
            ],
        )
    }

    /// Consumer: offsets are stored by the code after the work is done and committed
    /// periodically and at shutdown; a group with no committed offset starts at the end.
    pub fn consumer_config(&self, client_id: &str, group_id: &str) -> ClientConfig {
        let mut config = self.client_config(
            client_id,
            &[
                ("enable.auto.commit", "true"),
                ("auto.commit.interval.ms", "1000"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "latest"),
                ("fetch.wait.max.ms", "25"),
            ],
        );
        config.set("group.id", group_id);
        // Offsets are stored by hand: the user must not switch that back on.
        config.set("enable.auto.offset.store", "false");
        config
    }

    /// Admin client for topic creation.
    pub fn admin_config(&self, client_id: &str) -> ClientConfig {
        self.client_config(client_id, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_and_secrets_are_redacted() {
        let mut args = KafkaArgs::local("kafka:9092");
        args.kafka_properties = vec![
            "security.protocol=SASL_SSL".into(),
            "sasl.password=hunter2".into(),
            String::new(),
        ];
        assert!(args.validate().is_ok(), "an empty entry is none");
        let shown = format!("{args:?}");
        assert!(shown.contains("security.protocol=SASL_SSL"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(parse_property("novalue").is_err());
        args.kafka_properties.push("novalue".into());
        assert!(args.validate().unwrap_err().contains("KAFKA_PROPERTIES"));
        assert!(parse_property("=x").is_err());
    }

    #[test]
    fn user_properties_override_defaults_except_offset_store() {
        let mut args = KafkaArgs::local("kafka:9092");
        args.kafka_properties = vec![
            "linger.ms=20".into(),
            "enable.auto.offset.store=true".into(),
        ];
        assert_eq!(args.producer_config("p").get("linger.ms"), Some("20"));
        let consumer = args.consumer_config("c", "g");
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some("g"));
    }

    #[test]
    fn bootstrap_validation() {
        assert!(KafkaArgs::local("a:9092,b:9093").validate().is_ok());
        assert!(KafkaArgs::local("kafka").validate().is_err());
        assert!(KafkaArgs::local("kafka:port").validate().is_err());
    }
}
