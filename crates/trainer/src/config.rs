//! The trainer's settings.

use crate::fit::Hyper;
use clap::Parser;
use fleet::config::Validate;
use fleet::telemetry::LogArgs;
use models::ModelKind;
use std::path::PathBuf;

/// The features the models read by default: the load per replica (which changes predictably
/// with the replica count, so "with one replica fewer" and "with n replicas" can be asked), the
/// error ratio and the load's trend (the same at any count). Latencies are left out: the vote
/// evaluates the model at other replica counts, where the measured latency does not hold, and
/// the trace replay showed a latency-trend blip on an idle service sending every count to the
/// maximum. CPU per replica is left out too: what a request costs differs between machines and
/// deployments (the demo's containers spent two to three times the CPU per request of the
/// local stack the dataset was collected on), and the models then saw load that was not there.
pub const DEFAULT_FEATURES: &str = "request_rate_per_replica,error_ratio,request_rate_trend";

/// Trains XGBoost, Random Forest and Logistic Regression on development-mode data and evaluates
/// them on held-out runs; writes models/<model>/, models/evaluation.json and models/README.md.
#[derive(Debug, Clone, Parser)]
#[command(name = "trainer", version)]
pub struct TrainerConfig {
    /// Development-mode CSVs (the aggregator's output), repeatable.
    #[arg(
        long,
        env = "TRAIN_DATA",
        value_delimiter = ',',
        default_value = "models/data/metrics.csv"
    )]
    pub data: Vec<PathBuf>,
    /// The experiment log of the runs the data was collected in.
    #[arg(
        long,
        env = "TRAIN_EXPERIMENTS",
        default_value = "models/data/experiments.csv"
    )]
    pub experiments: PathBuf,
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
    #[arg(long, env = "SLA_P95_SECONDS", default_value_t = 0.25)]
    pub sla_p95_seconds: f64,
    /// ...or its error ratio above this.
    #[arg(long, env = "SLA_ERROR_RATIO", default_value_t = 0.05)]
    pub sla_error_ratio: f64,
    /// Patterns whose runs are the held-out test set, never trained or tuned on.
    #[arg(
        long,
        env = "HELD_OUT_PATTERNS",
        value_delimiter = ',',
        default_value = "trace"
    )]
    pub held_out_patterns: Vec<String>,
    /// What a missed violation costs, in false alarms: the SCALE_UP threshold minimises this x
    /// missed violations + false alarms on out-of-fold predictions. 10: a violating window
    /// weighs as much as ten windows of a replica too many (about what a needless scale-up
    /// keeps through its cooldown and stabilization).
    #[arg(long, env = "VIOLATION_COST", default_value_t = 10.0)]
    pub violation_cost: f64,
    /// SCALE_DOWN threshold as a share of the SCALE_UP threshold.
    #[arg(long, env = "SCALE_DOWN_RATIO", default_value_t = 0.5)]
    pub scale_down_ratio: f64,
    /// Cross-validation folds (whole runs per fold).
    #[arg(long, env = "FOLDS", default_value_t = 5)]
    pub folds: usize,
    /// Model features, names of the contract's schema, in order.
    #[arg(long, env = "MODEL_FEATURES", value_delimiter = ',', default_value = DEFAULT_FEATURES)]
    pub features: Vec<String>,
    /// Models to train.
    #[arg(long, env = "TRAIN_MODELS", value_delimiter = ',', value_parser = parse_kind,
          default_value = "xgboost,random_forest,logistic_regression")]
    pub models: Vec<ModelKind>,
    #[command(flatten)]
    pub log: LogArgs,
    /// Hyperparameters are fixed in code and recorded in each artifact.
    #[arg(skip)]
    pub hyper: Hyper,
}

fn parse_kind(s: &str) -> Result<ModelKind, String> {
    ModelKind::parse(s.trim())
        .ok_or_else(|| format!("{s:?} is not xgboost, random_forest or logistic_regression"))
}

impl Validate for TrainerConfig {
    fn validate(&self) -> Result<(), String> {
        if self.sla_p95_seconds.is_nan() || self.sla_p95_seconds <= 0.0 {
            return Err("SLA_P95_SECONDS (--sla-p95-seconds) must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.sla_error_ratio) {
            return Err("SLA_ERROR_RATIO (--sla-error-ratio) must be between 0 and 1".into());
        }
        if !(self.violation_cost.is_finite() && self.violation_cost > 0.0) {
            return Err("VIOLATION_COST (--violation-cost) must be a positive number".into());
        }
        if !(0.0 < self.scale_down_ratio && self.scale_down_ratio <= 1.0) {
            return Err("SCALE_DOWN_RATIO (--scale-down-ratio) must be in (0, 1]".into());
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
