//! Settings of the metrics aggregator. The names users know from the seed (`MODE`,
//! `POLL_INTERVAL_SEC`, `PROMETHEUS_URL`) are kept as they are.

use clap::{Parser, ValueEnum};
use service_runtime::config::{Secs, Validate, http_url, positive_secs};
use service_runtime::kafka::KafkaArgs;
use service_runtime::telemetry::LogArgs;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where feature vectors go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Publish to the Kafka topic `metrics` for the models to vote on.
    Production,
    /// Append rows to the development CSV for retraining; nothing is published.
    Development,
}

/// Polls Prometheus every POLL_INTERVAL_SEC and builds one feature vector per service (request
/// rate, latency percentiles, error ratio, CPU and memory per replica, replicas, trends).
/// Production mode publishes them to Kafka; development mode appends them to a CSV.
#[derive(Debug, Clone, Parser)]
#[command(name = "metrics-aggregator", version)]
pub struct AggregatorConfig {
    /// production: publish to Kafka; development: append to the CSV.
    #[arg(long, env = "MODE", value_enum, default_value = "production")]
    pub mode: Mode,

    /// Seconds between polls; polls are aligned to multiples of it.
    #[arg(long, env = "POLL_INTERVAL_SEC", default_value = "30", value_parser = positive_secs)]
    pub poll_interval_sec: Secs,

    /// Base URL of the Prometheus HTTP API.
    #[arg(long, env = "PROMETHEUS_URL", default_value = "http://prometheus:9090", value_parser = http_url)]
    pub prometheus_url: String,

    /// Seconds of data each rate and percentile is computed over (default: the poll interval).
    /// Give it at least two scrape intervals.
    #[arg(long, env = "RATE_WINDOW_SEC", value_parser = positive_secs)]
    pub rate_window_sec: Option<Secs>,

    /// Windows a trend spans, the current one included.
    #[arg(long, env = "TREND_WINDOWS", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(2..=60))]
    pub trend_windows: u64,

    /// Services to follow, by Prometheus job name, comma-separated. Empty: every job that
    /// exports request_duration_seconds.
    #[arg(long, env = "SERVICES", value_delimiter = ',')]
    pub services: Vec<String>,

