//! A compressed slice of a real trace through the real system on the Docker engine, next to
//! what the trace replay's simulator says of the same slice: does the simulator hold for real?
//!
//! `load-testing` replays 90 minutes of the Alibaba trace (six bursts) in 15, against the demo
//! target under docker compose, with the fleet in production mode scaling it through the Engine
//! API. The same slice, scaled and compressed by the same code, then runs through `replay` with
//! the majority ensemble and the scaler's guardrails. The windows of the real run are the
//! feature vectors the voters logged (`output/predictions_xgboost.csv`); its scaling actions
//! are the applied rows of `output/decisions.csv`.
//!
//!     scripts/live-replay.sh      # writes docs/evaluation/live-replay.md and .png
//!
//! About twenty minutes; not part of `scripts/test.sh`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::{DateTime, Utc};
use e2e::{Project, repo};
use models::Sla;
use replay::catalog::{PolicySpec, Trained, build};
use replay::evaluate::calibrated_model;
use replay::plot::{self, Line};
use replay::policy::{Capacities, Oracle};
use replay::simulation::{Load, Settings, WindowRecord, run};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

const TRACE: &str = "alibaba2021_ms_6d9c26b9_1min.csv";
const START_MINUTES: u64 = 500;
const LENGTH_MINUTES: u64 = 90;
const COMPRESSION: f64 = 6.0;
/// The slice's busiest minute, in requests per second.
const PEAK_RPS: f64 = 500.0;
/// Container start through the socket proxy plus the load generator's and Prometheus' 2 s
/// DNS refresh: what a new demo replica takes here to get its first request.
const STARTUP_DELAY_SEC: f64 = 5.0;
const INTERVAL: f64 = 10.0;

/// What one run measured over the slice.
#[derive(Debug, Clone, Copy)]
struct Figures {
    windows: usize,
    violation_minutes: f64,
    /// Replicas serving (Prometheus' targets up), integrated over the windows.
    ready_replica_minutes: f64,
    scaling_actions: usize,
    peak_replicas: u32,
}

fn figures(windows: &[WindowRecord], scaling_actions: usize) -> Figures {
    Figures {
        windows: windows.len(),
        violation_minutes: windows.iter().filter(|w| w.violation).count() as f64 * INTERVAL / 60.0,
        ready_replica_minutes: windows.iter().map(|w| f64::from(w.ready)).sum::<f64>() * INTERVAL
            / 60.0,
        scaling_actions,
        peak_replicas: windows.iter().map(|w| w.ready).max().unwrap_or(0),
    }
}

