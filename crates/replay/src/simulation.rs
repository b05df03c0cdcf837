//! One policy on one load: the simulated service advanced window by window, the aggregator's
//! feature computation on every window, the policy's decisions at its own period, and the
//! figures that compare policies.

use crate::policy::{Bounds, Context, Policy};
use crate::service::{Service, ServiceModel, Slowdown, Window};
use contract::Features;
use decision::Guardrails;
use features::{
    Capacity, CapacitySettings, Detector, FeatureBuilder, FeatureSettings, Finding, Observation,
    SEASON_RISE_WINDOWS,
};
use indicatif::ProgressBar;
use models::Sla;
use serde::Serialize;

/// How every run is simulated.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Seconds per poll window (`POLL_INTERVAL_SEC`; the models were trained on 10).
    pub interval: f64,
    /// Seconds from a replica's creation to its first request.
    pub startup_delay: f64,
    /// Windows a trend spans (`TREND_WINDOWS`).
    pub trend_windows: usize,
    /// What counts as a violating window.
    pub sla: Sla,
    /// The scaler's guardrails, for the model policies; their bounds (`MIN_REPLICAS`,
    /// `MAX_REPLICAS`) hold for every policy.
    pub guardrails: Guardrails,
    /// Seed of the arrivals and service times; every policy sees the same arrivals.
    pub seed: u64,
    /// Unix seconds of time 0 (timestamps of the feature vectors and the guardrails' clock).
    pub epoch: i64,
    /// Windows back to "the same time a day ago" and "a week ago": a trace day at the
    /// replay's compression (1440 one-minute windows at compression 6).
    pub season_windows: [usize; 2],
    /// Requests per second a replica is assumed to carry before the service has shown more
    /// (the aggregator's `CAPACITY_PRIOR_RPS`).
    pub capacity_prior_rps: f64,
    /// What the capacity estimate knows when the run starts: what a deployed aggregator would
    /// have learned before (see [`crate::evaluate::warm_capacity`]); none: the prior.
    pub capacity_start: Option<Capacity>,
    /// What the anomaly detector knows of the service's normal when the run starts, likewise.
    pub normal_start: Option<Detector>,
    /// Whether the simulated aggregator looks for anomalies whatever the policy (to learn the
    /// normal a run starts from).
    pub learn_normal: bool,
    /// How fast the model policies calibrate their forecasts to the service online
    /// (`FORECAST_CALIBRATION_STEP`).
    pub calibration_step: f64,
    /// Faults injected into the run (none by default).
    pub faults: Faults,
}

/// Faults to inject (issue 15): a slowed dependency, and scrapes that fail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub slowdowns: Vec<Slowdown>,
    pub scrape_losses: Vec<ScrapeLoss>,
}

/// From `start` to `end` (seconds of the run), Prometheus fails to scrape `share` of the ready
/// replicas (rounded, at least one replica still scraped): the aggregator reads their load as
/// missing and counts them under `up == 0`. With `requests_only`, every replica is scraped but
/// its request metrics are gone (an exporter or relabelling broke): the load reads as zero.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeLoss {
    pub start: f64,
    pub end: f64,
    pub share: f64,
    pub requests_only: bool,
}

impl Faults {
    /// The scrape loss at `t`, if any.
    pub fn scrape_loss_at(&self, t: f64) -> Option<&ScrapeLoss> {
        self.scrape_losses
            .iter()
            .find(|s| (s.start..s.end).contains(&t))
    }
}

impl Settings {
    /// How the simulated aggregator computes features.
    pub fn features(&self) -> FeatureSettings {
        FeatureSettings {
            capacity: CapacitySettings {
                prior_rps: self.capacity_prior_rps,
                sla: self.sla,
            },
            ..FeatureSettings::new(self.trend_windows, self.interval as u64)
        }
    }

    /// Seasons in windows for a replay `compression` times faster than the trace, with windows
    /// of `interval` seconds.
    pub fn season_windows(compression: f64, interval: f64) -> [usize; 2] {
        let trace_seconds_per_window = (interval * compression).max(1e-9);
        [86_400.0, 604_800.0].map(|period| (period / trace_seconds_per_window).round() as usize)
    }

    /// Windows a new replica takes to serve (the start-up delay, rounded up).
    pub fn startup_windows(&self) -> usize {
        (self.startup_delay / self.interval).ceil().max(0.0) as usize
    }

    /// The replica counts every policy stays within.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            min: self.guardrails.min_replicas,
            max: self.guardrails.max_replicas,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval: 10.0,
            startup_delay: 20.0,
            trend_windows: 4,
            sla: Sla {
                p95_seconds: 0.25,
                error_ratio: 0.05,
            },
            guardrails: Guardrails::default(),
            seed: 1,
            epoch: 1_800_000_000,
            season_windows: Settings::season_windows(6.0, 10.0),
            capacity_prior_rps: features::DEFAULT_PRIOR_RPS,
            capacity_start: None,
            normal_start: None,
            learn_normal: false,
            calibration_step: models::calibration::DEFAULT_STEP,
            faults: Faults::default(),
        }
    }
}

