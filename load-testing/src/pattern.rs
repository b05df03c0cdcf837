//! Load patterns: the target request rate as a function of time since the start. Pure, so the
//! same shapes can drive a real run, a test and the offline replay.

use std::time::Duration;

/// A load shape over a run of known length.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// The same rate throughout.
    Constant { rps: f64 },
    /// From one rate to another, linearly, over the whole run.
    Ramp { from_rps: f64, to_rps: f64 },
    /// Each level in turn for `every`, the last one held to the end.
    Step { levels: Vec<f64>, every: Duration },
    /// `base_rps`, with `peak_rps` from `at` for `width`.
    Spike {
        base_rps: f64,
        peak_rps: f64,
        at: Duration,
        width: Duration,
    },
    /// A sine between `min_rps` (at the start) and `max_rps` (half a period later).
    Daily {
        min_rps: f64,
        max_rps: f64,
        period: Duration,
    },
    /// A recorded trace: one rate per slot, each slot lasting `slot`; the trace repeats.
    Trace { rates: Vec<f64>, slot: Duration },
}

impl Pattern {
    /// The short name used in experiment records (`constant`, `ramp`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Pattern::Constant { .. } => "constant",
            Pattern::Ramp { .. } => "ramp",
            Pattern::Step { .. } => "step",
            Pattern::Spike { .. } => "spike",
            Pattern::Daily { .. } => "daily",
            Pattern::Trace { .. } => "trace",
        }
    }

    /// Target requests per second at `t` into a run lasting `total`. Never negative.
    pub fn rate_at(&self, t: Duration, total: Duration) -> f64 {
        let rate = match self {
            Pattern::Constant { rps } => *rps,
            Pattern::Ramp { from_rps, to_rps } => {
                let progress = if total.is_zero() {
                    1.0
                } else {
                    (t.as_secs_f64() / total.as_secs_f64()).clamp(0.0, 1.0)
                };
                from_rps + (to_rps - from_rps) * progress
            }
            Pattern::Step { levels, every } => {
                let index = if every.is_zero() {
                    0
                } else {
                    (t.as_secs_f64() / every.as_secs_f64()) as usize
                };
                levels
                    .get(index.min(levels.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or(0.0)
            }
            Pattern::Spike {
                base_rps,
                peak_rps,
                at,
                width,
            } => {
                if t >= *at && t < *at + *width {
                    *peak_rps
                } else {
                    *base_rps
                }
            }
            Pattern::Daily {
                min_rps,
                max_rps,
                period,
            } => {
                let phase = if period.is_zero() {
                    0.0
                } else {
                    t.as_secs_f64() / period.as_secs_f64()
                };
                let wave = (1.0 - (phase * std::f64::consts::TAU).cos()) / 2.0;
                min_rps + (max_rps - min_rps) * wave
            }
            Pattern::Trace { rates, slot } => {
                if rates.is_empty() || slot.is_zero() {
                    0.0
                } else {
                    let index = (t.as_secs_f64() / slot.as_secs_f64()) as usize % rates.len();
                    rates[index]
                }
            }
        };
        if rate.is_finite() { rate.max(0.0) } else { 0.0 }
    }

    /// One-line description for logs and experiment records.
    pub fn describe(&self) -> String {
        match self {
            Pattern::Constant { rps } => format!("constant {rps} rps"),
            Pattern::Ramp { from_rps, to_rps } => format!("ramp {from_rps} -> {to_rps} rps"),
            Pattern::Step { levels, every } => {
                let levels: Vec<String> = levels.iter().map(f64::to_string).collect();
                format!(
                    "step {} rps every {}",
                    levels.join(","),
                    humantime::format_duration(*every)
                )
            }
            Pattern::Spike {
                base_rps,
                peak_rps,
                at,
                width,
            } => format!(
                "spike {base_rps} rps, {peak_rps} rps from {} for {}",
                humantime::format_duration(*at),
                humantime::format_duration(*width)
            ),
            Pattern::Daily {
                min_rps,
                max_rps,
                period,
            } => format!(
                "daily {min_rps}..{max_rps} rps, period {}",
                humantime::format_duration(*period)
            ),
            Pattern::Trace { rates, slot } => {
                let peak = rates.iter().copied().fold(0.0, f64::max);
                format!(
                    "trace of {} slots of {} (peak {peak:.1} rps)",
                    rates.len(),
                    humantime::format_duration(*slot)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn shapes() {
        let total = S(100);
        assert_eq!(Pattern::Constant { rps: 5.0 }.rate_at(S(50), total), 5.0);
        let ramp = Pattern::Ramp {
            from_rps: 10.0,
            to_rps: 110.0,
        };
        assert_eq!(ramp.rate_at(S(0), total), 10.0);
        assert_eq!(ramp.rate_at(S(50), total), 60.0);
        assert_eq!(ramp.rate_at(S(200), total), 110.0);
        let step = Pattern::Step {
            levels: vec![1.0, 2.0, 3.0],
            every: S(10),
        };
        assert_eq!(step.rate_at(S(5), total), 1.0);
        assert_eq!(step.rate_at(S(15), total), 2.0);
        assert_eq!(step.rate_at(S(95), total), 3.0);
        let spike = Pattern::Spike {
            base_rps: 1.0,
            peak_rps: 9.0,
            at: S(10),
            width: S(5),
        };
        assert_eq!(spike.rate_at(S(9), total), 1.0);
        assert_eq!(spike.rate_at(S(12), total), 9.0);
        assert_eq!(spike.rate_at(S(15), total), 1.0);
        let daily = Pattern::Daily {
            min_rps: 10.0,
            max_rps: 30.0,
            period: S(100),
        };
        assert!((daily.rate_at(S(0), total) - 10.0).abs() < 1e-9);
        assert!((daily.rate_at(S(50), total) - 30.0).abs() < 1e-9);
        let trace = Pattern::Trace {
            rates: vec![1.0, 2.0],
            slot: S(3),
        };
        assert_eq!(trace.rate_at(S(4), total), 2.0);
        assert_eq!(trace.rate_at(S(7), total), 1.0, "the trace repeats");
    }

    proptest! {
        #[test]
        fn rates_are_never_negative(
            a in -1e3f64..1e3, b in -1e3f64..1e3, t in 0u64..10_000, total in 0u64..10_000,
        ) {
            let patterns = [
                Pattern::Constant { rps: a },
                Pattern::Ramp { from_rps: a, to_rps: b },
                Pattern::Step { levels: vec![a, b], every: S(7) },
                Pattern::Daily { min_rps: a, max_rps: b, period: S(0) },
                Pattern::Trace { rates: vec![], slot: S(1) },
            ];
            for p in patterns {
                prop_assert!(p.rate_at(S(t), S(total)) >= 0.0);
            }
        }
    }
}
