//! The evaluation: every policy on every trace, for every service profile and scale, from one
//! command, on both cores.

use crate::calibration::{Calibration, calibrate};
use crate::catalog::{PolicySpec, Trained, build};
use crate::policy::{Capacities, Oracle};
use crate::service::{Profile, ServiceModel};
use crate::simulation::{Load, Run, Settings, run};
use crate::traces::{self, TraceLoad, TraceSpec};
use anyhow::Context;
use demo_service::DemoConfig;
use features::{Capacity, Detector};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Steady windows measured per replica count for the oracle's capacities.
pub const CAPACITY_WINDOWS: u32 = 200;

/// A service profile at a scale: what one replica is, how many may run, and the busiest
/// minute, at about three quarters of what the most replicas carry within the SLA.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scenario {
    /// Short name, for file names.
    pub key: &'static str,
    pub title: &'static str,
    pub profile: Profile,
    pub max_replicas: u32,
    /// The trace's busiest minute becomes this many requests per second.
    pub peak_rps: f64,
}

const fn profile(concurrency: u32) -> Profile {
    Profile {
        concurrency,
        service_time_ms: demo_service::DEFAULT_SERVICE_TIME_MS,
    }
}

/// The demo's profile (4 slots of 50 ms), a quarter of its capacity (1 slot) and four times
/// (16 slots), each at the demo scale (at most 10 replicas) and at tens of replicas (100).
pub const SCENARIOS: [Scenario; 6] = [
    Scenario {
        key: "demo",
        title: "the demo's profile (4 slots), up to 10 replicas",
        profile: profile(4),
        max_replicas: 10,
        peak_rps: 500.0,
    },
    Scenario {
        key: "quarter",
        title: "a quarter of its capacity (1 slot), up to 10 replicas",
        profile: profile(1),
        max_replicas: 10,
        peak_rps: 60.0,
    },
    Scenario {
        key: "fourfold",
        title: "four times its capacity (16 slots), up to 10 replicas",
        profile: profile(16),
        max_replicas: 10,
        peak_rps: 2_200.0,
    },
    Scenario {
        key: "demo-100",
        title: "the demo's profile, up to 100 replicas",
        profile: profile(4),
        max_replicas: 100,
        peak_rps: 5_000.0,
    },
    Scenario {
        key: "quarter-100",
        title: "a quarter of its capacity, up to 100 replicas",
        profile: profile(1),
        max_replicas: 100,
        peak_rps: 600.0,
    },
    Scenario {
        key: "fourfold-100",
        title: "four times its capacity, up to 100 replicas",
        profile: profile(16),
        max_replicas: 100,
        peak_rps: 22_000.0,
    },
];

/// What to evaluate, and how.
#[derive(Debug, Clone)]
pub struct Plan {
    pub traces_dir: PathBuf,
    pub models_dir: PathBuf,
    /// The development CSV the simulated service is calibrated on...
    pub dataset: PathBuf,
    /// ...and the experiment log of its runs.
    pub experiments: PathBuf,
    pub traces: Vec<TraceSpec>,
    pub scenarios: Vec<Scenario>,
    pub policies: Vec<PolicySpec>,
    pub compression: f64,
    /// Settings of every run; each scenario sets its own bounds.
    pub settings: Settings,
    /// The trace and minutes the capacity estimates warm up on (none: from the prior).
    pub warmup: Option<(PathBuf, u64)>,
    /// Runs at once.
    pub jobs: usize,
}

/// One trace's runs in one scenario.
pub struct TraceResult {
    pub spec: TraceSpec,
    pub minutes: usize,
    /// In the order of [`Plan::policies`].
    pub runs: Vec<(PolicySpec, Run)>,
}

/// One scenario's runs.
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub model: ServiceModel,
    /// The settings its runs had (bounds, warmed-up capacity).
    pub settings: Settings,
    /// What each replica count carries within the SLA (the oracle's).
    pub capacities: Capacities,
    pub traces: Vec<TraceResult>,
}

/// Everything measured.
pub struct Evaluation {
    pub plan: Plan,
    /// The forecast quantile the models size for by default, in percent.
    pub default_percentile: Option<u32>,
    pub calibration: Calibration,
    pub scenarios: Vec<ScenarioResult>,
    /// Wall-clock seconds the evaluation took.
    pub took_seconds: f64,
}

