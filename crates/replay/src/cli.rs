//! The `replay` command line.

use crate::catalog::PolicySpec;
use crate::simulation::Settings;
use chrono::Duration;
use clap::{Args, Parser, Subcommand};
use decision::Guardrails;
use models::Sla;
use service_runtime::config::Validate;
use std::path::PathBuf;

/// Replays real request-rate traces against a simulated service calibrated on the demo target,
/// under the fleet's own decision core and under baselines (static, the seed's threshold scaler,
/// Kubernetes HPA, an oracle), and measures SLA-violation minutes, replica-minutes, scaling
/// actions and p95 latency.
#[derive(Debug, Clone, Parser)]
#[command(name = "replay", version)]
pub struct ReplayConfig {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Replays one trace under the given policies and prints their figures.
    Run(RunArgs),
    /// Every policy on every trace: writes docs/EVALUATION.md, its plots and results.json.
    Evaluate(EvaluateArgs),
    /// Compares the simulated service with the demo target's measured windows and prints it.
    Calibrate(SimArgs),
    /// Replays one trace under one policy and writes every window as the aggregator's
    /// development CSV, with an experiment log of its runs (training data for `trainer`).
    Export(ExportArgs),
    /// Reads a service's request rate from your Prometheus over a range, writes it as a trace
    /// and replays it: what the ensemble and HPA would have run on your own traffic.
    History(HistoryArgs),
    /// Replays traces as a Kafka topic's production rate against a simulated consumer group,
    /// under KEDA's lag scaler, HPA on the consumers' CPU, a forecasting policy, the ensemble
    /// (the trained models as the fleet runs them on a group) and an oracle.
    Consumers(ConsumersArgs),
    /// Replays traces with injected faults (dependency slowdowns, scrape losses) under HPA, the
    /// seed's threshold scaler and the ensemble with and without anomaly awareness, and
    /// measures the anomaly detector on them.
    Faults(FaultsArgs),
}

#[derive(Debug, Clone, Args)]
pub struct FaultsArgs {
    /// The directory of the real traces.
    #[arg(long, env = "REPLAY_TRACES_DIR", default_value = "../shared/traces")]
    pub traces_dir: PathBuf,
    /// The traces (nasa, alibaba, twitter), each the part the evaluation replays.
    #[arg(
        long = "trace",
        env = "REPLAY_TRACES",
        value_delimiter = ',',
        default_value = "twitter"
    )]
    pub traces: Vec<String>,
    /// Minutes of replay each fault lasts.
    #[arg(long, env = "REPLAY_FAULT_MINUTES", default_value = "5")]
    pub fault_minutes: f64,
    #[command(flatten)]
    pub sim: SimArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ConsumersArgs {
    /// The directory of the real traces.
    #[arg(long, env = "REPLAY_TRACES_DIR", default_value = "../shared/traces")]
    pub traces_dir: PathBuf,
    /// The traces (nasa, alibaba, twitter), each replayed whole.
    #[arg(
        long = "trace",
        env = "REPLAY_TRACES",
        value_delimiter = ',',
        default_value = "twitter,nasa,alibaba"
    )]
    pub traces: Vec<String>,
    /// Production in the trace's quietest minute, messages a minute.
    #[arg(long, env = "REPLAY_LOW_PER_MINUTE", default_value = "20000")]
    pub low_per_minute: f64,
    /// Production in the trace's busiest minute, messages a minute.
    #[arg(long, env = "REPLAY_HIGH_PER_MINUTE", default_value = "120000")]
    pub high_per_minute: f64,
    /// Partitions of the topic (the most consumers).
    #[arg(long, env = "REPLAY_PARTITIONS", default_value = "40")]
    pub partitions: u32,
    /// Messages a second one consumer reads at most.
    #[arg(long, env = "REPLAY_CONSUMER_CAPACITY", default_value = "60")]
    pub consumer_capacity: f64,
    /// Seconds a new consumer takes to start.
    #[arg(long, env = "REPLAY_STARTUP_SEC", default_value = "10")]
    pub startup_sec: f64,
    /// Seconds the group reads nothing while it rebalances.
    #[arg(long, env = "REPLAY_REBALANCE_PAUSE_SEC", default_value = "15")]
    pub rebalance_pause_sec: f64,
    /// Lag in seconds (lag over production) above which a minute is a violation.
    #[arg(long, env = "REPLAY_LAG_TARGET_SEC", default_value = "60")]
    pub lag_target_sec: f64,
    /// Seconds between the consumers' offset commits (the lag read from the broker includes
    /// half an interval's production).
    #[arg(long, env = "REPLAY_COMMIT_INTERVAL_SEC", default_value = "5")]
    pub commit_interval_sec: f64,
    /// Prints one JSON object per policy per line (with its trace) instead of the tables.
    #[arg(long, env = "REPLAY_JSON")]
    pub json: bool,
    /// The trained models (the ensemble votes on the group's vectors); with --no-ensemble,
    /// not read.
    #[arg(long, env = "REPLAY_MODELS", default_value = "models")]
    pub models: PathBuf,
    /// Leaves the ensemble out (the baselines only; seconds instead of minutes).
    #[arg(long, env = "REPLAY_NO_ENSEMBLE")]
    pub no_ensemble: bool,
    /// Also draws each trace's frontier (consumer-minutes against minutes above the target) as
    /// `consumers-<trace>.png` in this directory.
    #[arg(long, env = "REPLAY_PLOTS")]
    pub plots: Option<PathBuf>,
    /// The TrueType font of the plots.
    #[arg(long, env = "REPLAY_FONT", default_value = crate::plot::DEFAULT_FONT)]
    pub font: PathBuf,
}

