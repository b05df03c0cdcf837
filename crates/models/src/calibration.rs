//! Online calibration of the forecasts, per service (issue 11).
//!
//! The models' quantiles are corrected once, on calibration runs (`ForecastSpec::corrections`),
//! and cover what they claim on data like what they were fitted on. A service whose load moves
//! otherwise (burstier, or calmer) gets quantiles that cover less, or more, than their level:
//! a P75 that is exceeded in half of its windows sizes too few replicas. The calibrator watches,
//! for each service, whether the forecast peak at the vote's level was exceeded once the
//! horizon has passed, and moves an offset added to that service's forecasts (in the forecast's
//! log-ratio units) by quantile tracking: up by `step · level` after a window the forecast
//! missed, down by `step · (1 − level)` after one it covered. Over any stretch the share of
//! missed windows then comes back to `1 − level`, whatever the service's load looks like,
//! within a few tens of windows (the adaptive conformal inference of Gibbs and Candès, 2021, on
//! the forecast itself as the conformal PID controller of Angelopoulos et al., 2023, does).
//!
//! Each horizon (scale-up, scale-down) has its own offset. A window's outcome is known only
//! once its horizon has passed, so the offset lags by that much. Nothing here allocates beyond
//! [`MAX_SERVICES`] services (the least recently seen is forgotten) and one pending forecast
//! per window of the longer horizon.

use crate::metadata::Horizons;
use crate::vote::Forecast;
use std::collections::{HashMap, VecDeque};

/// Offset change per resolved window, in log-ratio units: after 20 missed windows in a row at
/// P75 the forecasts are `exp(20 · 0.02 · 0.75) = 1.35` times higher. Chosen on the held-out
/// Twitter day (`docs/EVALUATION.md`), never on NASA or Alibaba.
pub const DEFAULT_STEP: f64 = 0.02;
/// The offset stays within these (log-ratio units: forecasts at most e² ≈ 7.4 times higher
/// or e⁻¹ ≈ 0.37 times lower than the model's).
pub const OFFSET_BOUNDS: (f64, f64) = (-1.0, 2.0);
/// Services calibrated at once; the least recently seen is forgotten beyond.
pub const MAX_SERVICES: usize = 4096;

/// Checks a calibration step: a number from 0 (off) to 1.
pub fn check_step(step: f64) -> Result<(), String> {
    if step.is_finite() && (0.0..=1.0).contains(&step) {
        Ok(())
    } else {
        Err(format!(
            "{step} is not a step between 0 (no calibration) and 1 (the default is {DEFAULT_STEP})"
        ))
    }
}

/// One window's forecast waiting for its outcome.
#[derive(Debug, Clone)]
struct Pending {
    window_id: u64,
    /// `ln(rate + floor)` of its window.
    log_rate: f64,
    /// The model's quantile at the level (before the offset), per horizon.
    quantile: Horizons<f64>,
    /// Highest rate seen so far within each horizon.
    peak: Horizons<Option<f64>>,
    resolved_up: bool,
}

/// One horizon's offset and outcomes.
#[derive(Debug, Clone, Copy, Default)]
struct Track {
    offset: f64,
    resolved: u64,
    missed: u64,
}

impl Track {
    /// Learns one outcome: `score` is the realized log ratio over the model's quantile at
    /// `level`; a score above the offset is a miss.
    fn learn(&mut self, score: f64, level: f64, step: f64) {
        let miss = score > self.offset;
        self.resolved += 1;
        self.missed += u64::from(miss);
        let error = if miss { level } else { level - 1.0 };
        self.offset = (self.offset + step * error).clamp(OFFSET_BOUNDS.0, OFFSET_BOUNDS.1);
    }
}

#[derive(Debug, Clone, Default)]
struct ServiceState {
    up: Track,
    down: Track,
    pending: VecDeque<Pending>,
    last_window: Option<u64>,
    /// Order of last use, for forgetting.
    seen: u64,
}

/// What the calibrator knows of one service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceCalibration {
    /// The offsets added to the forecasts now.
    pub offset: Horizons<f64>,
    /// Windows whose outcome is known, per horizon.
    pub resolved: Horizons<u64>,
    /// Of them, those whose peak rose above the forecast at the level (with its offset).
    pub missed: Horizons<u64>,
}

/// Per-service online calibration of one model's forecasts at one level.
#[derive(Debug, Clone)]
pub struct Calibrator {
    level: f64,
    step: f64,
    floor: f64,
    horizons: Horizons<u32>,
    services: HashMap<String, ServiceState>,
    clock: u64,
}

