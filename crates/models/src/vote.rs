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
use contract::{Action, ConsumerGroup, Features};

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

/// Seconds a consumer group reads nothing while it rebalances after a change of count: what a
/// change costs (an eager rebalance; the replay's consumer group, `replay consumers`, assumes
/// the same).
pub const REBALANCE_PAUSE_SEC: f64 = 15.0;

/// Decides for a consumer group (a vector with [`ConsumerGroup`]): `features.request_rate` is the
/// production rate, `features.replicas` the consumers, `capacity_per_replica` what one consumer
/// reads a second. The group is sized so that it carries the forecast production peak and, when
/// it is more than half its lag target behind, also reads its lag within half the target:
///
/// - counts are only those that are the smallest for their assignment (of 40 partitions, 14 to
///   19 consumers all carry what 14 do, as some still hold three partitions), and never more
///   than the partitions;
/// - SCALE_UP when the scale-up peak (plus the lag to drain) needs more consumers than run,
///   unless the group keeps up now, is not behind, and the peak's overrun over the scale-up
///   horizon (`up_horizon_sec`) would pile up no more than the scale-up's own rebalance (a
///   [`REBALANCE_PAUSE_SEC`] of production, and at most a quarter of the lag target): then
///   NO_ACTION, with the probability that the peak stays within that as its confidence, and a
///   peak that lasts calls for the scale-up through the lag it builds;
/// - SCALE_DOWN only when fewer carry the longer horizon's peak and also the production that
///   piles up during the rebalance the change costs ([`REBALANCE_PAUSE_SEC`]), the group is not
///   behind, and the change pays: the consumer-seconds it saves over the scale-down horizon
///   (`down_horizon_sec`, as long as the smaller count is forecast to last) are at least the
///   consumer-seconds of reading the pause stops (of 30 consumers, giving back one does not pay
///   for a 15 s pause of all 29 within 90 s: five do);
/// - NO_ACTION otherwise, and without a capacity estimate.
pub fn decide_group(
    features: &Features,
    group: &ConsumerGroup,
    forecast: &Forecast,
    level: f64,
    floor: f64,
    up_horizon_sec: f64,
    down_horizon_sec: f64,
) -> VoteDecision {
    let partitions = group.partitions.clamp(1, MAX_WANTED);
    let current = features.replicas.round().clamp(1.0, f64::from(MAX_WANTED)) as u32;
    let rate = features.request_rate.max(0.0);
    let peak = |d: &Distribution| ((rate + floor) * d.quantile(level).exp() - floor).max(rate);
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
    let target = group.lag_target_sec.max(1.0);
    let behind = group.lag_seconds(rate);
    let drain = if behind > target / 2.0 {
        group.lag_messages / (target / 2.0)
    } else {
        0.0
    };
    // What `n` consumers read a second: the ones with the most partitions bound the group.
    let carries = |n: u32| {
        let most = partitions.div_ceil(n.clamp(1, partitions));
        f64::from(partitions) * capacity / f64::from(most)
    };
    let fewest = |rps: f64| {
        (1..=partitions)
            .find(|&n| carries(n) >= rps)
            .unwrap_or(partitions)
    };
    let carried = |n: u32| (((carries(n) - drain).max(0.0) + floor) / (rate + floor)).ln();
    let up = fewest(forecast_rps + drain);
    let long_peak = peak(&forecast.down).max(forecast_rps);
    // Within the target, what piles up during the pause drains on its own as long as the
    // group keeps up; beyond half of it, the smaller group must read it back within half.
    let pause_drain = if REBALANCE_PAUSE_SEC > target / 2.0 {
        long_peak * REBALANCE_PAUSE_SEC / (target / 2.0)
    } else {
        0.0
    };
    let mut down = fewest(long_peak + pause_drain + drain).max(up);
    let pays = |to: u32| {
        f64::from(current.saturating_sub(to)) * down_horizon_sec
            >= f64::from(to) * REBALANCE_PAUSE_SEC
    };
    if !pays(down) {
        down = current;
    }
    // Measured, not forecast: a group that cannot read what is produced now and its lag is
    // overrun for certain.
    let overrun = if carries(current) < rate + drain {
        1.0
    } else {
        forecast.up.exceedance(carried(current))
    };
    // A group that keeps up now and is not behind rides out a forecast peak whose overrun, over
    // the scale-up horizon, piles up no more than the scale-up's own rebalance would (a pause
    // of production, and at most a quarter of the target): scaling up would not leave less
    // lag within the horizon, and if the peak lasts, the lag it builds calls for the scale-up
    // a window later.
    let not_behind = behind <= (target / 2.0).min(5.0);
    let keeps_up = carries(current) >= rate + drain && not_behind;
    let tolerated = rate * REBALANCE_PAUSE_SEC.min(target / 4.0);
    // The highest peak ridden out, messages a second.
    let ridden = carries(current) + tolerated / up_horizon_sec.max(f64::MIN_POSITIVE);
    let tolerable = up_horizon_sec > 0.0 && forecast_rps <= ridden;
    let (action, confidence, safe_replicas) = if up > current && keeps_up && tolerable {
        // The probability that the peak stays within what is ridden out.
        let within = ((ridden + floor) / (rate + floor)).ln();
        (
            Action::NoAction,
            1.0 - forecast.up.exceedance(within),
            current,
        )
    } else if up > current {
        (Action::ScaleUp, overrun, up)
    } else if down < current && not_behind {
        // Consumers that add nothing (idle beyond the partitions, or one more than an even
        // assignment) go for certain; otherwise the probability that the count chosen carries
        // the longer horizon's peak.
        let confidence = if carries(down) >= carries(current) {
            1.0
        } else {
            1.0 - forecast.down.exceedance(carried(down))
        };
        (Action::ScaleDown, confidence, down)
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

    fn group(partitions: u32, lag_messages: f64) -> ConsumerGroup {
        ConsumerGroup {
            group: "workers".into(),
            topic: "work".into(),
            partitions,
            lag_messages,
            lag_max_partition: 0.0,
            consumption_rate: 0.0,
            lag_target_sec: 60.0,
        }
    }

    #[test]
    fn a_group_that_keeps_up_rides_out_an_overrun_smaller_than_a_rebalance() {
        // 10 consumers of 60 msg/s carry 600; 580 now. A forecast of 1.05x (609 msg/s) piles up
        // 9 msg/s for 30 s, 270 messages: less than a rebalance's 15 s of production (8,700).
        // A forecast of 1.7x (986 msg/s) piles up 11,580; a group already behind scales up too.
        let small = forecast([1.03, 1.05, 1.07], [1.03, 1.05, 1.07]);
        let large = forecast([1.5, 1.7, 1.9], [1.5, 1.7, 1.9]);
        // At the edge: 600 + 580 * 15 / 30 = 890 msg/s are ridden out.
        let held = forecast([1.4, 1.5, 1.6], [1.4, 1.5, 1.6]);
        let not = forecast([1.5, 1.55, 1.6], [1.5, 1.55, 1.6]);
        let at = |f: &Forecast, lag: f64| {
            decide_group(
                &features(580.0, 10.0, Some(60.0)),
                &group(40, lag),
                f,
                0.9,
                0.0,
                30.0,
                90.0,
            )
            .action
        };
        assert_eq!(at(&small, 0.0), Action::NoAction);
        assert_eq!(at(&large, 0.0), Action::ScaleUp);
        assert_eq!(
            (at(&held, 0.0), at(&not, 0.0)),
            (Action::NoAction, Action::ScaleUp)
        );
        assert_eq!(at(&small, 580.0 * 10.0), Action::ScaleUp, "10 s behind");
    }

    #[test]
    fn a_group_is_sized_for_the_peak_with_counts_that_fit_its_partitions() {
        // 40 partitions, 60 msg/s a consumer, 1,000 msg/s now and 1.2x at P90: 1,200 msg/s needs
        // 20 consumers (19 would leave some with three partitions, as 14 do).
        let f = forecast([1.1, 1.2, 1.3], [1.1, 1.2, 1.3]);
        let v = decide_group(
            &features(1_000.0, 10.0, Some(60.0)),
            &group(40, 0.0),
            &f,
            0.9,
            0.0,
            30.0,
            90.0,
        );
        assert_eq!((v.action, v.safe_replicas), (Action::ScaleUp, 20));
        // Never more consumers than partitions.
        let v = decide_group(
            &features(1_000.0, 4.0, Some(60.0)),
            &group(8, 0.0),
            &f,
            0.9,
            0.0,
            30.0,
            90.0,
        );
        assert_eq!((v.action, v.safe_replicas), (Action::ScaleUp, 8));
    }

    #[test]
    fn a_group_behind_its_target_reads_its_lag_back_within_half_the_target() {
        let f = forecast([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]);
        // 100 msg/s on 2 consumers of 60 is carried; 6,000 behind (60 s) is not: 6,000 over
        // 30 s is 200 msg/s more, 300 in all: 5 consumers, of 10 partitions.
        let v = decide_group(
            &features(100.0, 2.0, Some(60.0)),
            &group(10, 0.0),
            &f,
            0.9,
            0.0,
            30.0,
            90.0,
        );
        assert_eq!((v.action, v.safe_replicas), (Action::NoAction, 2));
        let v = decide_group(
            &features(100.0, 2.0, Some(60.0)),
            &group(10, 6_000.0),
            &f,
            0.9,
            0.0,
            30.0,
            90.0,
        );
        assert_eq!((v.action, v.safe_replicas), (Action::ScaleUp, 5));
        assert!(v.confidence > 0.9, "{v:?}");
        // Behind, nothing is given back even when the production fell.
        let v = decide_group(
            &features(10.0, 5.0, Some(60.0)),
            &group(10, 200.0),
            &f,
            0.9,
            0.0,
            30.0,
            90.0,
        );
        assert_eq!(v.action, Action::NoAction);
        let v = decide_group(
            &features(10.0, 5.0, Some(60.0)),
            &group(10, 0.0),
            &f,
            0.9,
            0.0,
            30.0,
            90.0,
        );
        assert_eq!((v.action, v.safe_replicas), (Action::ScaleDown, 1));
    }

    #[test]
    fn a_scale_down_must_save_more_than_its_rebalance_stops() {
        let f = forecast([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]);
        // 1,680 msg/s, consumers of 60, 1,000 partitions: 29 carry it (28 do not: some would
        // hold 36 partitions). From 30, one fewer for 90 s does not pay for a 15 s pause of 29
        // (90 < 435 consumer-seconds); from 40, eleven fewer do (990).
        let on = |consumers: f64| {
            decide_group(
                &features(1_680.0, consumers, Some(60.0)),
                &group(1_000, 0.0),
                &f,
                0.9,
                0.0,
                30.0,
                90.0,
            )
        };
        let v = on(30.0);
        assert_eq!((v.action, v.safe_replicas), (Action::NoAction, 30), "{v:?}");
        let v = on(40.0);
        assert_eq!(
            (v.action, v.safe_replicas),
            (Action::ScaleDown, 29),
            "{v:?}"
        );
    }

    #[test]
    fn a_scale_down_pays_for_its_rebalance_under_a_tight_target() {
        // A 20 s target: the 15 s pause piles up more than half of it, so the smaller group
        // must also read that back within 10 s.
        let f = forecast([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]);
        let mut tight = group(10, 0.0);
        tight.lag_target_sec = 20.0;
        let v = decide_group(
            &features(100.0, 5.0, Some(60.0)),
            &tight,
            &f,
            0.9,
            0.0,
            30.0,
            90.0,
        );
        // 100 msg/s needs 2; with 100 * 15 / 10 = 150 more, 250: 5. Hold.
        assert_eq!((v.action, v.safe_replicas), (Action::NoAction, 5));
        let v = decide_group(
            &features(100.0, 5.0, Some(60.0)),
            &group(10, 0.0),
            &f,
            0.9,
            0.0,
            30.0,
            90.0,
        );
        assert_eq!((v.action, v.safe_replicas), (Action::ScaleDown, 2));
    }

    proptest! {
        /// Whatever a model answers, a group's vote is consistent and within its partitions.
        #[test]
        fn group_votes_are_consistent(
            rate in 0.0f64..1e6, replicas in 1u32..200, capacity in 0.01f64..1e4,
            partitions in 1u32..500, lag in prop_oneof![Just(0.0), 0.0f64..1e9],
            up in proptest::array::uniform3(prop_oneof![-5.0f64..5.0, Just(f64::NAN), Just(1e300)]),
            down in proptest::array::uniform3(-5.0f64..5.0),
            level in 0.01f64..0.999,
        ) {
            let f = Forecast {
                up: Distribution::new(&LEVELS, &up),
                down: Distribution::new(&LEVELS, &down),
            };
            let v = decide_group(
                &features(rate, f64::from(replicas), Some(capacity)), &group(partitions, lag),
                &f, level, 1.0, 30.0, 90.0,
            );
            prop_assert!((0.0..=1.0).contains(&v.confidence));
            match v.action {
                Action::ScaleUp => prop_assert!(v.safe_replicas > replicas && v.safe_replicas <= partitions),
                Action::ScaleDown => prop_assert!(replicas > 1 && v.safe_replicas < replicas),
                Action::NoAction => prop_assert!(v.safe_replicas <= replicas),
            }
        }
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
