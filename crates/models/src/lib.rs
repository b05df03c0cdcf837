//! The three models that vote: XGBoost (trained with libxgboost, its model file evaluated in
//! Rust), Random Forest and Logistic Regression (on smartcore), each forecasting the highest request rate of the next windows as quantiles.
//! Each is an artifact directory, `models/<model>/`, holding the library's own model file per
//! horizon and `metadata.json` (features and their order, imputation, standardization, levels,
//! horizons and corrections, SLA, training data hash, library version).
//!
//! [`load`] refuses, with an error that says which, an artifact that is missing, corrupt, of
//! another kind, or whose feature list does not match the contract. [`LoadedModel::votes`] turns
//! feature vectors into votes with the rule in [`vote`].

pub mod calibration;
mod distribution;
mod forest;
mod input;
mod logistic;
mod metadata;
mod ubjson;
pub mod vote;
mod xgboost;

pub use calibration::Calibrator;
pub use distribution::Distribution;
pub use forest::{Forest, Leaf, LeafTable, SmartcoreForest, Trees, empirical_quantile};
pub use input::InputSpec;
pub use logistic::{Logistic, SmartcoreLogistic};
pub use metadata::{
    FORMAT_VERSION, ForecastSpec, Horizons, METADATA_FILE, ModelKind, ModelMetadata, Sla,
    Standardization, TrainingInfo,
};
pub use vote::{Forecast, VoteDecision, decide};
pub use xgboost::Xgb;

use contract::{FeatureVector, Features};
use std::path::{Path, PathBuf};

/// Why an artifact cannot be used. Each message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "{0}: no such file; train the models (`trainer`, see models/README.md) or set MODEL_PATH"
    )]
    Missing(PathBuf),
    #[error("{path}: unreadable model artifact: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: the model's feature list does not match the contract: {reason}; retrain it")]
    FeatureMismatch { path: PathBuf, reason: String },
    #[error("{path}: holds a {found} model, not {expected}; check MODEL and MODEL_PATH")]
    WrongKind {
        path: PathBuf,
        found: ModelKind,
        expected: ModelKind,
    },
    #[error("{path}: metadata format {found}; this build reads format {FORMAT_VERSION}")]
    Format { path: PathBuf, found: u32 },
}

/// The model behind a [`LoadedModel`], for one horizon.
#[derive(Debug)]
enum Predictor {
    Xgboost(Xgb),
    RandomForest(Forest),
    LogisticRegression(Logistic),
}

/// A model ready to forecast.
#[derive(Debug)]
pub struct LoadedModel {
    metadata: ModelMetadata,
    input: InputSpec,
    predictors: Horizons<Predictor>,
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LoadError::Missing(path.to_owned()),
        _ => LoadError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    })
}

/// The leaf table of a forest's model file `up.json`: `up.leaves.json`.
pub fn leaf_file(model_file: &str) -> String {
    match model_file.strip_suffix(".json") {
        Some(stem) => format!("{stem}.leaves.json"),
        None => format!("{model_file}.leaves.json"),
    }
}

