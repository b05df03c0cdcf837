//! A small synthetic dataset with the shape of a real one: the next windows' peak rises with the
//! recent peak and the trend, plus noise; the service carries [`CAPACITY`] requests per second
//! per replica. For tests and benchmarks that need trained models without the committed data.

use crate::dataset::Example;
use crate::fit::{Hyper, Plan, fit};
use chrono::DateTime;
use contract::{FeatureVector, Sla};
use features::synthetic::with_history;
pub use features::synthetic::{CAPACITY, features};
use indicatif::ProgressBar;
use models::{ForecastSpec, Horizons, LoadedModel, ModelKind, TrainingInfo};
use std::path::Path;

/// A deterministic number in [0, 1) for window `i` and stream `k`, scrambled (Knuth's
/// multiplicative hash) so that it does not follow the windows' features.
fn noise(i: usize, k: usize) -> f64 {
    let h = (i as u64 ^ (k as u64) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 40) as f64 / (1u64 << 24) as f64
}

/// `n` windows over loads of 0 to 100 req/s per replica and 1 to 4 replicas, whose next peak is
/// up to twice the recent one.
pub fn examples(n: usize, offset: usize) -> Vec<Example> {
    (offset..offset + n)
        .map(|i| {
            let rate = (i * 37 % 100) as f64;
            let replicas = (i % 4 + 1) as u32;
            // A coarse grid of histories, each seen with many outcomes.
            let recent_max = 1.0 + (i % 10) as f64 / 10.0;
            let trend = ((i / 10) % 10) as f64 / 10.0 - 0.5;
            let up = 0.05 + 0.6 * recent_max.ln() + 0.2 * trend + 0.2 * noise(i, 3);
            let at = DateTime::from_timestamp(1_000 + i as i64 * 10, 0).unwrap_or_default();
            Example {
                run: 0,
                vector: FeatureVector {
                    service: "demo".into(),
                    window_id: at.timestamp() as u64,
                    window_start: at,
                    window_end: at,
                    poll_interval_sec: 10,
                    produced_at: at,
                    features: with_history(rate, replicas, recent_max, trend),
                    consumer_group: None,
                },
                targets: Horizons {
                    up,
                    down: up + 0.1 * noise(i, 4),
                },
                violation_ahead: rate * up.exp() > CAPACITY,
                steady_ahead: true,
                violating_now: rate > CAPACITY,
            }
        })
        .collect()
}

/// The default model features.
pub fn feature_names() -> Vec<String> {
    crate::config::DEFAULT_FEATURES
        .split(',')
        .map(|f| f.trim().to_owned())
        .collect()
}

/// Trains `kind` on [`examples`] (400 windows to fit, 100 to correct, small hyperparameters)
/// into `dir`.
pub fn train(kind: ModelKind, dir: &Path, features: &[String]) -> anyhow::Result<LoadedModel> {
    let fitted = examples(400, 0);
    let corrected = examples(100, 400);
    let refs: Vec<&Example> = fitted.iter().collect();
    let calibration: Vec<&Example> = corrected.iter().collect();
    let hyper = Hyper {
        xgb_rounds: 60,
        xgb_eta: 0.3,
        rf_trees: 20,
        rf_min_samples_leaf: 10,
        lr_max_rows: 400,
        ..Hyper::default()
    };
    let levels = vec![0.1, 0.5, 0.9, 0.99];
    let plan = Plan {
        kind,
        features,
        forecast: ForecastSpec {
            corrections: Horizons {
                up: vec![0.0; levels.len()],
                down: vec![0.0; levels.len()],
            },
            levels,
            horizons: Horizons { up: 3, down: 9 },
            default_quantile: 0.9,
            rate_floor: ::features::RATE_FLOOR,
        },
        training: TrainingInfo {
            data_sha256: "5e7e71c0synthetic".into(),
            rows: refs.len(),
            calibration_rows: calibration.len(),
            runs: vec!["synthetic".into()],
            held_out_patterns: vec![],
            calibration_patterns: vec![],
            trained_at: chrono::Utc::now(),
            parameters: serde_json::Value::Null,
        },
        sla: Sla::DEFAULT,
        window_sec: 10,
        hyper: &hyper,
    };
    fit(plan, &refs, &calibration, dir, &ProgressBar::hidden())
}
