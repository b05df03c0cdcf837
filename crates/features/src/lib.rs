//! Feature computation, with no I/O: what was measured for one service over one window becomes
//! the shared [`contract::Features`].
//!
//! The aggregator feeds it observations from Prometheus; the offline trace replay feeds it
//! observations of a simulated service. Both get the same features from the same code, so that
//! models trained on one mean the same thing on the other.

mod trend;

pub use trend::relative_slope_per_minute;

use contract::Features;
use std::collections::{HashMap, VecDeque};

/// Latency percentiles of one window, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// What was measured for one service over one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Evaluation time of the window, Unix seconds.
    pub at_secs: u64,
    /// Requests per second, summed over replicas.
    pub request_rate: f64,
    /// 5xx answers per second, summed over replicas.
    pub error_rate: f64,
    /// Latency percentiles; `None` (or NaN inside) when no request completed.
    pub latency: Option<Quantiles>,
    /// Replicas that were scraped successfully.
    pub replicas: u32,
    /// CPU cores per replica, when measured.
    pub cpu_per_replica: Option<f64>,
    /// Memory bytes per replica, when measured.
    pub memory_per_replica: Option<f64>,
}

/// Why an observation gives no feature vector.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Skip {
    #[error("no replica is up")]
    NoReplicas,
    #[error("{0} is negative or not a number")]
    InvalidValue(&'static str),
}

impl Skip {
    /// Every value [`Skip::reason`] can take.
    pub const REASONS: [&'static str; 2] = ["no_replicas", "invalid_value"];

    /// A bounded label for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Skip::NoReplicas => "no_replicas",
            Skip::InvalidValue(_) => "invalid_value",
        }
    }
}

/// A trend needs at least this many points.
const MIN_TREND_POINTS: usize = 2;

/// Builds feature vectors and keeps the short history each service's trends need.
#[derive(Debug, Clone)]
pub struct FeatureBuilder {
    /// Windows a trend spans, the current one included.
    trend_windows: usize,
    /// Seconds between windows; points older than the trend span are dropped.
    interval_secs: u64,
    /// Recent accepted observations per service, oldest first.
    history: HashMap<String, VecDeque<Observation>>,
}

impl FeatureBuilder {
    /// `trend_windows` is clamped to at least 2 (a slope needs two points).
    pub fn new(trend_windows: usize, interval_secs: u64) -> Self {
        Self {
            trend_windows: trend_windows.max(MIN_TREND_POINTS),
            interval_secs: interval_secs.max(1),
            history: HashMap::new(),
        }
    }

    /// Windows a trend spans.
    pub fn trend_windows(&self) -> usize {
        self.trend_windows
    }

    /// Computes the features of `observation` and remembers it for later trends.
    ///
    /// Observations of a service must arrive in time order; an observation not newer than the
    /// last one remembered for the service is computed but not remembered again.
    pub fn push(&mut self, service: &str, observation: Observation) -> Result<Features, Skip> {
        let observation = sanitize(observation)?;
        let span = self.interval_secs * (self.trend_windows as u64 - 1);
        let oldest_kept = observation.at_secs.saturating_sub(span);
        let history = self.history.entry(service.to_owned()).or_default();
        while history.front().is_some_and(|o| o.at_secs < oldest_kept) {
            history.pop_front();
        }
        if history
            .back()
            .is_none_or(|last| last.at_secs < observation.at_secs)
        {
            history.push_back(observation);
        }
        let window: Vec<&Observation> = history
            .iter()
            .filter(|o| o.at_secs <= observation.at_secs)
            .collect();
        Ok(compute(&observation, &window))
    }

    /// Keeps the history of the services for which `keep` is true; forgets the others (they
    /// disappeared from discovery), so the history does not grow with service churn.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.history.retain(|service, _| keep(service));
    }
}

/// Rejects what no window can mean; turns non-finite latencies into "no latency".
fn sanitize(mut o: Observation) -> Result<Observation, Skip> {
    if o.replicas == 0 {
        return Err(Skip::NoReplicas);
    }
    if !(o.request_rate.is_finite() && o.request_rate >= 0.0) {
        return Err(Skip::InvalidValue("request_rate"));
    }
    if !(o.error_rate.is_finite() && o.error_rate >= 0.0) {
        return Err(Skip::InvalidValue("error_rate"));
    }
    let finite = |q: &Quantiles| {
        [q.p50, q.p95, q.p99]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0)
    };
    if o.request_rate == 0.0 || !o.latency.as_ref().is_some_and(finite) {
        o.latency = None;
    }
    let measured = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0);
    o.cpu_per_replica = measured(o.cpu_per_replica);
    o.memory_per_replica = measured(o.memory_per_replica);
    Ok(o)
}

