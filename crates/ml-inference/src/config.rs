//! Settings of one inference service (the same binary runs as ml-xgboost, ml-random-forest and
//! ml-logistic-regression).

use clap::Parser;
use models::ModelKind;
use service_runtime::config::Validate;
use service_runtime::kafka::KafkaArgs;
use service_runtime::telemetry::LogArgs;
use std::net::SocketAddr;
use std::path::PathBuf;

fn parse_model(s: &str) -> Result<ModelKind, String> {
    ModelKind::parse(s.trim())
        .ok_or_else(|| "not xgboost, random_forest or logistic_regression".to_owned())
}

/// Consumes feature vectors from the metrics topic, forecasts each service's peak load over the
/// next windows, sizes it with the service's learned capacity per replica, and publishes a vote
/// (SCALE_UP, NO_ACTION or SCALE_DOWN, with a confidence and the replica count the model wants)
/// to the votes topic. Every prediction is also appended to output/predictions_<model>.csv.
#[derive(Debug, Clone, Parser)]
#[command(name = "ml-inference", version)]
pub struct InferenceConfig {
    /// Which model this instance serves: xgboost, random_forest or logistic_regression.
    #[arg(long, env = "MODEL", value_parser = parse_model)]
    pub model: ModelKind,
    /// The model's artifact directory (default: models/<model>).
    #[arg(long, env = "MODEL_PATH")]
    pub model_path: Option<PathBuf>,
    /// The forecast quantile replicas are sized for (default: the model's, 0.9): higher is
    /// safer and costs more replicas.
    #[arg(long, env = "FORECAST_QUANTILE")]
    pub forecast_quantile: Option<f64>,
    /// How fast the forecasts are calibrated to each service online: after every window whose
    /// outcome is known, the service's forecasts move up if the peak rose above them and down
    /// if not, so that the quantile covers what it claims on that service's own load (0: the
    /// forecasts as the model gives them).
    #[arg(long, env = "FORECAST_CALIBRATION_STEP",
          default_value_t = models::calibration::DEFAULT_STEP)]
    pub forecast_calibration_step: f64,
    /// Topic of the feature vectors.
    #[arg(long, env = "METRICS_TOPIC", default_value = contract::METRICS_TOPIC)]
    pub metrics_topic: String,
    /// Topic the votes are published to.
    #[arg(long, env = "VOTES_TOPIC", default_value = contract::VOTES_TOPIC)]
    pub votes_topic: String,
    /// Consumer group (default: ml-inference-<model>); each model needs its own.
    #[arg(long, env = "CONSUMER_GROUP")]
    pub consumer_group: Option<String>,
    /// Where every prediction is appended (default: output/predictions_<model>.csv).
    #[arg(long, env = "PREDICTIONS_CSV")]
    pub predictions_csv: Option<PathBuf>,
    /// Address of the /metrics and /healthz endpoints.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:9102")]
    pub listen_addr: SocketAddr,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl Validate for InferenceConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(q) = self.forecast_quantile
            && !(q > 0.0 && q < 1.0)
        {
            return Err(format!(
                "FORECAST_QUANTILE (--forecast-quantile): {q} is not a level between 0 and 1"
            ));
        }
        models::calibration::check_step(self.forecast_calibration_step)
            .map_err(|e| format!("FORECAST_CALIBRATION_STEP (--forecast-calibration-step): {e}"))?;
        if self.metrics_topic.trim().is_empty() || self.votes_topic.trim().is_empty() {
            return Err("METRICS_TOPIC and VOTES_TOPIC must not be empty".into());
        }
        self.kafka.validate()
    }
}

impl InferenceConfig {
    pub fn model_path(&self) -> PathBuf {
        self.model_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("models").join(self.model.as_str()))
    }

    pub fn consumer_group(&self) -> String {
        self.consumer_group
            .clone()
            .unwrap_or_else(|| format!("ml-inference-{}", self.model))
    }

    pub fn predictions_csv(&self) -> PathBuf {
        self.predictions_csv.clone().unwrap_or_else(|| {
            PathBuf::from("output").join(format!("predictions_{}.csv", self.model))
        })
    }
}
