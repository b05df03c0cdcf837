//! The policies by name, as the command line and the evaluation ask for them, and what building
//! one needs: the trained models, the voting weights, the oracle's plan.

use crate::policy::{Ballot, Hpa, Oracle, Policy, Predictive, Static, Threshold, Voters};
use crate::simulation::Settings;
use decision::{Guardrails, Strategy};
use models::{LoadedModel, ModelKind};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A policy by name.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// `static:N`; `static` alone is the oracle's peak: provisioning for the busiest window.
    Static(Option<u32>),
    /// `threshold`: the seed's scaler.
    Threshold,
    /// `hpa:T[:S]`: Kubernetes HPA at T % target utilization, S seconds of scale-down
    /// stabilization (300, its default, unless given).
    Hpa(u32, u32),
    /// `holt-winters:T`: the non-ML predictive baseline: a Holt-Winters forecast sizing
    /// replicas ahead for T % utilization, beside HPA at T %.
    Predictive(u32),
    /// `xgboost[:Q]`, `random_forest[:Q]`, `logistic_regression[:Q]`: one model deciding alone,
    /// sizing replicas for its P`Q` forecast (the models' default unless given).
    Model(ModelKind, Option<u32>),
    /// `ensemble:majority|unanimous|weighted[:Q]`: the three models under a voting strategy.
    Ensemble(&'static str, Option<u32>),
    /// `ensemble-aware`: the ensemble (majority, default quantile) aware of anomalies, as the
    /// fleet runs it by default (issue 15); the other model policies are not.
    EnsembleAware,
    /// `ensemble-uncalibrated`: the ensemble (majority, default quantile) on the forecasts as
    /// the models give them, without the online calibration the fleet runs by default.
    EnsembleUncalibrated,
    /// `oracle`: the fewest replicas that meet the SLA, knowing the future.
    Oracle,
}

impl PolicySpec {
    /// The set the evaluation compares: the baselines, HPA and the Holt-Winters baseline across
    /// their targets, each model alone, the ensemble across its forecast quantiles and under
    /// each strategy, and the oracle.
    pub fn standard() -> Vec<PolicySpec> {
        let mut all = vec![PolicySpec::Static(None), PolicySpec::Threshold];
        all.extend(FRONTIER_TARGETS.map(|t| PolicySpec::Hpa(t, HPA_STABILIZATION)));
        // The same window as the scaler's: how much of a saving is the shorter window alone.
        all.push(PolicySpec::Hpa(
            REFERENCE_HPA,
            Guardrails::default().stabilization.num_seconds() as u32,
        ));
        all.extend(FRONTIER_TARGETS.map(PolicySpec::Predictive));
        all.extend(ModelKind::ALL.map(|k| PolicySpec::Model(k, None)));
        all.push(PolicySpec::Ensemble("majority", None));
        all.push(PolicySpec::EnsembleUncalibrated);
        all.extend(FRONTIER_QUANTILES.map(|q| PolicySpec::Ensemble("majority", Some(q))));
        all.extend(
            STRATEGIES[1..]
                .iter()
                .map(|s| PolicySpec::Ensemble(s, None)),
        );
        all.push(PolicySpec::Oracle);
        all
    }

