//! topic-tail: the fleet's console consumer. It prints each message of a topic on its own line,
//! as `kafka-console-consumer` or `kcat -C` would, for machines where neither can read the
//! broker (Debian's kcat is too old for tansu). It reads in a throwaway consumer group and
//! commits nothing, so it never moves the services' offsets.

use clap::Parser;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use service_runtime::config::Validate;
use service_runtime::kafka::KafkaArgs;
use service_runtime::telemetry::LogArgs;
use std::io::Write;
use std::time::Duration;

/// Prints the messages of a Kafka topic, one per line.
#[derive(Debug, Parser)]
#[command(name = "topic-tail", version)]
struct Config {
    /// Topic to read (metrics, model-votes, scaling-decisions).
    #[arg(long, short, env = "TOPIC", default_value = "metrics")]
    topic: String,
    /// Start at the oldest message instead of the newest.
    #[arg(long, env = "FROM_BEGINNING")]
    from_beginning: bool,
    /// Stop after this many messages.
    #[arg(long, env = "MAX_MESSAGES")]
    max_messages: Option<u64>,
    /// Stop when no message arrived for this many seconds.
    #[arg(long, env = "IDLE_TIMEOUT_SEC")]
    idle_timeout_sec: Option<u64>,
    /// Print `key<TAB>` before each message.
    #[arg(long, env = "PRINT_KEY")]
    print_key: bool,
    #[command(flatten)]
    kafka: KafkaArgs,
    #[command(flatten)]
    log: LogArgs,
}

impl Validate for Config {
    fn validate(&self) -> Result<(), String> {
        self.kafka.validate()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = service_runtime::config::parse_or_exit();
    service_runtime::telemetry::init(&config.log);
    let group = format!("topic-tail-{}", std::process::id());
    let mut client = config.kafka.consumer_config("topic-tail", &group);
    client.set("enable.auto.commit", "false").set(
        "auto.offset.reset",
        if config.from_beginning {
            "earliest"
        } else {
            "latest"
        },
    );
    let consumer: StreamConsumer = client.create()?;
    consumer.subscribe(&[&config.topic])?;
    let shutdown = service_runtime::shutdown::on_signal();
    let idle = config.idle_timeout_sec.map(Duration::from_secs);
    let mut printed = 0u64;
    let mut out = std::io::stdout().lock();
    while config.max_messages.is_none_or(|max| printed < max) {
        let next = async {
            match idle {
                Some(idle) => tokio::time::timeout(idle, consumer.recv()).await.ok(),
                None => Some(consumer.recv().await),
            }
        };
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = next => received,
        };
        let Some(received) = received else { break };
        let message = match received {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read from Kafka; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if config.print_key {
            let key = message
                .key()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            write!(out, "{key}\t")?;
        }
        out.write_all(message.payload().unwrap_or_default())?;
        writeln!(out)?;
        out.flush()?;
        printed += 1;
    }
    Ok(())
}
