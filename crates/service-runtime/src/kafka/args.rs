//! Kafka connection settings shared by every service, and the librdkafka configurations built
//! from them.
//!
//! Raw librdkafka properties pass through from `KAFKA_PROPERTIES` (comma-separated) and
//! `KAFKA_PROPERTIES_FILE` (one per line, for secrets kept out of the environment). Secret
//! values (passwords, passphrases, tokens, keys, every `sasl.*` setting but the mechanism) never
//! appear in logs or error messages: the configuration's `Debug` redacts them, and a malformed
//! entry is named by its position, never shown.

use clap::{ArgAction, Args};
use rdkafka::ClientConfig;
use std::fmt;
use std::path::PathBuf;

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
    /// A comma belongs to the value unless KEY= follows it; write \, for a comma that does.
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_delimiter = ','
    )]
    pub kafka_properties: Vec<String>,

    /// A file of librdkafka properties, KEY=VALUE one per line (# comments), read at start and
    /// applied after KAFKA_PROPERTIES: the place for SASL passwords, kept out of the environment
    /// (docs/KAFKA-SECURITY.md).
    #[arg(long, env = "KAFKA_PROPERTIES_FILE")]
    pub kafka_properties_file: Option<PathBuf>,

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

/// Splits `KEY=VALUE`. The error never shows the entry, which may hold a secret: the caller
/// names the entry by its position.
pub fn parse_property(s: &str) -> Result<(String, String), String> {
    let (key, value) = s.split_once('=').ok_or_else(|| {
        "is not KEY=VALUE (its text is not shown: it may hold a secret)".to_owned()
    })?;
    let key = key.trim();
    if !is_key(key) {
        return Err(
            "has no property name before its = (its text is not shown: it may hold a secret)"
                .into(),
        );
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// A librdkafka property name: letters, digits, `.`, `_`, `-`.
fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The entries of a comma-separated list as the user meant them: clap splits at every comma,
/// so a piece that does not start with `KEY=` (a password with a comma) and a piece after one
/// ending in `\` (an escaped comma) are joined back to the piece before.
fn rejoin(pieces: &[String]) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    for piece in pieces {
        let starts_entry = piece
            .split_once('=')
            .is_some_and(|(key, _)| is_key(key.trim()));
        match entries.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push(',');
                last.push_str(piece);
            }
            Some(last) if !starts_entry && !piece.trim().is_empty() => {
                last.push(',');
                last.push_str(piece);
            }
            _ => entries.push(piece.clone()),
        }
    }
    entries
}

/// Property names whose values are secrets and never logged: passwords, passphrases, secrets,
/// tokens, keys and JAAS configurations, and every SASL setting but the mechanism.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let sasl =
        key.starts_with("sasl.") && !matches!(key.as_str(), "sasl.mechanism" | "sasl.mechanisms");
    sasl || [
        "password",
        "passphrase",
        "secret",
        "jaas",
        "token",
        "key.pem",
        "ssl.key",
        "credential",
        "private",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Reads a properties file: `(line number, KEY=VALUE)` of its non-empty, non-comment lines.
fn read_file(path: &std::path::Path) -> Result<Vec<(usize, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "KAFKA_PROPERTIES_FILE (--kafka-properties-file): cannot read {}: {e}",
            path.display()
        )
    })?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| (n, line.to_owned()))
        .collect())
}

