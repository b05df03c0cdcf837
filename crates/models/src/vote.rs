//! The vote rule, independent of which model gives the forecast.
//!
//! A model forecasts the highest request rate of the next windows, as quantiles: over the
//! scale-up horizon (a new replica's start-up plus one window) and over the longer scale-down
//! horizon. The service's capacity (what one replica carries within its SLA, learned by the
//! aggregator) turns a rate into replicas:
//!
//! - SCALE_UP when the upper quantile of the scale-up peak needs more replicas than run now;
//! - SCALE_DOWN when the upper quantile of the scale-down peak (and of the scale-up peak) needs
//!   fewer: a replica given back must not be needed again before one could return;
//! - NO_ACTION otherwise, and whenever the vector carries no capacity estimate.
//!
//! The vote carries the count the model wants (`safe_replicas`), and as its confidence the
//! model's probability that the chosen action is right: for SCALE_UP that the current replicas
//! would be overrun within the horizon, for SCALE_DOWN that one replica fewer would carry the
//! longer horizon's peak, for NO_ACTION that the current replicas carry the next peak.

use crate::distribution::Distribution;
use contract::{Action, Features};

/// Most replicas a vote ever asks for: beyond any real bound, so that an absurd forecast cannot
/// overflow anything downstream (the scaler's guardrails cap it far lower).
pub const MAX_WANTED: u32 = 100_000;

/// What one model votes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoteDecision {
    pub action: Action,
    /// The model's probability for `action`.
    pub confidence: f64,
    /// P(the current replicas are overrun within the scale-up horizon).
    pub violation_probability: f64,
    /// The replica count the model wants: above the current count for SCALE_UP, below it for
    /// SCALE_DOWN, at most the current count for NO_ACTION.
    pub safe_replicas: u32,
    /// The forecast peak request rate over the scale-up horizon at the vote's quantile.
    pub forecast_rps: f64,
}

/// The forecast of one window: quantiles of `ln((peak + floor) / (rate + floor))` over each
/// horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub up: Distribution,
    pub down: Distribution,
}

