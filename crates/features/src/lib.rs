//! Feature computation, with no I/O: what was measured for one service over one window becomes
//! the shared [`contract::Features`].
//!
//! The aggregator feeds it observations from Prometheus; the offline trace replay feeds it
//! observations of a simulated service. Both get the same features from the same code, so that
//! models trained on one mean the same thing on the other.

pub mod anomaly;
mod capacity;
mod consumers;
pub mod synthetic;
mod trend;

pub use anomaly::{Detector, Finding, Reading};
pub use capacity::{Capacity, CapacitySettings, DEFAULT_PRIOR_RPS, VIOLATING_SHARE};
pub use consumers::{BEHIND_SEC, ConsumerCapacity, GroupFeatures, PROBE};
pub use trend::relative_slope_per_minute;

use contract::{AnomalyKind, Features};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Windows a short trend spans by default (the aggregator's `TREND_WINDOWS`).
pub const DEFAULT_TREND_WINDOWS: usize = 4;
/// Windows of the short look back (`rate_max_recent`, `rate_min_recent`), this one included.
pub const RECENT_WINDOWS: usize = 6;
/// Windows of the long look back (`rate_*_long`), this one included.
pub const LONG_WINDOWS: usize = 30;
/// Windows after "the same time a day (a week) ago" whose peak is `day_ago_rise`
/// (`week_ago_rise`): what the load did next then, over the scale-down horizon.
pub const SEASON_RISE_WINDOWS: u64 = 9;
/// Requests per second added to both sides of every rate ratio, so that a ratio of two quiet
/// windows is not noise blown up (1 req/s is 10 requests in a 10-second window).
pub const RATE_FLOOR: f64 = 1.0;

/// `a / b` for rates, each plus [`RATE_FLOOR`].
pub fn rate_ratio(a: f64, b: f64) -> f64 {
    (a.max(0.0) + RATE_FLOOR) / (b.max(0.0) + RATE_FLOOR)
}

/// Latency percentiles of one window, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// The load at the same time one period (a day, a week) ago, and what it did next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeasonPoint {
    /// Requests per second then.
    pub rate: f64,
    /// The highest request rate of the [`SEASON_RISE_WINDOWS`] windows after it.
    pub peak_after: f64,
}

/// The same time `lag` windows before window `now` in `rates` (one request rate per window,
/// oldest first), and the peak of the `horizon` windows after it; `None` where the history
/// does not reach back that far. What the aggregator asks Prometheus with `offset`, for the
/// offline replay, which keeps its own history.
pub fn season_point(rates: &[f64], now: usize, lag: usize, horizon: usize) -> Option<SeasonPoint> {
    let then = now.checked_sub(lag)?;
    let rate = *rates.get(then)?;
    let last = (then + horizon.max(1)).min(now);
    let peak_after = rates
        .get(then + 1..=last)?
        .iter()
        .copied()
        .fold(0.0, f64::max);
    Some(SeasonPoint { rate, peak_after })
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
    /// Targets of the service Prometheus failed to scrape (`up == 0`).
    pub replicas_unscraped: u32,
    /// CPU cores per replica, when measured.
    pub cpu_per_replica: Option<f64>,
    /// Memory bytes per replica, when measured.
    pub memory_per_replica: Option<f64>,
    /// The load a day ago, where the history reaches back that far.
    pub day_ago: Option<SeasonPoint>,
    /// The load a week ago, likewise.
    pub week_ago: Option<SeasonPoint>,
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

/// How features are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureSettings {
    /// Windows a short trend spans, the current one included (`TREND_WINDOWS`).
    pub trend_windows: usize,
    /// Seconds between windows; points older than a span are dropped.
    pub interval_secs: u64,
    /// The capacity estimate's prior and SLA.
    pub capacity: CapacitySettings,
    /// Whether to look for anomalies ([`anomaly`]; off unless set: the aggregator sets it from
    /// `ANOMALY_DETECTION`); flagged windows then teach the capacity estimate nothing (unless
    /// only scrapes were lost).
    pub anomalies: bool,
    /// Normal windows a band of the detector needs before it judges.
    pub anomaly_min_windows: usize,
}

