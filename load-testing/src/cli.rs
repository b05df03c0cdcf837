//! The command line of `load-testing`: `run` a pattern, or run it as a recorded `experiment`.

use crate::engine::{Arrivals, RunSpec};
use crate::pattern::Pattern;
use crate::scenario::Scenario;
use crate::trace::{ReplayOptions, read_trace, replay};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use service_runtime::config::Validate;
use service_runtime::kafka::KafkaArgs;
use service_runtime::telemetry::LogArgs;
use std::path::PathBuf;
use std::time::Duration;

/// Open-loop load generator: requests at a target rate whatever the latency, shaped by a
/// pattern, against Sock Shop's user journey or a single URL; or messages produced to a Kafka
/// topic at a target rate (--kafka-topic).
#[derive(Debug, Parser)]
#[command(name = "load-testing", version, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

impl Validate for Cli {
    fn validate(&self) -> Result<(), String> {
        let load = match &self.command {
            Command::Run(load) => load,
            Command::Experiment(experiment) => &experiment.load,
        };
        load.validate()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load pattern and print a summary.
    Run(LoadArgs),
    /// Run a pattern as a recorded experiment (output/experiments.csv) while the aggregator
    /// collects in development mode, as the seed's run_experiment.py did.
    Experiment(ExperimentArgs),
}

/// The load shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PatternKind {
    Constant,
    Ramp,
    Step,
    Spike,
    Daily,
    Trace,
}

/// The kinds of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioKind {
    /// GET the target URL's path.
    Url,
    /// Sock Shop's user journey (home, login, catalogue, item, cart, basket, order).
    Sockshop,
}