/// A load to replay: requests per second at each second of the run.
pub struct Load<'a> {
    pub name: String,
    pub rate: &'a (dyn Fn(f64) -> f64 + Sync),
    /// Seconds.
    pub duration: f64,
}

/// One window of a run, for tables and plots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowRecord {
    /// End of the window, seconds since the start.
    pub end: f64,
    pub offered_rps: f64,
    pub ready: u32,
    pub existing: u32,
    /// p95 latency as the aggregator reads it; `None` without requests.
    pub p95: Option<f64>,
    pub violation: bool,
    /// The simulated aggregator's capacity estimate per replica, requests per second.
    pub capacity_rps: Option<f64>,
    /// The detector flagged latency or errors that are not load (for anomaly-aware policies).
    pub not_load: bool,
    /// The detector flagged lost traffic or scrapes.
    pub suspect_telemetry: bool,
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub policy: String,
    /// Minutes of windows that violated the SLA.
    pub violation_minutes: f64,
    /// Time integral of the replicas that existed (starting ones included), in minutes.
    pub replica_minutes: f64,
    /// Replica count changes.
    pub scaling_actions: u32,
    /// p95 latency of every served request, seconds.
    pub p95_seconds: f64,
    pub windows: usize,
    pub violating_windows: usize,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Run {
    pub summary: Summary,
    pub windows: Vec<WindowRecord>,
    /// What the simulated aggregator learned of the service's capacity by the end.
    pub capacity: Capacity,
    /// What its anomaly detector learned of the service's normal (when it looked).
    pub normal: Option<Detector>,
}

/// Windows a policy can look back on.
const RECENT_WINDOWS: usize = 12;

/// Runs `policy` on `load`, starting from `initial` replicas.
pub fn run(
    load: &Load<'_>,
    model: &ServiceModel,
    settings: &Settings,
    policy: &mut dyn Policy,
    initial: u32,
    progress: Option<&ProgressBar>,
) -> Run {
    run_with(
        load,
        model,
        settings,
        policy,
        initial,
        progress,
        &mut |_, _| {},
    )
}

/// [`run`], handing every window's record and feature vector (none when the window gave none)
/// to `on_window` as it is made.
pub fn run_with(
    load: &Load<'_>,
    model: &ServiceModel,
    settings: &Settings,
    policy: &mut dyn Policy,
    initial: u32,
    progress: Option<&ProgressBar>,
    on_window: &mut dyn FnMut(&WindowRecord, Option<&Features>),
) -> Run {
    let interval = settings.interval;
    let mut service = Service::new(
        model.clone(),
        interval,
        settings.bounds().clamp(initial),
        settings.seed,
    )
    .with_slowdowns(&settings.faults.slowdowns);
    let mut builder = FeatureBuilder::with_settings(FeatureSettings {
        anomalies: policy.anomaly_aware() || settings.learn_normal,
        ..settings.features()
    });
    if let Some(start) = &settings.capacity_start {
        builder.restore_capacities([(load.name.clone(), start.clone())].into());
    }
    if let Some(start) = &settings.normal_start {
        builder.restore_detectors([(load.name.clone(), start.clone())].into());
    }
    // Every window's request rate: the simulated Prometheus' memory, for "a day ago".
    let mut rates: Vec<f64> = Vec::with_capacity((load.duration / interval) as usize + 1);
    let mut recent: Vec<Window> = Vec::with_capacity(RECENT_WINDOWS + 1);
    let mut features: Option<Features> = None;
    let mut findings: Vec<Finding> = Vec::new();
    let mut records = Vec::with_capacity((load.duration / interval) as usize + 1);
    let mut actions = 0;
    let period = policy.period().max(1e-3);
    let (mut polls, mut decisions) = (1u64, 1u64);
    loop {
        let next_poll = polls as f64 * interval;
        let next_decision = decisions as f64 * period;
        let now = next_poll.min(next_decision);
        if now > load.duration + 1e-9 {
            break;
        }
        service.advance(now, load.rate);
        if (now - next_poll).abs() < 1e-9 {
            let window = service.observe();
            let at_secs = (settings.epoch as f64 + now).round() as u64;
            let mut observation = window.observation(model, at_secs);
            let season = |lag: usize| {
                features::season_point(&rates, rates.len(), lag, SEASON_RISE_WINDOWS as usize)
            };
            observation.day_ago = season(settings.season_windows[0]);
            observation.week_ago = season(settings.season_windows[1]);
            rates.push(window.served_rps);
            if let Some(loss) = settings.faults.scrape_loss_at(now - interval / 2.0) {
                lose_scrapes(&mut observation, loss);
            }
            features = builder.push(&load.name, observation).ok();
            findings = builder.findings(&load.name).to_vec();
            records.push(WindowRecord {
                end: now,
                offered_rps: window.offered_rps,
                ready: window.ready,
                existing: window.existing,
                p95: window.latency.map(|q| q.p95),
                violation: features
                    .as_ref()
                    .is_some_and(|f| settings.sla.violated_by(f)),
                capacity_rps: features.as_ref().and_then(|f| f.capacity_per_replica),
                not_load: findings.iter().any(|f| f.kind.not_load()),
                suspect_telemetry: findings.iter().any(|f| f.kind.suspect_telemetry()),
            });
            if let Some(record) = records.last() {
                on_window(record, features.as_ref());
            }
            if recent.len() == RECENT_WINDOWS {
                recent.remove(0);
            }
            recent.push(window);
            polls += 1;
            if let Some(bar) = progress {
                bar.inc(1);
            }
        }
        if (now - next_decision).abs() < 1e-9 {
            let existing = service.existing();
            let target = settings.bounds().clamp(policy.decide(&Context {
                now,
                windows: &recent,
                features: features.as_ref(),
                anomalies: &findings,
                existing,
            }));
            if target != existing {
                actions += 1;
                service.scale_to(target, now, settings.startup_delay);
            }
            decisions += 1;
        }
    }
    let violating = records.iter().filter(|r| r.violation).count();
    let p95 = service.served_latency().value_at_quantile(0.95) as f64 / 1e6;
    Run {
        summary: Summary {
            policy: policy.name(),
            violation_minutes: violating as f64 * interval / 60.0,
            replica_minutes: service.replica_seconds() / 60.0,
            scaling_actions: actions,
            p95_seconds: p95,
            windows: records.len(),
            violating_windows: violating,
        },
        windows: records,
        capacity: builder
            .capacities()
            .get(&load.name)
            .cloned()
            .unwrap_or_default(),
        normal: builder.detectors().get(&load.name).cloned(),
    }
}