impl FeatureSettings {
    /// `trend_windows` is clamped to at least 2 (a slope needs two points); the capacity
    /// estimates start from the default prior and SLA.
    pub fn new(trend_windows: usize, interval_secs: u64) -> Self {
        Self {
            trend_windows: trend_windows.max(MIN_TREND_POINTS),
            interval_secs: interval_secs.max(1),
            capacity: CapacitySettings::default(),
            anomalies: false,
            anomaly_min_windows: anomaly::MIN_WINDOWS,
        }
    }
}

/// What the builder remembers of one service.
#[derive(Debug, Clone, Default)]
struct History {
    /// Recent accepted observations, oldest first, over the trend span.
    observations: VecDeque<Observation>,
    /// (time, request rate) of the last [`LONG_WINDOWS`] windows, oldest first.
    rates: VecDeque<(u64, f64)>,
}

/// Builds feature vectors and keeps what each service's history features and capacity need.
#[derive(Debug, Clone)]
pub struct FeatureBuilder {
    settings: FeatureSettings,
    /// Per service, for the history features.
    history: HashMap<String, History>,
    /// Per service; kept when a service leaves discovery for a while, and persisted by the
    /// aggregator (what was learned over days is not thrown away by a restart).
    capacity: BTreeMap<String, Capacity>,
    /// Per service: what is normal for it, and what its last window showed that is not.
    detectors: HashMap<String, Detector>,
    findings: HashMap<String, Vec<Finding>>,
}

impl FeatureBuilder {
    /// A builder with the default capacity settings (see [`FeatureSettings::new`]).
    pub fn new(trend_windows: usize, interval_secs: u64) -> Self {
        Self::with_settings(FeatureSettings::new(trend_windows, interval_secs))
    }

    pub fn with_settings(settings: FeatureSettings) -> Self {
        Self {
            settings: FeatureSettings {
                trend_windows: settings.trend_windows.max(MIN_TREND_POINTS),
                interval_secs: settings.interval_secs.max(1),
                ..settings
            },
            history: HashMap::new(),
            capacity: BTreeMap::new(),
            detectors: HashMap::new(),
            findings: HashMap::new(),
        }
    }

    /// Windows a trend spans.
    pub fn trend_windows(&self) -> usize {
        self.settings.trend_windows
    }

    /// Computes the features of `observation` and remembers it for later history features and
    /// the service's capacity.
    ///
    /// Observations of a service must arrive in time order; an observation not newer than the
    /// last one remembered for the service is computed but not remembered (nor learned from)
    /// again.
    pub fn push(&mut self, service: &str, observation: Observation) -> Result<Features, Skip> {
        self.push_with(service, observation, None)
    }

    /// As [`FeatureBuilder::push`], for a consumer group: its history features over the
    /// production rate (`request_rate`), with `capacity` (one consumer's, learned by a
    /// [`ConsumerCapacity`]) instead of the request capacity, which it does not learn.
    pub fn push_group(
        &mut self,
        service: &str,
        observation: Observation,
        capacity: f64,
    ) -> Result<Features, Skip> {
        self.push_with(service, observation, Some(capacity))
    }

