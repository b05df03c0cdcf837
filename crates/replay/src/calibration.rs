//! Calibration of the simulated service against the demo target's measured behaviour, from the
//! dataset the models were trained on (`models/data/`).
//!
//! The simulated replica is the demo target's configuration (slots, service time, queue bound,
//! latency buckets): its latency is not fitted, it is checked. The dataset's `constant` and
//! `ramp` experiments are replayed in the simulator (the same replica count, the same offered
//! rate over the same minutes) and every window the aggregator recorded is compared with the
//! simulated window at the same time into the run: p95 latency, and whether the SLA is
//! violated, by offered load per replica. CPU per replica, which the demo spends on HTTP and
//! nothing else, is fitted as a line in the request rate; memory is the dataset's median.

use crate::queueing::response_time_quantile;
use crate::service::{Service, ServiceModel};
use contract::FeatureVector;
use demo_service::{DemoConfig, ServiceTimeDistribution};
use formats::experiments::ExperimentRecord;
use load_testing::pattern::Pattern;
use models::Sla;
use serde::Serialize;
use std::time::Duration;

/// Load bins are this wide, in requests per second per replica.
const BIN_RPS: f64 = 10.0;
/// Poll window of the dataset, seconds.
const WINDOW: f64 = 10.0;

/// Demo and simulator side by side for one band of load per replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bin {
    pub from_rps: f64,
    pub to_rps: f64,
    pub windows: usize,
    /// Median p95 of the demo's windows, seconds.
    pub demo_p95: f64,
    /// Median p95 of the simulated windows, seconds.
    pub simulated_p95: f64,
    /// The M/M/c formula's p95 at the bin's middle, seconds.
    pub formula_p95: f64,
    /// Share of windows over the SLA.
    pub demo_violations: f64,
    pub simulated_violations: f64,
}

/// One window of the demo and the simulated window at the same time into the run.
#[derive(Debug, Clone, Copy)]
struct Pair {
    demo_p95: f64,
    simulated_p95: f64,
    demo_violates: bool,
    simulated_violates: bool,
}

/// What the calibration found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub cpu_idle: f64,
    pub cpu_per_rps: f64,
    pub memory: f64,
    /// Experiment runs replayed.
    pub runs: usize,
    /// Windows compared.
    pub windows: usize,
    pub bins: Vec<Bin>,
    /// Share of compared windows on which demo and simulator agree about violating the SLA.
    pub agreement: f64,
}

