//! The three models that vote: XGBoost (on libxgboost), Random Forest and Logistic Regression
//! (on smartcore). Each is an artifact directory, `models/<model>/`, holding the library's own
//! model file and `metadata.json` (features and their order, imputation, standardization,
//! thresholds, SLA, training data hash, library version).
//!
//! [`load`] refuses, with an error that says which, an artifact that is missing, corrupt, of
//! another kind, or whose feature list does not match the contract. [`LoadedModel::vote`] turns
//! a feature vector into a vote with the rule in [`vote`].

mod forest;
mod input;
mod logistic;
mod metadata;
pub mod vote;
mod xgboost;

pub use forest::{Forest, SmartcoreForest};
pub use input::{InputSpec, at_replicas};
pub use logistic::{Logistic, SmartcoreLogistic};
pub use metadata::{
    FORMAT_VERSION, METADATA_FILE, ModelKind, ModelMetadata, Sla, Standardization, Thresholds,
    TrainingInfo,
};
pub use vote::{VoteDecision, candidate_replicas, decide};
pub use xgboost::Xgb;

use contract::Features;
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

/// The model behind a [`LoadedModel`].
#[derive(Debug)]
enum Predictor {
    Xgboost(Xgb),
    RandomForest(Forest),
    LogisticRegression(Logistic),
}

/// A model ready to predict.
#[derive(Debug)]
pub struct LoadedModel {
    metadata: ModelMetadata,
    input: InputSpec,
    predictor: Predictor,
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

/// Loads the artifact in `dir`, which must hold a model of kind `expected`.
pub fn load(dir: &Path, expected: ModelKind) -> Result<LoadedModel, LoadError> {
    let metadata_path = dir.join(METADATA_FILE);
    let metadata: ModelMetadata =
        serde_json::from_slice(&read(&metadata_path)?).map_err(|e| LoadError::Corrupt {
            path: metadata_path.clone(),
            reason: e.to_string(),
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
    let input = InputSpec::new(&metadata).map_err(|reason| LoadError::FeatureMismatch {
        path: metadata_path.clone(),
        reason,
    })?;
    let model_path = dir.join(&metadata.model_file);
    let bytes = read(&model_path)?;
    let width = input.width();
    let predictor = match expected {
        ModelKind::Xgboost => Xgb::from_json(&bytes, &metadata.features).map(Predictor::Xgboost),
        ModelKind::RandomForest => {
            Forest::from_smartcore_json(&bytes, width).map(Predictor::RandomForest)
        }
        ModelKind::LogisticRegression => {
            Logistic::from_smartcore_json(&bytes, width).map(Predictor::LogisticRegression)
        }
    }
    .map_err(|reason| {
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
    })?;
    Ok(LoadedModel {
        metadata,
        input,
        predictor,
    })
}

/// Writes an artifact: the model file and its metadata.
pub fn save(dir: &Path, metadata: &ModelMetadata, model_file: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(&metadata.model_file), model_file)?;
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

    /// P(violation in the next window) for each feature vector, in one call to the model.
    pub fn probabilities(&self, vectors: &[Features]) -> Result<Vec<f64>, String> {
        let mut rows = Vec::with_capacity(vectors.len() * self.input.width());
        for v in vectors {
            self.input.push_row(v, &mut rows);
        }
        self.probabilities_of_rows(&rows)
    }

    /// P(violation) for prepared input rows (row-major), as [`InputSpec::row`] makes them.
    pub fn probabilities_of_rows(&self, rows: &[f64]) -> Result<Vec<f64>, String> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let width = self.input.width();
        Ok(match &self.predictor {
            Predictor::Xgboost(x) => x.probabilities(rows)?,
            Predictor::RandomForest(f) => {
                rows.chunks_exact(width).map(|r| f.probability(r)).collect()
            }
            Predictor::LogisticRegression(l) => {
                rows.chunks_exact(width).map(|r| l.probability(r)).collect()
            }
        })
    }

    /// How this model reads feature vectors.
    pub fn input(&self) -> &InputSpec {
        &self.input
    }

    /// The vote on one feature vector: P(violation) at every candidate replica count in one
    /// batch, then the rule of [`vote`].
    pub fn vote(&self, features: &Features) -> Result<VoteDecision, String> {
        self.votes(std::slice::from_ref(features))?
            .pop()
            .ok_or_else(|| "no vote".to_owned())
    }

    /// The votes on many feature vectors, with one call into the model for all their candidate
    /// replica counts (one call into libxgboost costs about 65 µs whatever its size).
    pub fn votes(&self, vectors: &[Features]) -> Result<Vec<VoteDecision>, String> {
        let mut currents = Vec::with_capacity(vectors.len());
        let mut candidates = Vec::new();
        for features in vectors {
            let current = features.replicas.round().max(1.0) as u32;
            let counts = candidate_replicas(current);
            candidates.extend(counts.iter().map(|r| at_replicas(features, *r)));
            currents.push((current, counts.len()));
        }
        let probabilities = self.probabilities(&candidates)?;
        if probabilities.len() != candidates.len() {
            return Err(format!(
                "{} probabilities for {} inputs",
                probabilities.len(),
                candidates.len()
            ));
        }
        let mut offset = 0;
        Ok(currents
            .into_iter()
            .map(|(current, n)| {
                let decision = decide(
                    current,
                    &probabilities[offset..offset + n],
                    self.metadata.thresholds,
                );
                offset += n;
                decision
            })
            .collect())
    }
}
