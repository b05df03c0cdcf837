//! The feature schema: the ordered names, units and meanings of the values in a feature vector.
//!
//! It is defined once, here, by the `feature_schema!` declaration below. The aggregator fills
//! [`Features`], the development-mode CSV takes its columns from [`FEATURE_SCHEMA`], the trainer
//! learns from those columns in this order, and the inference services refuse a model whose
//! feature list does not match it.

use serde::{Deserialize, Serialize};

/// One entry of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FeatureSpec {
    /// Field name in JSON, CSV column name and model feature name.
    pub name: &'static str,
    /// Unit of the value, for humans and dashboards.
    pub unit: &'static str,
    /// `false`: always present. `true`: null when it cannot be measured (the description says when).
    pub optional: bool,
    /// What the value means and how it is measured.
    pub description: &'static str,
}

macro_rules! feature_schema {
    (
        required { $( $rname:ident : $runit:literal => $rdesc:literal ),* $(,)? }
        optional { $( $oname:ident : $ounit:literal => $odesc:literal ),* $(,)? }
    ) => {
        /// The values of one feature vector, in schema order (required first, then optional).
        #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
        pub struct Features {
            $( #[doc = $rdesc] pub $rname: f64, )*
            $( #[doc = $odesc] pub $oname: Option<f64>, )*
        }

        /// The ordered schema of [`Features`].
        pub const FEATURE_SCHEMA: &[FeatureSpec] = &[
            $( FeatureSpec { name: stringify!($rname), unit: $runit, optional: false, description: $rdesc }, )*
            $( FeatureSpec { name: stringify!($oname), unit: $ounit, optional: true, description: $odesc }, )*
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

            /// Every present value must be finite.
            pub fn validate(&self) -> Result<(), String> {
                $( if !self.$rname.is_finite() {
                    return Err(format!("feature {} is not a finite number", stringify!($rname)));
                } )*
                $( if self.$oname.is_some_and(|v| !v.is_finite()) {
                    return Err(format!("feature {} is not a finite number", stringify!($oname)));
                } )*
                Ok(())
            }
        }
    };
}

feature_schema! {
    required {
        request_rate: "req/s" =>
            "Requests per second over the rate window, summed over all replicas.",
        request_rate_per_replica: "req/s" =>
            "request_rate divided by replicas: the load each replica carries.",
        error_ratio: "ratio" =>
            "Share of requests answered with a 5xx status over the rate window (0 when there were no requests).",
        replicas: "count" =>
            "Replicas whose metrics endpoint Prometheus scraped successfully (up == 1).",
    }
    optional {
        latency_p50: "s" =>
            "Median request latency from the request_duration_seconds histogram; null when no request completed.",
        latency_p95: "s" =>
            "95th percentile request latency from the histogram; null when no request completed.",
        latency_p99: "s" =>
            "99th percentile request latency from the histogram; null when no request completed.",
        cpu_per_replica: "cores" =>
            "CPU used per replica (cAdvisor container CPU, else the process CPU the service exports); null when neither exists.",
        memory_per_replica: "bytes" =>
            "Memory per replica (cAdvisor working set, else process resident memory); null when neither exists.",
        request_rate_trend: "1/min" =>
            "Least-squares slope of request_rate over the recent windows, relative to their mean, per minute; null until two windows exist.",
        latency_p95_trend: "1/min" =>
            "Relative slope of latency_p95 over the recent windows, per minute; null until two windows with latency exist.",
        cpu_per_replica_trend: "1/min" =>
            "Relative slope of cpu_per_replica over the recent windows, per minute; null until two windows with CPU exist.",
        rate_max_recent: "ratio" =>
            "Highest request_rate of the last 6 windows (this one included) over this window's, each plus 1 req/s.",
        rate_min_recent: "ratio" =>
            "Lowest request_rate of the last 6 windows over this window's, each plus 1 req/s.",
        rate_mean_long: "ratio" =>
            "Mean request_rate of the last 30 windows over this window's, each plus 1 req/s.",
        rate_max_long: "ratio" =>
            "Highest request_rate of the last 30 windows over this window's, each plus 1 req/s.",
        rate_cv_long: "ratio" =>
            "Deviation over mean of request_rate over the last 30 windows; null before three windows.",
        rate_trend_long: "1/min" =>
            "Relative slope of request_rate over the last 30 windows, per minute; null before two windows.",
        day_ago_ratio: "ratio" =>
            "request_rate at the same time a day ago (DAILY_PERIOD_SEC) over this window's, each plus 1 req/s; null where Prometheus has no data that old.",
        day_ago_rise: "ratio" =>
            "Highest request_rate in the 9 windows after that time a day ago over the rate then, each plus 1 req/s: what the load did next a day ago.",
        week_ago_ratio: "ratio" =>
            "request_rate at the same time a week ago (WEEKLY_PERIOD_SEC) over this window's, each plus 1 req/s; null where Prometheus has no data that old.",
        week_ago_rise: "ratio" =>
            "Highest request_rate in the 9 windows after that time a week ago over the rate then, each plus 1 req/s.",
        capacity_per_replica: "req/s" =>
            "What one replica of this service carries within its SLA, learned online from its own windows (a cautious prior until it has shown more).",
        capacity_utilization: "ratio" =>
            "request_rate_per_replica over capacity_per_replica.",
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
            "the round-trip property assumes 4 + 20"
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

    proptest! {
        #[test]
        fn values_round_trip(
            required in proptest::array::uniform4(-1e9f64..1e9),
            optional in proptest::array::uniform20(prop_oneof![-1e9f64..1e9, Just(f64::NAN)]),
        ) {
            let mut values = [0.0; FEATURE_COUNT];
            values[..4].copy_from_slice(&required);
            values[4..].copy_from_slice(&optional);
            let features = Features::from_values(&values).unwrap();
            let back = features.values();
            for (a, b) in values.iter().zip(back.iter()) {
                prop_assert!(a == b || (a.is_nan() && b.is_nan()));
            }
        }
    }
}
