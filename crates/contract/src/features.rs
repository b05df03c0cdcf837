//! The feature schema: the ordered names, units and meanings of the values in a feature vector.
//!
//! It is defined once, here, by the `feature_schema!` declaration below. The aggregator fills
//! [`Features`], the development-mode CSV takes its columns from [`FEATURE_SCHEMA`], the trainer
//! learns from those columns in this order, and the inference services refuse a model whose
//! feature list does not match it.

use serde::{Deserialize, Serialize};

/// One entry of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FeatureSpec {
    /// Field name in JSON, CSV column name and model feature name.
    pub name: &'static str,
    /// Unit of the value, for humans and dashboards.
    pub unit: &'static str,
    /// `false`: always present. `true`: null when it cannot be measured (the description says when).
    pub optional: bool,
    /// What the value means and how it is measured.
    pub description: &'static str,
    /// The least value a message may carry.
    pub min: f64,
    /// The greatest value a message may carry: far above anything measured, low enough that no
    /// consumer sizes anything by an absurd value (a replica count of 1e9).
    pub max: f64,
}

macro_rules! feature_schema {
    (
        required { $( $rname:ident : $runit:literal [$rmin:expr, $rmax:expr] => $rdesc:literal ),* $(,)? }
        optional { $( $oname:ident : $ounit:literal [$omin:expr, $omax:expr] => $odesc:literal ),* $(,)? }
    ) => {
        /// The values of one feature vector, in schema order (required first, then optional).
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        pub struct Features {
            $( #[doc = $rdesc] pub $rname: f64, )*
            $( #[doc = $odesc] pub $oname: Option<f64>, )*
        }

        /// The ordered schema of [`Features`].
        pub const FEATURE_SCHEMA: &[FeatureSpec] = &[
            $( FeatureSpec { name: stringify!($rname), unit: $runit, optional: false, description: $rdesc, min: $rmin, max: $rmax }, )*
            $( FeatureSpec { name: stringify!($oname), unit: $ounit, optional: true, description: $odesc, min: $omin, max: $omax }, )*
        ];

        /// Number of features in the schema.
        pub const FEATURE_COUNT: usize = [$(stringify!($rname),)* $(stringify!($oname),)*].len();

        impl Features {
            /// The values in schema order; a missing optional value is `NaN`.
            pub fn values(&self) -> [f64; FEATURE_COUNT] {
                [ $( self.$rname, )* $( self.$oname.unwrap_or(f64::NAN), )* ]
            }

            /// The inverse of [`Features::values`]: `NaN` in an optional position becomes `None`.
            /// Fails when a required value is not finite.
            pub fn from_values(values: &[f64; FEATURE_COUNT]) -> Result<Self, String> {
                let mut it = values.iter().copied();
                let features = Self {
                    $( $rname: it.next().unwrap_or(f64::NAN), )*
                    $( $oname: it.next().filter(|v| !v.is_nan()), )*
                };
                features.validate()?;
                Ok(features)
            }

            /// Every present value must be finite and within its schema bounds.
            pub fn validate(&self) -> Result<(), String> {
                $( check_bounds(stringify!($rname), self.$rname, $rmin, $rmax)?; )*
                $( if let Some(value) = self.$oname {
                    check_bounds(stringify!($oname), value, $omin, $omax)?;
                } )*
                Ok(())
            }

            /// Brings every present value into its schema bounds (a producer's last step, so that
            /// an odd measurement never makes its own message unreadable); a value that is not a
            /// number becomes the lower bound, or `None` where the feature is optional.
            pub fn clamp_to_schema(&mut self) {
                $( self.$rname = clamp_value(self.$rname, $rmin, $rmax); )*
                $( self.$oname = self.$oname.filter(|v| !v.is_nan()).map(|v| clamp_value(v, $omin, $omax)); )*
            }
        }
    };
}

feature_schema! {
    required {
        request_rate: "req/s" [0.0, MAX_RATE] =>
            "Requests per second over the rate window, summed over all replicas.",
        request_rate_per_replica: "req/s" [0.0, MAX_RATE] =>
            "request_rate divided by replicas: the load each replica carries.",
        error_ratio: "ratio" [0.0, 1.0] =>
            "Share of requests answered with a 5xx status over the rate window (0 when there were no requests).",
        replicas: "count" [1.0, MAX_REPLICAS as f64] =>
            "Replicas whose metrics endpoint Prometheus scraped successfully (up == 1).",
    }
    optional {
        latency_p50: "s" [0.0, MAX_LATENCY_SEC] =>
            "Median request latency from the request_duration_seconds histogram; null when no request completed.",
        latency_p95: "s" [0.0, MAX_LATENCY_SEC] =>
            "95th percentile request latency from the histogram; null when no request completed.",
        latency_p99: "s" [0.0, MAX_LATENCY_SEC] =>
            "99th percentile request latency from the histogram; null when no request completed.",
        cpu_per_replica: "cores" [0.0, 1e4] =>
            "CPU used per replica (cAdvisor container CPU, else the process CPU the service exports); null when neither exists.",
        memory_per_replica: "bytes" [0.0, 1e15] =>
            "Memory per replica (cAdvisor working set, else process resident memory); null when neither exists.",
        request_rate_trend: "1/min" [-MAX_TREND, MAX_TREND] =>
            "Least-squares slope of request_rate over the recent windows, relative to their mean, per minute; null until two windows exist.",
        latency_p95_trend: "1/min" [-MAX_TREND, MAX_TREND] =>
            "Relative slope of latency_p95 over the recent windows, per minute; null until two windows with latency exist.",
        cpu_per_replica_trend: "1/min" [-MAX_TREND, MAX_TREND] =>
            "Relative slope of cpu_per_replica over the recent windows, per minute; null until two windows with CPU exist.",
        rate_max_recent: "ratio" [0.0, MAX_RATE] =>
            "Highest request_rate of the last 6 windows (this one included) over this window's, each plus 1 req/s.",
        rate_min_recent: "ratio" [0.0, MAX_RATE] =>
            "Lowest request_rate of the last 6 windows over this window's, each plus 1 req/s.",
        rate_mean_long: "ratio" [0.0, MAX_RATE] =>
            "Mean request_rate of the last 30 windows over this window's, each plus 1 req/s.",
        rate_max_long: "ratio" [0.0, MAX_RATE] =>
            "Highest request_rate of the last 30 windows over this window's, each plus 1 req/s.",
        rate_cv_long: "ratio" [0.0, 1e3] =>
            "Deviation over mean of request_rate over the last 30 windows; null before three windows.",
        rate_trend_long: "1/min" [-MAX_TREND, MAX_TREND] =>
            "Relative slope of request_rate over the last 30 windows, per minute; null before two windows.",
        day_ago_ratio: "ratio" [0.0, MAX_RATE] =>
            "request_rate at the same time a day ago (DAILY_PERIOD_SEC) over this window's, each plus 1 req/s; null where Prometheus has no data that old.",
        day_ago_rise: "ratio" [0.0, MAX_RATE] =>
            "Highest request_rate in the 9 windows after that time a day ago over the rate then, each plus 1 req/s: what the load did next a day ago.",
        week_ago_ratio: "ratio" [0.0, MAX_RATE] =>
            "request_rate at the same time a week ago (WEEKLY_PERIOD_SEC) over this window's, each plus 1 req/s; null where Prometheus has no data that old.",
        week_ago_rise: "ratio" [0.0, MAX_RATE] =>
            "Highest request_rate in the 9 windows after that time a week ago over the rate then, each plus 1 req/s.",
        capacity_per_replica: "req/s" [0.0, MAX_RATE] =>
            "What one replica of this service carries within its SLA, learned online from its own windows (a cautious prior until it has shown more).",
        capacity_utilization: "ratio" [0.0, MAX_RATE] =>
            "request_rate_per_replica over capacity_per_replica.",
    }
}

/// The most replicas a message may report or ask for. Far above what one Compose host or Swarm
/// runs; a bound, so that nothing sized by a replica count (a voter's candidate counts, a
/// Docker call per replica) can be made to grow without limit by one message.
pub const MAX_REPLICAS: u32 = 10_000;
/// The highest request rate, or ratio of rates, a message may carry (a billion per second).
const MAX_RATE: f64 = 1e9;
/// The longest latency a message may carry: a day, in seconds.
const MAX_LATENCY_SEC: f64 = 86_400.0;
/// The steepest relative trend a message may carry, per minute.
const MAX_TREND: f64 = 1e6;

fn check_bounds(name: &str, value: f64, min: f64, max: f64) -> Result<(), String> {
    if !value.is_finite() {
        return Err(format!("feature {name} is not a finite number"));
    }
    if !(min..=max).contains(&value) {
        return Err(format!("feature {name} is {value}, outside [{min}, {max}]"));
    }
    Ok(())
}

fn clamp_value(value: f64, min: f64, max: f64) -> f64 {
    if value.is_nan() {
        min
    } else {
        value.clamp(min, max)
    }
}

/// Position of a feature in the schema, by name.
pub fn feature_index(name: &str) -> Option<usize> {
    FEATURE_SCHEMA.iter().position(|spec| spec.name == name)
}

/// The schema's names in order.
pub fn feature_names() -> impl Iterator<Item = &'static str> {
    FEATURE_SCHEMA.iter().map(|spec| spec.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn schema_names_are_unique_and_count_matches() {
        let mut names: Vec<_> = feature_names().collect();
        assert_eq!(names.len(), FEATURE_COUNT);
        let required = FEATURE_SCHEMA.iter().filter(|s| !s.optional).count();
        assert_eq!(
            (required, FEATURE_COUNT),
            (4, 24),
            "the round-trip property draws 24 values"
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FEATURE_COUNT);
        assert_eq!(feature_index("request_rate"), Some(0));
        assert_eq!(feature_index("nope"), None);
    }

    #[test]
    fn non_finite_required_value_is_rejected() {
        let mut values = [1.0; FEATURE_COUNT];
        values[feature_index("replicas").unwrap()] = f64::INFINITY;
        let err = Features::from_values(&values).unwrap_err();
        assert!(err.contains("replicas"), "{err}");
    }

    #[test]
    fn values_outside_the_schema_bounds_are_rejected_and_clamped() {
        let mut values = [1.0; FEATURE_COUNT];
        values[feature_index("replicas").unwrap()] = 1e9;
        let err = Features::from_values(&values).unwrap_err();
        assert!(err.contains("replicas is 1000000000, outside"), "{err}");
        values[feature_index("replicas").unwrap()] = 3.0;
        values[feature_index("error_ratio").unwrap()] = -0.5;
        assert!(Features::from_values(&values).is_err());

        let mut features = Features::from_values(&[1.0; FEATURE_COUNT]).unwrap();
        features.replicas = 1e9;
        features.error_ratio = f64::NAN;
        features.latency_p95 = Some(f64::INFINITY);
        features.rate_cv_long = Some(f64::NAN);
        features.clamp_to_schema();
        assert_eq!(features.replicas, f64::from(MAX_REPLICAS));
        assert_eq!(features.error_ratio, 0.0);
        assert_eq!(features.latency_p95, Some(MAX_LATENCY_SEC));
        assert_eq!(features.rate_cv_long, None);
        assert!(features.validate().is_ok());
    }

    proptest! {
        #[test]
        fn values_round_trip(
            fractions in proptest::array::uniform24(0.0f64..=1.0),
            missing in proptest::array::uniform24(proptest::bool::weighted(0.3)),
        ) {
            let mut values = [0.0; FEATURE_COUNT];
            for (i, spec) in FEATURE_SCHEMA.iter().enumerate() {
                values[i] = if spec.optional && missing[i] {
                    f64::NAN
                } else {
                    spec.min + fractions[i] * (spec.max - spec.min)
                };
            }
            let features = Features::from_values(&values).unwrap();
            let back = features.values();
            for (a, b) in values.iter().zip(back.iter()) {
                prop_assert!(a == b || (a.is_nan() && b.is_nan()));
            }
        }
    }
}
