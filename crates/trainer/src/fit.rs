//! Fitting each kind of model, and writing it as the artifact the inference service loads.
//!
//! Every model forecasts, per horizon, quantiles of the log ratio of the next windows' peak
//! request rate to this window's: XGBoost with its quantile loss at every level at once, Random
//! Forest as a quantile regression forest, Logistic Regression as a threshold model. Inputs are
//! built by the serving code itself ([`models::InputSpec`]), so training and inference read a
//! feature vector the same way. Each fitted model is saved, loaded back through
//! [`models::load`], corrected on the calibration windows (conformal: per level, the shift that
//! makes the quantile hold there), and saved again with its corrections.

use crate::dataset::Example;
use indicatif::ProgressBar;
use models::{
    ForecastSpec, Horizons, InputSpec, LeafTable, LoadedModel, ModelKind, ModelMetadata,
    Standardization, TrainingInfo, Trees, empirical_quantile,
};
use serde_json::json;
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
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
    /// Windows the logistic regression is fitted on at most (each appears once per threshold).
    pub lr_max_rows: usize,
}

impl Default for Hyper {
    fn default() -> Self {
        Self {
            seed: 42,
            xgb_rounds: 100,
            xgb_max_depth: 5,
            xgb_eta: 0.1,
            rf_trees: 40,
            rf_max_depth: 10,
            rf_min_samples_leaf: 60,
            lr_alpha: 0.01,
            lr_max_rows: 10_000,
        }
    }
}

/// Levels of the logistic regression's threshold grid: each window appears once per threshold,
/// the training targets' quantile at each of these.
const LR_THRESHOLD_LEVELS: [f64; 14] = [
    0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.995,
];

/// What is needed to write an artifact, apart from the model files.
pub struct Plan<'a> {
    pub kind: ModelKind,
    pub features: &'a [String],
    /// Levels, horizons, default quantile and rate floor; the corrections are measured here.
    pub forecast: ForecastSpec,
    pub training: TrainingInfo,
    pub sla: models::Sla,
    pub window_sec: u32,
    pub hyper: &'a Hyper,
}

/// The value a missing input takes: "no change" for the ratios, none for the spreads and
/// slopes.
pub fn neutral_value(feature: &str) -> f64 {
    let spec = contract::FEATURE_SCHEMA.iter().find(|s| s.name == feature);
    if spec.is_some_and(|s| s.unit == "ratio") && feature != "rate_cv_long" {
        1.0
    } else {
        0.0
    }
}