    fn push_with(
        &mut self,
        service: &str,
        observation: Observation,
        known_capacity: Option<f64>,
    ) -> Result<Features, Skip> {
        // What an earlier window showed is not this one's.
        self.findings.remove(service);
        let observation = sanitize(observation)?;
        let interval = self.settings.interval_secs;
        let span = interval * (self.settings.trend_windows as u64 - 1);
        let history = self.history.entry(service.to_owned()).or_default();
        let oldest_kept = observation.at_secs.saturating_sub(span);
        while history
            .observations
            .front()
            .is_some_and(|o| o.at_secs < oldest_kept)
        {
            history.observations.pop_front();
        }
        let new = history
            .observations
            .back()
            .is_none_or(|last| last.at_secs < observation.at_secs);
        if new {
            history.observations.push_back(observation);
        }
        remember_rate(
            &mut history.rates,
            observation.at_secs,
            observation.request_rate,
            interval,
        );
        let window: Vec<&Observation> = history
            .observations
            .iter()
            .filter(|o| o.at_secs <= observation.at_secs)
            .collect();
        let rates: Vec<(u64, f64)> = history
            .rates
            .iter()
            .copied()
            .filter(|(at, _)| *at <= observation.at_secs)
            .collect();
        let estimate = match known_capacity {
            Some(capacity) => capacity,
            None => {
                let capacity = self.capacity.entry(service.to_owned()).or_default();
                let mut normal = true;
                if new && self.settings.anomalies {
                    let reading = Reading {
                        request_rate: observation.request_rate,
                        error_ratio: error_ratio(&observation),
                        p95: observation.latency.map(|q| q.p95),
                        replicas: observation.replicas,
                        unscraped: observation.replicas_unscraped,
                        capacity: capacity.estimate(&self.settings.capacity, observation.replicas),
                    };
                    let found = self.detectors.entry(service.to_owned()).or_default().check(
                        &reading,
                        &self.settings.capacity.sla,
                        self.settings.anomaly_min_windows,
                    );
                    // Scraped replicas alone still say what one replica carries.
                    normal = found.iter().all(|f| f.kind == AnomalyKind::ScrapeLoss);
                    self.findings.insert(service.to_owned(), found);
                }
                if new && normal {
                    capacity.observe(
                        &self.settings.capacity,
                        observation.request_rate / f64::from(observation.replicas),
                        observation.replicas,
                        observation.latency.map(|q| q.p95),
                        error_ratio(&observation),
                    );
                }
                capacity.estimate(&self.settings.capacity, observation.replicas)
            }
        };
        Ok(compute(&observation, &window, &rates, interval, estimate))
    }

    /// Remembers the request rate of a window before the first observation (the aggregator
    /// reads the last [`LONG_WINDOWS`] from Prometheus at start), so the history features
    /// exist from the first vector on.
    pub fn remember_rate(&mut self, service: &str, at_secs: u64, request_rate: f64) {
        if !(request_rate.is_finite() && request_rate >= 0.0) {
            return;
        }
        let history = self.history.entry(service.to_owned()).or_default();
        remember_rate(
            &mut history.rates,
            at_secs,
            request_rate,
            self.settings.interval_secs,
        );
    }

    /// Keeps the history of the services for which `keep` is true; forgets the others (they
    /// disappeared from discovery), so the history does not grow with service churn. Capacity
    /// estimates and what is normal for each service are kept.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.history.retain(|service, _| keep(service));
        self.findings.retain(|service, _| keep(service));
    }

    /// What the last window pushed for `service` showed that is not normal for it (nothing when
    /// anomaly detection is off).
    pub fn findings(&self, service: &str) -> &[Finding] {
        self.findings.get(service).map_or(&[], Vec::as_slice)
    }

    /// The capacity estimate of `service` at its last replica count: requests per second per
    /// replica within the SLA.
    pub fn capacity(&self, service: &str) -> f64 {
        self.capacity
            .get(service)
            .map_or(self.settings.capacity.prior_rps, |c| {
                c.latest(&self.settings.capacity)
            })
    }

    /// What every service's capacity estimate learned, to persist.
    pub fn capacities(&self) -> &BTreeMap<String, Capacity> {
        &self.capacity
    }

    /// What every service's anomaly detector learned of its normal, to persist.
    pub fn detectors(&self) -> &HashMap<String, Detector> {
        &self.detectors
    }

    /// Takes up the normal an earlier run learned (not what it knew of the recent traffic).
    pub fn restore_detectors(&mut self, learned: HashMap<String, Detector>) {
        self.detectors = learned
            .into_iter()
            .map(|(service, d)| (service, d.carried_over()))
            .collect();
    }

    /// Takes up what an earlier run learned.
    pub fn restore_capacities(&mut self, learned: BTreeMap<String, Capacity>) {
        self.capacity = learned;
    }
}