impl ConsumersArgs {
    pub fn spec(&self) -> crate::consumers::GroupSpec {
        crate::consumers::GroupSpec {
            partitions: self.partitions,
            capacity: self.consumer_capacity,
            startup_sec: self.startup_sec,
            rebalance_pause_sec: self.rebalance_pause_sec,
            lag_target_sec: self.lag_target_sec,
            commit_interval_sec: self.commit_interval_sec,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Base URL of the Prometheus HTTP API that scrapes the service.
    #[arg(long, env = "PROMETHEUS_URL", default_value = "http://localhost:9090",
          value_parser = service_runtime::config::http_url)]
    pub prometheus_url: String,
    /// The service: its Prometheus job.
    #[arg(long, env = "REPLAY_SERVICE")]
    pub service: String,
    /// How far back to read, e.g. 7d, 24h.
    #[arg(long, env = "REPLAY_SINCE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub since: std::time::Duration,
    /// One trace row per this long (a minute, like the traces of ../shared/traces).
    #[arg(long, env = "REPLAY_STEP", default_value = "60s", value_parser = humantime::parse_duration)]
    pub step: std::time::Duration,
    /// Names of the request-duration histograms (without _count), comma-separated.
    #[arg(
        long,
        env = "LATENCY_HISTOGRAMS",
        value_delimiter = ',',
        default_value = "request_duration_seconds,http_request_duration_seconds"
    )]
    pub latency_histograms: Vec<String>,
    /// Where the trace is written (t_seconds,requests).
    #[arg(long, env = "REPLAY_OUT", default_value = "output/history.csv")]
    pub out: PathBuf,
    /// Policies to replay it under (none: only write the trace); as `replay run --policy`.
    #[arg(long = "policy", env = "REPLAY_POLICIES", value_delimiter = ',',
          default_value = "hpa:70,holt-winters:70,ensemble:majority,oracle",
          value_parser = PolicySpec::parse)]
    pub policies: Vec<PolicySpec>,
    /// Prints one JSON object per policy per line instead of the table.
    #[arg(long, env = "REPLAY_JSON")]
    pub json: bool,
    /// The simulated service and the scaler's settings. The trace's own rates are replayed
    /// (--peak-rps is not used): set --concurrency and --service-time-ms to what one replica of
    /// your service serves.
    #[command(flatten)]
    pub sim: SimArgs,
}

