//! Fitting each kind of model, and writing it as the artifact the inference service loads.
//!
//! Inputs are built by the serving code itself ([`models::InputSpec`]), so training and
//! inference read a feature vector the same way, imputation and standardization included. Every
//! fitted model is saved and loaded back through [`models::load`] before anything predicts with
//! it: the evaluation runs the artifact, not an in-memory object that might differ from it.

use crate::dataset::Example;
use indicatif::ProgressBar;
use models::{
    InputSpec, LoadedModel, ModelKind, ModelMetadata, Standardization, Thresholds, TrainingInfo,
};
use serde_json::json;
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use std::path::Path;
use xgb::parameters::BoosterParametersBuilder;
use xgb::{Booster, DMatrix};

/// Hyperparameters, fixed and recorded in each artifact's metadata.
#[derive(Debug, Clone)]
pub struct Hyper {
    pub seed: u64,
    pub xgb_rounds: u32,
    pub xgb_max_depth: u32,
    pub xgb_eta: f64,
    pub rf_trees: u16,
    pub rf_max_depth: u16,
    pub rf_min_samples_leaf: usize,
    pub lr_alpha: f64,
}

impl Default for Hyper {
    fn default() -> Self {
        Self {
            seed: 42,
            xgb_rounds: 150,
            xgb_max_depth: 4,
            xgb_eta: 0.1,
            rf_trees: 100,
            rf_max_depth: 8,
            rf_min_samples_leaf: 3,
            lr_alpha: 0.01,
        }
    }
}

/// Features on which P(violation) may only rise: more load per replica never makes a violation
/// less likely. Given to XGBoost as monotone constraints, so that the safe-replica search sees
/// a probability that falls as replicas are added.
const RISING: [&str; 2] = ["request_rate_per_replica", "cpu_per_replica"];

/// What is needed to write an artifact, apart from the model file.
pub struct Plan<'a> {
    pub kind: ModelKind,
    pub features: &'a [String],
    pub thresholds: Thresholds,
    pub training: TrainingInfo,
    pub sla: models::Sla,
    pub window_sec: u32,
    pub hyper: &'a Hyper,
}

/// Fits `plan.kind` on `examples`, writes the artifact to `dir` and loads it back.
pub fn fit(
    plan: Plan<'_>,
    examples: &[&Example],
    dir: &Path,
    progress: &ProgressBar,
) -> anyhow::Result<LoadedModel> {
    let mut metadata = ModelMetadata {
        format_version: models::FORMAT_VERSION,
        model: plan.kind,
        model_version: String::new(),
        features: plan.features.to_vec(),
        imputation: vec![0.0; plan.features.len()],
        standardization: None,
        thresholds: plan.thresholds,
        sla: plan.sla,
        window_sec: plan.window_sec,
        training: plan.training,
        library: String::new(),
        model_file: "model.json".into(),
    };
    metadata.model_version = format!(
        "{}-{}-{}",
        plan.kind,
        &metadata.training.data_sha256[..8.min(metadata.training.data_sha256.len())],
        metadata.training.trained_at.format("%Y%m%d")
    );
    let labels: Vec<i32> = examples.iter().map(|e| i32::from(e.label)).collect();
    if !labels.contains(&0) || !labels.contains(&1) {
        anyhow::bail!("the training set needs both violations and non-violations");
    }
    let raw = rows(
        &InputSpec::new(&metadata).map_err(anyhow::Error::msg)?,
        examples,
    );
    let h = plan.hyper;
    let model_file = match plan.kind {
        ModelKind::Xgboost => {
            metadata.training.parameters = json!({
                "objective": "binary:logistic", "rounds": h.xgb_rounds, "max_depth": h.xgb_max_depth,
                "eta": h.xgb_eta, "subsample": 0.8, "min_child_weight": 2, "seed": h.seed,
                "monotone_constraints": monotone(plan.features),
            });
            let file = fit_xgboost(&raw, &labels, plan.features, h, progress)?;
            metadata.library = format!("libxgboost {} (xgb crate 3.4)", xgboost_version(&file));
            file
        }
        ModelKind::RandomForest => {
            metadata.library = "smartcore 0.7".into();
            metadata.training.parameters = json!({
                "n_trees": h.rf_trees, "max_depth": h.rf_max_depth,
                "min_samples_leaf": h.rf_min_samples_leaf, "criterion": "gini",
                "m": "sqrt(features)", "seed": h.seed,
            });
            progress.set_length(1);
            let x = matrix(&raw)?;
            let params = RandomForestClassifierParameters::default()
                .with_n_trees(h.rf_trees)
                .with_max_depth(h.rf_max_depth)
                .with_min_samples_leaf(h.rf_min_samples_leaf)
                .with_seed(h.seed);
            let forest: models::SmartcoreForest = RandomForestClassifier::fit(&x, &labels, params)
                .map_err(|e| anyhow::anyhow!("random forest: {e}"))?;
            progress.inc(1);
            serde_json::to_vec(&forest)?
        }
        ModelKind::LogisticRegression => {
            metadata.library = "smartcore 0.7".into();
            metadata.training.parameters =
                json!({ "solver": "lbfgs", "alpha": h.lr_alpha, "standardized": true });
            let standardization = standardize(&raw, plan.features.len());
            metadata.standardization = Some(standardization);
            let scaled = rows(
                &InputSpec::new(&metadata).map_err(anyhow::Error::msg)?,
                examples,
            );
            progress.set_length(1);
            let params = LogisticRegressionParameters::default().with_alpha(h.lr_alpha);
            let model: models::SmartcoreLogistic =
                LogisticRegression::fit(&matrix(&scaled)?, &labels, params)
                    .map_err(|e| anyhow::anyhow!("logistic regression: {e}"))?;
            progress.inc(1);
            serde_json::to_vec(&model)?
        }
    };
    models::save(dir, &metadata, &model_file)?;
    Ok(models::load(dir, plan.kind)?)
}

