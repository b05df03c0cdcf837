//! The lower bound: the fewest replicas that meet the SLA, knowing the future load.
//!
//! For every poll window the oracle knows the highest arrival rate it will bring, and takes the
//! fewest replicas at which the steady-state M/M/c response time meets the SLA's percentile
//! (P(latency > SLA) at most 5 % for a p95 SLA). It pays the same start-up delay as everyone:
//! at each decision it asks for the most any window needs until the replicas it starts now
//! would be ready, so they are serving when the load arrives. No cooldown, no stabilization.
//! It cannot foresee chance (a window of unlucky service times), so it may still violate the
//! SLA now and then; the table reports it as measured.

use super::{Context, Policy};
use crate::queueing::response_time_tail;
use crate::service::ServiceModel;
use crate::simulation::Settings;

#[derive(Debug, Clone)]
pub struct Oracle {
    /// Replicas each window needs, window `k` covering `[k * interval, (k + 1) * interval)`.
    needs: Vec<u32>,
    interval: f64,
    startup_delay: f64,
}

impl Oracle {
    /// Plans for `duration` seconds of load `rate(t)`, sampled every second, for a p95 SLA of
    /// `settings.sla.p95_seconds`.
    pub fn plan(
        rate: &dyn Fn(f64) -> f64,
        duration: f64,
        model: &ServiceModel,
        settings: &Settings,
    ) -> Self {
        let (interval, bounds) = (settings.interval, settings.bounds);
        let (sla_seconds, sla_share) = (settings.sla.p95_seconds, 0.05);
        let windows = (duration / interval).ceil() as usize;
        let mu = 1.0 / model.service_time;
        let needs = (0..windows)
            .map(|k| {
                let start = k as f64 * interval;
                let peak = (0..interval.ceil() as usize)
                    .map(|s| rate(start + s as f64))
                    .fold(0.0, f64::max);
                (bounds.min.max(1)..=bounds.max)
                    .find(|n| {
                        response_time_tail(sla_seconds, peak / f64::from(*n), model.concurrency, mu)
                            <= sla_share
                    })
                    .unwrap_or(bounds.max)
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
        let mut oracle = Oracle::plan(&rate, 300.0, &demo(), &settings);
        assert_eq!(oracle.needs()[0], 1);
        // 400 rps at most 5 % over 0.25 s: 64 rps per replica or less, so 7.
        assert_eq!(oracle.needs()[10], 7);
        let mut at = |now| {
            oracle.decide(&Context {
                now,
                windows: &[],
                features: None,
                existing: 1,
            })
        };
        assert_eq!(at(60.0), 1, "nothing due before 90 s");
        assert_eq!(at(80.0), 7, "ready at 100 s when started at 80 s");
        assert_eq!(at(140.0), 7);
        assert_eq!(at(150.0), 1, "the burst is over");
    }
}
