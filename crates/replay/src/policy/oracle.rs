//! The lower bound: the fewest replicas that meet the SLA, knowing the future load.
//!
//! What `n` replicas can carry is measured once on the calibrated simulator itself
//! ([`Capacities`]): the highest steady load at which at most 1 % of the windows violate the
//! SLA. For every poll window the oracle knows the highest arrival rate it will bring, and
//! takes the fewest replicas that carry it. It pays the same start-up delay as everyone: at each
//! decision it asks for the most any window needs until the replicas it starts now would be
//! ready, so they are serving when the load arrives. No cooldown, no stabilization. It does not
//! foresee chance or the backlog a burst leaves, so it may still violate the SLA now and then;
//! the table reports it as measured.

use super::{Bounds, Context, Policy};
use crate::service::{Service, ServiceModel};
use crate::simulation::Settings;
use features::FeatureBuilder;

/// Share of steady windows allowed to violate the SLA at a replica count's capacity.
const VIOLATING_SHARE: f64 = 0.01;
/// Warm-up windows before the counted ones.
const WARM_UP: u32 = 3;

/// The replica counts measured up to `max`: every one up to 10, then a quarter more each time,
/// and `max` (what many replicas carry grows smoothly with their count; measuring 100 counts of
/// up to 100 replicas each cost minutes).
fn measured_counts(max: u32) -> Vec<u32> {
    let mut counts: Vec<u32> = (1..=max.min(10)).collect();
    let mut n = 10u32;
    while n < max {
        n = (n + n.div_ceil(4)).min(max);
        counts.push(n);
    }
    counts
}

/// The load each replica count carries within the SLA.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacities {
    /// `rps[n - 1]`: the highest steady request rate `n` replicas carry with at most 1 % of
    /// windows violating the SLA (beyond the share that violate at a twentieth of their
    /// capacity, which is noise, not load).
    pub rps: Vec<f64>,
}