/// A duration: `90s`, `5m`, `1h 30m`; a bare number is minutes, as in the seed's
/// `run_experiment.py --duration 30`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(minutes) = s.parse::<f64>() {
        if minutes.is_finite() && minutes >= 0.0 {
            return Ok(Duration::from_secs_f64(minutes * 60.0));
        }
        return Err(format!("{s} is not a duration"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
}

/// What to send, where, and how fast.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Load shape.
    #[arg(
        long,
        env = "LOAD_TESTING_PATTERN",
        value_enum,
        default_value = "constant"
    )]
    pub pattern: PatternKind,
    /// Length of the run (a bare number is minutes).
    #[arg(long, env = "LOAD_TESTING_DURATION", default_value = "5m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Target URL, repeatable; its host is resolved to every replica's address.
    #[arg(long = "target", env = "LOAD_TESTING_TARGETS", value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Prometheus file_sd JSON listing replicas (host:port), repeatable; re-read as it changes.
    #[arg(
        long = "targets-file",
        env = "LOAD_TESTING_TARGETS_FILES",
        value_delimiter = ','
    )]
    pub targets_files: Vec<PathBuf>,
    /// Kind of traffic.
    #[arg(long, env = "LOAD_TESTING_SCENARIO", value_enum, default_value = "url")]
    pub scenario: ScenarioKind,
    /// Path for the url scenario when targets are given by file (default: the target URL's path).
    #[arg(long, env = "LOAD_TESTING_PATH")]
    pub path: Option<String>,

    /// constant: requests per second.
    #[arg(long, env = "LOAD_TESTING_RPS", default_value_t = 50.0)]
    pub rps: f64,
    /// ramp: rate at the start.
    #[arg(long, env = "LOAD_TESTING_FROM_RPS", default_value_t = 10.0)]
    pub from_rps: f64,
    /// ramp: rate at the end.
    #[arg(long, env = "LOAD_TESTING_TO_RPS", default_value_t = 200.0)]
    pub to_rps: f64,
    /// step: the rates, in turn.
    #[arg(
        long,
        env = "LOAD_TESTING_LEVELS",
        value_delimiter = ',',
        default_value = "20,80,160,80"
    )]
    pub levels: Vec<f64>,
    /// step: time at each level.
    #[arg(long, env = "LOAD_TESTING_STEP_EVERY", default_value = "1m", value_parser = parse_duration)]
    pub step_every: Duration,
    /// spike: the rate outside the spike.
    #[arg(long, env = "LOAD_TESTING_BASE_RPS", default_value_t = 30.0)]
    pub base_rps: f64,
    /// spike: the rate during the spike; trace: the trace's busiest minute becomes this rate.
    #[arg(long, env = "LOAD_TESTING_PEAK_RPS")]
    pub peak_rps: Option<f64>,
    /// spike: when it starts.
    #[arg(long, env = "LOAD_TESTING_SPIKE_AT", default_value = "1m", value_parser = parse_duration)]
    pub spike_at: Duration,
    /// spike: how long it lasts.
    #[arg(long, env = "LOAD_TESTING_SPIKE_WIDTH", default_value = "30s", value_parser = parse_duration)]
    pub spike_width: Duration,
    /// daily: the night rate.
    #[arg(long, env = "LOAD_TESTING_MIN_RPS", default_value_t = 10.0)]
    pub min_rps: f64,
    /// daily: the peak rate.
    #[arg(long, env = "LOAD_TESTING_MAX_RPS", default_value_t = 150.0)]
    pub max_rps: f64,
    /// daily: length of one cycle (a compressed day).
    #[arg(long, env = "LOAD_TESTING_PERIOD", default_value = "10m", value_parser = parse_duration)]
    pub period: Duration,
    /// trace: a CSV with t_seconds,requests (see ../shared/traces).
    #[arg(long, env = "LOAD_TESTING_TRACE")]
    pub trace: Option<PathBuf>,
    /// trace: time compression; 60 replays one trace minute per second.
    #[arg(long, env = "LOAD_TESTING_COMPRESSION", default_value_t = 60.0)]
    pub compression: f64,
    /// trace: where in the trace to start (trace time).
    #[arg(long, env = "LOAD_TESTING_TRACE_START", default_value = "0s", value_parser = parse_duration)]
    pub trace_start: Duration,

    /// Arrival process.
    #[arg(
        long,
        env = "LOAD_TESTING_ARRIVALS",
        value_enum,
        default_value = "poisson"
    )]
    pub arrivals: Arrivals,
    /// Requests in flight beyond which arrivals are dropped (and counted).
    #[arg(long, env = "LOAD_TESTING_MAX_IN_FLIGHT", default_value_t = 20_000)]
    pub max_in_flight: usize,
    /// Per-request timeout.
    #[arg(long, env = "LOAD_TESTING_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Virtual users (cookie jars) for the sockshop journey.
    #[arg(long, env = "LOAD_TESTING_USERS", default_value_t = 50)]
    pub users: usize,
    /// Print the summary as JSON.
    #[arg(long, env = "LOAD_TESTING_JSON")]
    pub json: bool,

    /// Produce each arrival as a message to this Kafka topic instead of sending a request: the
    /// rates are messages per second, --timeout bounds each message's delivery, and no
    /// --target is taken. The topic is created if missing, with KAFKA_TOPIC_PARTITIONS
    /// partitions, unless KAFKA_CREATE_TOPICS=false (demo-consumer creates its topic, with 8).
    #[arg(long, env = "LOAD_TESTING_KAFKA_TOPIC")]
    pub kafka_topic: Option<String>,
    /// The broker to produce to, with --kafka-topic (the fleet's settings and variables).
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// An experiment: a run plus its record.
#[derive(Debug, Clone, Args)]
pub struct ExperimentArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// A name for the run (default: the pattern); the run id adds the start time.
    #[arg(long, env = "EXPERIMENT_NAME")]
    pub name: Option<String>,
    /// The service (Prometheus job) under load, so the trainer can tell its rows from others'
    /// (default: the `job` label of the targets file, else the target URL's host).
    #[arg(long, env = "EXPERIMENT_SERVICE")]
    pub service: Option<String>,
    /// Where experiments.csv is written.
    #[arg(long, env = "OUTPUT_DIR", default_value = "output")]
    pub output_dir: PathBuf,
    /// The development CSV the aggregator appends to, to report what was collected.
    #[arg(
        long,
        env = "DEV_CSV_PATH",
        default_value = "output/sockshop_metrics.csv"
    )]
    pub dev_csv_path: PathBuf,
    /// Replica count for this run, set by --scale-command before the load starts.
    #[arg(long, env = "EXPERIMENT_REPLICAS")]
    pub replicas: Option<u32>,
    /// Shell command that sets the replica count; `{replicas}` is replaced, e.g.
    /// `scripts/local-stack.sh scale demo {replicas}`.
    #[arg(long, env = "EXPERIMENT_SCALE_COMMAND")]
    pub scale_command: Option<String>,
    /// Wait after scaling before the load starts.
    #[arg(long, env = "EXPERIMENT_SETTLE", default_value = "10s", value_parser = parse_duration)]
    pub settle: Duration,
}

fn require_rate(name: &str, value: f64) -> anyhow::Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        bail!("--{name} must be a rate of 0 or more requests per second, not {value}")
    }
}

impl LoadArgs {
    /// Checks that need more than one option: a Kafka run takes no HTTP target, and its broker
    /// settings must be usable.
    pub fn validate(&self) -> Result<(), String> {
        let Some(topic) = &self.kafka_topic else {
            return Ok(());
        };
        if topic.trim().is_empty() {
            return Err("LOAD_TESTING_KAFKA_TOPIC (--kafka-topic) is empty".into());
        }
        if !self.targets.is_empty() || !self.targets_files.is_empty() {
            return Err(
                "--kafka-topic produces messages; --target and --targets-file send requests: give one or the other"
                    .into(),
            );
        }
        self.kafka.validate()
    }