    /// Names of the request-duration histograms (without _bucket/_count), comma-separated.
    #[arg(
        long,
        env = "LATENCY_HISTOGRAMS",
        value_delimiter = ',',
        default_value = "request_duration_seconds,http_request_duration_seconds"
    )]
    pub latency_histograms: Vec<String>,

    /// What "the same time a day ago" is, in seconds: the history features read the load then
    /// from Prometheus (`offset`). A trace replayed six times faster than it happened sets
    /// 14400.
    #[arg(long, env = "DAILY_PERIOD_SEC", default_value = "86400", value_parser = positive_secs)]
    pub daily_period_sec: Secs,

    /// What "a week ago" is, in seconds.
    #[arg(long, env = "WEEKLY_PERIOD_SEC", default_value = "604800", value_parser = positive_secs)]
    pub weekly_period_sec: Secs,

    /// Requests per second one replica of a service is assumed to carry until its own windows
    /// have shown more: the cautious start of the capacity estimate.
    #[arg(long, env = "CAPACITY_PRIOR_RPS", default_value_t = features::DEFAULT_PRIOR_RPS)]
    pub capacity_prior_rps: f64,

    /// Look for anomalies in each service's windows (latency or errors its load does not
    /// explain, lost traffic, lost scrapes) and publish them on ANOMALIES_TOPIC; flagged windows
    /// teach the capacity estimate nothing.
    #[arg(long, env = "ANOMALY_DETECTION", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub anomaly_detection: bool,

    /// Normal windows the anomaly detector needs at a load (a band of utilization) before it
    /// judges latency there, and before it judges errors.
    #[arg(long, env = "ANOMALY_MIN_WINDOWS", default_value_t = features::anomaly::MIN_WINDOWS)]
    pub anomaly_min_windows: usize,

    /// Where the capacity estimates are kept, so a restart does not forget them.
    #[arg(
        long,
        env = "CAPACITY_STATE_PATH",
        default_value = "output/capacity.json"
    )]
    pub capacity_state_path: PathBuf,

    /// SLA: a window whose p95 latency is above this many seconds violates it (what the
    /// capacity estimate learns from)...
    #[arg(long, env = "SLA_P95_SECONDS", default_value_t = contract::Sla::DEFAULT.p95_seconds)]
    pub sla_p95_seconds: f64,

    /// ...or whose error ratio is above this.
    #[arg(long, env = "SLA_ERROR_RATIO", default_value_t = contract::Sla::DEFAULT.error_ratio)]
    pub sla_error_ratio: f64,

    /// Topic the feature vectors are published to (production mode).
    #[arg(long, env = "METRICS_TOPIC", default_value = contract::METRICS_TOPIC)]
    pub metrics_topic: String,

    /// Topic the anomalies found in the windows are published to (production mode), keyed by
    /// service.
    #[arg(long, env = "ANOMALIES_TOPIC", default_value = contract::ANOMALIES_TOPIC)]
    pub anomalies_topic: String,

    /// CSV the rows are appended to (development mode).
    #[arg(
        long,
        env = "DEV_CSV_PATH",
        default_value = "output/sockshop_metrics.csv"
    )]
    pub dev_csv_path: PathBuf,

    /// Address of the /metrics and /healthz endpoints.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:9101")]
    pub listen_addr: SocketAddr,

    /// Consumer groups to scale, as service=group@topic, comma-separated (the service is the
    /// compose service that runs the consumers). Read from the broker every poll: lag, lag in
    /// seconds, production and consumption rates, partitions and members on /metrics
    /// (`aggregator_consumer_*{service}`), and in production mode a feature vector of the
    /// group's kind on the metrics topic every window, which the models vote on.
    #[arg(long, env = "CONSUMER_GROUPS", default_value = "",
          value_parser = crate::groups::GroupTargets::parse)]
    pub consumer_groups: crate::groups::GroupTargets,

    /// Consumer groups only measured (on /metrics and the dashboard, no vectors), as
    /// service=group@topic, comma-separated.
    #[arg(long, env = "WATCH_CONSUMER_GROUPS", default_value = "",
          value_parser = crate::groups::GroupTargets::parse_watched)]
    pub watch_consumer_groups: crate::groups::GroupTargets,

    /// The consumer groups' KPI: the lag, in seconds of production, they must stay under. The
    /// voters size a group so that it keeps up with the forecast production and reads a lag
    /// beyond half of this within half of it.
    #[arg(long, env = "CONSUMER_LAG_TARGET_SEC", default_value_t = 60.0)]
    pub consumer_lag_target_sec: f64,

    /// Messages a second one consumer is assumed to read until its group has been behind and
    /// shown what it reads: the cautious start of a group's capacity estimate.
    #[arg(long, env = "CONSUMER_CAPACITY_PRIOR", default_value_t = 10.0)]
    pub consumer_capacity_prior: f64,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

impl Validate for AggregatorConfig {
    fn validate(&self) -> Result<(), String> {
        let mut labels = std::collections::BTreeSet::new();
        if let Some(twice) = self
            .consumer_groups
            .0
            .iter()
            .chain(&self.watch_consumer_groups.0)
            .find(|g| !labels.insert(g.service.as_str()))
        {
            return Err(format!(
                "CONSUMER_GROUPS and WATCH_CONSUMER_GROUPS: the service {:?} is named twice; \
                 each group needs a service label of its own",
                twice.service
            ));
        }
        for (name, value) in [
            (
                "CONSUMER_LAG_TARGET_SEC (--consumer-lag-target-sec)",
                self.consumer_lag_target_sec,
            ),
            (
                "CONSUMER_CAPACITY_PRIOR (--consumer-capacity-prior)",
                self.consumer_capacity_prior,
            ),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= 86_400.0) {
                return Err(format!("{name}: {value} is not in (0, 86400]"));
            }
        }
        if let Some(service) = self.services.iter().find(|s| s.contains('"')) {
            return Err(format!(
                "SERVICES (--services): {service:?} is not a job name"
            ));
        }
        if let Some(bad) = self.latency_histograms.iter().find(|h| {
            h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        }) {
            return Err(format!(
                "LATENCY_HISTOGRAMS (--latency-histograms): {bad:?} is not a metric name"
            ));
        }
        let rise = self.poll_interval_sec.get() * features::SEASON_RISE_WINDOWS;
        for (name, period) in [
            (
                "DAILY_PERIOD_SEC (--daily-period-sec)",
                self.daily_period_sec.get(),
            ),
            (
                "WEEKLY_PERIOD_SEC (--weekly-period-sec)",
                self.weekly_period_sec.get(),
            ),
        ] {
            if period <= rise {
                return Err(format!(
                    "{name}: {period} s is not longer than the {rise} s after it that the \
                     history features read ({} windows of POLL_INTERVAL_SEC)",
                    features::SEASON_RISE_WINDOWS
                ));
            }
        }
        if !(1..=features::anomaly::HISTORY).contains(&self.anomaly_min_windows) {
            return Err(format!(
                "ANOMALY_MIN_WINDOWS is {}; it must be 1 to {} (the windows the detector remembers per load)",
                self.anomaly_min_windows,
                features::anomaly::HISTORY
            ));
        }
        if !(self.capacity_prior_rps.is_finite() && self.capacity_prior_rps > 0.0) {
            return Err(format!(
                "CAPACITY_PRIOR_RPS (--capacity-prior-rps): {} is not a positive rate",
                self.capacity_prior_rps
            ));
        }
        self.sla().check()?;
        if self.anomalies_topic.trim().is_empty() {
            return Err(
                "ANOMALIES_TOPIC is empty; name the topic anomalies go to (default anomalies)"
                    .into(),
            );
        }
        if self.metrics_topic.trim().is_empty() {
            return Err("METRICS_TOPIC (--metrics-topic) is empty".into());
        }
        if self.mode == Mode::Production {
            self.kafka.validate()?;
        }
        Ok(())
    }
}

