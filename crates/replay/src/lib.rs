//! Trace replay: the fleet's decision core against baselines, on real traces, offline.
//!
//! A trace from `../shared/traces/` drives a simulated service calibrated on the demo target
//! ([`service`], [`calibration`]); every poll window is read as the aggregator reads Prometheus
//! and turned into features by the aggregator's own code; each policy ([`policy`]) decides on
//! what its real counterpart would see: the three models and the scaler's `decision::plan`, the
//! Kubernetes HPA algorithm, the seed's threshold scaler, a static count, and an oracle that
//! knows the future. [`simulation`] measures SLA-violation minutes, replica-minutes, scaling
//! actions and p95 latency; [`evaluate`], [`report`] and [`plot`] make `docs/EVALUATION.md`.

pub mod calibration;
pub mod catalog;
pub mod cli;
pub mod consumers;
pub mod evaluate;
pub mod export;
pub mod faults;
pub mod history;
pub mod plot;
pub mod policy;
pub mod queueing;
pub mod report;
pub mod service;
pub mod simulation;
pub mod traces;

use catalog::{PolicySpec, Trained};
use cli::{EvaluateArgs, ExportArgs, HistoryArgs, RunArgs, SimArgs};
use evaluate::{Replayed, calibrated_model, run_policies};
use policy::{Capacities, Oracle};
use std::path::Path;

/// The line the evaluation reports as its command.
pub const EVALUATE_COMMAND: &str = "scripts/evaluate.sh";

/// `replay run`: one trace, the given policies; returns the table of their figures.
pub fn run_command(args: &RunArgs) -> anyhow::Result<String> {
    let settings = args.sim.settings();
    let (model, _) = calibrated_model(&args.sim.dataset, &args.sim.experiments, &settings)?;
    let model = model.with_profile(args.sim.profile());
    let settings = args.sim.warmed_up(settings, &model)?;
    let load = traces::load(
        &args.slice.trace,
        args.slice.start_minutes,
        args.slice.length_minutes,
        args.sim.compression,
        (!args.recorded_rates).then_some(args.sim.peak_rps),
    )?;
    // Only the oracle and static need what each count carries measured; the others only take
    // their starting count from the plan.
    let capacities = if args
        .policies
        .iter()
        .any(|p| matches!(p, PolicySpec::Oracle | PolicySpec::Static(None)))
    {
        Capacities::measure(&model, &settings, evaluate::CAPACITY_WINDOWS)
    } else {
        Capacities::rough(&model, settings.guardrails.max_replicas)
    };
    let oracle = Oracle::plan(&|t| load.rate(t), load.duration, &capacities, &settings);
    let trained = if args.policies.iter().any(PolicySpec::needs_models) {
        Some(Trained::load(&args.sim.models)?)
    } else {
        None
    };
    let name = args
        .slice
        .trace
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("trace");
    let runs = run_policies(
        &[Replayed {
            name,
            load: &load,
            oracle: &oracle,
            model: &model,
            settings: &settings,
        }],
        &args.policies,
        trained.as_ref(),
        args.sim.jobs(),
    )?
    .pop()
    .unwrap_or_default();
    if let Some(path) = &args.windows_csv {
        write_windows(path, &runs)?;
    }
    if args.json {
        let lines: Vec<String> = runs
            .iter()
            .map(|run| serde_json::to_string(&run.summary))
            .collect::<Result<_, _>>()?;
        return Ok(lines.join("\n"));
    }
    let runs: Vec<_> = args.policies.iter().cloned().zip(runs).collect();
    Ok(report::trace_table(&runs))
}

fn write_windows(path: &Path, runs: &[simulation::Run]) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_path(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    writer.write_record([
        "policy",
        "end_sec",
        "offered_rps",
        "ready",
        "existing",
        "p95",
        "violation",
        "capacity_rps",
        "anomaly_not_load",
        "anomaly_suspect_telemetry",
    ])?;
    for run in runs {
        for w in &run.windows {
            writer.write_record([
                run.summary.policy.clone(),
                w.end.to_string(),
                format!("{:.3}", w.offered_rps),
                w.ready.to_string(),
                w.existing.to_string(),
                w.p95.map_or(String::new(), |p| format!("{p:.4}")),
                w.violation.to_string(),
                w.capacity_rps.map_or(String::new(), |c| format!("{c:.2}")),
                w.not_load.to_string(),
                w.suspect_telemetry.to_string(),
            ])?;
        }
    }
    writer.flush()?;
    Ok(())
}