impl Calibrator {
    /// Calibrates forecasts at quantile `level` over `horizons` windows, whose rates are
    /// relative to `floor`; `step` 0 leaves every forecast as the model gives it.
    pub fn new(level: f64, step: f64, floor: f64, horizons: Horizons<u32>) -> Self {
        Self {
            level: level.clamp(0.0, 1.0),
            step: if step.is_finite() { step.max(0.0) } else { 0.0 },
            floor: floor.max(1e-9),
            horizons: Horizons {
                up: horizons.up.max(1),
                down: horizons.down.max(horizons.up.max(1)),
            },
            services: HashMap::new(),
            clock: 0,
        }
    }

    /// Whether it changes anything.
    pub fn enabled(&self) -> bool {
        self.step > 0.0
    }

    /// Reads `service`'s window `window_id` (windows `step_id` apart) at `rate` requests per
    /// second: settles the outcome of the earlier forecasts it completes, remembers `forecast`
    /// (the model's, for this window) and answers it with the service's offsets added. A
    /// window older than one already read (a redelivery) teaches nothing and is answered with
    /// the offsets as they are.
    pub fn calibrate(
        &mut self,
        service: &str,
        window_id: u64,
        step_id: u64,
        rate: f64,
        forecast: Forecast,
    ) -> Forecast {
        if !self.enabled() {
            return forecast;
        }
        self.clock += 1;
        if !self.services.contains_key(service) && self.services.len() >= MAX_SERVICES {
            self.forget_oldest();
        }
        let horizons = self.horizons;
        let state = self.services.entry(service.to_owned()).or_default();
        state.seen = self.clock;
        let rate = if rate.is_finite() { rate.max(0.0) } else { 0.0 };
        let step_id = step_id.max(1);
        // A window far behind the last one is not a redelivery: the windows started again (a
        // clock set back, or a bogus id ahead of them), so the pending forecasts are dropped.
        let reach = (u64::from(horizons.down) + 1).saturating_mul(step_id);
        if state
            .last_window
            .is_some_and(|last| last > window_id.saturating_add(reach))
        {
            state.pending.clear();
            state.last_window = None;
        }
        if state.last_window.is_none_or(|last| window_id > last) {
            state.last_window = Some(window_id);
            let rule = Rule {
                level: self.level,
                step: self.step,
                floor: self.floor,
                horizons,
            };
            rule.settle(state, window_id, step_id, rate);
            if state.pending.len() > horizons.down as usize {
                state.pending.pop_front();
            }
            state.pending.push_back(Pending {
                window_id,
                log_rate: (rate + self.floor).ln(),
                quantile: Horizons {
                    up: forecast.up.quantile(self.level),
                    down: forecast.down.quantile(self.level),
                },
                peak: Horizons {
                    up: None,
                    down: None,
                },
                resolved_up: false,
            });
        }
        Forecast {
            up: forecast.up.shifted(state.up.offset),
            down: forecast.down.shifted(state.down.offset),
        }
    }

    /// What is known of `service`, if it has been seen.
    pub fn service(&self, service: &str) -> Option<ServiceCalibration> {
        self.services.get(service).map(|s| ServiceCalibration {
            offset: Horizons {
                up: s.up.offset,
                down: s.down.offset,
            },
            resolved: Horizons {
                up: s.up.resolved,
                down: s.down.resolved,
            },
            missed: Horizons {
                up: s.up.missed,
                down: s.down.missed,
            },
        })
    }

    /// The services calibrated now.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .services
            .iter()
            .min_by_key(|(_, s)| s.seen)
            .map(|(name, _)| name.clone())
        {
            self.services.remove(&oldest);
        }
    }
}

/// How outcomes move the offsets.
#[derive(Clone, Copy)]
struct Rule {
    level: f64,
    step: f64,
    floor: f64,
    horizons: Horizons<u32>,
}