/// The part of a trace replayed.
#[derive(Debug, Clone, Args)]
pub struct TraceSlice {
    /// The trace: a CSV with the header t_seconds,requests (one row per minute).
    #[arg(long, env = "REPLAY_TRACE")]
    pub trace: PathBuf,
    /// Trace minutes to skip.
    #[arg(long, env = "REPLAY_START_MINUTES", default_value_t = 0)]
    pub start_minutes: u64,
    /// Trace minutes to replay (default: to the end).
    #[arg(long, env = "REPLAY_LENGTH_MINUTES")]
    pub length_minutes: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub slice: TraceSlice,
    /// The policy that scales the simulated service meanwhile.
    #[arg(long, env = "REPLAY_POLICY", default_value = "hpa:70", value_parser = PolicySpec::parse)]
    pub policy: PolicySpec,
    /// The service name the windows carry.
    #[arg(long, env = "REPLAY_SERVICE", default_value = "replayed")]
    pub service: String,
    /// Named parts of the trace, in trace days, as NAME:FROM-TO (comma-separated): each part's
    /// runs get NAME as their pattern (what the trainer fits on, corrects on or holds out).
    #[arg(long = "part", env = "REPLAY_PARTS", value_delimiter = ',',
          default_value = "replayed:0-", value_parser = crate::export::Part::parse)]
    pub parts: Vec<crate::export::Part>,
    /// Writes OUT.csv (the windows) and OUT.experiments.csv (the runs).
    #[arg(long, env = "REPLAY_OUT")]
    pub out: PathBuf,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// The trained models (`models/<model>/` and `evaluation.json` for the weighted strategy).
    #[arg(long, env = "REPLAY_MODELS", default_value = "models")]
    pub models: PathBuf,
    /// The development CSV the simulated service is calibrated on...
    #[arg(
        long,
        env = "REPLAY_DATASET",
        default_value = "models/data/metrics.csv"
    )]
    pub dataset: PathBuf,
    /// ...and the experiment log of the runs it was collected in.
    #[arg(
        long,
        env = "REPLAY_EXPERIMENTS",
        default_value = "models/data/experiments.csv"
    )]
    pub experiments: PathBuf,
    /// Requests one simulated replica serves at once (the demo target's CONCURRENCY): 4 is the
    /// demo the dataset was collected on, 1 a quarter of its capacity, 16 four times.
    #[arg(long, env = "REPLAY_CONCURRENCY", default_value_t = demo_service::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Mean service time of a request in the simulated replica, milliseconds (the demo
    /// target's SERVICE_TIME_MS).
    #[arg(long, env = "REPLAY_SERVICE_TIME_MS", default_value_t = demo_service::DEFAULT_SERVICE_TIME_MS)]
    pub service_time_ms: f64,
    /// Time compression: 6 replays one trace minute in 10 s, one poll window, as in the data
    /// the models were trained on.
    #[arg(long, env = "REPLAY_COMPRESSION", default_value_t = 6.0)]
    pub compression: f64,
    /// The trace's busiest minute becomes this many requests per second.
    #[arg(long, env = "REPLAY_PEAK_RPS", default_value_t = 500.0)]
    pub peak_rps: f64,
    /// Seconds from a replica's creation to its first request.
    #[arg(long, env = "REPLAY_STARTUP_DELAY_SEC", default_value_t = 20.0)]
    pub startup_delay_sec: f64,
    /// Seconds per poll window (the aggregator's POLL_INTERVAL_SEC; the models know 10).
    #[arg(long, env = "REPLAY_POLL_INTERVAL_SEC", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub poll_interval_sec: u32,
    /// Fewest replicas any policy runs.
    #[arg(long, env = "REPLAY_MIN_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub min_replicas: u32,
    /// Most replicas any policy runs.
    #[arg(long, env = "REPLAY_MAX_REPLICAS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_replicas: u32,
    /// SLA: a window violates it when its p95 latency is above this many seconds...
    #[arg(long, env = "SLA_P95_SECONDS", default_value_t = contract::Sla::DEFAULT.p95_seconds)]
    pub sla_p95_seconds: f64,
    /// ...or its error ratio above this.
    #[arg(long, env = "SLA_ERROR_RATIO", default_value_t = contract::Sla::DEFAULT.error_ratio)]
    pub sla_error_ratio: f64,
    /// The scaler's MAX_STEP_UP for the model policies: most replicas added by one decision.
    #[arg(long, env = "REPLAY_MAX_STEP_UP", default_value_t = Guardrails::default().max_step_up,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_step_up: u32,
    /// The scaler's MAX_STEP_UP_PERCENT: the share of the count one decision may add, if more.
    #[arg(long, env = "REPLAY_MAX_STEP_UP_PERCENT",
          default_value_t = Guardrails::default().max_step_up_percent)]
    pub max_step_up_percent: u32,
    /// The scaler's MAX_STEP_DOWN_PERCENT: the share one decision may remove, if more.
    #[arg(long, env = "REPLAY_MAX_STEP_DOWN_PERCENT",
          default_value_t = Guardrails::default().max_step_down_percent)]
    pub max_step_down_percent: u32,
    /// The scaler's MAX_STEP_DOWN: most replicas removed by one decision.
    #[arg(long, env = "REPLAY_MAX_STEP_DOWN", default_value_t = Guardrails::default().max_step_down,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_step_down: u32,
    /// The scaler's SCALE_UP_COOLDOWN_SEC: no scale-up within this long of the last one.
    #[arg(long, env = "REPLAY_SCALE_UP_COOLDOWN_SEC",
          default_value_t = Guardrails::default().scale_up_cooldown.num_seconds() as u32)]
    pub scale_up_cooldown_sec: u32,
    /// The scaler's SCALE_DOWN_COOLDOWN_SEC: no scale-down within this long of a change.
    #[arg(long, env = "REPLAY_SCALE_DOWN_COOLDOWN_SEC",
          default_value_t = Guardrails::default().scale_down_cooldown.num_seconds() as u32)]
    pub scale_down_cooldown_sec: u32,
    /// The scaler's STABILIZATION_WINDOW_SEC: scale down only to the highest count desired
    /// within this long.
    #[arg(long, env = "REPLAY_STABILIZATION_WINDOW_SEC",
          default_value_t = Guardrails::default().stabilization.num_seconds() as u32)]
    pub stabilization_window_sec: u32,
    /// Requests per second a replica is assumed to carry before the simulated service has shown
    /// more: the aggregator's cautious start of the capacity estimate.
    #[arg(long, env = "CAPACITY_PRIOR_RPS", default_value_t = features::DEFAULT_PRIOR_RPS)]
    pub capacity_prior_rps: f64,
    /// How fast the voters calibrate each model's forecasts online to the service
    /// (ml-inference's FORECAST_CALIBRATION_STEP); 0: the forecasts as the models give them.
    #[arg(long, env = "FORECAST_CALIBRATION_STEP",
          default_value_t = models::calibration::DEFAULT_STEP)]
    pub forecast_calibration_step: f64,
    /// The trace the capacity estimate warms up on before a run (under HPA at 70 %, scaled to
    /// the same busiest minute): what an aggregator that has run a while knows. Never a test
    /// trace.
    #[arg(
        long,
        env = "REPLAY_WARMUP_TRACE",
        default_value = "../shared/traces/twitter_stream_aug2021_1min.csv"
    )]
    pub warmup_trace: PathBuf,
    /// Minutes of it (from its start); 0: every run starts from CAPACITY_PRIOR_RPS.
    #[arg(long, env = "REPLAY_WARMUP_MINUTES", default_value_t = 1410)]
    pub warmup_minutes: u64,
    /// Seed of the arrivals and service times.
    #[arg(long, env = "REPLAY_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Runs at once (default: the cores).
    #[arg(long, env = "REPLAY_JOBS")]
    pub jobs: Option<usize>,
}

