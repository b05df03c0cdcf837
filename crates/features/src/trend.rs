//! Trends: how fast a value changes, relative to its level, so that one trend means the same for
//! a service at 10 req/s and one at 10,000 req/s.

/// Trends are clamped to this many times the mean per minute: past it, a trend says "exploding"
/// and its exact size is noise (a value leaving zero has an unbounded relative slope).
pub const TREND_CLAMP_PER_MINUTE: f64 = 10.0;

/// Least-squares slope of `points` (`(seconds, value)`), divided by the mean value, per minute.
///
/// `None` with fewer than two distinct times. When the mean is zero the values are all zero (they
/// are non-negative), so the trend is 0.
pub fn relative_slope_per_minute(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var_t: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
    if var_t <= f64::EPSILON {
        return None;
    }
    let cov: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_v)).sum();
    let slope_per_second = cov / var_t;
    if mean_v.abs() <= f64::EPSILON {
        return Some(0.0);
    }
    let relative = slope_per_second * 60.0 / mean_v.abs();
    Some(relative.clamp(-TREND_CLAMP_PER_MINUTE, TREND_CLAMP_PER_MINUTE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_series_has_zero_trend() {
        assert_eq!(
            relative_slope_per_minute(&[(0.0, 5.0), (30.0, 5.0), (60.0, 5.0)]),
            Some(0.0)
        );
    }

    #[test]
    fn doubling_in_a_minute() {
        // 100 -> 200 over 60 s: slope 100/min, mean 150.
        let t = relative_slope_per_minute(&[(0.0, 100.0), (60.0, 200.0)]).unwrap();
        assert!((t - 100.0 / 150.0).abs() < 1e-12);
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(relative_slope_per_minute(&[(0.0, 1.0)]), None);
        assert_eq!(relative_slope_per_minute(&[(5.0, 1.0), (5.0, 2.0)]), None);
        assert_eq!(
            relative_slope_per_minute(&[(0.0, 0.0), (30.0, 0.0)]),
            Some(0.0)
        );
        let explode = relative_slope_per_minute(&[(0.0, 0.0), (1.0, 1000.0)]).unwrap();
        assert_eq!(explode, TREND_CLAMP_PER_MINUTE);
    }
}
