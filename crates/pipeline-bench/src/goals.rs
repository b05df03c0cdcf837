//! The two goals the pipeline is held to, relative to the broker it runs on:
//! (i) decision latency p50 and p99 each within 1.2 x two broker round trips (a vector crosses
//! the broker twice before a decision: `metrics` to the voters, `model-votes` to the scaler);
//! (ii) throughput at least half the broker's own produce-to-consume rate.

use std::time::Duration;

/// Allowed latency over the broker hops.
pub const LATENCY_SLACK: f64 = 1.2;
/// Broker round trips between a feature vector and its decision.
pub const HOPS: f64 = 2.0;
/// Share of the broker's rate the pipeline must reach.
pub const THROUGHPUT_SHARE: f64 = 0.5;

/// One goal, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub goal: String,
    /// The pipeline's figure, formatted.
    pub measured: String,
    /// The bound, formatted.
    pub target: String,
    /// The pipeline's figure over the broker-based reference (2 x round trip, or the rate).
    pub ratio: f64,
    pub met: bool,
}

/// Goal (i) for one percentile: `pipeline <= 1.2 x 2 x broker`.
pub fn latency(percentile: &str, pipeline: Duration, broker_round_trip: Duration) -> Check {
    let reference = broker_round_trip.as_secs_f64() * HOPS;
    let ratio = if reference > 0.0 {
        pipeline.as_secs_f64() / reference
    } else {
        f64::INFINITY
    };
    Check {
        goal: format!(
            "(i) decision latency {percentile} within {LATENCY_SLACK} x two broker round trips"
        ),
        measured: format!("{:.2} ms", pipeline.as_secs_f64() * 1e3),
        target: format!(
            "<= {:.2} ms ({LATENCY_SLACK} x 2 x {:.2} ms)",
            reference * LATENCY_SLACK * 1e3,
            broker_round_trip.as_secs_f64() * 1e3
        ),
        ratio,
        met: ratio <= LATENCY_SLACK,
    }
}

/// Goal (ii): `pipeline >= 0.5 x broker`, with every vector decided.
pub fn throughput(pipeline: f64, broker: f64, every_vector_decided: bool) -> Check {
    let ratio = if broker > 0.0 { pipeline / broker } else { 0.0 };
    Check {
        goal: "(ii) pipeline throughput at least half the broker's produce-to-consume rate".into(),
        measured: format!(
            "{pipeline:.0} vectors/s{}",
            if every_vector_decided {
                ""
            } else {
                " (some vectors undecided)"
            }
        ),
        target: format!(
            ">= {:.0} /s ({THROUGHPUT_SHARE} x {broker:.0} msg/s)",
            broker * THROUGHPUT_SHARE
        ),
        ratio,
        met: every_vector_decided && ratio >= THROUGHPUT_SHARE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_held_to_two_round_trips_with_slack() {
        let rt = Duration::from_millis(10);
        let ok = latency("p50", Duration::from_millis(24), rt);
        assert!(ok.met && (ok.ratio - 1.2).abs() < 1e-9, "{ok:?}");
        let slow = latency("p99", Duration::from_millis(25), rt);
        assert!(!slow.met, "{slow:?}");
        assert!(!latency("p50", Duration::from_millis(1), Duration::ZERO).met);
    }

    #[test]
    fn throughput_is_held_to_half_the_broker_and_completeness() {
        assert!(throughput(500.0, 1000.0, true).met);
        assert!(!throughput(499.0, 1000.0, true).met);
        assert!(!throughput(900.0, 1000.0, false).met);
        assert_eq!(throughput(250.0, 1000.0, true).ratio, 0.25);
        assert!(!throughput(1.0, 0.0, true).met);
    }
}