impl SimArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            interval: f64::from(self.poll_interval_sec),
            startup_delay: self.startup_delay_sec,
            sla: Sla {
                p95_seconds: self.sla_p95_seconds,
                error_ratio: self.sla_error_ratio,
            },
            guardrails: Guardrails {
                min_replicas: self.min_replicas,
                max_replicas: self.max_replicas,
                max_step_up: self.max_step_up,
                max_step_up_percent: self.max_step_up_percent,
                max_step_down: self.max_step_down,
                max_step_down_percent: self.max_step_down_percent,
                scale_up_cooldown: Duration::seconds(i64::from(self.scale_up_cooldown_sec)),
                scale_down_cooldown: Duration::seconds(i64::from(self.scale_down_cooldown_sec)),
                stabilization: Duration::seconds(i64::from(self.stabilization_window_sec)),
            },
            seed: self.seed,
            season_windows: Settings::season_windows(
                self.compression,
                f64::from(self.poll_interval_sec),
            ),
            capacity_prior_rps: self.capacity_prior_rps,
            calibration_step: self.forecast_calibration_step,
            ..Settings::default()
        }
    }

    /// The settings with the capacity estimate warmed up on the warm-up trace for `model`
    /// (unchanged when no warm-up is asked for).
    pub fn warmed_up(
        &self,
        settings: Settings,
        model: &crate::service::ServiceModel,
    ) -> anyhow::Result<Settings> {
        if self.warmup_minutes == 0 {
            return Ok(settings);
        }
        let warmup = crate::traces::load(
            &self.warmup_trace,
            0,
            Some(self.warmup_minutes),
            self.compression,
            Some(self.peak_rps),
        )?;
        let (capacity, normal) = crate::evaluate::warm_capacity(model, &settings, &warmup)?;
        Ok(Settings {
            capacity_start: Some(capacity),
            normal_start: normal,
            ..settings
        })
    }

    /// The simulated replica's slots and service time.
    pub fn profile(&self) -> crate::service::Profile {
        crate::service::Profile {
            concurrency: self.concurrency,
            service_time_ms: self.service_time_ms,
        }
    }

    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    fn validate(&self) -> Result<(), String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.compression) {
            return Err(format!(
                "REPLAY_COMPRESSION (--compression): {} is not a positive number",
                self.compression
            ));
        }
        if !positive(self.capacity_prior_rps) {
            return Err(format!(
                "CAPACITY_PRIOR_RPS (--capacity-prior-rps): {} is not a positive rate",
                self.capacity_prior_rps
            ));
        }
        if let Err(e) = models::calibration::check_step(self.forecast_calibration_step) {
            return Err(format!(
                "FORECAST_CALIBRATION_STEP (--forecast-calibration-step): {e}"
            ));
        }
        if !positive(self.service_time_ms) {
            return Err(format!(
                "REPLAY_SERVICE_TIME_MS (--service-time-ms): {} is not a positive number of \
                 milliseconds",
                self.service_time_ms
            ));
        }
        if !positive(self.peak_rps) {
            return Err(format!(
                "REPLAY_PEAK_RPS (--peak-rps): {} is not a positive rate",
                self.peak_rps
            ));
        }
        if !(self.startup_delay_sec.is_finite() && self.startup_delay_sec >= 0.0) {
            return Err(format!(
                "REPLAY_STARTUP_DELAY_SEC (--startup-delay-sec): {} is not 0 or more seconds",
                self.startup_delay_sec
            ));
        }
        if self.min_replicas > self.max_replicas {
            return Err(format!(
                "REPLAY_MIN_REPLICAS (--min-replicas) {} is above REPLAY_MAX_REPLICAS \
                 (--max-replicas) {}",
                self.min_replicas, self.max_replicas
            ));
        }
        if !positive(self.sla_p95_seconds) || !(0.0..=1.0).contains(&self.sla_error_ratio) {
            return Err("SLA_P95_SECONDS must be above 0 and SLA_ERROR_RATIO within [0, 1]".into());
        }
        if self.jobs == Some(0) {
            return Err("REPLAY_JOBS (--jobs): 0 runs at once".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub slice: TraceSlice,
    // The help text is also the --help output: its brackets are not links.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// Policies, repeatable or comma-separated: static[:N], threshold, hpa:T[:S] (target
    /// utilization %, scale-down stabilization s, default 300), holt-winters:T, xgboost[:Q],
    /// random_forest[:Q], logistic_regression[:Q], ensemble:majority|unanimous|weighted[:Q]
    /// (Q: the forecast quantile, %, the models' default unless given), ensemble-aware (the
    /// majority with anomaly detection and the scaler's holds, as the fleet runs by default;
    /// the other model policies are without them), ensemble-uncalibrated (the majority on the
    /// forecasts as the models give them, without the online calibration every other model
    /// policy runs, as the voters do), oracle.
    #[arg(long = "policy", env = "REPLAY_POLICIES", value_delimiter = ',',
          default_value = "hpa:70,holt-winters:70,ensemble:majority,oracle",
          value_parser = PolicySpec::parse)]
    pub policies: Vec<PolicySpec>,
    /// Writes every window of every policy here (CSV).
    #[arg(long, env = "REPLAY_WINDOWS_CSV")]
    pub windows_csv: Option<PathBuf>,
    /// Prints one JSON object per policy per line instead of the table.
    #[arg(long, env = "REPLAY_JSON")]
    pub json: bool,
    /// Replays the trace's own rates instead of scaling its busiest minute to --peak-rps (a
    /// trace of your own service, from `replay history`).
    #[arg(long, env = "REPLAY_RECORDED_RATES")]
    pub recorded_rates: bool,
    #[command(flatten)]
    pub sim: SimArgs,
}