/// Fits `plan.kind` on `train`, corrects it on `calibration`, writes the artifact to `dir` and
/// loads it back.
pub fn fit(
    plan: Plan<'_>,
    train: &[&Example],
    calibration: &[&Example],
    dir: &Path,
    progress: &ProgressBar,
) -> anyhow::Result<LoadedModel> {
    if train.is_empty() {
        anyhow::bail!("no windows to fit on");
    }
    let levels = plan.forecast.levels.clone();
    let mut metadata = ModelMetadata {
        format_version: models::FORMAT_VERSION,
        model: plan.kind,
        model_version: String::new(),
        features: plan.features.to_vec(),
        imputation: plan.features.iter().map(|f| neutral_value(f)).collect(),
        standardization: None,
        forecast: ForecastSpec {
            corrections: Horizons {
                up: vec![0.0; levels.len()],
                down: vec![0.0; levels.len()],
            },
            ..plan.forecast
        },
        sla: plan.sla,
        window_sec: plan.window_sec,
        training: plan.training,
        library: String::new(),
        model_files: plan.kind.model_files(),
    };
    metadata.model_version = format!(
        "{}-{}-{}",
        plan.kind,
        &metadata.training.data_sha256[..8.min(metadata.training.data_sha256.len())],
        metadata.training.trained_at.format("%Y%m%d")
    );
    let spec = InputSpec::new(&metadata).map_err(anyhow::Error::msg)?;
    let raw = rows(&spec, train);
    let targets = |up: bool| -> Vec<f64> {
        train
            .iter()
            .map(|e| if up { e.targets.up } else { e.targets.down })
            .collect()
    };
    let (targets_up, targets_down) = (targets(true), targets(false));
    let h = plan.hyper;
    progress.set_length(2);
    let (files, tables) = match plan.kind {
        ModelKind::Xgboost => {
            metadata.training.parameters = json!({
                "objective": "reg:quantileerror", "quantile_alpha": levels,
                "rounds": h.xgb_rounds, "max_depth": h.xgb_max_depth, "eta": h.xgb_eta,
                "subsample": 0.8, "min_child_weight": 5, "tree_method": "hist", "seed": h.seed,
            });
            let up = fit_xgboost(&raw, &targets_up, plan.features, &levels, h)?;
            progress.inc(1);
            let down = fit_xgboost(&raw, &targets_down, plan.features, &levels, h)?;
            progress.inc(1);
            metadata.library = format!("libxgboost {} (xgb crate 3.4)", xgboost_version(&up));
            (Horizons { up, down }, None)
        }
        ModelKind::RandomForest => {
            metadata.library = "smartcore 0.7".into();
            metadata.training.parameters = json!({
                "n_trees": h.rf_trees, "max_depth": h.rf_max_depth,
                "min_samples_leaf": h.rf_min_samples_leaf, "m": "features / 3",
                "seed": h.seed, "quantiles": "per leaf, of the training targets",
            });
            let width = spec.width();
            let fit_one = |y: &[f64]| -> anyhow::Result<(Vec<u8>, LeafTable)> {
                let params = RandomForestRegressorParameters::default()
                    .with_n_trees(usize::from(h.rf_trees))
                    .with_max_depth(h.rf_max_depth)
                    .with_min_samples_leaf(h.rf_min_samples_leaf)
                    .with_seed(h.seed);
                let forest: models::SmartcoreForest =
                    RandomForestRegressor::fit(&matrix(&raw)?, &y.to_vec(), params)
                        .map_err(|e| anyhow::anyhow!("random forest: {e}"))?;
                let bytes = serde_json::to_vec(&forest)?;
                let trees =
                    Trees::from_smartcore_json(&bytes, width).map_err(anyhow::Error::msg)?;
                let table = LeafTable::build(&trees, &raw, y, &levels);
                progress.inc(1);
                Ok((bytes, table))
            };
            let (up, up_table) = fit_one(&targets_up)?;
            let (down, down_table) = fit_one(&targets_down)?;
            (
                Horizons { up, down },
                Some(Horizons {
                    up: up_table,
                    down: down_table,
                }),
            )
        }
        ModelKind::LogisticRegression => {
            metadata.library = "smartcore 0.7".into();
            metadata.training.parameters = json!({
                "solver": "lbfgs", "alpha": h.lr_alpha, "standardized": true,
                "thresholds": "the training targets' quantiles at the levels below",
                "threshold_levels": LR_THRESHOLD_LEVELS, "max_rows": h.lr_max_rows,
            });
            metadata.standardization = Some(standardize(&raw, plan.features.len()));
            let spec = InputSpec::new(&metadata).map_err(anyhow::Error::msg)?;
            let scaled = rows(&spec, train);
            let fit_one = |y: &[f64]| -> anyhow::Result<Vec<u8>> {
                let bytes = fit_threshold_logistic(&scaled, y, h)?;
                progress.inc(1);
                Ok(bytes)
            };
            let up = fit_one(&targets_up)?;
            let down = fit_one(&targets_down)?;
            (Horizons { up, down }, None)
        }
    };
    let save = |metadata: &ModelMetadata| -> anyhow::Result<LoadedModel> {
        models::save(
            dir,
            metadata,
            Horizons {
                up: files.up.as_slice(),
                down: files.down.as_slice(),
            },
            tables.as_ref().map(|t| t.as_ref()),
        )?;
        Ok(models::load(dir, plan.kind)?)
    };
    let uncorrected = save(&metadata)?;
    metadata.training.calibration_rows = calibration.len();
    metadata.forecast.corrections = corrections(&uncorrected, calibration, &levels)?;
    save(&metadata)
}