/// The demo's windows between `from` and `to`, as the voters logged them.
fn real_windows(
    output: &std::path::Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<WindowRecord> {
    let sla = Sla {
        p95_seconds: 0.25,
        error_ratio: 0.05,
    };
    let mut reader = csv::Reader::from_path(output.join("predictions_xgboost.csv"))
        .expect("predictions_xgboost.csv");
    let mut windows: Vec<WindowRecord> = reader
        .records()
        .filter_map(|r| r.ok())
        .filter_map(|r| {
            let cells: Vec<&str> = r.iter().collect();
            formats::predictions::parse_vector(&cells).ok()
        })
        .filter(|v| v.service == "demo" && v.window_end > from && v.window_end <= to)
        .map(|v| WindowRecord {
            end: (v.window_end - from).as_seconds_f64(),
            offered_rps: v.features.request_rate,
            ready: v.features.replicas.round() as u32,
            existing: v.features.replicas.round() as u32,
            p95: v.features.latency_p95,
            violation: sla.violated_by(&v.features),
            capacity_rps: v.features.capacity_per_replica,
            not_load: false,
            suspect_telemetry: false,
        })
        .collect();
    windows.sort_by(|a, b| a.end.total_cmp(&b.end));
    windows.dedup_by(|a, b| a.end == b.end);
    windows
}

/// The changes the scaler applied to the demo between `from` and `to`: seconds after `from`,
/// and whether it was a scale-up.
fn applied(output: &std::path::Path, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(f64, bool)> {
    let mut reader = csv::Reader::from_path(output.join("decisions.csv")).expect("decisions.csv");
    let headers = reader.headers().expect("a header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (service, outcome, decided) = (column("service"), column("outcome"), column("decided_at"));
    let action = column("action");
    reader
        .records()
        .filter_map(|r| r.ok())
        .filter(|r| &r[service] == "demo" && &r[outcome] == "applied")
        .filter_map(|r| {
            let at = r[decided].parse::<DateTime<Utc>>().ok()?;
            (at > from && at <= to)
                .then(|| ((at - from).as_seconds_f64(), &r[action] == "SCALE_UP"))
        })
        .collect()
}

/// When the simulated run scaled up, and to how many: the end of each window after which its
/// replica count rose.
fn scale_ups(windows: &[WindowRecord]) -> Vec<(f64, u32)> {
    windows
        .windows(2)
        .filter(|w| w[1].existing > w[0].existing)
        .map(|w| (w[0].end, w[1].existing))
        .collect()
}

fn simulated() -> (Vec<WindowRecord>, usize) {
    let settings = Settings {
        startup_delay: STARTUP_DELAY_SEC,
        ..Settings::default()
    };
    let data = repo().join("models/data");
    let (model, _) = calibrated_model(
        &data.join("metrics.csv"),
        &data.join("experiments.csv"),
        &settings,
    )
    .expect("the calibration dataset");
    let trace = repo().join("../shared/traces").join(TRACE);
    let load = replay::traces::load(
        &trace,
        START_MINUTES,
        Some(LENGTH_MINUTES),
        COMPRESSION,
        Some(PEAK_RPS),
    )
    .expect("the trace");
    let capacities = Capacities::measure(&model, &settings, 50);
    let oracle = Oracle::plan(&|t| load.rate(t), load.duration, &capacities, &settings);
    let trained = Trained::load(&repo().join("models")).expect("the models");
    let mut policy = build(
        &PolicySpec::Ensemble("majority", None),
        &settings,
        &oracle,
        Some(&trained),
    )
    .expect("the ensemble");
    let rate = |t: f64| load.rate(t);
    let result = run(
        &Load {
            name: "demo".into(),
            rate: &rate,
            duration: load.duration,
        },
        &model,
        &settings,
        policy.as_mut(),
        1,
        None,
    );
    (result.windows, result.summary.scaling_actions as usize)
}

fn report(real: &Figures, sim: &Figures) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| | windows | SLA-violation minutes | ready replica-minutes | scaling actions | most replicas |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    for (name, f) in [("real system", real), ("simulator", sim)] {
        let _ = writeln!(
            s,
            "| {name} | {} | {:.1} | {:.1} | {} | {} |",
            f.windows,
            f.violation_minutes,
            f.ready_replica_minutes,
            f.scaling_actions,
            f.peak_replicas
        );
    }
    s
}

#[tokio::test]
#[ignore = "about twenty minutes on the Docker engine; run by scripts/live-replay.sh"]
async fn a_trace_slice_scales_the_real_system_as_the_simulator_says() {
    let project = Project::new(&[
        ("SCALED_SERVICES", "demo"),
        ("MAX_REPLICAS", "10"),
        ("DECISION_WINDOW_SEC", "3"),
    ]);
    std::fs::copy(
        repo().join("../shared/traces").join(TRACE),
        project.output().join("trace.csv"),
    )
    .expect("the trace copied where load-testing's container reads it");
    project.up();
    project.wait_until_scraped().await;

    let from = Utc::now();
    let duration = format!("{}s", (LENGTH_MINUTES as f64 * 60.0 / COMPRESSION) as u64);
    let start = format!("{START_MINUTES}m");
    let compression = COMPRESSION.to_string();
    let peak = PEAK_RPS.to_string();
    let summary = project.demo_load(
        false,
        &[
            "--pattern",
            "trace",
            "--trace",
            "/app/output/trace.csv",
            "--compression",
            &compression,
            "--trace-start",
            &start,
            "--peak-rps",
            &peak,
            "--duration",
            &duration,
        ],
    );
    let to = Utc::now();
    // The last window's vector and votes.
    tokio::time::sleep(Duration::from_secs(20)).await;
    println!("load-testing: {}", summary.trim());

    let real_windows = real_windows(&project.output(), from, to);
    let changes = applied(&project.output(), from, to);
    let real = figures(&real_windows, changes.len());
    let (sim_windows, sim_actions) = simulated();
    let sim = figures(&sim_windows, sim_actions);
    let table = report(&real, &sim);
    println!("\n{table}");

    if let Some(out) = std::env::var_os("LIVE_REPLAY_OUT").map(PathBuf::from) {
        std::fs::create_dir_all(&out).expect("LIVE_REPLAY_OUT");
        plot::use_font(std::path::Path::new(plot::DEFAULT_FONT)).expect("the plots' font");
        let hours = INTERVAL * COMPRESSION / 3600.0;
        plot::trace_plot(
            &out.join("live-replay.png"),
            "Alibaba, trace minutes 500-590: the real system and the simulator",
            &[
                Line {
                    name: "simulator",
                    windows: &sim_windows,
                    color: plot::COLORS[0],
                },
                Line {
                    name: "real system",
                    windows: &real_windows,
                    color: plot::COLORS[3],
                },
            ],
            0..sim_windows.len().max(real_windows.len()),
            hours,
            0.25,
        )
        .expect("the plot");
        let text = format!(
            "# Live replay: the real system against the simulator\n\n\
             Generated by `scripts/live-replay.sh` on {}. `load-testing` replayed `{TRACE}` from \
             trace minute {START_MINUTES} for {LENGTH_MINUTES} minutes, {COMPRESSION}x \
             compressed (one trace minute per 10 s window), busiest minute at {PEAK_RPS} \
             requests per second, against the demo target under docker compose on the Docker \
             engine, with the fleet in production mode (majority of three models, the scaler's \
             default guardrails, at most 10 replicas). The simulator replayed the same slice \
             with the same models and guardrails and a start-up delay of {STARTUP_DELAY_SEC} s. \
             The real windows are the feature vectors the voters logged; the real scaling \
             actions the applied decisions.\n\n{table}\n\
             The load drawn is the simulator's offered load: the same slice, scaled and \
             compressed by the same code as load-testing's.\n\n![live replay](live-replay.png)\n",
            Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        std::fs::write(out.join("live-replay.md"), text).expect("live-replay.md");
    }

    assert!(
        real.windows as f64 >= sim.windows as f64 * 0.9,
        "the aggregator published a vector for (nearly) every window: {real:?}"
    );
    assert!(
        real.scaling_actions >= 2 && real.peak_replicas >= 2,
        "the real system scaled the demo target: {real:?}"
    );
    // Where the simulator scaled up, the real system had (or reached) as many replicas within
    // three windows, give or take one above two (a scale-up to two must be met by two): the real
    // windows follow the wall clock, not the start of the load, and a real system still holding
    // replicas from the last burst needs no scale-up.
    for (at, replicas) in scale_ups(&sim_windows) {
        let reached = real_windows
            .iter()
            .filter(|w| w.end >= at && w.end <= at + 3.0 * INTERVAL)
            .map(|w| w.ready)
            .max()
            .unwrap_or(0);
        assert!(
            reached >= replicas.saturating_sub(1).max(2),
            "the simulator went to {replicas} replicas at {at} s; the real system had at most \
             {reached} ready in the next three windows (its changes: {changes:?})"
        );
    }
    // ...and runs about as many replicas (the models read the load only; the real system's
    // replicas start more slowly and its latency is noisier than the simulator's).
    let ratio = real.ready_replica_minutes / sim.ready_replica_minutes;
    assert!(
        (0.67..=1.5).contains(&ratio),
        "replica-minutes within a factor 1.5 of the simulator's: real {real:?}, simulated {sim:?}"
    );
}
