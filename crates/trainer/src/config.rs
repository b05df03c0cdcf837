//! The trainer's settings.

use crate::fit::Hyper;
use clap::Parser;
use models::ModelKind;
use service_runtime::config::Validate;
use service_runtime::telemetry::LogArgs;
use std::path::PathBuf;

/// The features the models read by default: the load's own recent past and the same time a
/// day and a week ago, every one a ratio or a relative slope, so that a model trained on one
/// service's load reads another's at any scale. Nothing about latency, CPU or replicas: the
/// models forecast the load, the capacity (learned per service by the aggregator) turns it
/// into replicas.
pub const DEFAULT_FEATURES: &str = "rate_max_recent,rate_min_recent,rate_mean_long,rate_max_long,\
rate_cv_long,rate_trend_long,request_rate_trend,day_ago_ratio,day_ago_rise,week_ago_ratio,\
week_ago_rise";

/// Trains XGBoost, Random Forest and Logistic Regression to forecast each service's peak load
/// over the next windows, as quantiles, on development-mode data and replayed traces; measures
/// them on held-out runs; writes models/<model>/, models/evaluation.json and models/README.md.
#[derive(Debug, Clone, Parser)]
#[command(name = "trainer", version)]
pub struct TrainerConfig {
    /// Development-mode CSVs (the aggregator's output, or `replay export`'s), comma-separated.
    #[arg(
        long,
        env = "TRAIN_DATA",
        value_delimiter = ',',
        default_value = "models/data/metrics.csv"
    )]
    pub data: Vec<PathBuf>,
    /// The experiment logs of the runs the data was collected in, comma-separated.
    #[arg(
        long,
        env = "TRAIN_EXPERIMENTS",
        value_delimiter = ',',
        default_value = "models/data/experiments.csv"
    )]
    pub experiments: Vec<PathBuf>,
    /// Runs to leave out, one run id per line, `#` starting a comment that says why (missing
    /// file: none).
    #[arg(
        long,
        env = "EXCLUDED_RUNS",
        default_value = "models/data/excluded-runs.txt"
    )]
    pub excluded_runs: PathBuf,
    /// Where the artifacts and the report go.
    #[arg(long, env = "MODELS_DIR", default_value = "models")]
    pub out: PathBuf,
    /// SLA: a window violates it when its p95 latency is above this many seconds...
    #[arg(long, env = "SLA_P95_SECONDS", default_value_t = contract::Sla::DEFAULT.p95_seconds)]
    pub sla_p95_seconds: f64,
    /// ...or its error ratio above this.
    #[arg(long, env = "SLA_ERROR_RATIO", default_value_t = contract::Sla::DEFAULT.error_ratio)]
    pub sla_error_ratio: f64,
    /// Patterns whose runs are the held-out test set, never fitted or corrected on.
    #[arg(
        long,
        env = "HELD_OUT_PATTERNS",
        value_delimiter = ',',
        default_value = "trace,twitter-held-out"
    )]
    pub held_out_patterns: Vec<String>,
    /// Patterns whose runs the quantile corrections are measured on (never fitted on).
    #[arg(
        long,
        env = "CALIBRATION_PATTERNS",
        value_delimiter = ',',
        default_value = "twitter-calibration"
    )]
    pub calibration_patterns: Vec<String>,
    /// Quantile levels the models answer, ascending, comma-separated.
    #[arg(
        long,
        env = "FORECAST_LEVELS",
        value_delimiter = ',',
        default_value = "0.1,0.25,0.5,0.75,0.9,0.95,0.99"
    )]
    pub levels: Vec<f64>,
    /// The level the votes size replicas for unless ml-inference's FORECAST_QUANTILE says
    /// otherwise (0.75: chosen on a held-out Twitter day, docs/EVALUATION.md).
    #[arg(long, env = "FORECAST_QUANTILE", default_value_t = 0.75)]
    pub default_quantile: f64,
    /// Windows of the scale-up horizon: a new replica's start-up plus one window (20 s and 10 s
    /// windows: 3).
    #[arg(long, env = "FORECAST_UP_WINDOWS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=360))]
    pub up_windows: u32,
    /// Windows of the scale-down horizon: long enough that a replica given back is not needed
    /// again before one could return.
    #[arg(long, env = "FORECAST_DOWN_WINDOWS", default_value_t = 9,
          value_parser = clap::value_parser!(u32).range(1..=360))]
    pub down_windows: u32,
    /// Model features, names of the contract's schema, in order.
    #[arg(long, env = "MODEL_FEATURES", value_delimiter = ',', default_value = DEFAULT_FEATURES)]
    pub features: Vec<String>,
    /// Models to train.
    #[arg(long, env = "TRAIN_MODELS", value_delimiter = ',', value_parser = parse_kind,
          default_value = "xgboost,random_forest,logistic_regression")]
    pub models: Vec<ModelKind>,
    /// Only rewrites README.md in MODELS_DIR from the evaluation.json there, without training
    /// (after its template, crates/trainer/templates/, changed).
    #[arg(long, env = "TRAIN_REPORT_ONLY")]
    pub report_only: bool,
    #[command(flatten)]
    pub log: LogArgs,
    /// Hyperparameters are fixed in code and recorded in each artifact.
    #[arg(skip)]
    pub hyper: Hyper,
}

impl TrainerConfig {
    pub fn sla(&self) -> contract::Sla {
        contract::Sla {
            p95_seconds: self.sla_p95_seconds,
            error_ratio: self.sla_error_ratio,
        }
    }
}

fn parse_kind(s: &str) -> Result<ModelKind, String> {
    ModelKind::parse(s.trim())
        .ok_or_else(|| format!("{s:?} is not xgboost, random_forest or logistic_regression"))
}

impl Validate for TrainerConfig {
    fn validate(&self) -> Result<(), String> {
        self.sla().check()?;
        if self.levels.is_empty()
            || self.levels.iter().any(|l| !(*l > 0.0 && *l < 1.0))
            || self.levels.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(
                "FORECAST_LEVELS (--levels): ascending levels between 0 and 1 expected".into(),
            );
        }
        if !(self.default_quantile > 0.0 && self.default_quantile < 1.0) {
            return Err("FORECAST_QUANTILE (--default-quantile) must lie between 0 and 1".into());
        }
        if self.down_windows < self.up_windows {
            return Err(format!(
                "FORECAST_DOWN_WINDOWS ({}) is shorter than FORECAST_UP_WINDOWS ({})",
                self.down_windows, self.up_windows
            ));
        }
        if let Some(f) = self
            .features
            .iter()
            .find(|f| contract::feature_index(f).is_none())
        {
            return Err(format!(
                "MODEL_FEATURES (--features): {f:?} is not in the contract's schema"
            ));
        }
        Ok(())
    }
}