impl Capacities {
    /// Measures replica counts up to `settings.bounds.max` on `windows` steady windows each.
    pub fn measure(model: &ServiceModel, settings: &Settings, windows: u32) -> Self {
        // Many replicas measure a steady p95 in few windows: the windows shrink as the count
        // grows (a tenth of them at 100 replicas), which keeps the measurement of 100 counts
        // of up to 100 replicas to seconds.
        let windows_for = |replicas: u32| (windows * 10 / replicas.max(10)).max(20);
        let violating_share = |replicas: u32, per_replica: f64| {
            let windows = windows_for(replicas);
            let rate = per_replica * f64::from(replicas);
            let mut service =
                Service::new(model.clone(), settings.interval, replicas, settings.seed);
            let mut builder = FeatureBuilder::new(2, settings.interval as u64);
            let mut violating = 0;
            for k in 1..=WARM_UP + windows {
                let end = f64::from(k) * settings.interval;
                service.advance(end, &|_| rate);
                let window = service.observe();
                let violates = builder
                    .push("capacity", window.observation(model, end as u64))
                    .is_ok_and(|f| settings.sla.violated_by(&f));
                if k > WARM_UP && violates {
                    violating += 1;
                }
            }
            f64::from(violating) / f64::from(windows.max(1))
        };
        let capacity = |n: u32| {
            // A quiet window's p95 comes from a handful of requests and is over the SLA now
            // and then whatever the count (with one slot, the service time alone has a p95 of
            // 3 x 50 ms); that floor is not a matter of capacity, and is allowed for.
            let floor = violating_share(n, model.capacity_rps() * 0.05);
            let allowed = VIOLATING_SHARE + floor;
            let (mut lo, mut hi) = (0.0, model.capacity_rps());
            while hi - lo > 0.005 * model.capacity_rps() {
                let mid = (lo + hi) / 2.0;
                if violating_share(n, mid) <= allowed {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo * f64::from(n)
        };
        let max = settings.guardrails.max_replicas.max(1);
        let counts = measured_counts(max);
        // One thread per replica count: they are independent.
        let measured: Vec<(u32, f64)> = std::thread::scope(|scope| {
            let handles: Vec<_> = counts
                .iter()
                .map(|n| scope.spawn(move || capacity(*n)))
                .collect();
            counts
                .iter()
                .copied()
                .zip(handles.into_iter().map(|h| h.join().unwrap_or(0.0)))
                .collect()
        });
        // Counts between two measured ones: linear between them.
        let rps = (1..=max)
            .map(|n| {
                let i = measured.partition_point(|(m, _)| *m < n);
                match (
                    measured.get(i),
                    i.checked_sub(1).and_then(|j| measured.get(j)),
                ) {
                    (Some((m, c)), _) if *m == n => *c,
                    (Some((m1, c1)), Some((m0, c0))) => {
                        c0 + (c1 - c0) * f64::from(n - m0) / f64::from(m1 - m0)
                    }
                    _ => 0.0,
                }
            })
            .collect();
        Self { rps }
    }

    /// A rough stand-in that measures nothing: each replica carries 80 % of what its slots can
    /// serve (where only a starting count is needed, as in `replay export`).
    pub fn rough(model: &ServiceModel, max_replicas: u32) -> Self {
        Self {
            rps: (1..=max_replicas.max(1))
                .map(|n| f64::from(n) * model.capacity_rps() * 0.8)
                .collect(),
        }
    }

    /// The fewest replicas within `bounds` that carry `rate` (the most, when none does).
    pub fn replicas_for(&self, rate: f64, bounds: Bounds) -> u32 {
        (bounds.min.max(1)..=bounds.max)
            .find(|n| self.rps.get(*n as usize - 1).is_some_and(|c| rate <= *c))
            .unwrap_or(bounds.max)
    }
}

#[derive(Debug, Clone)]
pub struct Oracle {
    /// Replicas each window needs, window `k` covering `[k * interval, (k + 1) * interval)`.
    needs: Vec<u32>,
    interval: f64,
    startup_delay: f64,
}

impl Oracle {
    /// Plans for `duration` seconds of load `rate(t)`, sampled every second.
    pub fn plan(
        rate: &dyn Fn(f64) -> f64,
        duration: f64,
        capacities: &Capacities,
        settings: &Settings,
    ) -> Self {
        let interval = settings.interval;
        let windows = (duration / interval).ceil() as usize;
        let needs = (0..windows)
            .map(|k| {
                let start = k as f64 * interval;
                let peak = (0..interval.ceil() as usize)
                    .map(|s| rate(start + s as f64))
                    .fold(0.0, f64::max);
                capacities.replicas_for(peak, settings.bounds())
            })
            .collect();
        Self {
            needs,
            interval,
            startup_delay: settings.startup_delay,
        }
    }

    /// Replicas each window needs.
    pub fn needs(&self) -> &[u32] {
        &self.needs
    }
}

impl Policy for Oracle {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn period(&self) -> f64 {
        self.interval
    }

    fn decide(&mut self, context: &Context<'_>) -> u32 {
        // Windows starting before the next decision's replicas could be ready.
        let first = (context.now / self.interval).round() as usize;
        let horizon = context.now + self.startup_delay + self.interval;
        let last = ((horizon / self.interval).ceil() as usize).min(self.needs.len());
        self.needs
            .get(first..last.max(first))
            .and_then(|needs| needs.iter().copied().max())
            .unwrap_or(context.existing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::tests::demo;
    use decision::Guardrails;

    #[test]
    fn capacity_is_where_windows_start_to_violate() {
        let settings = Settings {
            guardrails: Guardrails::default().with_bounds(Some(1), Some(2)),
            ..Settings::default()
        };
        let bounds = settings.bounds();
        let c = Capacities::measure(&demo(), &settings, 40);
        // The M/M/4 p95 reaches 0.25 s at about 64 rps: capacity is a margin below that.
        assert!(c.rps[0] > 50.0 && c.rps[0] < 66.0, "{c:?}");
        assert!(c.rps[1] > c.rps[0] * 1.9, "{c:?}");
        assert_eq!(c.replicas_for(10.0, bounds), 1);
        assert_eq!(c.replicas_for(c.rps[0] + 1.0, bounds), 2);
        assert_eq!(
            c.replicas_for(1e6, bounds),
            2,
            "the most when none carries it"
        );
    }

    #[test]
    fn counts_past_ten_are_measured_sparsely() {
        assert_eq!(measured_counts(3), vec![1, 2, 3]);
        assert_eq!(
            measured_counts(40),
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 17, 22, 28, 35, 40]
        );
    }

    #[test]
    fn plans_ahead_by_the_startup_delay() {
        let rate = |t: f64| {
            if (100.0..150.0).contains(&t) {
                400.0
            } else {
                40.0
            }
        };
        let settings = Settings {
            startup_delay: 20.0,
            ..Settings::default()
        };
        let capacities = Capacities {
            rps: (1..=10).map(|n| 60.0 * f64::from(n)).collect(),
        };
        let mut oracle = Oracle::plan(&rate, 300.0, &capacities, &settings);
        assert_eq!(oracle.needs()[0], 1);
        assert_eq!(oracle.needs()[10], 7, "400 rps at 60 per replica");
        let mut at = |now| {
            oracle.decide(&Context {
                now,
                windows: &[],
                features: None,
                anomalies: &[],
                existing: 1,
            })
        };
        assert_eq!(at(60.0), 1, "nothing due before 90 s");
        assert_eq!(at(80.0), 7, "ready at 100 s when started at 80 s");
        assert_eq!(at(140.0), 7);
        assert_eq!(at(150.0), 1, "the burst is over");
    }
}