impl fmt::Debug for KafkaArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties = self.shown_properties();
        f.debug_struct("KafkaArgs")
            .field("kafka_bootstrap_servers", &self.kafka_bootstrap_servers)
            .field("kafka_properties", &properties)
            .field("kafka_properties_file", &self.kafka_properties_file)
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
            kafka_properties_file: None,
            kafka_topic_partitions: 3,
            kafka_topic_replication_factor: 1,
            kafka_create_topics: true,
        }
    }

    /// The pass-through properties, `KAFKA_PROPERTIES` then `KAFKA_PROPERTIES_FILE`: empty
    /// entries (an empty `KAFKA_PROPERTIES=`) are none; entries that are not `KEY=VALUE`, and
    /// an unreadable file, are refused by [`KafkaArgs::validate`] at start.
    pub fn properties(&self) -> Vec<(String, String)> {
        let file = self
            .kafka_properties_file
            .as_deref()
            .and_then(|path| read_file(path).ok())
            .unwrap_or_default();
        rejoin(&self.kafka_properties)
            .into_iter()
            .chain(file.into_iter().map(|(_, line)| line))
            .filter(|p| !p.trim().is_empty())
            .filter_map(|p| parse_property(&p).ok())
            .collect()
    }

    /// The pass-through properties as they may be shown (logs, reports): `KEY=VALUE`, with
    /// `KEY=<redacted>` for secrets.
    pub fn shown_properties(&self) -> Vec<String> {
        self.properties()
            .iter()
            .map(|(k, v)| {
                if is_secret(k) {
                    format!("{k}=<redacted>")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect()
    }

    /// Adds a pass-through property (tests and tools).
    pub fn with_property(mut self, key: &str, value: &str) -> Self {
        self.kafka_properties.push(format!("{key}={value}"));
        self
    }

    /// A one-line check of the bootstrap list and the properties, for start-up validation.
    pub fn validate(&self) -> Result<(), String> {
        let entries = rejoin(&self.kafka_properties);
        for (n, property) in entries.iter().enumerate() {
            if property.trim().is_empty() {
                continue;
            }
            parse_property(property)
                .map_err(|e| format!("KAFKA_PROPERTIES (--kafka-property): entry {} {e}", n + 1))?;
        }
        if let Some(path) = &self.kafka_properties_file {
            for (line, property) in read_file(path)? {
                parse_property(&property).map_err(|e| {
                    format!(
                        "KAFKA_PROPERTIES_FILE (--kafka-properties-file): {} line {line} {e}",
                        path.display()
                    )
                })?;
            }
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
                // Memory: librdkafka may queue 1 GiB or 100,000 messages unsent by default; a
                // send beyond these waits (up to 5 s) instead.
                ("queue.buffering.max.kbytes", "4096"),
                ("queue.buffering.max.messages", "20000"),
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
                // Memory: by default librdkafka prefetches up to 100,000 messages or 64 MiB per
                // partition; a few thousand messages of at most 64 KiB keep a service busy. A
                // prefetched message keeps its whole fetch response alive, so the responses are
                // kept small too (a larger first message is still fetched; `fetch.max.bytes`
                // may not be below `message.max.bytes`, four times the contract's 64 KiB here).
                ("queued.min.messages", "2000"),
                ("queued.max.messages.kbytes", "1024"),
                ("fetch.max.bytes", "524288"),
                ("message.max.bytes", "262144"),
                // Once that queue is full, librdkafka waits a whole second (its default) before
                // fetching again, which cut the pipeline to a tenth of its rate; 10 ms keeps the
                // bound and the rate (docs/BENCHMARKS.md, "Memory bounds").
                ("fetch.queue.backoff.ms", "10"),
            ],
        );
        config.set("group.id", group_id);
        // Offsets are stored by hand: the user must not switch that back on.
        config.set("enable.auto.offset.store", "false");
        // librdkafka refuses a consumer whose fetches are smaller than `message.max.bytes`: a
        // larger one set for the producers (KAFKA_PROPERTIES applies to every client) raises
        // the fetch size with it.
        let bytes = |key: &str| config.get(key).and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(message), Some(fetch)) = (bytes("message.max.bytes"), bytes("fetch.max.bytes"))
            && message > fetch
        {
            config.set("fetch.max.bytes", message.to_string());
        }
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
    fn a_larger_message_size_for_the_producers_raises_the_consumers_fetches() {
        let mut args = KafkaArgs::local("kafka:9092");
        let consumer = args.consumer_config("c", "g");
        assert_eq!(consumer.get("fetch.max.bytes"), Some("524288"));
        args.kafka_properties = vec!["message.max.bytes=2000000".into()];
        let consumer = args.consumer_config("c", "g");
        assert_eq!(consumer.get("fetch.max.bytes"), Some("2000000"));
        assert!(consumer.create::<rdkafka::consumer::BaseConsumer>().is_ok());
    }

    #[test]
    fn a_secret_with_commas_is_one_value_and_never_shown() {
        let mut args = KafkaArgs::local("kafka:9092");
        // As clap splits KAFKA_PROPERTIES=security.protocol=SASL_SSL,sasl.password=pa,ss\,w=rd\,x=y,...
        // (a comma before something like KEY= is escaped).
        args.kafka_properties = [
            "security.protocol=SASL_SSL",
            "sasl.password=pa",
            "ss\\",
            "w=rd\\",
            "x=y",
            "ssl.key.passphrase=hunter2",
            "sasl.oauthbearer.config=clientSecret=s3cr3t",
            "sasl.mechanism=SCRAM-SHA-512",
        ]
        .map(String::from)
        .to_vec();
        assert!(args.validate().is_ok());
        let properties = args.properties();
        assert!(
            properties.contains(&("sasl.password".into(), "pa,ss,w=rd,x=y".into())),
            "{properties:?}"
        );
        assert_eq!(properties.len(), 5, "{properties:?}");
        let shown = format!("{args:?}");
        for secret in ["pa", "ss,", "rd", "hunter2", "s3cr3t"] {
            assert!(!shown.contains(&format!("={secret}")), "{secret}: {shown}");
        }
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("sasl.mechanism=SCRAM-SHA-512"), "{shown}");

        // A malformed entry is named, never shown.
        for entries in [vec!["=hunter2"], vec!["hunter2"], vec!["", "hunter2"]] {
            args.kafka_properties = entries.iter().map(|e| e.to_string()).collect();
            let err = args.validate().unwrap_err();
            assert!(err.contains("entry 1") && !err.contains("hunter2"), "{err}");
        }
        args.kafka_properties = vec!["linger.ms=5".into(), "hunter2=".into(), "x".into()];
        assert_eq!(args.properties().len(), 2, "a value may be empty");
    }

    #[test]
    fn a_properties_file_is_read_and_its_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kafka.properties");
        std::fs::write(
            &path,
            "# SASL\nsecurity.protocol=SASL_SSL\n\nsasl.password=a,b=c\n",
        )
        .unwrap();
        let mut args = KafkaArgs::local("kafka:9092");
        args.kafka_properties_file = Some(path.clone());
        assert!(args.validate().is_ok());
        assert_eq!(
            args.producer_config("p").get("sasl.password"),
            Some("a,b=c"),
            "the file's values keep their commas"
        );
        std::fs::write(&path, "security.protocol=SASL_SSL\nhunter2\n").unwrap();
        let err = args.validate().unwrap_err();
        assert!(err.contains("line 2") && !err.contains("hunter2"), "{err}");
        args.kafka_properties_file = Some(dir.path().join("missing"));
        assert!(
            args.validate()
                .unwrap_err()
                .contains("KAFKA_PROPERTIES_FILE")
        );
    }

    #[test]
    fn secret_keys() {
        for key in [
            "sasl.password",
            "sasl.username",
            "sasl.jaas.config",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "ssl.key.password",
            "ssl.key.pem",
            "ssl.keystore.password",
            "some.key.passphrase",
            "SASL.PASSWORD",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in [
            "security.protocol",
            "sasl.mechanism",
            "sasl.mechanisms",
            "linger.ms",
            "ssl.ca.location",
        ] {
            assert!(!is_secret(key), "{key}");
        }
    }

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
