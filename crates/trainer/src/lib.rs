//! The trainer: development-mode CSVs (collected runs and replayed traces) in, the three
//! forecasting models out, with the seed's evaluation table and the forecasts' coverage measured
//! on held-out runs.
//!
//! 1. [`dataset`]: rows assigned to experiment runs, each with its targets: the highest request
//!    rate of the next windows against its own, over the scale-up and the scale-down horizon.
//! 2. Runs of the held-out patterns are set aside; they are never fitted or corrected on. Runs of
//!    the calibration patterns only correct the quantiles.
//! 3. Each model is fitted per horizon on the training runs, written to `models/<model>/`,
//!    loaded back, its quantiles corrected on the calibration runs (split conformal), and
//!    evaluated on each held-out pattern: coverage and pinball loss of its quantiles, and the
//!    seed's table for what its vote says (SCALE_UP: the current replicas will be overrun within
//!    the scale-up horizon), with the ensemble's majority and a persistence baseline.

pub mod config;
pub mod dataset;
pub mod evaluation;
pub mod fit;
mod report;
pub mod synthetic;

pub use config::TrainerConfig;
pub use fit::Hyper;
pub use report::{rewrite_readme, table as report_table};

use contract::Action;
use dataset::{Example, Targets};
use evaluation::{ForecastScores, Scores, forecast_scores, score};
use indicatif::{ProgressBar, ProgressStyle};
use models::{
    ForecastSpec, Horizons, LoadedModel, ModelKind, Sla, TrainingInfo, empirical_quantile,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One model on one held-out pattern.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldOut {
    pub pattern: String,
    pub forecast: Horizons<ForecastScores>,
    /// What the vote says against what the SLA did, on the windows whose replica count stayed
    /// the same over the scale-up horizon.
    pub classification: Scores,
}

/// One model's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    pub model: ModelKind,
    pub model_version: String,
    /// Conformal corrections per horizon and level.
    pub corrections: Horizons<Vec<f64>>,
    pub held_out: Vec<HeldOut>,
}

/// The baselines on one held-out pattern.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baselines {
    pub pattern: String,
    /// The training targets' own quantiles, the same for every window: what a forecast must
    /// beat to be worth anything.
    pub unconditional: Horizons<ForecastScores>,
    /// "The next windows violate iff this one does".
    pub persistence: Scores,
    /// Majority of the three models' votes.
    pub ensemble_majority: Option<Scores>,
    /// Windows of the classification, and of them followed by a violation.
    pub classified: usize,
    pub violations: usize,
}