/// `replay evaluate`: every policy on every trace in every scenario; writes EVALUATION.md,
/// plots, results.json.
pub fn evaluate_command(args: &EvaluateArgs) -> anyhow::Result<String> {
    plot::use_font(&args.font)?;
    let settings = args.sim.settings();
    let traces = traces::STANDARD
        .into_iter()
        .filter(|t| args.traces.is_empty() || args.traces.iter().any(|k| k == t.key))
        .collect();
    let scenarios = evaluate::SCENARIOS
        .into_iter()
        .filter(|s| args.scenarios.is_empty() || args.scenarios.iter().any(|k| k == s.key))
        .collect();
    let evaluation = evaluate::evaluate(evaluate::Plan {
        traces_dir: args.traces_dir.clone(),
        models_dir: args.sim.models.clone(),
        dataset: args.sim.dataset.clone(),
        experiments: args.sim.experiments.clone(),
        traces,
        scenarios,
        policies: PolicySpec::standard(),
        compression: args.sim.compression,
        settings,
        warmup: (args.sim.warmup_minutes > 0)
            .then(|| (args.sim.warmup_trace.clone(), args.sim.warmup_minutes)),
        jobs: args.sim.jobs(),
    })?;
    let plots = draw_plots(&evaluation, &args.docs)?;
    report::write(&evaluation, &args.docs, &plots, EVALUATE_COMMAND)?;
    let mut summary = String::new();
    for scenario in &evaluation.scenarios {
        for trace in &scenario.traces {
            summary.push_str(&format!(
                "{}, {}\n{}\n",
                trace.spec.title,
                scenario.scenario.title,
                report::trace_table(&trace.runs)
            ));
        }
    }
    summary.push_str(&format!(
        "written: {}, {}/evaluation/ in {:.0} s",
        args.docs.join("EVALUATION.md").display(),
        args.docs.display(),
        evaluation.took_seconds
    ));
    Ok(summary)
}

/// The policies drawn on the time plots.
const PLOTTED: [PolicySpec; 4] = [
    PolicySpec::Oracle,
    PolicySpec::Hpa(catalog::REFERENCE_HPA, catalog::HPA_STABILIZATION),
    PolicySpec::Predictive(catalog::REFERENCE_HPA),
    PolicySpec::Ensemble("majority", None),
];
/// Windows in the close-up of the busiest hours (one trace minute each at compression 6).
const CLOSE_UP_WINDOWS: usize = 360;

/// The PNGs of one trace in one scenario, relative to the docs folder.
#[derive(Debug, Clone, Default)]
pub struct Plots {
    pub frontier: String,
    /// The whole replay and its busiest hours, for the demo scenario.
    pub timelines: Vec<String>,
}

fn draw_plots(
    evaluation: &evaluate::Evaluation,
    docs: &Path,
) -> anyhow::Result<Vec<((String, String), Plots)>> {
    let plan = &evaluation.plan;
    let hours_per_window = plan.settings.interval * plan.compression / 3600.0;
    std::fs::create_dir_all(docs.join("evaluation"))?;
    let mut all = Vec::new();
    for scenario in &evaluation.scenarios {
        let key = scenario.scenario.key;
        for trace in &scenario.traces {
            let mut plots = Plots {
                frontier: format!("evaluation/frontier-{}-{key}.png", trace.spec.key),
                ..Plots::default()
            };
            plot::frontier_plot(
                &docs.join(&plots.frontier),
                &format!("{}: {}", trace.spec.title, scenario.scenario.title),
                &report::frontiers(&trace.runs),
            )?;
            if key == evaluate::SCENARIOS[0].key {
                plots.timelines = timelines(trace, docs, hours_per_window, plan)?;
            }
            all.push(((trace.spec.key.to_owned(), key.to_owned()), plots));
        }
    }
    Ok(all)
}