/// Per horizon and level, the shift that makes the level's quantile hold on `calibration`
/// (split conformal: the level's empirical quantile of target minus forecast, with the
/// finite-sample adjustment). None measured without calibration windows.
pub fn corrections(
    model: &LoadedModel,
    calibration: &[&Example],
    levels: &[f64],
) -> anyhow::Result<Horizons<Vec<f64>>> {
    if calibration.is_empty() {
        return Ok(Horizons {
            up: vec![0.0; levels.len()],
            down: vec![0.0; levels.len()],
        });
    }
    let rows = rows(model.input(), calibration).concat();
    let n = calibration.len();
    let per_horizon = |up: bool| -> anyhow::Result<Vec<f64>> {
        let raw = model
            .raw_quantiles_of_rows(&rows, up)
            .map_err(anyhow::Error::msg)?;
        Ok(levels
            .iter()
            .enumerate()
            .map(|(l, level)| {
                let mut residuals: Vec<f64> = calibration
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let target = if up { e.targets.up } else { e.targets.down };
                        target - raw[i * levels.len() + l]
                    })
                    .filter(|r| r.is_finite())
                    .collect();
                residuals.sort_by(f64::total_cmp);
                let adjusted = (level * (n as f64 + 1.0) / n as f64).min(1.0);
                let shift = empirical_quantile(&residuals, adjusted);
                if shift.is_finite() { shift } else { 0.0 }
            })
            .collect())
    };
    Ok(Horizons {
        up: per_horizon(true)?,
        down: per_horizon(false)?,
    })
}

/// Input rows of the examples, as the serving code builds them.
pub fn rows(spec: &InputSpec, examples: &[&Example]) -> Vec<Vec<f64>> {
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

fn fit_xgboost(
    rows: &[Vec<f64>],
    targets: &[f64],
    features: &[String],
    levels: &[f64],
    h: &Hyper,
) -> anyhow::Result<Vec<u8>> {
    let data: Vec<f32> = rows.iter().flatten().map(|v| *v as f32).collect();
    let mut dtrain = DMatrix::from_dense(&data, rows.len())?;
    dtrain.set_labels(&targets.iter().map(|y| *y as f32).collect::<Vec<_>>())?;
    let params = BoosterParametersBuilder::default()
        .verbose(false)
        .threads(Some(2))
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut booster = Booster::new_with_cached_dmats(&params, &[&dtrain])?;
    let alphas: Vec<String> = levels.iter().map(f64::to_string).collect();
    for (name, value) in [
        ("objective", "reg:quantileerror".to_owned()),
        ("quantile_alpha", format!("[{}]", alphas.join(","))),
        ("max_depth", h.xgb_max_depth.to_string()),
        ("eta", h.xgb_eta.to_string()),
        ("subsample", "0.8".into()),
        ("min_child_weight", "5".into()),
        ("tree_method", "hist".into()),
        ("seed", h.seed.to_string()),
    ] {
        booster.set_param(name, &value)?;
    }
    let names: Vec<&str> = features.iter().map(String::as_str).collect();
    booster.set_feature_names(&names)?;
    for round in 0..h.xgb_rounds {
        booster.update(&dtrain, round as i32)?;
    }
    Ok(booster.save_buffer(true)?)
}

/// The threshold model: every window once per threshold of the grid, labelled by whether its
/// target exceeds it; the threshold is the last input.
fn fit_threshold_logistic(
    rows: &[Vec<f64>],
    targets: &[f64],
    h: &Hyper,
) -> anyhow::Result<Vec<u8>> {
    let mut sorted: Vec<f64> = targets.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut thresholds: Vec<f64> = LR_THRESHOLD_LEVELS
        .iter()
        .map(|l| empirical_quantile(&sorted, *l))
        .collect();
    thresholds.dedup();
    // Evenly spaced windows when there are more than the cap.
    let step = (rows.len() / h.lr_max_rows.max(1)).max(1);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for (row, target) in rows.iter().zip(targets).step_by(step) {
        for t in &thresholds {
            let mut augmented = row.clone();
            augmented.push(*t);
            x.push(augmented);
            y.push(i32::from(target > t));
        }
    }
    if !y.contains(&0) || !y.contains(&1) {
        anyhow::bail!("the targets do not vary: nothing to fit a distribution on");
    }
    let params = LogisticRegressionParameters::default().with_alpha(h.lr_alpha);
    let model: models::SmartcoreLogistic = LogisticRegression::fit(&matrix(&x)?, &y, params)
        .map_err(|e| anyhow::anyhow!("logistic regression: {e}"))?;
    Ok(serde_json::to_vec(&model)?)
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
