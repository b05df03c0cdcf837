//! The trainer: development-mode CSVs in, the three models out, with the seed's evaluation table
//! measured on held-out runs.
//!
//! 1. [`dataset`]: rows assigned to experiment runs and labelled by the *next* window's SLA.
//! 2. Runs of the held-out patterns are set aside; they are never seen in training or tuning.
//! 3. Per model, the decision threshold is tuned on out-of-fold predictions of a cross-validation
//!    grouped by run (never rows of one run on both sides), where `VIOLATION_COST x misses +
//!    false alarms` is least.
//! 4. Each model is fitted on all training runs, written to `models/<model>/`, loaded back, and
//!    evaluated on the held-out runs with the ensemble's majority vote and a persistence baseline.

pub mod config;
pub mod dataset;
pub mod evaluation;
pub mod fit;
mod report;
pub mod synthetic;

pub use config::TrainerConfig;
pub use fit::Hyper;
pub use report::table as report_table;

use dataset::Example;
use evaluation::{Scores, score, threshold_for_cost};
use indicatif::{ProgressBar, ProgressStyle};
use models::{LoadedModel, ModelKind, Sla, Thresholds, TrainingInfo};
use serde::Serialize;
use std::collections::BTreeSet;

/// One model's result.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    pub model: ModelKind,
    pub model_version: String,
    pub thresholds: Thresholds,
    /// Recall and precision of the tuned threshold on the out-of-fold training predictions.
    pub cross_validation: Scores,
    /// The held-out evaluation.
    pub held_out: Scores,
}

/// Everything the trainer measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub data_sha256: String,
    pub window_sec: u32,
    pub sla: Sla,
    pub features: Vec<String>,
    pub held_out_patterns: Vec<String>,
    /// A missed violation's cost in false alarms, which the thresholds minimise.
    pub violation_cost: f64,
    pub train_rows: usize,
    pub train_positives: usize,
    pub test_rows: usize,
    pub test_positives: usize,
    /// Held-out violations that begin in the next window: the current one is within the SLA.
    pub test_onsets: usize,
    pub train_runs: Vec<String>,
    pub test_runs: Vec<String>,
    pub dropped: dataset::Dropped,
    /// Runs left out, with the file that says why.
    pub excluded_runs: Vec<String>,
    /// Rows and violations per pattern.
    pub per_pattern: Vec<(String, usize, usize)>,
    pub models: Vec<ModelResult>,
    /// Majority of the three models, each at its own threshold.
    pub ensemble_majority: Option<Scores>,
    /// "The next window violates iff this one does": what a model must beat.
    pub persistence_baseline: Scores,
    pub trained_at: chrono::DateTime<chrono::Utc>,
}