/// Appends `(at, rate)` when newer than the last remembered and drops what the long span no
/// longer covers.
fn remember_rate(rates: &mut VecDeque<(u64, f64)>, at: u64, rate: f64, interval: u64) {
    if rates.back().is_none_or(|(last, _)| *last < at) {
        rates.push_back((at, rate));
    }
    let oldest = at.saturating_sub(interval * (LONG_WINDOWS as u64 - 1));
    while rates.front().is_some_and(|(t, _)| *t < oldest) {
        rates.pop_front();
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
    let season = |p: Option<SeasonPoint>| {
        p.filter(|p| {
            p.rate.is_finite() && p.rate >= 0.0 && p.peak_after.is_finite() && p.peak_after >= 0.0
        })
    };
    o.day_ago = season(o.day_ago);
    o.week_ago = season(o.week_ago);
    Ok(o)
}

fn error_ratio(o: &Observation) -> f64 {
    if o.request_rate > 0.0 {
        (o.error_rate / o.request_rate).min(1.0)
    } else {
        0.0
    }
}

/// The features of `current`, with trends over `window` (oldest first, ending with `current`),
/// the rate history `rates` (oldest first, ending with `current`'s) and the capacity estimate.
fn compute(
    current: &Observation,
    window: &[&Observation],
    rates: &[(u64, f64)],
    interval: u64,
    capacity: f64,
) -> Features {
    let replicas = f64::from(current.replicas);
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
    let base = current.request_rate;
    let since = |windows: usize| {
        let oldest = current
            .at_secs
            .saturating_sub(interval * (windows as u64 - 1));
        let values: Vec<f64> = rates
            .iter()
            .filter(|(at, _)| *at >= oldest)
            .map(|(_, r)| *r)
            .collect();
        if values.is_empty() {
            vec![base]
        } else {
            values
        }
    };
    let recent = since(RECENT_WINDOWS);
    let long = since(LONG_WINDOWS);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let mean_long = long.iter().sum::<f64>() / long.len() as f64;
    let cv_long = (long.len() >= 3 && mean_long > 0.0).then(|| {
        let var = long.iter().map(|r| (r - mean_long).powi(2)).sum::<f64>() / long.len() as f64;
        var.sqrt() / mean_long
    });
    let long_points: Vec<(f64, f64)> = rates
        .iter()
        .filter(|(at, _)| *at + interval * (LONG_WINDOWS as u64 - 1) >= current.at_secs)
        .map(|(at, r)| (*at as f64, *r))
        .collect();
    let per_replica = current.request_rate / replicas;
    let mut features = Features {
        request_rate: current.request_rate,
        request_rate_per_replica: per_replica,
        error_ratio: error_ratio(current),
        replicas,
        latency_p50: current.latency.map(|q| q.p50),
        latency_p95: current.latency.map(|q| q.p95),
        latency_p99: current.latency.map(|q| q.p99),
        cpu_per_replica: current.cpu_per_replica,
        memory_per_replica: current.memory_per_replica,
        request_rate_trend: trend_of(|o| Some(o.request_rate)),
        latency_p95_trend: trend_of(|o| o.latency.map(|q| q.p95)),
        cpu_per_replica_trend: trend_of(|o| o.cpu_per_replica),
        rate_max_recent: Some(rate_ratio(max(&recent), base)),
        rate_min_recent: Some(rate_ratio(min(&recent), base)),
        rate_mean_long: Some(rate_ratio(mean_long, base)),
        rate_max_long: Some(rate_ratio(max(&long), base)),
        rate_cv_long: cv_long,
        rate_trend_long: (long_points.len() >= MIN_TREND_POINTS)
            .then(|| relative_slope_per_minute(&long_points))
            .flatten(),
        day_ago_ratio: current.day_ago.map(|p| rate_ratio(p.rate, base)),
        day_ago_rise: current.day_ago.map(|p| rate_ratio(p.peak_after, p.rate)),
        week_ago_ratio: current.week_ago.map(|p| rate_ratio(p.rate, base)),
        week_ago_rise: current.week_ago.map(|p| rate_ratio(p.peak_after, p.rate)),
        capacity_per_replica: Some(capacity),
        capacity_utilization: Some(per_replica / capacity),
    };
    // An odd measurement (a histogram's +Inf bucket, ten thousand replicas) must not make the
    // vector unreadable to its consumers, whose contract bounds every value.
    features.clamp_to_schema();
    features
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
            replicas_unscraped: 0,
            cpu_per_replica: None,
            memory_per_replica: Some(1e6),
            day_ago: None,
            week_ago: None,
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

    #[test]
    fn history_features_are_ratios_to_this_window() {
        let mut b = FeatureBuilder::new(4, 10);
        let mut last = None;
        for (k, rate) in [10.0, 20.0, 40.0, 30.0].into_iter().enumerate() {
            last = Some(b.push("orders", obs(k as u64 * 10, rate, 0.2)).unwrap());
        }
        let f = last.unwrap();
        assert_eq!(f.rate_max_recent, Some(41.0 / 31.0));
        assert_eq!(f.rate_min_recent, Some(11.0 / 31.0));
        assert_eq!(f.rate_mean_long, Some(26.0 / 31.0));
        assert!(f.rate_cv_long.unwrap() > 0.3, "{f:?}");
        assert!(f.rate_trend_long.unwrap() > 0.0, "{f:?}");
        assert_eq!(f.day_ago_ratio, None, "no season without a point");
        // Only the last LONG_WINDOWS windows count.
        let at = 10 * LONG_WINDOWS as u64 + 30;
        let f = b.push("orders", obs(at, 30.0, 0.2)).unwrap();
        assert_eq!(f.rate_max_long, Some(1.0), "{f:?}");
    }

    #[test]
    fn a_day_ago_is_read_from_the_point_given() {
        let mut b = FeatureBuilder::new(4, 10);
        let mut o = obs(0, 99.0, 0.2);
        o.day_ago = Some(SeasonPoint {
            rate: 49.0,
            peak_after: 99.0,
        });
        let f = b.push("orders", o).unwrap();
        assert_eq!(f.day_ago_ratio, Some(0.5));
        assert_eq!(f.day_ago_rise, Some(2.0));
        let rates = [1.0, 5.0, 3.0, 2.0, 8.0];
        assert_eq!(
            season_point(&rates, 4, 3, 2),
            Some(SeasonPoint {
                rate: 5.0,
                peak_after: 3.0
            })
        );
        assert_eq!(season_point(&rates, 2, 3, 2), None, "before the history");
    }

    #[test]
    fn capacity_is_learned_per_service_and_restored() {
        let mut b = FeatureBuilder::new(4, 10);
        assert_eq!(b.capacity("orders"), DEFAULT_PRIOR_RPS);
        for k in 0..50 {
            // 2 replicas at 60 rps each, p95 far below the SLA: at least that much is carried.
            b.push("orders", obs(k * 10, 120.0, 0.1)).unwrap();
        }
        let learned = b.capacity("orders");
        assert!(learned > 60.0, "{learned}");
        let f = b.push("orders", obs(500, 120.0, 0.1)).unwrap();
        assert_eq!(f.capacity_per_replica, Some(learned));
        let mut restarted = FeatureBuilder::new(4, 10);
        restarted.restore_capacities(b.capacities().clone());
        assert_eq!(restarted.capacity("orders"), learned);
        assert_eq!(restarted.capacity("carts"), DEFAULT_PRIOR_RPS);
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