/// Input rows of the examples, as the serving code builds them.
fn rows(spec: &InputSpec, examples: &[&Example]) -> Vec<Vec<f64>> {
    examples
        .iter()
        .map(|e| spec.row(&e.vector.features))
        .collect()
}

fn matrix(rows: &[Vec<f64>]) -> anyhow::Result<DenseMatrix<f64>> {
    DenseMatrix::from_2d_vec(&rows.to_vec()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Mean and standard deviation per column; a constant column gets deviation 1.
fn standardize(rows: &[Vec<f64>], width: usize) -> Standardization {
    let n = rows.len().max(1) as f64;
    let mean: Vec<f64> = (0..width)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let std = (0..width)
        .map(|j| {
            let var = rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
            let sd = var.sqrt();
            if sd > 1e-12 { sd } else { 1.0 }
        })
        .collect();
    Standardization { mean, std }
}

fn monotone(features: &[String]) -> String {
    let signs: Vec<&str> = features
        .iter()
        .map(|f| {
            if RISING.contains(&f.as_str()) {
                "1"
            } else {
                "0"
            }
        })
        .collect();
    format!("({})", signs.join(","))
}

fn fit_xgboost(
    rows: &[Vec<f64>],
    labels: &[i32],
    features: &[String],
    h: &Hyper,
    progress: &ProgressBar,
) -> anyhow::Result<Vec<u8>> {
    let data: Vec<f32> = rows.iter().flatten().map(|v| *v as f32).collect();
    let mut dtrain = DMatrix::from_dense(&data, rows.len())?;
    dtrain.set_labels(&labels.iter().map(|l| *l as f32).collect::<Vec<_>>())?;
    let params = BoosterParametersBuilder::default()
        .verbose(false)
        .threads(Some(1))
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut booster = Booster::new_with_cached_dmats(&params, &[&dtrain])?;
    for (name, value) in [
        ("objective", "binary:logistic".to_owned()),
        ("max_depth", h.xgb_max_depth.to_string()),
        ("eta", h.xgb_eta.to_string()),
        ("subsample", "0.8".into()),
        ("min_child_weight", "2".into()),
        ("seed", h.seed.to_string()),
        ("monotone_constraints", monotone(features)),
        ("eval_metric", "logloss".into()),
    ] {
        booster.set_param(name, &value)?;
    }
    let names: Vec<&str> = features.iter().map(String::as_str).collect();
    booster.set_feature_names(&names)?;
    progress.set_length(u64::from(h.xgb_rounds));
    for round in 0..h.xgb_rounds {
        booster.update(&dtrain, round as i32)?;
        progress.inc(1);
    }
    Ok(booster.save_buffer(false)?)
}

/// The version of libxgboost that wrote a JSON model (its top-level `version` field).
fn xgboost_version(model_json: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(model_json).unwrap_or_default();
    match value["version"].as_array() {
        Some(parts) => parts
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("."),
        None => "unknown".into(),
    }
}