    /// The kind of traffic, as runs are recorded: `kafka`, or the HTTP scenario's name.
    pub fn traffic_name(&self) -> &'static str {
        if self.kafka_topic.is_some() {
            "kafka"
        } else {
            self.scenario().name()
        }
    }

    /// The pattern these arguments describe.
    pub fn pattern(&self) -> anyhow::Result<Pattern> {
        Ok(match self.pattern {
            PatternKind::Constant => Pattern::Constant {
                rps: require_rate("rps", self.rps)?,
            },
            PatternKind::Ramp => Pattern::Ramp {
                from_rps: require_rate("from-rps", self.from_rps)?,
                to_rps: require_rate("to-rps", self.to_rps)?,
            },
            PatternKind::Step => {
                if self.levels.is_empty() || self.step_every.is_zero() {
                    bail!("--levels needs at least one rate and --step-every a positive duration");
                }
                for level in &self.levels {
                    require_rate("levels", *level)?;
                }
                Pattern::Step {
                    levels: self.levels.clone(),
                    every: self.step_every,
                }
            }
            PatternKind::Spike => Pattern::Spike {
                base_rps: require_rate("base-rps", self.base_rps)?,
                peak_rps: require_rate("peak-rps", self.peak_rps.unwrap_or(self.base_rps * 5.0))?,
                at: self.spike_at,
                width: self.spike_width,
            },
            PatternKind::Daily => Pattern::Daily {
                min_rps: require_rate("min-rps", self.min_rps)?,
                max_rps: require_rate("max-rps", self.max_rps)?,
                period: self.period,
            },
            PatternKind::Trace => {
                let path = self
                    .trace
                    .as_ref()
                    .context("--pattern trace needs --trace FILE")?;
                if let Some(peak) = self.peak_rps {
                    require_rate("peak-rps", peak)?;
                }
                let rows = read_trace(path)?;
                replay(
                    &rows,
                    ReplayOptions {
                        compression: self.compression,
                        peak_rps: self.peak_rps,
                        start: self.trace_start,
                        length: Some(self.duration.mul_f64(self.compression)),
                    },
                )?
            }
        })
    }

    /// The scenario these arguments describe.
    pub fn scenario(&self) -> Scenario {
        match self.scenario {
            ScenarioKind::Sockshop => Scenario::SockShop,
            ScenarioKind::Url => {
                let from_url = self.targets.first().and_then(|t| {
                    let url = reqwest::Url::parse(t).ok()?;
                    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
                    Some(format!("{}{query}", url.path()))
                });
                Scenario::Url {
                    path: self.path.clone().or(from_url).unwrap_or_else(|| "/".into()),
                }
            }
        }
    }

    /// The run these arguments describe.
    pub fn spec(&self) -> anyhow::Result<RunSpec> {
        if self.duration.is_zero() {
            bail!("--duration must be longer than 0");
        }
        Ok(RunSpec {
            pattern: self.pattern()?,
            duration: self.duration,
            arrivals: self.arrivals,
            max_in_flight: self.max_in_flight.max(1),
            timeout: self.timeout,
            users: self.users.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> LoadArgs {
        let mut argv = vec!["load-testing", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(load) => load,
            Command::Experiment(_) => unreachable!(),
        }
    }

    #[test]
    fn durations_accept_seed_minutes_and_humantime() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_later_option_overrides_an_earlier_one() {
        assert_eq!(
            load(&["--duration", "8m", "--duration", "10m"]).duration,
            Duration::from_secs(600)
        );
    }

    #[test]
    fn patterns_from_arguments() {
        let ramp = load(&["--pattern", "ramp", "--from-rps", "5", "--to-rps", "50"]);
        assert_eq!(
            ramp.pattern().unwrap(),
            Pattern::Ramp {
                from_rps: 5.0,
                to_rps: 50.0
            }
        );
        let bad = load(&["--pattern", "constant", "--rps=-3"]);
        assert!(bad.pattern().unwrap_err().to_string().contains("--rps"));
        let trace = load(&["--pattern", "trace"]);
        assert!(trace.pattern().unwrap_err().to_string().contains("--trace"));
        let url = load(&["--target", "http://demo:8080/catalogue?size=5"]);
        assert_eq!(url.kafka_topic, None);
        assert_eq!(url.traffic_name(), "url");
        assert_eq!(
            url.scenario(),
            Scenario::Url {
                path: "/catalogue?size=5".into()
            }
        );
    }

    #[test]
    fn kafka_runs_take_a_topic_and_no_target() {
        let kafka = load(&[
            "--kafka-topic",
            "demo-work",
            "--kafka-bootstrap-servers",
            "kafka:9092",
            "--pattern",
            "spike",
        ]);
        assert_eq!(kafka.kafka_topic.as_deref(), Some("demo-work"));
        assert_eq!(kafka.kafka.kafka_bootstrap_servers, "kafka:9092");
        assert_eq!(kafka.traffic_name(), "kafka");
        assert!(kafka.validate().is_ok());
        let both = load(&[
            "--kafka-topic",
            "demo-work",
            "--target",
            "http://demo:8080/",
        ]);
        assert!(both.validate().unwrap_err().contains("--target"));
        let bad = load(&["--kafka-topic", "t", "--kafka-bootstrap-servers", "kafka"]);
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("KAFKA_BOOTSTRAP_SERVERS")
        );
        assert!(load(&["--kafka-topic", " "]).validate().is_err());
    }
}