#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// The directory of the real traces.
    #[arg(long, env = "REPLAY_TRACES_DIR", default_value = "../shared/traces")]
    pub traces_dir: PathBuf,
    /// Where EVALUATION.md goes (plots and results.json in its evaluation/ folder).
    #[arg(long, env = "REPLAY_DOCS", default_value = "docs")]
    pub docs: PathBuf,
    /// Only these traces (nasa, alibaba, twitter); default all three.
    #[arg(long = "trace", env = "REPLAY_TRACES", value_delimiter = ',')]
    pub traces: Vec<String>,
    /// Only these scenarios (demo, quarter, fourfold, demo-100, quarter-100, fourfold-100);
    /// default all six. Each sets its own slots, replica bound and busiest minute, which
    /// --concurrency, --max-replicas and --peak-rps do not change here.
    #[arg(long = "scenario", env = "REPLAY_SCENARIOS", value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// The TrueType font of the plots.
    #[arg(long, env = "REPLAY_FONT", default_value = crate::plot::DEFAULT_FONT)]
    pub font: PathBuf,
    #[command(flatten)]
    pub sim: SimArgs,
}

/// Refuses a `--trace` that is not one of the standard traces.
fn standard_traces(keys: &[String]) -> Result<(), String> {
    match keys.iter().find(|k| crate::traces::standard(k).is_none()) {
        Some(key) => Err(format!(
            "REPLAY_TRACES (--trace): {key:?} is not nasa, alibaba or twitter"
        )),
        None => Ok(()),
    }
}