fn bar(message: String) -> ProgressBar {
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// Trains, evaluates and writes everything under `config.out`.
pub fn run(config: &TrainerConfig) -> anyhow::Result<Report> {
    let sla = Sla {
        p95_seconds: config.sla_p95_seconds,
        error_ratio: config.sla_error_ratio,
    };
    let excluded = dataset::read_excluded(&config.excluded_runs)?;
    let data = dataset::load(&config.data, &config.experiments, &excluded, &sla)?;
    let (train, test) = data.split(&config.held_out_patterns);
    let train: Vec<&Example> = train.iter().map(|i| &data.examples[*i]).collect();
    let test: Vec<&Example> = test.iter().map(|i| &data.examples[*i]).collect();
    if test.is_empty() {
        anyhow::bail!(
            "no held-out rows: no run has a pattern in {:?}",
            config.held_out_patterns
        );
    }
    let run_names = |set: &[&Example]| -> Vec<String> {
        let ids: BTreeSet<usize> = set.iter().map(|e| e.run).collect();
        ids.into_iter().map(|i| data.runs[i].id.clone()).collect()
    };
    tracing::info!(train = train.len(), held_out = test.len(), sha256 = %data.sha256, "dataset labelled");
    let trained_at = chrono::Utc::now();
    let training = TrainingInfo {
        data_sha256: data.sha256.clone(),
        rows: train.len(),
        positives: train.iter().filter(|e| e.label).count(),
        runs: run_names(&train),
        held_out_patterns: config.held_out_patterns.clone(),
        trained_at,
        parameters: serde_json::Value::Null,
    };
    let actual: Vec<bool> = test.iter().map(|e| e.label).collect();
    let mut results = Vec::new();
    let mut votes: Vec<Vec<bool>> = Vec::new();
    for kind in &config.models {
        let plan = |thresholds| fit::Plan {
            kind: *kind,
            features: &config.features,
            thresholds,
            training: training.clone(),
            sla,
            window_sec: data.window_sec,
            hyper: &config.hyper,
        };
        let (oof_actual, oof_scores) = cross_validate(*kind, &train, config, &plan)?;
        let up = threshold_for_cost(&oof_actual, &oof_scores, config.violation_cost);
        let thresholds = Thresholds {
            scale_up: up,
            scale_down: up * config.scale_down_ratio,
        };
        let oof_predicted: Vec<bool> = oof_scores.iter().map(|s| *s >= up).collect();
        let progress = bar(format!("{kind}: fitting on all training runs"));
        let dir = config.out.join(kind.as_str());
        let model = fit::fit(plan(thresholds), &train, &dir, &progress)?;
        progress.finish_and_clear();
        let probabilities = probabilities(&model, &test)?;
        let predicted: Vec<bool> = probabilities.iter().map(|p| *p >= up).collect();
        let held_out = score(&actual, &predicted, &probabilities);
        tracing::info!(model = %kind, threshold = up, recall = held_out.recall,
            precision = held_out.precision, auc = held_out.roc_auc, "held-out evaluation");
        votes.push(predicted);
        results.push(ModelResult {
            model: *kind,
            model_version: model.metadata().model_version.clone(),
            thresholds,
            cross_validation: score(&oof_actual, &oof_predicted, &oof_scores),
            held_out,
        });
    }
    let ensemble_majority = (votes.len() == 3).then(|| {
        let predicted: Vec<bool> = (0..actual.len())
            .map(|i| votes.iter().filter(|v| v[i]).count() >= 2)
            .collect();
        let share: Vec<f64> = (0..actual.len())
            .map(|i| votes.iter().filter(|v| v[i]).count() as f64 / 3.0)
            .collect();
        score(&actual, &predicted, &share)
    });
    let now: Vec<bool> = test.iter().map(|e| e.violating_now).collect();
    let persistence_baseline = score(
        &actual,
        &now,
        &now.iter()
            .map(|v| f64::from(u8::from(*v)))
            .collect::<Vec<_>>(),
    );
    let report = Report {
        data_sha256: data.sha256.clone(),
        window_sec: data.window_sec,
        sla,
        features: config.features.clone(),
        held_out_patterns: config.held_out_patterns.clone(),
        violation_cost: config.violation_cost,
        train_rows: train.len(),
        train_positives: train.iter().filter(|e| e.label).count(),
        test_rows: test.len(),
        test_positives: actual.iter().filter(|a| **a).count(),
        test_onsets: test.iter().filter(|e| e.label && !e.violating_now).count(),
        train_runs: run_names(&train),
        test_runs: run_names(&test),
        dropped: data.dropped.clone(),
        excluded_runs: excluded.clone(),
        per_pattern: data
            .per_pattern()
            .into_iter()
            .map(|(p, (n, v))| (p, n, v))
            .collect(),
        models: results,
        ensemble_majority,
        persistence_baseline,
        trained_at,
    };
    report::write(&config.out, &report)?;
    Ok(report)
}

fn probabilities(model: &LoadedModel, examples: &[&Example]) -> anyhow::Result<Vec<f64>> {
    let vectors: Vec<contract::Features> = examples.iter().map(|e| e.vector.features).collect();
    model.probabilities(&vectors).map_err(anyhow::Error::msg)
}

/// Out-of-fold probabilities of a cross-validation whose folds are whole runs.
fn cross_validate<'a>(
    kind: ModelKind,
    train: &[&Example],
    config: &TrainerConfig,
    plan: &dyn Fn(Thresholds) -> fit::Plan<'a>,
) -> anyhow::Result<(Vec<bool>, Vec<f64>)> {
    let runs: Vec<usize> = train
        .iter()
        .map(|e| e.run)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let folds = config.folds.clamp(2, runs.len().max(2));
    let fold_of = |run: usize| runs.iter().position(|r| *r == run).unwrap_or(0) % folds;
    let scratch = tempfile::tempdir()?;
    let progress = bar(format!("{kind}: cross-validation by run"));
    progress.set_length(folds as u64);
    let (mut actual, mut scores) = (Vec::new(), Vec::new());
    for fold in 0..folds {
        let (inside, outside): (Vec<&Example>, Vec<&Example>) =
            train.iter().copied().partition(|e| fold_of(e.run) != fold);
        if outside.is_empty() {
            continue;
        }
        let quiet = ProgressBar::hidden();
        let model = fit::fit(
            plan(Thresholds {
                scale_up: 0.5,
                scale_down: 0.25,
            }),
            &inside,
            &scratch.path().join(format!("fold-{fold}")),
            &quiet,
        )?;
        actual.extend(outside.iter().map(|e| e.label));
        scores.extend(probabilities(&model, &outside)?);
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok((actual, scores))
}