    /// Parses `static[:N]`, `threshold`, `hpa:T[:S]`, a model name, `ensemble:STRATEGY`,
    /// `oracle`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let whole = |value: Option<&str>, what: &str| -> Result<u32, String> {
            value
                .and_then(|a| a.parse::<u32>().ok())
                .ok_or_else(|| format!("{s:?}: {what} must be a whole number"))
        };
        // The forecast quantile of a model policy, a percentage.
        let percentile = |q: Option<&str>| -> Result<Option<u32>, String> {
            q.map(|q| {
                whole(Some(q), "the forecast quantile (%)").and_then(|p| {
                    (1..100)
                        .contains(&p)
                        .then_some(p)
                        .ok_or_else(|| format!("{s:?}: the forecast quantile is 1 to 99 %"))
                })
            })
            .transpose()
        };
        let number = |what: &str| -> Result<u32, String> {
            whole(arg, what).and_then(|n| {
                (n > 0)
                    .then_some(n)
                    .ok_or_else(|| format!("{s:?}: {what} must be a positive whole number"))
            })
        };
        match name {
            "static" if arg.is_none() => Ok(PolicySpec::Static(None)),
            "static" => Ok(PolicySpec::Static(Some(number("the replica count")?))),
            "threshold" => Ok(PolicySpec::Threshold),
            "hpa" => {
                let (target, window) = match arg.and_then(|a| a.split_once(':')) {
                    Some((t, w)) => (Some(t), Some(w)),
                    None => (arg, None),
                };
                let target = whole(target, "the target utilization (%)")?;
                if target == 0 || target > 100 {
                    return Err(format!("{s:?}: the target utilization is 1 to 100 %"));
                }
                let window = match window {
                    Some(_) => whole(window, "the stabilization window (s)")?,
                    None => HPA_STABILIZATION,
                };
                Ok(PolicySpec::Hpa(target, window))
            }
            "ensemble" => {
                let (strategy, quantile) = match arg.map(|a| a.split_once(':')) {
                    Some(Some((st, q))) => (st, Some(q)),
                    _ => (arg.unwrap_or("majority"), None),
                };
                let strategy = STRATEGIES
                    .into_iter()
                    .find(|st| *st == strategy)
                    .ok_or_else(|| {
                        format!("{s:?}: the strategy is majority, unanimous or weighted")
                    })?;
                Ok(PolicySpec::Ensemble(strategy, percentile(quantile)?))
            }
            "holt-winters" => {
                let target = whole(arg, "the target utilization (%)")?;
                if target == 0 || target > 100 {
                    return Err(format!("{s:?}: the target utilization is 1 to 100 %"));
                }
                Ok(PolicySpec::Predictive(target))
            }
            "oracle" => Ok(PolicySpec::Oracle),
            "ensemble-aware" if arg.is_none() => Ok(PolicySpec::EnsembleAware),
            "ensemble-uncalibrated" if arg.is_none() => Ok(PolicySpec::EnsembleUncalibrated),
            _ => match ModelKind::parse(name) {
                Some(kind) => Ok(PolicySpec::Model(kind, percentile(arg)?)),
                None => Err(format!(
                    "{s:?} is not a policy: static[:N], threshold, hpa:T[:S], holt-winters:T, xgboost[:Q], \
                     random_forest[:Q], logistic_regression[:Q], \
                     ensemble:majority|unanimous|weighted[:Q], ensemble-aware, \
                     ensemble-uncalibrated, oracle"
                )),
            },
        }
    }

    /// Whether it needs the trained models.
    pub fn needs_models(&self) -> bool {
        matches!(
            self,
            PolicySpec::Model(..)
                | PolicySpec::Ensemble(..)
                | PolicySpec::EnsembleAware
                | PolicySpec::EnsembleUncalibrated
        )
    }
}

impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySpec::Static(None) => f.write_str("static"),
            PolicySpec::Static(Some(n)) => write!(f, "static:{n}"),
            PolicySpec::Threshold => f.write_str("threshold"),
            PolicySpec::Hpa(t, HPA_STABILIZATION) => write!(f, "hpa:{t}"),
            PolicySpec::Hpa(t, w) => write!(f, "hpa:{t}:{w}"),
            PolicySpec::Predictive(t) => write!(f, "holt-winters:{t}"),
            PolicySpec::Model(kind, None) => f.write_str(kind.as_str()),
            PolicySpec::Model(kind, Some(q)) => write!(f, "{}:{q}", kind.as_str()),
            PolicySpec::Ensemble(strategy, None) => write!(f, "ensemble:{strategy}"),
            PolicySpec::Ensemble(strategy, Some(q)) => write!(f, "ensemble:{strategy}:{q}"),
            PolicySpec::EnsembleAware => f.write_str("ensemble-aware"),
            PolicySpec::EnsembleUncalibrated => f.write_str("ensemble-uncalibrated"),
            PolicySpec::Oracle => f.write_str("oracle"),
        }
    }
}

/// Target utilizations of HPA and the Holt-Winters baseline on the frontiers, %.
pub const FRONTIER_TARGETS: [u32; 5] = [50, 60, 70, 80, 90];
/// Forecast quantiles of the ensemble on the frontiers, %: the one setting that trades
/// replicas for safety.
pub const FRONTIER_QUANTILES: [u32; 5] = [50, 75, 90, 95, 99];

/// The HPA target the goals are measured against (a common production setting, and for this
/// service a p95 of about 0.19 s: three quarters of the SLA).
pub const REFERENCE_HPA: u32 = 70;
/// HPA's default scale-down stabilization window, seconds.
pub const HPA_STABILIZATION: u32 = 300;
/// The voting strategies, `majority` first (the scaler's default).
pub const STRATEGIES: [&str; 3] = ["majority", "unanimous", "weighted"];
/// Votes the ensemble needs (the scaler's `MIN_VOTES` default).
const ENSEMBLE_QUORUM: usize = 2;

/// The trained models and the weights of the weighted strategy.
pub struct Trained {
    models: BTreeMap<&'static str, Arc<LoadedModel>>,
    weights: BTreeMap<String, f64>,
}

impl Trained {
    /// Loads the three artifacts under `dir` (`models/`) and the held-out F1 weights from its
    /// `evaluation.json`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut models = BTreeMap::new();
        for kind in ModelKind::ALL {
            let model = models::load(&dir.join(kind.as_str()), kind)?;
            models.insert(kind.as_str(), Arc::new(model));
        }
        let report = dir.join("evaluation.json");
        let weights = std::fs::read(&report)
            .map_err(|e| e.to_string())
            .and_then(|bytes| formats::evaluation::held_out_f1(&bytes))
            .map_err(|e| anyhow::anyhow!("{}: {e}", report.display()))?;
        Ok(Self { models, weights })
    }

    fn model(&self, kind: ModelKind) -> Arc<LoadedModel> {
        self.models[kind.as_str()].clone()
    }

    /// The forecast quantile the models size replicas for by default, in percent.
    pub fn default_percentile(&self) -> u32 {
        self.models.values().next().map_or(90, |m| {
            (m.metadata().forecast.default_quantile * 100.0).round() as u32
        })
    }
}

