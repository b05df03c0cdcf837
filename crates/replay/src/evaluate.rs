//! The evaluation: every policy on every trace, from one command, on both cores.

use crate::calibration::{Calibration, calibrate};
use crate::catalog::{PolicySpec, Trained, build};
use crate::policy::{Capacities, Oracle};
use crate::service::{Profile, ServiceModel};
use crate::simulation::{Load, Run, Settings, run};
use crate::traces::{self, TraceLoad, TraceSpec};
use anyhow::Context;
use demo_service::DemoConfig;
use features::Capacity;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Steady windows measured per replica count for the oracle's capacities.
pub const CAPACITY_WINDOWS: u32 = 200;

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
    pub policies: Vec<PolicySpec>,
    pub compression: f64,
    pub peak_rps: f64,
    /// The simulated replica's slots and service time.
    pub profile: Profile,
    pub settings: Settings,
    /// Runs at once.
    pub jobs: usize,
}

/// One trace's runs.
pub struct TraceResult {
    pub spec: TraceSpec,
    pub minutes: usize,
    /// In the order of [`Plan::policies`].
    pub runs: Vec<(PolicySpec, Run)>,
}

/// Everything measured.
pub struct Evaluation {
    pub plan: Plan,
    pub model: ServiceModel,
    pub calibration: Calibration,
    /// What each replica count carries within the SLA (the oracle's).
    pub capacities: Capacities,
    pub traces: Vec<TraceResult>,
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
    let vectors = trainer::dataset::read_vectors(dataset).with_context(context)?;
    let runs = loadgen::experiment::read_records(experiments).with_context(context)?;
    let demo = DemoConfig::defaults()?;
    Ok(calibrate(
        &vectors,
        &runs,
        &demo,
        &settings.sla,
        settings.seed,
    ))
}

/// What the capacity estimate of a service deployed for a while knows: the one the simulated
/// aggregator learns while HPA at 70 % runs the service through `warmup` (the Twitter trace's
/// first day in the evaluation: never a test trace), scaled to the run's busiest minute. AWS's
/// predictive scaling wants a day of history before it forecasts; the aggregator keeps its
/// estimates across restarts, so a deployed one starts from what it learned.
pub fn warm_capacity(
    model: &ServiceModel,
    settings: &Settings,
    warmup: &TraceLoad,
) -> anyhow::Result<Capacity> {
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
    let mut policy = build(&spec, settings, &oracle, None)?;
    let rate = |t: f64| warmup.rate(t);
    let cold = Settings {
        capacity_start: None,
        ..settings.clone()
    };
    let initial = oracle.needs().first().copied().unwrap_or(1);
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
    )
    .capacity)
}

/// One trace to run every policy on.
pub struct Replayed<'a> {
    pub name: &'a str,
    pub load: &'a TraceLoad,
    pub oracle: &'a Oracle,
}

/// Runs every policy on every trace, `jobs` runs at once, with a progress bar; the runs of
/// each trace in the order of `policies`.
pub fn run_policies(
    model: &ServiceModel,
    settings: &Settings,
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
        .map(|(t, _)| (traces[*t].load.duration / settings.interval) as u64)
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
                    let mut policy = match build(spec, settings, trace.oracle, trained) {
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
                        model,
                        settings,
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

/// Runs every policy of `plan` on every trace of it.
pub fn evaluate(plan: Plan) -> anyhow::Result<Evaluation> {
    let started = Instant::now();
    let (demo, calibration) = calibrated_model(&plan.dataset, &plan.experiments, &plan.settings)?;
    let model = demo.with_profile(plan.profile);
    let trained = if plan.policies.iter().any(PolicySpec::needs_models) {
        Some(Trained::load(&plan.models_dir)?)
    } else {
        None
    };
    let capacities = Capacities::measure(&model, &plan.settings, CAPACITY_WINDOWS);
    let mut loads: Vec<(TraceLoad, Oracle)> = Vec::new();
    for spec in &plan.traces {
        let load = traces::load(
            &plan.traces_dir.join(spec.file),
            spec.start_minutes,
            spec.length_minutes,
            plan.compression,
            plan.peak_rps,
        )?;
        let oracle = Oracle::plan(
            &|t| load.rate(t),
            load.duration,
            &capacities,
            &plan.settings,
        );
        loads.push((load, oracle));
    }
    let replayed: Vec<Replayed<'_>> = plan
        .traces
        .iter()
        .zip(&loads)
        .map(|(spec, (load, oracle))| Replayed {
            name: spec.key,
            load,
            oracle,
        })
        .collect();
    let runs = run_policies(
        &model,
        &plan.settings,
        &replayed,
        &plan.policies,
        trained.as_ref(),
        plan.jobs,
    )?;
    let traces = plan
        .traces
        .iter()
        .zip(&loads)
        .zip(runs)
        .map(|((spec, (load, _)), runs)| TraceResult {
            spec: *spec,
            minutes: load.minutes,
            runs: plan.policies.iter().cloned().zip(runs).collect(),
        })
        .collect();
    Ok(Evaluation {
        plan,
        model,
        calibration,
        capacities,
        traces,
        took_seconds: started.elapsed().as_secs_f64(),
    })
}