impl Validate for ReplayConfig {
    fn validate(&self) -> Result<(), String> {
        match &self.command {
            Command::Run(run) => {
                if run.policies.is_empty() {
                    return Err("REPLAY_POLICIES (--policy): no policy given".into());
                }
                run.sim.validate()
            }
            Command::Evaluate(evaluate) => {
                standard_traces(&evaluate.traces)?;
                for key in &evaluate.scenarios {
                    if !crate::evaluate::SCENARIOS.iter().any(|s| s.key == key) {
                        return Err(format!(
                            "REPLAY_SCENARIOS (--scenario): {key:?} is not demo, quarter, \
                             fourfold, demo-100, quarter-100 or fourfold-100"
                        ));
                    }
                }
                evaluate.sim.validate()
            }
            Command::Calibrate(sim) => sim.validate(),
            Command::Faults(faults) => {
                standard_traces(&faults.traces)?;
                if !(faults.fault_minutes.is_finite()
                    && (0.5..=60.0).contains(&faults.fault_minutes))
                {
                    return Err("faults: --fault-minutes must be 0.5 to 60".into());
                }
                faults.sim.validate()
            }
            Command::Consumers(consumers) => {
                standard_traces(&consumers.traces)?;
                let positive = [
                    consumers.consumer_capacity,
                    consumers.lag_target_sec,
                    consumers.low_per_minute,
                ];
                if consumers.partitions == 0
                    || consumers.partitions > 10_000
                    || positive.iter().any(|v| !v.is_finite() || *v <= 0.0)
                    || consumers.high_per_minute <= consumers.low_per_minute
                    || !consumers.high_per_minute.is_finite()
                    || [
                        consumers.startup_sec,
                        consumers.rebalance_pause_sec,
                        consumers.commit_interval_sec,
                    ]
                    .iter()
                    .any(|v| !v.is_finite() || *v < 0.0 || *v > 3_600.0)
                {
                    return Err(
                        "consumers: --partitions must be 1 to 10,000, --consumer-capacity, \
                         --lag-target-sec and --low-per-minute positive, --high-per-minute above \
                         --low-per-minute, --startup-sec, --rebalance-pause-sec and \
                         --commit-interval-sec 0 to 3,600"
                            .into(),
                    );
                }
                Ok(())
            }
            Command::History(history) => {
                contract::validate_service(&history.service)
                    .map_err(|e| format!("REPLAY_SERVICE (--service): {e}"))?;
                if history.step.as_secs() == 0 || history.since < history.step {
                    return Err(
                        "REPLAY_STEP (--step) must be a second or more, and REPLAY_SINCE \
                         (--since) at least one step"
                            .into(),
                    );
                }
                history.sim.validate()
            }
            Command::Export(export) => {
                if export.policy.needs_models() {
                    return Err(
                        "REPLAY_POLICY (--policy): export runs a baseline (the models may not \
                         exist yet): static, threshold, hpa or oracle"
                            .into(),
                    );
                }
                contract::validate_service(&export.service)
                    .map_err(|e| format!("REPLAY_SERVICE (--service): {e}"))?;
                export.sim.validate()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(), String> {
        let config = ReplayConfig::try_parse_from(args).map_err(|e| e.to_string())?;
        config.validate()
    }

    #[test]
    fn bad_settings_name_the_setting() {
        assert!(parse(&["replay", "run", "--trace", "t.csv"]).is_ok());
        let e = parse(&["replay", "run", "--trace", "t.csv", "--policy", "lstm"]).unwrap_err();
        assert!(e.contains("lstm"), "{e}");
        let e = parse(&["replay", "run", "--trace", "t.csv", "--compression", "0"]).unwrap_err();
        assert!(e.contains("REPLAY_COMPRESSION"), "{e}");
        let e = parse(&["replay", "evaluate", "--trace", "wikipedia"]).unwrap_err();
        assert!(e.contains("REPLAY_TRACES"), "{e}");
        let e = parse(&[
            "replay",
            "calibrate",
            "--min-replicas",
            "5",
            "--max-replicas",
            "2",
        ])
        .unwrap_err();
        assert!(e.contains("REPLAY_MIN_REPLICAS"), "{e}");
    }
}