/// The simulated demo target, calibrated on the development CSV at `dataset` and the
/// experiment log at `experiments`.
pub fn calibrated_model(
    dataset: &Path,
    experiments: &Path,
    settings: &Settings,
) -> anyhow::Result<(ServiceModel, Calibration)> {
    let context = || {
        format!(
            "cannot calibrate the simulated service on {}",
            dataset.display()
        )
    };
    let vectors = formats::dev_csv::read(dataset).with_context(context)?;
    let runs = formats::experiments::read(experiments).with_context(context)?;
    let demo = DemoConfig::defaults()?;
    Ok(calibrate(
        &vectors,
        &runs,
        &demo,
        &settings.sla,
        settings.seed,
    ))
}

/// What the capacity estimate and the anomaly detector of a service deployed for a while know:
/// what the simulated aggregator learns while HPA at 70 % runs the service through `warmup`
/// (the Twitter trace's first day in the evaluation: never a test trace), scaled to the run's
/// busiest minute. AWS's predictive scaling wants a day of history before it forecasts; the
/// aggregator keeps its estimates across restarts, so a deployed one starts from what it learned.
pub fn warm_capacity(
    model: &ServiceModel,
    settings: &Settings,
    warmup: &TraceLoad,
) -> anyhow::Result<(Capacity, Option<Detector>)> {
    let oracle = Oracle::plan(
        &|t| warmup.rate(t),
        warmup.duration,
        &Capacities::rough(model, settings.guardrails.max_replicas),
        settings,
    );
    let spec = PolicySpec::Hpa(
        crate::catalog::REFERENCE_HPA,
        crate::catalog::HPA_STABILIZATION,
    );
    let rate = |t: f64| warmup.rate(t);
    let initial = oracle.needs().first().copied().unwrap_or(1);
    // Twice: the capacity as every window teaches it (what the evaluation has always started
    // from), and the normal, learned by the detector (whose flagged windows teach the capacity
    // nothing, so its own capacity is not the one kept).
    let warm = |learn_normal: bool| -> anyhow::Result<crate::simulation::Run> {
        let mut policy = build(&spec, settings, &oracle, None)?;
        let cold = Settings {
            capacity_start: None,
            normal_start: None,
            learn_normal,
            ..settings.clone()
        };
        Ok(run(
            &Load {
                name: "warm-up".into(),
                rate: &rate,
                duration: warmup.duration,
            },
            model,
            &cold,
            policy.as_mut(),
            initial,
            None,
        ))
    };
    let capacity = warm(false)?.capacity;
    let normal = warm(true)?.normal;
    Ok((capacity, normal))
}

/// One trace to run every policy on, with the service and settings it runs with.
pub struct Replayed<'a> {
    pub name: &'a str,
    pub load: &'a TraceLoad,
    pub oracle: &'a Oracle,
    pub model: &'a ServiceModel,
    pub settings: &'a Settings,
}