/// What the aggregator reads during `loss`.
fn lose_scrapes(observation: &mut Observation, loss: &ScrapeLoss) {
    if loss.requests_only {
        observation.request_rate = 0.0;
        observation.error_rate = 0.0;
        observation.latency = None;
        return;
    }
    let ready = observation.replicas;
    let lost = ((f64::from(ready) * loss.share).round() as u32).min(ready.saturating_sub(1));
    if lost == 0 {
        return;
    }
    let kept = f64::from(ready - lost) / f64::from(ready);
    observation.request_rate *= kept;
    observation.error_rate *= kept;
    observation.replicas = ready - lost;
    observation.replicas_unscraped = lost;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Capacities, Hpa, Oracle, Static};
    use crate::service::tests::demo;

    fn burst(t: f64) -> f64 {
        if (300.0..600.0).contains(&t) {
            300.0
        } else {
            40.0
        }
    }

    fn load() -> Load<'static> {
        Load {
            name: "burst".into(),
            rate: &burst,
            duration: 900.0,
        }
    }

    #[test]
    fn too_few_replicas_violate_and_enough_do_not() {
        let settings = Settings::default();
        let few = run(
            &load(),
            &demo(),
            &settings,
            &mut Static {
                replicas: 2,
                period: 10.0,
            },
            2,
            None,
        );
        let many = run(
            &load(),
            &demo(),
            &settings,
            &mut Static {
                replicas: 6,
                period: 10.0,
            },
            6,
            None,
        );
        assert_eq!(few.summary.windows, 90);
        assert!(few.summary.violating_windows >= 25, "{:?}", few.summary);
        assert!(many.summary.violating_windows <= 2, "{:?}", many.summary);
        assert!((few.summary.replica_minutes - 30.0).abs() < 1e-6);
        assert!((many.summary.replica_minutes - 90.0).abs() < 1e-6);
        assert_eq!(many.summary.scaling_actions, 0);
    }

    #[test]
    fn the_oracle_is_cheaper_than_static_and_meets_the_sla() {
        let settings = Settings::default();
        let load = load();
        let capacities = Capacities::measure(&demo(), &settings, 30);
        let mut oracle = Oracle::plan(load.rate, load.duration, &capacities, &settings);
        let run_oracle = run(&load, &demo(), &settings, &mut oracle, 1, None);
        assert!(
            run_oracle.summary.violating_windows <= 3,
            "{:?}",
            run_oracle.summary
        );
        assert!(
            run_oracle.summary.replica_minutes < 60.0,
            "{:?}",
            run_oracle.summary
        );
        assert_eq!(run_oracle.summary.scaling_actions, 2, "up once, down once");
        let mut hpa = Hpa::new(0.7, settings.bounds());
        let run_hpa = run(&load, &demo(), &settings, &mut hpa, 1, None);
        assert!(
            run_hpa.summary.violating_windows > run_oracle.summary.violating_windows,
            "HPA reacts after the fact: {:?}",
            run_hpa.summary
        );
    }
}