/// Everything the trainer measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub data_sha256: String,
    pub window_sec: u32,
    pub sla: Sla,
    pub features: Vec<String>,
    pub forecast: ForecastSpec,
    pub held_out_patterns: Vec<String>,
    pub calibration_patterns: Vec<String>,
    pub train_rows: usize,
    pub calibration_rows: usize,
    pub test_rows: usize,
    pub train_runs: Vec<String>,
    pub test_runs: Vec<String>,
    pub dropped: dataset::Dropped,
    /// Runs left out, with the file that says why.
    pub excluded_runs: Vec<String>,
    /// Windows and windows followed by a violation, per pattern.
    pub per_pattern: Vec<(String, usize, usize)>,
    pub models: Vec<ModelResult>,
    pub baselines: Vec<Baselines>,
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
    let sla = config.sla();
    let forecast = ForecastSpec {
        levels: config.levels.clone(),
        horizons: Horizons {
            up: config.up_windows,
            down: config.down_windows,
        },
        corrections: Horizons {
            up: vec![0.0; config.levels.len()],
            down: vec![0.0; config.levels.len()],
        },
        default_quantile: config.default_quantile,
        rate_floor: features::RATE_FLOOR,
    };
    let targets = Targets {
        horizons: forecast.horizons,
        rate_floor: forecast.rate_floor,
        sla,
    };
    let excluded = dataset::read_excluded(&config.excluded_runs)?;
    let data = dataset::load(&config.data, &config.experiments, &excluded, &targets)?;
    let split = data.split(&config.calibration_patterns, &config.held_out_patterns);
    let pick = |indices: &[usize]| -> Vec<&Example> {
        indices.iter().map(|i| &data.examples[*i]).collect()
    };
    let (train, calibration, test) = (
        pick(&split.train),
        pick(&split.calibration),
        pick(&split.held_out),
    );
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
    tracing::info!(train = train.len(), calibration = calibration.len(), held_out = test.len(),
        sha256 = %data.sha256, "dataset ready");
    let trained_at = chrono::Utc::now();
    let training = TrainingInfo {
        data_sha256: data.sha256.clone(),
        rows: train.len(),
        calibration_rows: calibration.len(),
        runs: run_names(&train),
        held_out_patterns: config.held_out_patterns.clone(),
        calibration_patterns: config.calibration_patterns.clone(),
        trained_at,
        parameters: serde_json::Value::Null,
    };
    // Held-out windows by pattern, in the order the patterns are configured.
    let groups: Vec<(String, Vec<&Example>)> = config
        .held_out_patterns
        .iter()
        .map(|p| {
            let windows: Vec<&Example> = test
                .iter()
                .copied()
                .filter(|e| &data.runs[e.run].pattern == p)
                .collect();
            (p.clone(), windows)
        })
        .filter(|(_, w)| !w.is_empty())
        .collect();
    let mut results = Vec::new();
    // Per group, per model: the SCALE_UP votes on the classified windows.
    let mut up_votes: Vec<Vec<Vec<bool>>> = vec![Vec::new(); groups.len()];
    for kind in &config.models {
        let progress = bar(format!("{kind}: fitting both horizons"));
        let plan = fit::Plan {
            kind: *kind,
            features: &config.features,
            forecast: forecast.clone(),
            training: training.clone(),
            sla,
            window_sec: data.window_sec,
            hyper: &config.hyper,
        };
        let dir = config.out.join(kind.as_str());
        let model = fit::fit(plan, &train, &calibration, &dir, &progress)?;
        progress.finish_and_clear();
        let mut held_out = Vec::new();
        for (g, (pattern, windows)) in groups.iter().enumerate() {
            let evaluated = evaluate(&model, windows, config.default_quantile)?;
            up_votes[g].push(evaluated.up_votes);
            tracing::info!(model = %kind, pattern, coverage_up = ?evaluated.forecast.up.coverage,
                f1 = evaluated.classification.f1, "held-out evaluation");
            held_out.push(HeldOut {
                pattern: pattern.clone(),
                forecast: evaluated.forecast,
                classification: evaluated.classification,
            });
        }
        results.push(ModelResult {
            model: *kind,
            model_version: model.metadata().model_version.clone(),
            corrections: model.metadata().forecast.corrections.clone(),
            held_out,
        });
    }
    let unconditional = unconditional_quantiles(&train, &forecast.levels);
    let baselines = groups
        .iter()
        .zip(&up_votes)
        .map(|((pattern, windows), votes)| {
            baselines(pattern, windows, votes, &unconditional, &forecast)
        })
        .collect();
    let report = Report {
        data_sha256: data.sha256.clone(),
        window_sec: data.window_sec,
        sla,
        features: config.features.clone(),
        forecast,
        held_out_patterns: config.held_out_patterns.clone(),
        calibration_patterns: config.calibration_patterns.clone(),
        train_rows: train.len(),
        calibration_rows: calibration.len(),
        test_rows: test.len(),
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
        baselines,
        trained_at,
    };
    report::write(&config.out, &report)?;
    Ok(report)
}

/// What one model did on one held-out set.
struct Evaluated {
    forecast: Horizons<ForecastScores>,
    classification: Scores,
    /// SCALE_UP or not, per classified window.
    up_votes: Vec<bool>,
}

