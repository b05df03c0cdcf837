//! Queueing formulas and Prometheus' quantile estimate: the analytic side of the simulated
//! service. The calibration table sets the formula's p95 beside the simulator's; the simulator
//! reads its latency quantiles the way Prometheus does. (The oracle does not use the formulas:
//! it uses capacities measured on the simulator itself, `policy::Capacities`.)
//!
//! One replica of the demo target is an M/M/c queue: `c` slots, exponential service times of
//! mean `1/mu`, first come first served. With the load spread evenly, `n` replicas carrying
//! `lambda` requests per second are `n` such queues at `lambda / n` each.

/// Erlang's C formula: the probability that a request has to wait, for `c` servers offered
/// `a = lambda / mu` erlangs. 1 when the queue is unstable (`a >= c`).
pub fn erlang_c(c: u32, a: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    let c_f = f64::from(c.max(1));
    if a >= c_f {
        return 1.0;
    }
    // Erlang B by its stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=c.max(1) {
        b = a * b / (f64::from(k) + a * b);
    }
    c_f * b / (c_f - a * (1.0 - b))
}

/// P(response time > `t`) in an M/M/c queue with `c` slots, service rate `mu` per slot and
/// arrival rate `lambda`, in steady state. 1 when the queue is unstable.
pub fn response_time_tail(t: f64, lambda: f64, c: u32, mu: f64) -> f64 {
    let capacity = f64::from(c.max(1)) * mu;
    if lambda >= capacity {
        return 1.0;
    }
    let wait = erlang_c(c, lambda / mu);
    // Waiting, when it happens, is exponential with rate theta; the response time is that wait
    // plus the exponential service time.
    let theta = capacity - lambda;
    let service_tail = (-mu * t).exp();
    let waited_tail = if (theta - mu).abs() < 1e-9 {
        (-mu * t).exp() * (1.0 + mu * t)
    } else {
        (theta * (-mu * t).exp() - mu * (-theta * t).exp()) / (theta - mu)
    };
    ((1.0 - wait) * service_tail + wait * waited_tail).clamp(0.0, 1.0)
}

/// The `q` quantile of the response time in an M/M/c queue (bisection on the tail);
/// infinite when the queue is unstable.
pub fn response_time_quantile(q: f64, lambda: f64, c: u32, mu: f64) -> f64 {
    if lambda >= f64::from(c.max(1)) * mu {
        return f64::INFINITY;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while response_time_tail(hi, lambda, c, mu) > 1.0 - q {
        hi *= 2.0;
    }
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if response_time_tail(mid, lambda, c, mu) > 1.0 - q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Prometheus' `histogram_quantile`: the `q` quantile from cumulative bucket counts
/// (`cumulative[i]` observations at most `bounds[i]`, the last entry being `+Inf`), by linear
/// interpolation inside the bucket where the rank falls. A rank in the `+Inf` bucket gives the
/// highest finite bound, as Prometheus does. `None` without observations.
pub fn histogram_quantile(q: f64, bounds: &[f64], cumulative: &[u64]) -> Option<f64> {
    let total = *cumulative.last()?;
    if total == 0 || bounds.is_empty() || cumulative.len() != bounds.len() + 1 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let i = cumulative
        .iter()
        .position(|c| *c as f64 >= rank)
        .unwrap_or(bounds.len());
    if i >= bounds.len() {
        return bounds.last().copied();
    }
    let (start, below) = if i == 0 {
        (0.0, 0)
    } else {
        (bounds[i - 1], cumulative[i - 1])
    };
    let in_bucket = (cumulative[i] - below) as f64;
    if in_bucket <= 0.0 {
        return Some(bounds[i]);
    }
    Some(start + (bounds[i] - start) * (rank - below as f64) / in_bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_known_values() {
        // One server: the probability of waiting is the utilization.
        assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
        // Two servers at a = 1: C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(erlang_c(4, 4.0), 1.0);
        assert_eq!(erlang_c(4, 0.0), 0.0);
    }

    #[test]
    fn mm1_response_time_is_exponential() {
        // M/M/1: the response time is exponential with rate mu - lambda.
        let (lambda, mu): (f64, f64) = (12.0, 20.0);
        for t in [0.05, 0.1, 0.4] {
            let expected = (-(mu - lambda) * t).exp();
            assert!((response_time_tail(t, lambda, 1, mu) - expected).abs() < 1e-9);
        }
        let median = response_time_quantile(0.5, lambda, 1, mu);
        assert!((median - 2f64.ln() / 8.0).abs() < 1e-6, "{median}");
    }

    #[test]
    fn latency_rises_with_load_and_explodes_at_capacity() {
        let p95 = |l| response_time_quantile(0.95, l, 4, 20.0);
        assert!(
            (p95(1.0) - 3.0 / 20.0).abs() < 0.005,
            "the service time alone"
        );
        assert!(p95(40.0) < p95(60.0) && p95(60.0) < p95(75.0));
        assert!(p95(80.0).is_infinite());
    }

    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        let bounds = [0.1, 0.25, 0.5];
        // 50 at most 0.1, 40 more at most 0.25, 10 more at most 0.5, none above.
        let cumulative = [50, 90, 100, 100];
        assert_eq!(histogram_quantile(0.5, &bounds, &cumulative), Some(0.1));
        let p95 = histogram_quantile(0.95, &bounds, &cumulative).unwrap();
        assert!((p95 - 0.375).abs() < 1e-12, "{p95}");
        let p25 = histogram_quantile(0.25, &bounds, &cumulative).unwrap();
        assert!(
            (p25 - 0.05).abs() < 1e-12,
            "from 0 inside the first bucket: {p25}"
        );
        // Past the last finite bound: that bound.
        assert_eq!(histogram_quantile(0.99, &bounds, &[0, 0, 0, 10]), Some(0.5));
        assert_eq!(histogram_quantile(0.5, &bounds, &[0, 0, 0, 0]), None);
    }
}