/// The features of `current`, with trends over `window` (oldest first, ending with `current`).
fn compute(current: &Observation, window: &[&Observation]) -> Features {
    let replicas = f64::from(current.replicas);
    let error_ratio = if current.request_rate > 0.0 {
        (current.error_rate / current.request_rate).min(1.0)
    } else {
        0.0
    };
    let trend_of = |value: fn(&Observation) -> Option<f64>| {
        let points: Vec<(f64, f64)> = window
            .iter()
            .filter_map(|o| value(o).map(|v| (o.at_secs as f64, v)))
            .collect();
        if points.len() < MIN_TREND_POINTS {
            return None;
        }
        relative_slope_per_minute(&points)
    };
    Features {
        request_rate: current.request_rate,
        request_rate_per_replica: current.request_rate / replicas,
        error_ratio,
        replicas,
        latency_p50: current.latency.map(|q| q.p50),
        latency_p95: current.latency.map(|q| q.p95),
        latency_p99: current.latency.map(|q| q.p99),
        cpu_per_replica: current.cpu_per_replica,
        memory_per_replica: current.memory_per_replica,
        request_rate_trend: trend_of(|o| Some(o.request_rate)),
        latency_p95_trend: trend_of(|o| o.latency.map(|q| q.p95)),
        cpu_per_replica_trend: trend_of(|o| o.cpu_per_replica),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obs(at_secs: u64, request_rate: f64, p95: f64) -> Observation {
        Observation {
            at_secs,
            request_rate,
            error_rate: 0.0,
            latency: Some(Quantiles {
                p50: p95 / 2.0,
                p95,
                p99: p95 * 1.5,
            }),
            replicas: 2,
            cpu_per_replica: None,
            memory_per_replica: Some(1e6),
        }
    }

    #[test]
    fn first_window_has_no_trend_and_per_replica_values() {
        let mut b = FeatureBuilder::new(4, 30);
        let f = b.push("orders", obs(30, 100.0, 0.2)).unwrap();
        assert_eq!(f.request_rate_per_replica, 50.0);
        assert_eq!(f.replicas, 2.0);
        assert_eq!(f.latency_p95, Some(0.2));
        assert_eq!(f.request_rate_trend, None);
        assert_eq!(f.cpu_per_replica, None);
        assert_eq!(f.memory_per_replica, Some(1e6));
    }

    #[test]
    fn rising_load_gives_positive_trend_per_minute() {
        let mut b = FeatureBuilder::new(4, 30);
        b.push("orders", obs(0, 100.0, 0.2)).unwrap();
        let f = b.push("orders", obs(30, 110.0, 0.2)).unwrap();
        // +10 req/s in half a minute, relative to a mean of 105: 20/105 per minute.
        let trend = f.request_rate_trend.unwrap();
        assert!((trend - 20.0 / 105.0).abs() < 1e-9, "{trend}");
        assert_eq!(f.latency_p95_trend, Some(0.0));
    }

    #[test]
    fn history_is_per_service_and_bounded_by_the_span() {
        let mut b = FeatureBuilder::new(2, 30);
        b.push("orders", obs(0, 1000.0, 0.2)).unwrap();
        b.push("carts", obs(30, 10.0, 0.2)).unwrap();
        // 90 s later the point at 0 is outside a two-window span: no trend yet for orders.
        let f = b.push("orders", obs(90, 100.0, 0.2)).unwrap();
        assert_eq!(f.request_rate_trend, None);
    }

    #[test]
    fn idle_service_has_no_latency_and_zero_errors() {
        let mut b = FeatureBuilder::new(4, 30);
        let mut o = obs(0, 0.0, f64::NAN);
        o.error_rate = 0.0;
        let f = b.push("orders", o).unwrap();
        assert_eq!(f.latency_p95, None);
        assert_eq!(f.error_ratio, 0.0);
    }

    #[test]
    fn no_replicas_and_nan_rates_are_skipped() {
        let mut b = FeatureBuilder::new(4, 30);
        let mut o = obs(0, 10.0, 0.1);
        o.replicas = 0;
        assert_eq!(b.push("a", o), Err(Skip::NoReplicas));
        let mut o = obs(0, f64::NAN, 0.1);
        o.replicas = 1;
        assert_eq!(b.push("a", o), Err(Skip::InvalidValue("request_rate")));
    }

    #[test]
    fn replayed_window_is_not_remembered_twice() {
        let mut b = FeatureBuilder::new(4, 30);
        b.push("orders", obs(0, 100.0, 0.2)).unwrap();
        let first = b.push("orders", obs(30, 120.0, 0.2)).unwrap();
        let again = b.push("orders", obs(30, 120.0, 0.2)).unwrap();
        assert_eq!(first, again);
    }

    proptest! {
        /// Whatever Prometheus returns, a produced vector passes the contract's validation.
        #[test]
        fn produced_features_are_always_valid(
            rate in prop_oneof![0.0f64..1e6, Just(f64::INFINITY), Just(f64::NAN)],
            errors in 0.0f64..1e6,
            p95 in prop_oneof![0.0f64..100.0, Just(f64::NAN), Just(f64::INFINITY)],
            replicas in 0u32..50,
            cpu in proptest::option::of(prop_oneof![0.0f64..64.0, Just(f64::NAN), Just(-1.0)]),
            times in proptest::collection::vec(0u64..10_000, 1..8),
        ) {
            let mut b = FeatureBuilder::new(4, 30);
            let mut times = times;
            times.sort_unstable();
            for at in times {
                let mut o = obs(at, rate, p95);
                o.error_rate = errors;
                o.replicas = replicas;
                o.cpu_per_replica = cpu;
                if let Ok(f) = b.push("svc", o) {
                    prop_assert!(f.validate().is_ok(), "{f:?}");
                    prop_assert!((0.0..=1.0).contains(&f.error_ratio));
                    prop_assert!(f.replicas >= 1.0);
                }
            }
        }
    }
}