impl AggregatorConfig {
    /// Where the consumer groups' learned capacities are kept: beside CAPACITY_STATE_PATH,
    /// `<its name>-consumers.json`.
    pub fn consumer_capacity_state_path(&self) -> PathBuf {
        self.beside_capacity_state("consumers")
    }

    /// Where what the anomaly detector learned of each service's normal is kept: beside
    /// CAPACITY_STATE_PATH (`capacity-normal.json` by default).
    pub fn anomaly_state_path(&self) -> PathBuf {
        self.beside_capacity_state("normal")
    }

    fn beside_capacity_state(&self, what: &str) -> PathBuf {
        let stem = self
            .capacity_state_path
            .file_stem()
            .map_or_else(|| "capacity".into(), |s| s.to_string_lossy().into_owned());
        self.capacity_state_path
            .with_file_name(format!("{stem}-{what}.json"))
    }

    /// Every consumer group read: those to scale, then those only watched.
    pub fn group_targets(&self) -> Vec<crate::groups::GroupTarget> {
        let mut targets = self.consumer_groups.0.clone();
        targets.extend(self.watch_consumer_groups.0.iter().cloned());
        targets
    }

    /// The rate window in force.
    pub fn rate_window_sec(&self) -> u64 {
        self.rate_window_sec.unwrap_or(self.poll_interval_sec).get()
    }

    /// The SLA the capacity estimates learn against.
    pub fn sla(&self) -> contract::Sla {
        contract::Sla {
            p95_seconds: self.sla_p95_seconds,
            error_ratio: self.sla_error_ratio,
        }
    }

    /// The histogram names, without empty entries.
    pub fn histograms(&self) -> Vec<String> {
        self.latency_histograms
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect()
    }

    /// Service names that were configured, trimmed; empty means discovery.
    pub fn fixed_services(&self) -> Vec<String> {
        self.services
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn empty_group_settings_name_no_group() {
        // docker-compose.yml passes `CONSUMER_GROUPS=` when .env leaves it empty.
        let config = AggregatorConfig::try_parse_from([
            "metrics-aggregator",
            "--consumer-groups",
            "",
            "--watch-consumer-groups",
            " , ",
        ])
        .expect("empty lists parse");
        assert!(config.group_targets().is_empty());
        assert!(config.validate().is_ok(), "{:?}", config.validate());
        let config = AggregatorConfig::try_parse_from([
            "metrics-aggregator",
            "--consumer-groups",
            "a=g@t,",
            "--watch-consumer-groups",
            "b=g@t",
        ])
        .expect("lists parse");
        let targets = config.group_targets();
        assert_eq!(
            targets
                .iter()
                .map(|t| (t.service.as_str(), t.scaled))
                .collect::<Vec<_>>(),
            [("a", true), ("b", false)]
        );
    }
}