/// The simulated service of the demo target `demo`, before calibration of CPU and memory.
pub fn demo_model(demo: &DemoConfig) -> ServiceModel {
    ServiceModel {
        concurrency: demo.concurrency,
        service_time: demo.service_time_ms / 1000.0,
        exponential: demo.service_time_distribution == ServiceTimeDistribution::Exponential,
        max_queue: demo.max_queue as usize,
        cpu_idle: 0.0,
        cpu_per_rps: 0.0,
        memory: 0.0,
        buckets: demo_service::LATENCY_BUCKETS.to_vec(),
    }
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Least-squares line `y = a + b x`.
fn fit_line(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    if points.len() < 2 {
        return (points.first().map_or(0.0, |p| p.1), 0.0);
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= f64::EPSILON {
        return (my, 0.0);
    }
    let b = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx;
    (my - b * mx, b)
}

/// The load of a `constant` or `ramp` run, from its description (`constant 48 rps`,
/// `ramp 12 -> 88 rps`); other patterns are not replayed.
fn pattern_of(record: &ExperimentRecord) -> Option<Pattern> {
    let rest = record.description.strip_suffix(" rps")?;
    if let Some(rps) = rest.strip_prefix("constant ") {
        return Some(Pattern::Constant {
            rps: rps.trim().parse().ok()?,
        });
    }
    let (from, to) = rest.strip_prefix("ramp ")?.split_once(" -> ")?;
    Some(Pattern::Ramp {
        from_rps: from.trim().parse().ok()?,
        to_rps: to.trim().parse().ok()?,
    })
}

/// Calibrates the demo target's simulated service on the dataset's feature vectors and the
/// experiment runs they were collected in.
pub fn calibrate(
    vectors: &[FeatureVector],
    experiments: &[ExperimentRecord],
    demo: &DemoConfig,
    sla: &Sla,
    seed: u64,
) -> (ServiceModel, Calibration) {
    let mut model = demo_model(demo);
    let cpu: Vec<(f64, f64)> = vectors
        .iter()
        .filter_map(|v| {
            let f = &v.features;
            Some((f.request_rate_per_replica, f.cpu_per_replica?))
        })
        .collect();
    (model.cpu_idle, model.cpu_per_rps) = fit_line(&cpu);
    model.cpu_idle = model.cpu_idle.max(0.0);
    let mut memory: Vec<f64> = vectors
        .iter()
        .filter_map(|v| v.features.memory_per_replica)
        .collect();
    model.memory = median(&mut memory);
    if !model.memory.is_finite() {
        model.memory = 0.0;
    }

    let capacity = model.capacity_rps();
    let mu = 1.0 / model.service_time;
    let bins = (capacity * 1.5 / BIN_RPS).ceil() as usize;
    let mut compared: Vec<Vec<Pair>> = vec![Vec::new(); bins];
    let mut runs = 0;
    for (i, record) in experiments.iter().enumerate() {
        let (Some(pattern), Some(replicas)) = (pattern_of(record), record.replicas) else {
            continue;
        };
        let length = (record.ended_at - record.started_at).as_seconds_f64();
        let total = Duration::from_secs_f64(length.max(0.0));
        let rate = |t: f64| pattern.rate_at(Duration::from_secs_f64(t.max(0.0)), total);
        let mut service =
            Service::new(model.clone(), WINDOW, replicas, seed.wrapping_add(i as u64));
        let mut builder = features::FeatureBuilder::new(2, WINDOW as u64);
        // Each simulated window with whether it violates the SLA.
        let mut simulated = Vec::new();
        let mut end = WINDOW;
        while end <= length + WINDOW {
            service.advance(end, &rate);
            let window = service.observe();
            let violates = builder
                .push(&record.service, window.observation(&model, end as u64))
                .is_ok_and(|f| sla.violated_by(&f));
            simulated.push((window, violates));
            end += WINDOW;
        }
        runs += 1;
        for v in vectors.iter().filter(|v| {
            v.service == record.service
                && v.window_start >= record.started_at
                && v.window_end <= record.ended_at
        }) {
            let at = (v.window_end - record.started_at).as_seconds_f64();
            let Some((sim, sim_violates)) =
                simulated.get(((at / WINDOW).round() as usize).saturating_sub(1))
            else {
                continue;
            };
            let (Some(demo_p95), Some(sim_latency)) = (v.features.latency_p95, sim.latency) else {
                continue;
            };
            let offered = rate(at - WINDOW / 2.0) / f64::from(replicas);
            let bin = ((offered / BIN_RPS) as usize).min(bins - 1);
            compared[bin].push(Pair {
                demo_p95,
                simulated_p95: sim_latency.p95,
                demo_violates: sla.violated_by(&v.features),
                simulated_violates: *sim_violates,
            });
        }
    }
    let windows: usize = compared.iter().map(Vec::len).sum();
    let agreeing = compared
        .iter()
        .flatten()
        .filter(|c| c.demo_violates == c.simulated_violates)
        .count();
    let share = |items: &[Pair], pick: fn(&Pair) -> bool| {
        items.iter().filter(|c| pick(c)).count() as f64 / items.len().max(1) as f64
    };
    let bins = compared
        .iter()
        .enumerate()
        .filter(|(_, items)| !items.is_empty())
        .map(|(b, items)| {
            let from = b as f64 * BIN_RPS;
            Bin {
                from_rps: from,
                to_rps: from + BIN_RPS,
                windows: items.len(),
                demo_p95: median(&mut items.iter().map(|c| c.demo_p95).collect::<Vec<_>>()),
                simulated_p95: median(
                    &mut items.iter().map(|c| c.simulated_p95).collect::<Vec<_>>(),
                ),
                formula_p95: response_time_quantile(
                    0.95,
                    from + BIN_RPS / 2.0,
                    model.concurrency,
                    mu,
                ),
                demo_violations: share(items, |c| c.demo_violates),
                simulated_violations: share(items, |c| c.simulated_violates),
            }
        })
        .collect();
    let calibration = Calibration {
        cpu_idle: model.cpu_idle,
        cpu_per_rps: model.cpu_per_rps,
        memory: model.memory,
        runs,
        windows,
        bins,
        agreement: agreeing as f64 / windows.max(1) as f64,
    };
    (model, calibration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_give_patterns() {
        let record = |description: &str| ExperimentRecord {
            run_id: "r".into(),
            name: "r".into(),
            service: "demo1".into(),
            pattern: "p".into(),
            description: description.into(),
            scenario: "url".into(),
            replicas: Some(1),
            started_at: chrono::DateTime::UNIX_EPOCH,
            ended_at: chrono::DateTime::UNIX_EPOCH,
            sent: 0,
            errors: 0,
            dropped: 0,
            p95_ms: 0.0,
        };
        assert_eq!(
            pattern_of(&record("constant 48 rps")),
            Some(Pattern::Constant { rps: 48.0 })
        );
        assert_eq!(
            pattern_of(&record("ramp 12 -> 88 rps")),
            Some(Pattern::Ramp {
                from_rps: 12.0,
                to_rps: 88.0
            })
        );
        assert_eq!(pattern_of(&record("daily 16..84 rps, period 4m")), None);
    }

    #[test]
    fn lines_fit() {
        let (a, b) = fit_line(&[(0.0, 1.0), (10.0, 2.0), (20.0, 3.0)]);
        assert!((a - 1.0).abs() < 1e-12 && (b - 0.1).abs() < 1e-12);
        assert_eq!(fit_line(&[(5.0, 2.0)]), (2.0, 0.0));
    }
}
