//! The benchmark's settings: how long and how hard each phase runs, and the few service settings
//! the benchmark chooses. Every option has an environment variable (`BENCH_*`, and
//! `KAFKA_PROPERTIES` as the services name it).

use clap::{ArgAction, Parser};
use service_runtime::config::{Secs, Validate, positive_secs};
use service_runtime::kafka::KafkaArgs;
use service_runtime::telemetry::LogArgs;
use std::path::PathBuf;

/// Measures the Kafka-compatible broker (tansu) on its own, with the services' own client
/// configuration (round-trip latency, produce-to-consume rate), then the real pipeline on the same
/// broker: three ml-inference services and the authoritative scaler as child processes (decision
/// latency, throughput, memory). Prints markdown tables and the goal checks on stdout, progress
/// on stderr.
#[derive(Debug, Clone, Parser)]
#[command(name = "pipeline-bench", version)]
pub struct BenchConfig {
    /// Broker round trip: messages per second, produced one at a time (default: the
    /// decision-latency phase's BENCH_LATENCY_RATE; the broker's latency depends on the pace, so
    /// the goal compares the two at the same one).
    #[arg(long, env = "BENCH_ROUND_TRIP_RATE",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub round_trip_rate: Option<u32>,
    /// Broker round trip: seconds of paced messages.
    #[arg(long, env = "BENCH_ROUND_TRIP_SEC", default_value = "20", value_parser = positive_secs)]
    pub round_trip_sec: Secs,
    /// Broker rate: messages produced as fast as the producer takes them, then consumed.
    #[arg(long, env = "BENCH_RATE_MESSAGES", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_messages: u64,
    /// Sends outstanding at once in the broker-rate and pipeline-throughput phases.
    #[arg(long, env = "BENCH_IN_FLIGHT", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub in_flight: u64,
    /// Decision latency: feature vectors per second.
    #[arg(long, env = "BENCH_LATENCY_RATE", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub latency_rate: u32,
    /// Decision latency: seconds of paced vectors.
    #[arg(long, env = "BENCH_LATENCY_SEC", default_value = "30", value_parser = positive_secs)]
    pub latency_sec: Secs,
    /// Decision latency: services the vectors take turns on.
    #[arg(long, env = "BENCH_LATENCY_SERVICES", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub latency_services: u64,
    /// Throughput (and broker rate): services the vectors are spread over.
    #[arg(long, env = "BENCH_THROUGHPUT_SERVICES", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub throughput_services: u64,
    /// Throughput: windows per service, so vectors = services x windows.
    #[arg(long, env = "BENCH_THROUGHPUT_WINDOWS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub throughput_windows: u64,
    /// Floods after the throughput phase: this many bad or made-up messages on each of
    /// `metrics` and the votes topic (0: none); memory is read again after them.
    #[arg(long, env = "BENCH_FLOOD_MESSAGES", default_value_t = 100_000)]
    pub flood_messages: u64,
    /// Throughput: how long to wait for every decision, from the first vector produced.
    #[arg(long, env = "BENCH_THROUGHPUT_TIMEOUT_SEC", default_value = "180", value_parser = positive_secs)]
    pub throughput_timeout_sec: Secs,
    /// The trained models: `<dir>/<model>/` for each service and `<dir>/evaluation.json`.
    #[arg(long, env = "BENCH_MODELS", default_value = "models")]
    pub models: PathBuf,
    /// The scaler's DECISION_WINDOW_SEC: how long a window waits for missing votes.
    #[arg(long, env = "BENCH_DECISION_WINDOW_SEC", default_value = "5", value_parser = positive_secs)]
    pub decision_window_sec: Secs,
    /// The scaler's MAX_VOTE_AGE_SEC. Larger than the service's default (120) so that the
    /// throughput phase's backlog is decided rather than ignored as stale.
    #[arg(long, env = "BENCH_MAX_VOTE_AGE_SEC", default_value = "3600", value_parser = positive_secs)]
    pub max_vote_age_sec: Secs,
    /// Extra librdkafka properties as KEY=VALUE, repeatable (comma-separated in the environment),
    /// given to the harness's clients and to the services alike.
    #[arg(
        long = "kafka-property",
        env = "KAFKA_PROPERTIES",
        value_delimiter = ','
    )]
    pub kafka_properties: Vec<String>,
    /// Keep the working directory (CSV outputs, the services' stdout and logs) and print its path.
    #[arg(long, env = "BENCH_KEEP_DIR", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub keep_dir: bool,
    #[command(flatten)]
    pub log: LogArgs,
}

impl Validate for BenchConfig {
    fn validate(&self) -> Result<(), String> {
        self.kafka_args("127.0.0.1:9092").validate()
    }
}

impl BenchConfig {
    /// The client settings of the harness: the services' defaults on `bootstrap`, plus the
    /// extra properties the services get too.
    pub fn kafka_args(&self, bootstrap: &str) -> KafkaArgs {
        let mut args = KafkaArgs::local(bootstrap);
        args.kafka_properties = self.kafka_properties.clone();
        args
    }

    /// The broker round trip's pace, messages per second.
    pub fn round_trip_rate(&self) -> u32 {
        self.round_trip_rate.unwrap_or(self.latency_rate)
    }

    /// Messages of the broker round trip.
    pub fn round_trips(&self) -> u64 {
        u64::from(self.round_trip_rate()) * self.round_trip_sec.get()
    }

    /// Vectors of the decision-latency phase.
    pub fn latency_vectors(&self) -> u64 {
        u64::from(self.latency_rate) * self.latency_sec.get()
    }

    /// Vectors of the throughput phase.
    pub fn throughput_vectors(&self) -> u64 {
        self.throughput_services * self.throughput_windows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_bad_properties_are_refused() {
        let config = BenchConfig::try_parse_from(["pipeline-bench"]).unwrap();
        assert!(config.validate().is_ok());
        assert_eq!(config.round_trip_rate(), config.latency_rate);
        assert_eq!(config.round_trips(), 400);
        assert_eq!(config.throughput_vectors(), 10_000);
        let config =
            BenchConfig::try_parse_from(["pipeline-bench", "--kafka-property", "novalue"]).unwrap();
        assert!(config.validate().unwrap_err().contains("KAFKA_PROPERTIES"));
    }
}
