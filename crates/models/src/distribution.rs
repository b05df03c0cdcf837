//! A forecast distribution given by its quantiles at fixed levels: what every model answers,
//! and what the vote reads a quantile or an exceedance probability from.

/// Quantiles of one forecast, at ascending levels.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    levels: Vec<f64>,
    /// Non-decreasing, one per level.
    values: Vec<f64>,
}

impl Distribution {
    /// From a model's raw answers: non-finite values are replaced by their neighbours' and the
    /// values are made non-decreasing (quantile crossing is a known artefact of fitting each
    /// level apart). `levels` must ascend and have as many entries as `values`.
    pub fn new(levels: &[f64], values: &[f64]) -> Self {
        let mut fixed: Vec<f64> = Vec::with_capacity(values.len());
        for v in values.iter().take(levels.len()) {
            let previous = fixed.last().copied();
            let v = if v.is_finite() {
                *v
            } else {
                previous.unwrap_or(0.0)
            };
            fixed.push(previous.map_or(v, |p: f64| p.max(v)));
        }
        fixed.resize(levels.len(), fixed.last().copied().unwrap_or(0.0));
        Self {
            levels: levels.to_vec(),
            values: fixed,
        }
    }

    /// The quantile at `level`, linear between the known levels and flat beyond them.
    pub fn quantile(&self, level: f64) -> f64 {
        let (levels, values) = (&self.levels, &self.values);
        let Some(last) = levels.len().checked_sub(1) else {
            return 0.0;
        };
        if level <= levels[0] {
            return values[0];
        }
        if level >= levels[last] {
            return values[last];
        }
        let i = levels.partition_point(|l| *l <= level);
        let (l0, l1, v0, v1) = (levels[i - 1], levels[i], values[i - 1], values[i]);
        v0 + (v1 - v0) * (level - l0) / (l1 - l0)
    }

    /// P(value > `t`), linear between the known levels; beyond the lowest (highest) known
    /// quantile it is taken as half way to 1 (to 0), since the tails are not known.
    pub fn exceedance(&self, t: f64) -> f64 {
        let (levels, values) = (&self.levels, &self.values);
        let Some(last) = levels.len().checked_sub(1) else {
            return 0.5;
        };
        if t < values[0] {
            return 1.0 - levels[0] / 2.0;
        }
        if t > values[last] {
            return (1.0 - levels[last]) / 2.0;
        }
        let i = values.partition_point(|v| *v <= t);
        if i > last {
            return 1.0 - levels[last];
        }
        let (v0, v1, l0, l1) = (values[i - 1], values[i], levels[i - 1], levels[i]);
        let level = if v1 > v0 {
            l0 + (l1 - l0) * (t - v0) / (v1 - v0)
        } else {
            l1
        };
        1.0 - level
    }

    /// The same distribution moved by `by` (every quantile plus `by`).
    pub fn shifted(&self, by: f64) -> Self {
        let by = if by.is_finite() { by } else { 0.0 };
        Self {
            levels: self.levels.clone(),
            values: self.values.iter().map(|v| v + by).collect(),
        }
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEVELS: [f64; 3] = [0.1, 0.5, 0.9];

    #[test]
    fn quantiles_interpolate_and_exceedance_inverts_them() {
        let d = Distribution::new(&LEVELS, &[0.0, 1.0, 3.0]);
        assert_eq!(d.quantile(0.5), 1.0);
        assert!((d.quantile(0.7) - 2.0).abs() < 1e-12);
        assert_eq!(d.quantile(0.99), 3.0);
        assert!((d.exceedance(2.0) - 0.3).abs() < 1e-12);
        assert!((d.exceedance(0.5) - 0.7).abs() < 1e-12);
        assert!((d.exceedance(5.0) - 0.05).abs() < 1e-12);
        assert!((d.exceedance(-1.0) - 0.95).abs() < 1e-12);
    }

    #[test]
    fn crossing_and_missing_values_are_repaired() {
        let d = Distribution::new(&LEVELS, &[1.0, f64::NAN, 0.5]);
        assert_eq!(d.values(), &[1.0, 1.0, 1.0]);
    }

    proptest! {
        #[test]
        fn exceedance_falls_and_stays_a_probability(
            values in proptest::collection::vec(-5.0f64..5.0, 3),
            a in -10.0f64..10.0, b in -10.0f64..10.0,
        ) {
            let d = Distribution::new(&LEVELS, &values);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(d.exceedance(lo) >= d.exceedance(hi));
            prop_assert!((0.0..=1.0).contains(&d.exceedance(a)));
            prop_assert!(d.quantile(0.2) <= d.quantile(0.8));
        }
    }
}