fn timelines(
    trace: &evaluate::TraceResult,
    docs: &Path,
    hours_per_window: f64,
    plan: &evaluate::Plan,
) -> anyhow::Result<Vec<String>> {
    let lines: Vec<plot::Line<'_>> = PLOTTED
        .iter()
        .filter_map(|spec| trace.runs.iter().find(|(s, _)| s == spec))
        .zip(plot::COLORS)
        .map(|((_, run), color)| plot::Line {
            name: &run.summary.policy,
            windows: &run.windows,
            color,
        })
        .collect();
    let Some(first) = lines.first() else {
        return Ok(Vec::new());
    };
    let windows = first.windows.len();
    let close_up = plot::busiest(first.windows, CLOSE_UP_WINDOWS);
    let mut files = Vec::new();
    for (suffix, range, what) in [
        ("", 0..windows, "the whole replay"),
        ("-busiest", close_up, "the busiest hours"),
    ] {
        let file = format!("evaluation/{}{suffix}.png", trace.spec.key);
        plot::trace_plot(
            &docs.join(&file),
            &format!("{}: {what}", trace.spec.title),
            &lines,
            range,
            hours_per_window,
            plan.settings.sla.p95_seconds,
        )?;
        files.push(file);
    }
    Ok(files)
}

/// `replay export`: one trace through the simulated service, as training data.
pub fn export_command(args: &ExportArgs) -> anyhow::Result<String> {
    let settings = args.sim.settings();
    let (model, _) = calibrated_model(&args.sim.dataset, &args.sim.experiments, &settings)?;
    let model = model.with_profile(args.sim.profile());
    let load = traces::load(
        &args.slice.trace,
        args.slice.start_minutes,
        args.slice.length_minutes,
        args.sim.compression,
        Some(args.sim.peak_rps),
    )?;
    // Only the starting count comes from it: no need to measure.
    let capacities = Capacities::rough(&model, settings.guardrails.max_replicas);
    let oracle = Oracle::plan(&|t| load.rate(t), load.duration, &capacities, &settings);
    let exported = export::export(
        &load,
        &args.service,
        &model,
        &settings,
        &args.policy,
        &oracle,
        args.sim.compression,
        &args.parts,
        &args.out,
    )?;
    Ok(format!(
        "{} windows in {} runs: {} and {}",
        exported.windows,
        exported.runs,
        args.out.with_extension("csv").display(),
        args.out.with_extension("experiments.csv").display()
    ))
}

