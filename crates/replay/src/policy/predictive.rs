//! The non-ML predictive baseline, in the manner of AWS predictive scaling and the predictive
//! HPA: a Holt-Winters forecast of the request rate (level, trend, and a daily season once a
//! day has been seen) sizes the replicas ahead for the target utilization, and the reactive HPA
//! at the same target stays beside it. The larger of the two wins, so the forecast only ever
//! scales out; scaling in is the reactive policy's, with its stabilization (as AWS leaves
//! scale-in to target tracking).
//!
//! The forecast is turned into replicas the way target tracking would: the utilization one
//! request per second costs a replica (measured, smoothed) times the forecast rate, over the
//! target. The smoothing constants are the textbook's middle values, not fitted to any trace.

use super::{Bounds, Context, Hpa, Policy};

/// Level smoothing.
const ALPHA: f64 = 0.3;
/// Trend smoothing.
const BETA: f64 = 0.05;
/// Season smoothing.
const GAMMA: f64 = 0.1;
/// Smoothing of the utilization one request per second costs.
const COST_SMOOTHING: f64 = 0.2;

/// Holt-Winters with additive trend and multiplicative season, updated one window at a time.
#[derive(Debug, Clone)]
pub struct HoltWinters {
    level: Option<f64>,
    trend: f64,
    /// Seasonal factors by position in the period; 1 until a period has been seen.
    season: Vec<f64>,
    /// Windows seen.
    seen: usize,
}

impl HoltWinters {
    /// A model with a season of `period` windows (0: no season).
    pub fn new(period: usize) -> Self {
        Self {
            level: None,
            trend: 0.0,
            season: vec![1.0; period],
            seen: 0,
        }
    }

    fn factor(&self, index: usize) -> f64 {
        if self.season.is_empty() {
            1.0
        } else {
            self.season[index % self.season.len()]
        }
    }

    /// Takes in the next window's value.
    pub fn update(&mut self, value: f64) {
        let index = self.seen;
        self.seen += 1;
        let factor = self.factor(index);
        let Some(level) = self.level else {
            self.level = Some(value);
            return;
        };
        let deseasoned = value / factor.max(1e-6);
        let new_level = ALPHA * deseasoned + (1.0 - ALPHA) * (level + self.trend);
        self.trend = BETA * (new_level - level) + (1.0 - BETA) * self.trend;
        self.level = Some(new_level);
        // The season is learned from the second period on; the first sets the level.
        if !self.season.is_empty() && self.seen > self.season.len() && new_level > 0.0 {
            let slot = index % self.season.len();
            self.season[slot] = GAMMA * (value / new_level) + (1.0 - GAMMA) * factor;
        }
    }

    /// The forecast `ahead` windows after the last one taken in (never negative).
    pub fn forecast(&self, ahead: usize) -> f64 {
        let Some(level) = self.level else { return 0.0 };
        let index = self.seen + ahead - 1;
        ((level + self.trend * ahead as f64) * self.factor(index)).max(0.0)
    }
}

/// The predictive baseline.
pub struct Predictive {
    reactive: Hpa,
    model: HoltWinters,
    /// Windows ahead whose highest forecast is provisioned for: start-up plus one window.
    horizon: usize,
    /// Utilization one request per second per replica costs, smoothed.
    cost: Option<f64>,
    /// End of the newest window taken in.
    last_end: f64,
    bounds: Bounds,
}

impl Predictive {
    /// At `target` utilization, with a daily season of `period` windows, provisioning for the
    /// next `horizon` windows.
    pub fn new(target: f64, bounds: Bounds, period: usize, horizon: usize) -> Self {
        Self {
            reactive: Hpa::new(target, bounds),
            model: HoltWinters::new(period),
            horizon: horizon.max(1),
            cost: None,
            last_end: f64::NEG_INFINITY,
            bounds,
        }
    }
}

impl Policy for Predictive {
    fn name(&self) -> String {
        format!("Holt-Winters {:.0}%", self.reactive.target * 100.0)
    }

    fn period(&self) -> f64 {
        self.reactive.period()
    }

    fn decide(&mut self, context: &Context<'_>) -> u32 {
        let since = self.last_end;
        for w in context.windows.iter().filter(|w| w.end > since) {
            self.model.update(w.served_rps);
            self.last_end = w.end;
            let per_replica = w.served_rps / f64::from(w.ready.max(1));
            if per_replica > 0.0 && w.utilization > 0.0 {
                let cost = w.utilization / per_replica;
                self.cost = Some(
                    self.cost
                        .map_or(cost, |c| COST_SMOOTHING * cost + (1.0 - COST_SMOOTHING) * c),
                );
            }
        }
        let reactive = self.reactive.decide(context);
        let Some(cost) = self.cost else {
            return reactive;
        };
        let peak = (1..=self.horizon)
            .map(|k| self.model.forecast(k))
            .fold(0.0, f64::max);
        let ahead = (peak * cost / self.reactive.target).ceil();
        let ahead = if ahead.is_finite() {
            self.bounds.clamp(ahead.min(f64::from(u32::MAX)) as u32)
        } else {
            reactive
        };
        reactive.max(ahead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Window;

    #[test]
    fn holt_winters_follows_a_trend_and_learns_a_season() {
        let mut hw = HoltWinters::new(0);
        for k in 0..200 {
            hw.update(100.0 + f64::from(k));
        }
        let ahead = hw.forecast(5);
        assert!((ahead - 304.0).abs() < 5.0, "{ahead}");

        // A square wave of period 20: high in the first half.
        let mut hw = HoltWinters::new(20);
        let value = |k: usize| if k % 20 < 10 { 200.0 } else { 100.0 };
        for k in 0..400 {
            hw.update(value(k));
        }
        let (high, low) = (hw.forecast(1), hw.forecast(11));
        assert!(high > 170.0 && low < 130.0, "{high} {low}");
    }

    fn window(end: f64, served_rps: f64, utilization: f64, ready: u32) -> Window {
        Window {
            end,
            offered_rps: served_rps,
            served_rps,
            error_rps: 0.0,
            latency: None,
            mean_latency: None,
            utilization,
            ready,
            existing: ready,
        }
    }

    #[test]
    fn a_rising_load_is_provisioned_ahead_of_the_reactive_count() {
        let bounds = Bounds { min: 1, max: 20 };
        let mut p = Predictive::new(0.5, bounds, 0, 3);
        let mut hpa = Hpa::new(0.5, bounds);
        let mut windows = Vec::new();
        let (mut ours, mut theirs) = (0, 0);
        for k in 1..=30 {
            // 20 rps more every window; a replica at 50 % serves 40 rps.
            let rate = 20.0 * f64::from(k);
            let ready = (rate / 40.0).ceil() as u32;
            windows.push(window(
                f64::from(k) * 10.0,
                rate,
                rate / f64::from(ready) / 80.0,
                ready,
            ));
            let context = Context {
                now: f64::from(k) * 10.0,
                windows: &windows,
                features: None,
                anomalies: &[],
                existing: ready,
            };
            ours = p.decide(&context);
            theirs = hpa.decide(&context);
        }
        assert!(ours > theirs, "forecast {ours}, reactive {theirs}");
    }
}
