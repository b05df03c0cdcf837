//! Synthetic windows with the shape of real ones, for tests and benchmarks that need feature
//! vectors without a running service: a service that carries [`CAPACITY`] requests per second
//! per replica, its latency rising steeply towards it.

use contract::{FEATURE_COUNT, Features, feature_index};

/// What one replica of the synthetic service carries within the SLA.
pub const CAPACITY: f64 = 65.0;

/// Features of a window at `rate` req/s per replica on `replicas` replicas, with a flat recent
/// history and the synthetic capacity.
pub fn features(rate: f64, replicas: u32) -> Features {
    with_history(rate, replicas, 1.0, 0.0)
}

/// Features with the recent peak `recent_max` times this window's rate and the trend `trend`.
pub fn with_history(rate: f64, replicas: u32, recent_max: f64, trend: f64) -> Features {
    let mut values = [f64::NAN; FEATURE_COUNT];
    let mut set = |name: &str, v: f64| values[feature_index(name).unwrap_or(0)] = v;
    let replicas_f = f64::from(replicas);
    set("request_rate", rate * replicas_f);
    set("request_rate_per_replica", rate);
    set("replicas", replicas_f);
    set("error_ratio", 0.0);
    set("latency_p50", 0.05 + (rate / 100.0).powi(4) / 2.0);
    set("latency_p95", 0.1 + (rate / 100.0).powi(4));
    set("latency_p99", 0.15 + (rate / 100.0).powi(4) * 2.0);
    set("memory_per_replica", 5e6);
    set("request_rate_trend", trend);
    set("rate_trend_long", trend / 2.0);
    set("rate_max_recent", recent_max);
    set("rate_min_recent", 1.0 / recent_max);
    set("rate_mean_long", 1.0);
    set("rate_max_long", recent_max * 1.1);
    set("rate_cv_long", (recent_max - 1.0) / 2.0 + 0.05);
    set("capacity_per_replica", CAPACITY);
    set("capacity_utilization", rate / CAPACITY);
    Features::from_values(&values)
        .unwrap_or_else(|e| unreachable!("synthetic features are valid: {e}"))
}