/// The windows the classification is made on: the replica count stayed over the horizon, and
/// the capacity was known.
fn classified(e: &Example) -> bool {
    e.steady_ahead && e.vector.features.capacity_per_replica.is_some()
}

fn evaluate(model: &LoadedModel, windows: &[&Example], level: f64) -> anyhow::Result<Evaluated> {
    let vectors: Vec<contract::Features> = windows.iter().map(|e| e.vector.features).collect();
    let forecasts = model.forecasts(&vectors).map_err(anyhow::Error::msg)?;
    let levels = &model.metadata().forecast.levels;
    let scores = |up: bool| {
        let targets: Vec<f64> = windows
            .iter()
            .map(|e| if up { e.targets.up } else { e.targets.down })
            .collect();
        let quantiles: Vec<Vec<f64>> = forecasts
            .iter()
            .map(|f| if up { &f.up } else { &f.down }.values().to_vec())
            .collect();
        forecast_scores(&targets, &quantiles, levels, level)
    };
    let floor = model.metadata().forecast.rate_floor;
    let (mut actual, mut predicted, mut probability) = (Vec::new(), Vec::new(), Vec::new());
    for ((e, features), forecast) in windows.iter().zip(&vectors).zip(&forecasts) {
        if !classified(e) {
            continue;
        }
        let vote = models::decide(features, forecast, level, floor);
        actual.push(e.violation_ahead);
        predicted.push(vote.action == Action::ScaleUp);
        probability.push(vote.violation_probability);
    }
    Ok(Evaluated {
        forecast: Horizons {
            up: scores(true),
            down: scores(false),
        },
        classification: score(&actual, &predicted, &probability),
        up_votes: predicted,
    })
}

/// The training targets' quantiles at `levels`, per horizon.
fn unconditional_quantiles(train: &[&Example], levels: &[f64]) -> Horizons<Vec<f64>> {
    let per = |up: bool| {
        let mut targets: Vec<f64> = train
            .iter()
            .map(|e| if up { e.targets.up } else { e.targets.down })
            .collect();
        targets.sort_by(f64::total_cmp);
        levels
            .iter()
            .map(|l| empirical_quantile(&targets, *l))
            .collect()
    };
    Horizons {
        up: per(true),
        down: per(false),
    }
}

fn baselines(
    pattern: &str,
    windows: &[&Example],
    votes: &[Vec<bool>],
    unconditional: &Horizons<Vec<f64>>,
    forecast: &ForecastSpec,
) -> Baselines {
    let level = forecast.default_quantile;
    let scores = |up: bool| {
        let targets: Vec<f64> = windows
            .iter()
            .map(|e| if up { e.targets.up } else { e.targets.down })
            .collect();
        let quantiles = if up {
            &unconditional.up
        } else {
            &unconditional.down
        };
        forecast_scores(
            &targets,
            &vec![quantiles.clone(); targets.len()],
            &forecast.levels,
            level,
        )
    };
    let classified: Vec<&&Example> = windows.iter().filter(|e| classified(e)).collect();
    let actual: Vec<bool> = classified.iter().map(|e| e.violation_ahead).collect();
    let now: Vec<bool> = classified.iter().map(|e| e.violating_now).collect();
    let persistence = score(
        &actual,
        &now,
        &now.iter()
            .map(|v| f64::from(u8::from(*v)))
            .collect::<Vec<_>>(),
    );
    let ensemble_majority = (votes.len() == 3).then(|| {
        let count = |i: usize| votes.iter().filter(|v| v[i]).count();
        let predicted: Vec<bool> = (0..actual.len()).map(|i| count(i) >= 2).collect();
        let share: Vec<f64> = (0..actual.len()).map(|i| count(i) as f64 / 3.0).collect();
        score(&actual, &predicted, &share)
    });
    Baselines {
        pattern: pattern.to_owned(),
        unconditional: Horizons {
            up: scores(true),
            down: scores(false),
        },
        persistence,
        ensemble_majority,
        classified: actual.len(),
        violations: actual.iter().filter(|a| **a).count(),
    }
}
