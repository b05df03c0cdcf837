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
//! once its horizon has passed, so the offset lags by that much; a window whose horizon was not
//! seen whole (a lost vector, a restart) teaches nothing, as the trainer drops such windows.
//! Nothing here allocates beyond [`MAX_SERVICES`] services (the least recently seen is
//! forgotten, and named by [`Calibrator::take_forgotten`]) and the longer horizon's windows
//! plus one per service.

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
    /// The forecast the vote used at the level (the model's plus the offset), per horizon.
    threshold: Horizons<f64>,
    /// Highest rate within each horizon so far, and how many of its windows were seen.
    peak: Horizons<f64>,
    seen: Horizons<u32>,
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
    /// Learns one outcome: the realized log ratio `score` against the forecast the vote used.
    fn learn(&mut self, score: f64, threshold: f64, level: f64, step: f64) {
        let miss = score > threshold;
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
    /// The newest window read.
    last_window: Option<u64>,
    /// Windows read in a row far behind `last_window`.
    behind: u32,
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
    /// Of them, those whose peak rose above the forecast the vote used.
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
    /// Services forgotten since [`Calibrator::take_forgotten`] was last asked (at most
    /// [`MAX_SERVICES`] names kept).
    forgotten: Vec<String>,
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
            forgotten: Vec::new(),
        }
    }

    /// Whether it changes anything.
    pub fn enabled(&self) -> bool {
        self.step > 0.0
    }

    /// Reads `service`'s window `window_id` (windows `step_id` apart) at `rate` requests per
    /// second: settles the outcome of the earlier forecasts it completes, remembers `forecast`
    /// (the model's, for this window) and answers it with the service's offsets added. A
    /// window not newer than the newest read (a redelivery) teaches nothing and is answered
    /// with the offsets as they are; only when windows keep coming far behind it (the
    /// longer horizon's length in a row: a clock set back, or a bogus id ahead of them) does
    /// the service start again from them, its offsets kept.
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
        let rule = Rule {
            level: self.level,
            step: self.step,
            floor: self.floor,
            horizons: self.horizons,
        };
        let state = self.services.entry(service.to_owned()).or_default();
        state.seen = self.clock;
        let step_id = step_id.max(1);
        let reach = (u64::from(rule.horizons.down) + 1).saturating_mul(step_id);
        match state.last_window {
            Some(last) if window_id <= last => {
                if window_id.saturating_add(reach) < last {
                    state.behind += 1;
                } else {
                    state.behind = 0;
                }
                if state.behind <= rule.horizons.down {
                    return shifted(state, forecast);
                }
                state.pending.clear();
            }
            _ => {}
        }
        state.behind = 0;
        state.last_window = Some(window_id);
        let rate = if rate.is_finite() { rate.max(0.0) } else { 0.0 };
        rule.settle(state, window_id, step_id, rate);
        if state.pending.len() > rule.horizons.down as usize {
            state.pending.pop_front();
        }
        let answer = shifted(state, forecast);
        state.pending.push_back(Pending {
            window_id,
            log_rate: (rate + rule.floor).ln(),
            threshold: Horizons {
                up: answer.up.quantile(rule.level),
                down: answer.down.quantile(rule.level),
            },
            peak: Horizons::default(),
            seen: Horizons::default(),
            resolved_up: false,
        });
        answer
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

    /// The services forgotten since the last call (to drop what was exported of them).
    pub fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self
            .services
            .iter()
            .min_by_key(|(_, s)| s.seen)
            .map(|(name, _)| name.clone())
        {
            self.services.remove(&oldest);
            if self.forgotten.len() < MAX_SERVICES {
                self.forgotten.push(oldest);
            }
        }
    }
}

/// `forecast` with `state`'s offsets added.
fn shifted(state: &ServiceState, forecast: Forecast) -> Forecast {
    Forecast {
        up: forecast.up.shifted(state.up.offset),
        down: forecast.down.shifted(state.down.offset),
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
    /// horizon it completes or passes; only a horizon seen whole teaches.
    fn settle(&self, state: &mut ServiceState, window_id: u64, step_id: u64, rate: f64) {
        let Rule {
            level,
            step,
            floor,
            horizons,
        } = *self;
        let (up, down) = (u64::from(horizons.up), u64::from(horizons.down));
        let log_peak = |peak: f64| (peak + floor).ln();
        for p in state.pending.iter_mut() {
            let ahead = window_id.saturating_sub(p.window_id) / step_id;
            if (1..=up).contains(&ahead) {
                p.peak.up = p.peak.up.max(rate);
                p.seen.up += 1;
            }
            if (1..=down).contains(&ahead) {
                p.peak.down = p.peak.down.max(rate);
                p.seen.down += 1;
            }
            if !p.resolved_up && ahead >= up {
                p.resolved_up = true;
                if p.seen.up >= horizons.up {
                    let score = log_peak(p.peak.up) - p.log_rate;
                    state.up.learn(score, p.threshold.up, level, step);
                }
            }
        }
        while let Some(p) = state.pending.front() {
            let ahead = window_id.saturating_sub(p.window_id) / step_id;
            if ahead < down {
                break;
            }
            if p.seen.down >= horizons.down {
                let score = log_peak(p.peak.down) - p.log_rate;
                state.down.learn(score, p.threshold.down, level, step);
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
        // A bogus id far ahead teaches nothing (no horizon was seen whole) and does not stop
        // the calibration: once windows keep coming far behind it, they start again.
        c.calibrate("s", 1_000_000, 10, 100.0, f.clone());
        let after_bogus = c.service("s").expect("seen");
        assert_eq!(after_bogus.resolved, before.resolved);
        for i in 10..60 {
            c.calibrate("s", i * 10, 10, 100.0, f.clone());
        }
        let resumed = c.service("s").expect("seen");
        assert!(
            resumed.resolved.down > after_bogus.resolved.down,
            "{resumed:?}"
        );
        assert!(resumed.resolved.up > after_bogus.resolved.up, "{resumed:?}");
    }

    #[test]
    fn a_horizon_with_a_lost_window_teaches_nothing() {
        let f = forecast([0.0, 0.1, 0.2]);
        let (mut whole, mut gappy) = (calibrator(0.1), calibrator(0.1));
        for i in 0..20u64 {
            whole.calibrate("s", i * 10, 10, 100.0, f.clone());
            if i != 10 {
                gappy.calibrate("s", i * 10, 10, 100.0, f.clone());
            }
        }
        let (whole, gappy) = (
            whole.service("s").expect("seen"),
            gappy.service("s").expect("seen"),
        );
        // Up (3 windows): windows 7, 8 and 9 lose their whole horizon, 10 is not read at all.
        assert_eq!(whole.resolved.up, 17);
        assert_eq!(gappy.resolved.up, 17 - 4);
        // Down (12 windows): 20 windows settle 8 horizons, every one of them holds window 10.
        assert_eq!((whole.resolved.down, gappy.resolved.down), (8, 0));
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
        let forgotten = c.take_forgotten();
        assert_eq!(forgotten.len(), 10);
        assert!(forgotten.contains(&"s0".to_owned()) && c.take_forgotten().is_empty());
        for i in 0..1000 {
            c.calibrate("long", i * 10, 10, f64::NAN, f.clone());
        }
        let state = &c.services["long"];
        assert!(state.pending.len() <= 13);
        assert!(state.up.offset.is_finite() && state.down.offset.is_finite());
    }
}