/// Builds the policy for one run. `oracle` is the run's plan (also what `static` provisions
/// for); `trained` must be there for the model policies.
pub fn build(
    spec: &PolicySpec,
    settings: &Settings,
    oracle: &Oracle,
    trained: Option<&Trained>,
) -> anyhow::Result<Box<dyn Policy>> {
    let bounds = settings.bounds();
    let voters =
        |name: String, models: Vec<Arc<LoadedModel>>, strategy, quorum, quantile: Option<u32>| {
            let level = quantile.map_or_else(
                || {
                    models
                        .first()
                        .map_or(0.9, |m| m.metadata().forecast.default_quantile)
                },
                |q| f64::from(q) / 100.0,
            );
            let name = match quantile {
                Some(q) => format!("{name}, P{q}"),
                None => name,
            };
            Voters::new(
                name,
                models,
                Ballot {
                    strategy,
                    quorum,
                    level,
                    calibration_step: settings.calibration_step,
                },
                settings
                    .guardrails
                    .with_bounds(Some(bounds.min), Some(bounds.max)),
                settings.interval,
                settings.epoch,
            )
        };
    let trained = || {
        trained.ok_or_else(|| anyhow::anyhow!("policy {spec} needs the trained models (--models)"))
    };
    // The ensemble as the fleet runs it: majority, the models' default quantile.
    let majority = || -> anyhow::Result<Voters> {
        let trained = trained()?;
        Ok(voters(
            format!("ensemble ({})", Strategy::Majority.name()),
            ModelKind::ALL.map(|k| trained.model(k)).to_vec(),
            Strategy::Majority,
            ENSEMBLE_QUORUM,
            None,
        ))
    };
    Ok(match spec {
        PolicySpec::Static(n) => Box::new(Static {
            replicas: n.unwrap_or_else(|| oracle.needs().iter().copied().max().unwrap_or(1)),
            period: settings.interval,
        }),
        PolicySpec::Threshold => Box::new(Threshold::seed(bounds)),
        PolicySpec::Hpa(target, window) => {
            let mut hpa = Hpa::new(f64::from(*target) / 100.0, bounds);
            hpa.stabilization = f64::from(*window);
            Box::new(hpa)
        }
        PolicySpec::Predictive(target) => Box::new(Predictive::new(
            f64::from(*target) / 100.0,
            bounds,
            settings.season_windows[0],
            settings.startup_windows() + 1,
        )),
        PolicySpec::Model(kind, quantile) => Box::new(voters(
            kind.title().to_owned(),
            vec![trained()?.model(*kind)],
            Strategy::Majority,
            1,
            *quantile,
        )),
        PolicySpec::Ensemble(strategy, quantile) => {
            let trained = trained()?;
            let strategy = match *strategy {
                "unanimous" => Strategy::Unanimous,
                "weighted" => Strategy::Weighted(trained.weights.clone()),
                _ => Strategy::Majority,
            };
            Box::new(voters(
                format!("ensemble ({})", strategy.name()),
                ModelKind::ALL.map(|k| trained.model(k)).to_vec(),
                strategy,
                ENSEMBLE_QUORUM,
                *quantile,
            ))
        }
        PolicySpec::EnsembleAware => Box::new(majority()?.aware()),
        PolicySpec::EnsembleUncalibrated => Box::new(majority()?.uncalibrated()),
        PolicySpec::Oracle => Box::new(oracle.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for spec in PolicySpec::standard() {
            assert_eq!(PolicySpec::parse(&spec.to_string()), Ok(spec));
        }
        assert_eq!(
            PolicySpec::parse("static:3"),
            Ok(PolicySpec::Static(Some(3)))
        );
        assert_eq!(
            PolicySpec::parse("ensemble"),
            Ok(PolicySpec::Ensemble("majority", None))
        );
        assert_eq!(
            PolicySpec::parse("ensemble:unanimous:95"),
            Ok(PolicySpec::Ensemble("unanimous", Some(95)))
        );
        assert_eq!(
            PolicySpec::parse("xgboost:75"),
            Ok(PolicySpec::Model(ModelKind::Xgboost, Some(75)))
        );
        for bad in [
            "hpa",
            "hpa:0",
            "hpa:150",
            "static:x",
            "ensemble:loudest",
            "ensemble:majority:100",
            "xgboost:zero",
            "lstm",
        ] {
            assert!(PolicySpec::parse(bad).is_err(), "{bad}");
        }
    }
}