/// Runs every policy on every trace, `jobs` runs at once, with a progress bar; the runs of
/// each trace in the order of `policies`.
pub fn run_policies(
    traces: &[Replayed<'_>],
    policies: &[PolicySpec],
    trained: Option<&Trained>,
    jobs: usize,
) -> anyhow::Result<Vec<Vec<Run>>> {
    let work: Vec<(usize, &PolicySpec)> = (0..traces.len())
        .flat_map(|t| policies.iter().map(move |p| (t, p)))
        .collect();
    let total: u64 = work
        .iter()
        .map(|(t, _)| (traces[*t].load.duration / traces[*t].settings.interval) as u64)
        .sum();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{msg:12} [{bar:40}] {percent:>3}% {pos}/{len} windows, {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("{} runs", work.len()));
    let results: Mutex<Vec<Option<Run>>> = Mutex::new(vec![None; work.len()]);
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((t, spec)) = work.get(i) else { return };
                    let trace = &traces[*t];
                    let mut policy = match build(spec, trace.settings, trace.oracle, trained) {
                        Ok(p) => p,
                        Err(e) => {
                            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            return;
                        }
                    };
                    let rate = |t: f64| trace.load.rate(t);
                    let initial = policy
                        .initial()
                        .unwrap_or_else(|| trace.oracle.needs().first().copied().unwrap_or(1));
                    let finished = run(
                        &Load {
                            name: trace.name.to_owned(),
                            rate: &rate,
                            duration: trace.load.duration,
                        },
                        trace.model,
                        trace.settings,
                        policy.as_mut(),
                        initial,
                        Some(&bar),
                    );
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(finished);
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok((0..traces.len())
        .map(|t| {
            work.iter()
                .enumerate()
                .filter(|(_, (trace, _))| *trace == t)
                .filter_map(|(i, _)| results[i].take())
                .collect()
        })
        .collect())
}

/// A scenario ready to run: its service, settings and the oracle's capacities.
struct Prepared {
    scenario: Scenario,
    model: ServiceModel,
    settings: Settings,
    capacities: Capacities,
    loads: Vec<(TraceSpec, TraceLoad, Oracle)>,
}

fn prepare(plan: &Plan, demo: &ServiceModel, scenario: Scenario) -> anyhow::Result<Prepared> {
    let model = demo.with_profile(scenario.profile);
    let mut settings = Settings {
        guardrails: plan.settings.guardrails.with_bounds(
            Some(plan.settings.guardrails.min_replicas),
            Some(scenario.max_replicas),
        ),
        ..plan.settings.clone()
    };
    if let Some((file, minutes)) = &plan.warmup {
        let warmup = traces::load(
            file,
            0,
            Some(*minutes),
            plan.compression,
            Some(scenario.peak_rps),
        )?;
        let (capacity, normal) = warm_capacity(&model, &settings, &warmup)?;
        settings.capacity_start = Some(capacity);
        settings.normal_start = normal;
    }
    let capacities = Capacities::measure(&model, &settings, CAPACITY_WINDOWS);
    let mut loads = Vec::new();
    for spec in &plan.traces {
        let load = traces::load(
            &plan.traces_dir.join(spec.file),
            spec.start_minutes,
            spec.length_minutes,
            plan.compression,
            Some(scenario.peak_rps),
        )?;
        let oracle = Oracle::plan(&|t| load.rate(t), load.duration, &capacities, &settings);
        loads.push((*spec, load, oracle));
    }
    Ok(Prepared {
        scenario,
        model,
        settings,
        capacities,
        loads,
    })
}

/// Runs every policy of `plan` on every trace of it, in every scenario.
pub fn evaluate(mut plan: Plan) -> anyhow::Result<Evaluation> {
    let started = Instant::now();
    let (demo, calibration) = calibrated_model(&plan.dataset, &plan.experiments, &plan.settings)?;
    let trained = if plan.policies.iter().any(PolicySpec::needs_models) {
        Some(Trained::load(&plan.models_dir)?)
    } else {
        None
    };
    // The default quantile is run once, as itself, not again as one of the frontier's.
    if let Some(default) = trained.as_ref().map(Trained::default_percentile)
        && plan
            .policies
            .contains(&PolicySpec::Ensemble("majority", None))
    {
        plan.policies
            .retain(|p| *p != PolicySpec::Ensemble("majority", Some(default)));
    }
    let prepared: Vec<Prepared> = plan
        .scenarios
        .iter()
        .map(|s| prepare(&plan, &demo, *s))
        .collect::<anyhow::Result<_>>()?;
    let replayed: Vec<Replayed<'_>> = prepared
        .iter()
        .flat_map(|p| {
            p.loads.iter().map(move |(spec, load, oracle)| Replayed {
                name: spec.key,
                load,
                oracle,
                model: &p.model,
                settings: &p.settings,
            })
        })
        .collect();
    let mut runs =
        run_policies(&replayed, &plan.policies, trained.as_ref(), plan.jobs)?.into_iter();
    let scenarios = prepared
        .into_iter()
        .map(|p| {
            let traces = p
                .loads
                .iter()
                .map(|(spec, load, _)| TraceResult {
                    spec: *spec,
                    minutes: load.minutes,
                    runs: plan
                        .policies
                        .iter()
                        .cloned()
                        .zip(runs.next().unwrap_or_default())
                        .collect(),
                })
                .collect();
            ScenarioResult {
                scenario: p.scenario,
                model: p.model,
                settings: p.settings,
                capacities: p.capacities,
                traces,
            }
        })
        .collect();
    Ok(Evaluation {
        default_percentile: trained.as_ref().map(Trained::default_percentile),
        plan,
        calibration,
        scenarios,
        took_seconds: started.elapsed().as_secs_f64(),
    })
}