impl Rule {
    /// Folds window `window_id`'s `rate` into the pending forecasts and settles those whose
    /// horizon it completes (or that a gap in the windows left behind).
    fn settle(&self, state: &mut ServiceState, window_id: u64, step_id: u64, rate: f64) {
        let Rule {
            level,
            step,
            floor,
            horizons,
        } = *self;
        let log_peak = |peak: f64| (peak + floor).ln();
        for p in state.pending.iter_mut() {
            let ahead = window_id.saturating_sub(p.window_id) / step_id;
            if ahead >= 1 && ahead <= u64::from(horizons.up) {
                p.peak.up = Some(p.peak.up.map_or(rate, |m| m.max(rate)));
            }
            if ahead >= 1 && ahead <= u64::from(horizons.down) {
                p.peak.down = Some(p.peak.down.map_or(rate, |m| m.max(rate)));
            }
            if !p.resolved_up && ahead >= u64::from(horizons.up) {
                p.resolved_up = true;
                if let Some(peak) = p.peak.up {
                    let score = log_peak(peak) - p.log_rate - p.quantile.up;
                    state.up.learn(score, level, step);
                }
            }
        }
        while let Some(p) = state.pending.front() {
            let ahead = window_id.saturating_sub(p.window_id) / step_id;
            if ahead < u64::from(horizons.down) {
                break;
            }
            if let Some(peak) = p.peak.down {
                let score = log_peak(peak) - p.log_rate - p.quantile.down;
                state.down.learn(score, level, step);
            }
            state.pending.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::Distribution;

    const LEVELS: [f64; 3] = [0.5, 0.75, 0.9];

    /// A forecast of `values` (log ratios at [`LEVELS`]) on both horizons.
    fn forecast(values: [f64; 3]) -> Forecast {
        Forecast {
            up: Distribution::new(&LEVELS, &values),
            down: Distribution::new(&LEVELS, &values),
        }
    }

    fn calibrator(step: f64) -> Calibrator {
        Calibrator::new(0.75, step, 1.0, Horizons { up: 3, down: 12 })
    }

    /// A rate that alternates calm and bursts: `burst` times higher one window in `every`.
    fn rate(i: u64, burst: f64, every: u64) -> f64 {
        if i.is_multiple_of(every) {
            100.0 * burst
        } else {
            100.0
        }
    }

    #[test]
    fn a_forecast_that_misses_rises_until_it_covers_its_level() {
        let mut c = calibrator(DEFAULT_STEP);
        // The model says the peak stays within +5 % at P75; one window in three is 1.6x.
        let model = [0.0, 0.05, 0.1];
        for i in 0..3000 {
            c.calibrate("bursty", i * 10, 10, rate(i, 1.6, 3), forecast(model));
        }
        let s = c.service("bursty").expect("seen");
        // Every 3-window horizon holds a burst: covered only once the offset reaches the burst.
        assert!(s.offset.up > 0.35, "{s:?}");
        let recent_share = s.missed.up as f64 / s.resolved.up as f64;
        assert!(recent_share < 0.35, "{s:?}");
        let out = c.calibrate("bursty", 30_000, 10, 100.0, forecast(model));
        assert!(out.up.quantile(0.75) > (1.6f64).ln() - 0.1, "{out:?}");
    }

    #[test]
    fn a_forecast_that_overcovers_comes_down_and_services_are_apart() {
        let mut c = calibrator(DEFAULT_STEP);
        // A flat load, forecast to double.
        let model = [0.5, 0.7, 0.9];
        for i in 0..2000 {
            c.calibrate("flat", i * 10, 10, 100.0, forecast(model));
            c.calibrate("bursty", i * 10, 10, rate(i, 3.0, 2), forecast(model));
        }
        let flat = c.service("flat").expect("seen");
        let bursty = c.service("bursty").expect("seen");
        assert!(flat.offset.up < -0.5 && flat.offset.down < -0.5, "{flat:?}");
        assert!(bursty.offset.up > 0.2, "{bursty:?}");
    }

    #[test]
    fn step_zero_changes_nothing_and_redeliveries_teach_nothing() {
        let mut off = calibrator(0.0);
        let f = forecast([0.0, 0.1, 0.2]);
        assert_eq!(off.calibrate("s", 10, 10, 500.0, f.clone()), f);
        assert!(off.service("s").is_none());
        let mut c = calibrator(0.1);
        for i in 0..10 {
            c.calibrate("s", i * 10, 10, 100.0 * (i + 1) as f64, f.clone());
        }
        let before = c.service("s").expect("seen");
        for _ in 0..100 {
            c.calibrate("s", 50, 10, 1e6, f.clone());
        }
        assert_eq!(c.service("s").expect("seen"), before);
        // A bogus id far ahead does not stop the calibration: the windows after it start again.
        c.calibrate("s", 1_000_000, 10, 100.0, f.clone());
        for i in 10..40 {
            c.calibrate("s", i * 10, 10, 100.0, f.clone());
        }
        assert!(c.service("s").expect("seen").resolved.down > before.resolved.down);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut c = calibrator(0.1);
        let f = forecast([0.0, 0.1, 0.2]);
        for i in 0..(MAX_SERVICES as u64 + 10) {
            c.calibrate(&format!("s{i}"), 10, 10, 1.0, f.clone());
        }
        assert_eq!(c.services().count(), MAX_SERVICES);
        assert!(c.service("s0").is_none(), "the oldest is forgotten");
        for i in 0..1000 {
            c.calibrate("long", i * 10, 10, f64::NAN, f.clone());
        }
        let state = &c.services["long"];
        assert!(state.pending.len() <= 13);
        assert!(state.up.offset.is_finite() && state.down.offset.is_finite());
    }
}