/// `replay consumers`: each trace as a topic's production rate against a simulated consumer
/// group, under every consumer-group policy.
pub fn consumers_command(args: &cli::ConsumersArgs) -> anyhow::Result<String> {
    let spec = args.spec();
    let models = if args.no_ensemble {
        Vec::new()
    } else {
        models::ModelKind::ALL
            .into_iter()
            .map(|kind| {
                models::load(&args.models.join(kind.as_str()), kind).map(std::sync::Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    if let Some(dir) = &args.plots {
        plot::use_font(&args.font)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let mut out = String::new();
    for key in &args.traces {
        let trace = traces::standard(key)
            .ok_or_else(|| anyhow::anyhow!("{key} is not nasa, alibaba or twitter"))?;
        let rates = consumers::trace_rates(
            &args.traces_dir,
            trace.file,
            args.low_per_minute,
            args.high_per_minute,
        )?;
        let figures = consumers::compare(&spec, &rates, &models);
        if let Some(dir) = &args.plots {
            plot::frontier_plot_on(
                &dir.join(format!("consumers-{}.png", trace.key)),
                &format!("{}: a consumer group of 40 partitions", trace.title),
                &consumers::frontiers(&figures),
                (
                    "consumer-minutes (cost)",
                    "minutes with lag above the target",
                ),
            )?;
        }
        if args.json {
            for f in &figures {
                let mut line = serde_json::to_value(f)?;
                line["trace"] = trace.key.into();
                out.push_str(&serde_json::to_string(&line)?);
                out.push('\n');
            }
        } else {
            let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64 * 60.0;
            let title = format!(
                "{} ({} minutes, mean {:.0} messages a minute)",
                trace.title,
                rates.len() / 60,
                mean
            );
            out.push_str(&consumers::table(&title, &figures));
            out.push_str(&format!(
                "\nThe goal for forecast {}% and the ensemble at P{:.0} (both chosen on Twitter):\n\n",
                consumers::CHOSEN_UTILIZATION,
                consumers::CHOSEN_ENSEMBLE_LEVEL * 100.0
            ));
            out.push_str(&consumers::goals(&figures));
            out.push('\n');
        }
    }
    Ok(out.trim_end().to_owned())
}

/// `replay faults`: the traces with injected faults; see [`faults`].
pub fn faults_command(args: &cli::FaultsArgs) -> anyhow::Result<String> {
    let settings = args.sim.settings();
    let (model, _) = calibrated_model(&args.sim.dataset, &args.sim.experiments, &settings)?;
    let model = model.with_profile(args.sim.profile());
    let settings = args.sim.warmed_up(settings, &model)?;
    let trained = Trained::load(&args.sim.models)?;
    let mut out = String::new();
    for key in &args.traces {
        let trace = traces::standard(key)
            .ok_or_else(|| anyhow::anyhow!("{key} is not nasa, alibaba or twitter"))?;
        let load = traces::load(
            &args.traces_dir.join(trace.file),
            trace.start_minutes,
            trace.length_minutes,
            args.sim.compression,
            Some(args.sim.peak_rps),
        )?;
        let study = faults::study(
            trace.title,
            &load,
            &model,
            &settings,
            &trained,
            args.fault_minutes,
            args.sim.jobs(),
        )?;
        out.push_str(&faults::report(&study));
        out.push('\n');
    }
    Ok(out.trim_end().to_owned())
}

/// `replay history`: a service's own traffic from Prometheus, written as a trace and replayed.
pub fn history_command(args: &HistoryArgs) -> anyhow::Result<String> {
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let step = args.step.as_secs().max(1);
    let end = end / step * step;
    let start = end.saturating_sub(args.since.as_secs() / step * step);
    let client = metrics_aggregator::prometheus::PrometheusClient::new(
        &args.prometheus_url,
        std::time::Duration::from_secs(30),
    )?;
    let histograms: Vec<String> = args
        .latency_histograms
        .iter()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .collect();
    let read = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(history::read(
            &client,
            &args.service,
            &histograms,
            start,
            end,
            args.step,
        ))?;
    history::write(&args.out, &read, args.step)?;
    let mut out = format!(
        "{} rows of {} s written to {} ({} without a sample, written as 0)\n",
        read.requests.len(),
        step,
        args.out.display(),
        read.missing
    );
    if args.policies.is_empty() {
        return Ok(out);
    }
    out.push_str(&run_command(&RunArgs {
        slice: cli::TraceSlice {
            trace: args.out.clone(),
            start_minutes: 0,
            length_minutes: None,
        },
        policies: args.policies.clone(),
        windows_csv: None,
        json: args.json,
        recorded_rates: true,
        sim: args.sim.clone(),
    })?);
    Ok(out)
}

/// `replay calibrate`: the calibration table.
pub fn calibrate_command(args: &SimArgs) -> anyhow::Result<String> {
    let (model, c) = calibrated_model(&args.dataset, &args.experiments, &args.settings())?;
    let mut out = format!(
        "simulated replica: {} slots, {:.0} ms mean service time, {:.0} rps capacity; \
         CPU {:.5} + {:.6} x rps; memory {:.1} MB\n\
         {} runs replayed, {} windows compared; demo and simulator agree on the SLA in {:.1} %\n\n",
        model.concurrency,
        model.service_time * 1000.0,
        model.capacity_rps(),
        c.cpu_idle,
        c.cpu_per_rps,
        c.memory / 1e6,
        c.runs,
        c.windows,
        c.agreement * 100.0
    );
    out.push_str(&report::calibration_rows(&c));
    Ok(out)
}
