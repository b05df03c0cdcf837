//! What an artifact says about itself (`metadata.json` beside the model files): which features in
//! which order, how missing values are filled, standardization, what is forecast (quantile
//! levels, horizons, corrections), the SLA, and where the model came from.

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

    /// The model files the trainer writes, in the library's own format: XGBoost's binary JSON
    /// (UBJSON; libxgboost parses its text JSON into a tree of boxed values, about 30 MB for
    /// the shipped model, where UBJSON's typed arrays cost a tenth of that), smartcore's serde
    /// JSON for the others.
    pub fn model_files(self) -> Horizons<String> {
        let extension = match self {
            ModelKind::Xgboost => "ubj",
            ModelKind::RandomForest | ModelKind::LogisticRegression => "json",
        };
        Horizons {
            up: format!("up.{extension}"),
            down: format!("down.{extension}"),
        }
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

/// One value per forecast horizon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Horizons<T> {
    /// The scale-up horizon: a new replica's start-up plus one window.
    pub up: T,
    /// The scale-down horizon: a replica given back must not be needed again before one could
    /// return.
    pub down: T,
}

impl<T> Horizons<T> {
    pub fn map<U>(self, f: impl Fn(T) -> U) -> Horizons<U> {
        Horizons {
            up: f(self.up),
            down: f(self.down),
        }
    }

    pub fn as_ref(&self) -> Horizons<&T> {
        Horizons {
            up: &self.up,
            down: &self.down,
        }
    }
}

/// What the model forecasts: quantiles of `ln((peak + floor) / (rate + floor))`, the highest
/// request rate of the next `horizons` windows against this window's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastSpec {
    /// Quantile levels the model answers, ascending in (0, 1).
    pub levels: Vec<f64>,
    /// Windows ahead whose highest request rate is forecast.
    pub horizons: Horizons<u32>,
    /// Added to each level's forecast (conformal corrections measured on calibration runs the
    /// model was not fitted on), per horizon, in `levels` order.
    pub corrections: Horizons<Vec<f64>>,
    /// The level the vote sizes replicas for unless FORECAST_QUANTILE says otherwise.
    pub default_quantile: f64,
    /// Requests per second added to both rates of the ratio (`features::RATE_FLOOR`).
    pub rate_floor: f64,
}

impl ForecastSpec {
    /// Checks the spec against itself.
    pub fn check(&self) -> Result<(), String> {
        let levels = &self.levels;
        if levels.is_empty() || levels.iter().any(|l| !(*l > 0.0 && *l < 1.0)) {
            return Err("forecast levels must lie in (0, 1)".into());
        }
        if levels.windows(2).any(|w| w[0] >= w[1]) {
            return Err("forecast levels must ascend".into());
        }
        for corrections in [&self.corrections.up, &self.corrections.down] {
            if corrections.len() != levels.len() || corrections.iter().any(|c| !c.is_finite()) {
                return Err("forecast corrections do not match the levels".into());
            }
        }
        if self.horizons.up == 0 || self.horizons.down < self.horizons.up {
            return Err("forecast horizons must be 1 <= up <= down windows".into());
        }
        if !(self.rate_floor.is_finite() && self.rate_floor >= 0.0) {
            return Err("the rate floor must be 0 or more".into());
        }
        Ok(())
    }
}

/// The SLA the training labels were made with.
pub use contract::Sla;

/// Where the model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// SHA-256 of the training data files.
    pub data_sha256: String,
    /// Windows used for fitting.
    pub rows: usize,
    /// Windows the quantile corrections were measured on.
    pub calibration_rows: usize,
    /// Experiment runs used for training.
    pub runs: Vec<String>,
    /// Patterns whose runs were held out for evaluation.
    pub held_out_patterns: Vec<String>,
    /// Patterns whose runs the corrections were measured on.
    pub calibration_patterns: Vec<String>,
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
    /// What is forecast, and how the quantiles are corrected.
    pub forecast: ForecastSpec,
    pub sla: Sla,
    /// Aggregator window (poll interval) the training data was collected at.
    pub window_sec: u32,
    pub training: TrainingInfo,
    /// Library and version that trained the model.
    pub library: String,
    /// The model files of each horizon, in the library's own format, relative to the artifact
    /// directory.
    pub model_files: Horizons<String>,
}

/// The current `format_version`: 2 since the models forecast the load (1 classified the next
/// window).
pub const FORMAT_VERSION: u32 = 2;

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
            forecast: ForecastSpec {
                levels: vec![0.5, 0.9],
                horizons: Horizons { up: 3, down: 9 },
                corrections: Horizons {
                    up: vec![0.0, 0.0],
                    down: vec![0.0, 0.0],
                },
                default_quantile: 0.9,
                rate_floor: 1.0,
            },
            sla: Sla::DEFAULT,
            window_sec: 10,
            training: TrainingInfo {
                data_sha256: "0".into(),
                rows: 0,
                calibration_rows: 0,
                runs: vec![],
                held_out_patterns: vec![],
                calibration_patterns: vec![],
                trained_at: chrono::DateTime::UNIX_EPOCH,
                parameters: serde_json::Value::Null,
            },
            library: "test".into(),
            model_files: ModelKind::LogisticRegression.model_files(),
        }
    }
}
