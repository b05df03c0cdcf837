//! What an artifact says about itself (`metadata.json` beside the model file): which features in
//! which order, how missing values are filled, standardization, decision thresholds, the SLA the
//! labels were made with, and where the model came from.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The three kinds of model that vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Xgboost,
    RandomForest,
    LogisticRegression,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [
        ModelKind::Xgboost,
        ModelKind::RandomForest,
        ModelKind::LogisticRegression,
    ];

    /// The name used in votes, file names and the `MODEL` setting.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Xgboost => "xgboost",
            ModelKind::RandomForest => "random_forest",
            ModelKind::LogisticRegression => "logistic_regression",
        }
    }

    /// The name in the evaluation table.
    pub fn title(self) -> &'static str {
        match self {
            ModelKind::Xgboost => "XGBoost",
            ModelKind::RandomForest => "Random Forest",
            ModelKind::LogisticRegression => "Logistic Regression",
        }
    }

    pub fn parse(s: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Standardization applied before the model: `(x - mean) / std`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// Probability thresholds of the vote rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Vote SCALE_UP when P(violation) at the current replica count reaches this.
    pub scale_up: f64,
    /// Vote SCALE_DOWN only when P(violation) with one replica fewer is below this.
    pub scale_down: f64,
}

/// The SLA the training labels were made with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    /// A window violates the SLA when its p95 latency is above this...
    pub p95_seconds: f64,
    /// ...or its error ratio is above this.
    pub error_ratio: f64,
}

impl Sla {
    /// Whether a window with these features violates the SLA (the training label, one window
    /// later, and the replay's measure of violation minutes).
    pub fn violated_by(&self, features: &contract::Features) -> bool {
        features
            .latency_p95
            .is_some_and(|p95| p95 > self.p95_seconds)
            || features.error_ratio > self.error_ratio
    }
}

/// Where the model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// SHA-256 of the training data files.
    pub data_sha256: String,
    /// Labelled rows used for training.
    pub rows: usize,
    /// Of which SLA violations.
    pub positives: usize,
    /// Experiment runs used for training.
    pub runs: Vec<String>,
    /// Patterns whose runs were held out for evaluation.
    pub held_out_patterns: Vec<String>,
    pub trained_at: chrono::DateTime<chrono::Utc>,
    /// Hyperparameters, as the library names them.
    pub parameters: serde_json::Value,
}

/// The metadata of one artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    /// Layout of this file; 1 today.
    pub format_version: u32,
    pub model: ModelKind,
    /// `<model>-<data hash>-<date>`, carried in every vote.
    pub model_version: String,
    /// Input features, in the order the model reads them; names of the contract's schema.
    pub features: Vec<String>,
    /// Value used for each feature when it is missing (null), in `features` order.
    pub imputation: Vec<f64>,
    /// Standardization, for models trained on standardized inputs.
    pub standardization: Option<Standardization>,
    pub thresholds: Thresholds,
    pub sla: Sla,
    /// Aggregator window (poll interval) the training data was collected at.
    pub window_sec: u32,
    pub training: TrainingInfo,
    /// Library and version that trained the model.
    pub library: String,
    /// The model file, relative to the artifact directory.
    pub model_file: String,
}

/// The current `format_version`.
pub const FORMAT_VERSION: u32 = 1;

/// The metadata file's name in an artifact directory.
pub const METADATA_FILE: &str = "metadata.json";

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Metadata for `names`, everything else neutral.
    pub fn metadata(names: &[&str]) -> ModelMetadata {
        ModelMetadata {
            format_version: FORMAT_VERSION,
            model: ModelKind::LogisticRegression,
            model_version: "test".into(),
            features: names.iter().map(|n| n.to_string()).collect(),
            imputation: vec![0.0; names.len()],
            standardization: None,
            thresholds: Thresholds {
                scale_up: 0.5,
                scale_down: 0.2,
            },
            sla: Sla {
                p95_seconds: 0.25,
                error_ratio: 0.05,
            },
            window_sec: 10,
            training: TrainingInfo {
                data_sha256: "0".into(),
                rows: 0,
                positives: 0,
                runs: vec![],
                held_out_patterns: vec![],
                trained_at: chrono::DateTime::UNIX_EPOCH,
                parameters: serde_json::Value::Null,
            },
            library: "test".into(),
            model_file: "model.json".into(),
        }
    }
}