/// Decides for a service that runs `features.replicas` replicas at `features.request_rate`, from
/// `forecast` at quantile `level`; `floor` is the forecast's rate floor.
pub fn decide(features: &Features, forecast: &Forecast, level: f64, floor: f64) -> VoteDecision {
    let current = features.replicas.round().clamp(1.0, f64::from(MAX_WANTED)) as u32;
    let rate = features.request_rate.max(0.0);
    let peak = |d: &Distribution| ((rate + floor) * d.quantile(level).exp() - floor).max(0.0);
    let forecast_rps = peak(&forecast.up);
    let capacity = features
        .capacity_per_replica
        .filter(|c| c.is_finite() && *c > 0.0);
    let Some(capacity) = capacity else {
        return VoteDecision {
            action: Action::NoAction,
            confidence: 1.0,
            violation_probability: 0.0,
            safe_replicas: current,
            forecast_rps,
        };
    };
    let needed = |rps: f64| {
        let n = (rps / capacity).ceil();
        if n.is_finite() {
            n.clamp(1.0, f64::from(MAX_WANTED)) as u32
        } else {
            MAX_WANTED
        }
    };
    // The log ratio at which `n` replicas are just enough.
    let carried = |n: u32| ((f64::from(n) * capacity + floor) / (rate + floor)).ln();
    let up = needed(forecast_rps);
    let down = needed(peak(&forecast.down)).max(up);
    let overrun = forecast.up.exceedance(carried(current));
    let (action, confidence, safe_replicas) = if up > current {
        (Action::ScaleUp, overrun, up)
    } else if down < current {
        let one_fewer_carries = 1.0 - forecast.down.exceedance(carried(current - 1));
        (Action::ScaleDown, one_fewer_carries, down)
    } else {
        (Action::NoAction, 1.0 - overrun, down.min(current))
    };
    VoteDecision {
        action,
        confidence: confidence.clamp(0.0, 1.0),
        violation_probability: overrun.clamp(0.0, 1.0),
        safe_replicas,
        forecast_rps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEVELS: [f64; 3] = [0.5, 0.9, 0.99];

    fn features(rate: f64, replicas: f64, capacity: Option<f64>) -> Features {
        let mut values = [f64::NAN; contract::FEATURE_COUNT];
        values[contract::feature_index("request_rate").unwrap_or(0)] = rate;
        values[contract::feature_index("request_rate_per_replica").unwrap_or(0)] = rate / replicas;
        values[contract::feature_index("error_ratio").unwrap_or(0)] = 0.0;
        values[contract::feature_index("replicas").unwrap_or(0)] = replicas;
        if let Some(c) = capacity {
            values[contract::feature_index("capacity_per_replica").unwrap_or(0)] = c;
        }
        Features::from_values(&values).unwrap()
    }

    /// A forecast whose level quantiles are the ratios `up` and `down` (log taken here).
    fn forecast(up: [f64; 3], down: [f64; 3]) -> Forecast {
        Forecast {
            up: Distribution::new(&LEVELS, &up.map(f64::ln)),
            down: Distribution::new(&LEVELS, &down.map(f64::ln)),
        }
    }

    #[test]
    fn a_forecast_rise_past_capacity_scales_up_to_carry_it() {
        // 100 rps on 2 replicas of 60; at P90 the next peak is 1.5x: 150 rps, 3 replicas.
        let f = forecast([1.1, 1.5, 2.0], [1.2, 1.6, 2.2]);
        let v = decide(&features(100.0, 2.0, Some(60.0)), &f, 0.9, 0.0);
        assert_eq!(v.action, Action::ScaleUp);
        assert_eq!(v.safe_replicas, 3);
        assert!((v.forecast_rps - 150.0).abs() < 1e-9);
        assert!(v.confidence > 0.1 && v.confidence < 0.5, "{v:?}");
        // A more cautious level wants more.
        let v = decide(&features(100.0, 2.0, Some(60.0)), &f, 0.99, 0.0);
        assert_eq!(v.safe_replicas, 4);
    }

    #[test]
    fn scale_down_needs_the_longer_peak_to_fit_in_fewer() {
        let f = forecast([1.0, 1.1, 1.2], [1.0, 1.5, 2.0]);
        // 100 rps on 5 replicas of 60: the short peak needs 2, the long one 3.
        let v = decide(&features(100.0, 5.0, Some(60.0)), &f, 0.9, 0.0);
        assert_eq!((v.action, v.safe_replicas), (Action::ScaleDown, 3));
        // On 3 replicas the long peak still needs 3: hold.
        let v = decide(&features(100.0, 3.0, Some(60.0)), &f, 0.9, 0.0);
        assert_eq!((v.action, v.safe_replicas), (Action::NoAction, 3));
    }

    #[test]
    fn without_a_capacity_nothing_is_voted() {
        let f = forecast([5.0, 9.0, 9.0], [5.0, 9.0, 9.0]);
        let v = decide(&features(100.0, 2.0, None), &f, 0.9, 0.0);
        assert_eq!((v.action, v.safe_replicas), (Action::NoAction, 2));
    }

    proptest! {
        /// Whatever a model answers, the vote is consistent with itself.
        #[test]
        fn votes_are_consistent(
            rate in 0.0f64..1e6, replicas in 1u32..200, capacity in 0.01f64..1e4,
            up in proptest::array::uniform3(prop_oneof![-5.0f64..5.0, Just(f64::NAN), Just(1e300)]),
            down in proptest::array::uniform3(-5.0f64..5.0),
            level in 0.01f64..0.999,
        ) {
            let f = Forecast {
                up: Distribution::new(&LEVELS, &up),
                down: Distribution::new(&LEVELS, &down),
            };
            let v = decide(&features(rate, f64::from(replicas), Some(capacity)), &f, level, 1.0);
            prop_assert!((1..=MAX_WANTED).contains(&v.safe_replicas));
            prop_assert!((0.0..=1.0).contains(&v.confidence));
            prop_assert!((0.0..=1.0).contains(&v.violation_probability));
            match v.action {
                Action::ScaleUp => prop_assert!(v.safe_replicas > replicas),
                Action::ScaleDown => prop_assert!(replicas > 1 && v.safe_replicas < replicas),
                Action::NoAction => prop_assert!(v.safe_replicas <= replicas),
            }
        }
    }
}