/// Loads the artifact in `dir`, which must hold a model of kind `expected`.
pub fn load(dir: &Path, expected: ModelKind) -> Result<LoadedModel, LoadError> {
    let metadata_path = dir.join(METADATA_FILE);
    let metadata: ModelMetadata = serde_json::from_slice(&read(&metadata_path)?).map_err(|e| {
        // An artifact of an older format fails on a missing field: say which format instead.
        let format =
            serde_json::from_slice::<serde_json::Value>(&read(&metadata_path).unwrap_or_default())
                .ok()
                .and_then(|v| v["format_version"].as_u64());
        match format {
            Some(found) if found != u64::from(FORMAT_VERSION) => LoadError::Format {
                path: metadata_path.clone(),
                found: found as u32,
            },
            _ => LoadError::Corrupt {
                path: metadata_path.clone(),
                reason: e.to_string(),
            },
        }
    })?;
    if metadata.format_version != FORMAT_VERSION {
        return Err(LoadError::Format {
            path: metadata_path,
            found: metadata.format_version,
        });
    }
    if metadata.model != expected {
        return Err(LoadError::WrongKind {
            path: metadata_path,
            found: metadata.model,
            expected,
        });
    }
    metadata
        .forecast
        .check()
        .and_then(|()| {
            if metadata.window_sec == 0 {
                Err("the window (window_sec) must be at least 1 s".to_owned())
            } else {
                Ok(())
            }
        })
        .map_err(|reason| LoadError::Corrupt {
            path: metadata_path.clone(),
            reason,
        })?;
    let input = InputSpec::new(&metadata).map_err(|reason| LoadError::FeatureMismatch {
        path: metadata_path.clone(),
        reason,
    })?;
    let width = input.width();
    let levels = &metadata.forecast.levels;
    let predictor = |file: &String| -> Result<Predictor, LoadError> {
        let model_path = dir.join(file);
        let bytes = read(&model_path)?;
        let classify = |reason: String| {
            if reason.contains("features") || reason.contains("inputs") {
                LoadError::FeatureMismatch {
                    path: model_path.clone(),
                    reason,
                }
            } else {
                LoadError::Corrupt {
                    path: model_path.clone(),
                    reason,
                }
            }
        };
        match expected {
            ModelKind::Xgboost => Xgb::load(&bytes, &metadata.features, levels.len())
                .map(Predictor::Xgboost)
                .map_err(classify),
            ModelKind::RandomForest => {
                let trees = Trees::from_smartcore_json(&bytes, width).map_err(classify)?;
                let table_path = dir.join(leaf_file(file));
                let table: LeafTable =
                    serde_json::from_slice(&read(&table_path)?).map_err(|e| {
                        LoadError::Corrupt {
                            path: table_path.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                Forest::new(trees, &table, levels)
                    .map(Predictor::RandomForest)
                    .map_err(|reason| LoadError::Corrupt {
                        path: table_path,
                        reason,
                    })
            }
            ModelKind::LogisticRegression => Logistic::from_smartcore_json(&bytes, width)
                .map(Predictor::LogisticRegression)
                .map_err(classify),
        }
    };
    let predictors = Horizons {
        up: predictor(&metadata.model_files.up)?,
        down: predictor(&metadata.model_files.down)?,
    };
    Ok(LoadedModel {
        metadata,
        input,
        predictors,
    })
}

/// Writes an artifact: the model files (with their leaf tables, for a forest) and the metadata.
pub fn save(
    dir: &Path,
    metadata: &ModelMetadata,
    model_files: Horizons<&[u8]>,
    leaf_tables: Option<Horizons<&LeafTable>>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(&metadata.model_files.up), model_files.up)?;
    std::fs::write(dir.join(&metadata.model_files.down), model_files.down)?;
    if let Some(tables) = leaf_tables {
        for (file, table) in [
            (&metadata.model_files.up, tables.up),
            (&metadata.model_files.down, tables.down),
        ] {
            std::fs::write(dir.join(leaf_file(file)), serde_json::to_vec(table)?)?;
        }
    }
    let mut json = serde_json::to_vec_pretty(metadata)?;
    json.push(b'\n');
    std::fs::write(dir.join(METADATA_FILE), json)
}

impl LoadedModel {
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    pub fn kind(&self) -> ModelKind {
        self.metadata.model
    }

    /// How this model reads feature vectors.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// The raw quantiles (before corrections) of prepared input rows (row-major, as
    /// [`InputSpec::row`] makes them) over one horizon: one value per level, row after row.
    pub fn raw_quantiles_of_rows(&self, rows: &[f64], up: bool) -> Result<Vec<f64>, String> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let width = self.input.width();
        let levels = &self.metadata.forecast.levels;
        let predictor = if up {
            &self.predictors.up
        } else {
            &self.predictors.down
        };
        let mut out = Vec::with_capacity(rows.len() / width * levels.len());
        match predictor {
            Predictor::Xgboost(x) => out = x.quantiles(rows)?,
            Predictor::RandomForest(f) => {
                for row in rows.chunks_exact(width) {
                    f.quantiles(row, &mut out);
                }
            }
            Predictor::LogisticRegression(l) => {
                for row in rows.chunks_exact(width) {
                    l.quantiles(row, levels, &mut out);
                }
            }
        }
        Ok(out)
    }

    /// The forecasts of many feature vectors, corrected, with one call into the model per
    /// horizon (one call into libxgboost costs about 65 µs whatever its size).
    pub fn forecasts(&self, vectors: &[Features]) -> Result<Vec<Forecast>, String> {
        let mut rows = Vec::with_capacity(vectors.len() * self.input.width());
        for v in vectors {
            self.input.push_row(v, &mut rows);
        }
        let spec = &self.metadata.forecast;
        let levels = spec.levels.len();
        let up = self.raw_quantiles_of_rows(&rows, true)?;
        let down = self.raw_quantiles_of_rows(&rows, false)?;
        if up.len() != vectors.len() * levels || down.len() != up.len() {
            return Err(format!(
                "{} quantiles for {} vectors of {levels} levels",
                up.len(),
                vectors.len()
            ));
        }
        let corrected = |raw: &[f64], corrections: &[f64]| {
            let values: Vec<f64> = raw.iter().zip(corrections).map(|(q, c)| q + c).collect();
            Distribution::new(&spec.levels, &values)
        };
        Ok(up
            .chunks_exact(levels)
            .zip(down.chunks_exact(levels))
            .map(|(u, d)| Forecast {
                up: corrected(u, &spec.corrections.up),
                down: corrected(d, &spec.corrections.down),
            })
            .collect())
    }

    /// The vote on one feature vector at quantile `level` (see [`vote`]).
    pub fn vote(&self, features: &Features, level: f64) -> Result<VoteDecision, String> {
        self.votes(std::slice::from_ref(features), level)?
            .pop()
            .ok_or_else(|| "no vote".to_owned())
    }

    /// The votes on many feature vectors at quantile `level`, with one call into the model per
    /// horizon.
    pub fn votes(&self, vectors: &[Features], level: f64) -> Result<Vec<VoteDecision>, String> {
        let floor = self.metadata.forecast.rate_floor;
        Ok(self
            .forecasts(vectors)?
            .iter()
            .zip(vectors)
            .map(|(forecast, features)| decide(features, forecast, level, floor))
            .collect())
    }

    /// The votes on feature vectors of either kind: an HTTP service's by [`decide`], a consumer
    /// group's by [`vote::decide_group`], from the same forecasts; with a `calibrator` (made by
    /// [`LoadedModel::calibrator`] at the same `level`), each HTTP service's forecast is first
    /// corrected by what the calibrator learned of its service, and teaches it.
    pub fn votes_on(
        &self,
        vectors: &[FeatureVector],
        level: f64,
        mut calibrator: Option<&mut Calibrator>,
    ) -> Result<Vec<VoteDecision>, String> {
        let floor = self.metadata.forecast.rate_floor;
        let horizon_sec = |windows: u32| f64::from(windows) * f64::from(self.metadata.window_sec);
        let (up_horizon_sec, down_horizon_sec) = (
            horizon_sec(self.metadata.forecast.horizons.up),
            horizon_sec(self.metadata.forecast.horizons.down),
        );
        let features: Vec<Features> = vectors.iter().map(|v| v.features).collect();
        Ok(self
            .forecasts(&features)?
            .into_iter()
            .zip(vectors)
            .map(|(forecast, v)| {
                // A consumer group's forecasts are used as the model gives them: its lag absorbs
                // a short overrun, and each change of its count costs a rebalance (calibrated,
                // the groups of the held-out Twitter day rebalanced 1.7 times as often).
                let forecast = match calibrator.as_deref_mut() {
                    Some(c) if v.consumer_group.is_none() => c.calibrate(
                        &v.service,
                        v.window_id,
                        u64::from(v.poll_interval_sec),
                        v.features.request_rate,
                        forecast,
                    ),
                    _ => forecast,
                };
                match &v.consumer_group {
                    Some(group) => vote::decide_group(
                        &v.features,
                        group,
                        &forecast,
                        level,
                        floor,
                        up_horizon_sec,
                        down_horizon_sec,
                    ),
                    None => decide(&v.features, &forecast, level, floor),
                }
            })
            .collect())
    }

    /// A calibrator of this model's forecasts at quantile `level`, moving by `step` (see
    /// [`calibration`]; 0 turns it off).
    pub fn calibrator(&self, level: f64, step: f64) -> Calibrator {
        let spec = &self.metadata.forecast;
        Calibrator::new(level, step, spec.rate_floor, spec.horizons)
    }
}
