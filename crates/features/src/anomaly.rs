//! Anomalies: what a service's own history says is not normal for the load it carries.
//!
//! Every reactive scaler reads high latency as too few replicas. When a dependency is slow, the
//! latency rises at the same load per replica, and more replicas do not help. When scraping
//! breaks, the load reads as quiet, and a scaler gives back capacity the service needs. The
//! detector learns, per service and from its windows, what is normal:
//!
//! - the p95 latency at each band of utilization (load per replica over the learned capacity:
//!   below 25 %, 25 to 50 %, 50 to 75 %, 75 to 100 %), as the median and median absolute
//!   deviation of `ln p95` over the last [`HISTORY`] normal windows in that band;
//! - the error ratio below capacity, likewise.
//!
//! (The module's figures, and why: see `docs/ARCHITECTURE.md`, *Anomalies*.)
//!
//! A window is flagged when, below capacity, its latency is more than [`DEVIATIONS`] robust
//! deviations and at least twice above the normal of its band (or of the nearest learned band at
//! a higher load, which is a higher normal), after [`CALM_WINDOWS`] windows below capacity (a
//! queue left by an overload drains meanwhile); when its error ratio is
//! above the SLA's and as far above its normal; when its request rate fell below a fifth of the
//! median of the last [`features::LONG_WINDOWS`](crate::LONG_WINDOWS) normal windows (its request
//! metrics vanished: a real drop leaves more); or when Prometheus failed to scrape some of its
//! targets. Flagged windows teach the normal nothing, and the capacity estimate nothing unless
//! only scrapes were lost (the load of the replicas scraped is still right per replica). An
//! anomaly that lasts [`NEW_NORMAL_WINDOWS`] windows is taken as the service's new normal: for
//! latency, errors or traffic the detector forgets what it learned and learns again; unscraped
//! targets are no longer said.

use contract::{Anomaly, AnomalyKind, Sla};
use std::collections::VecDeque;

/// Normal windows remembered per band.
pub const HISTORY: usize = 120;
/// Windows a band needs before it judges.
pub const MIN_WINDOWS: usize = 30;
/// Robust deviations (1.4826 × MAD) above the median that are abnormal.
pub const DEVIATIONS: f64 = 6.0;
/// Latency must be at least this many times its normal, whatever the deviation.
pub const MIN_FACTOR: f64 = 2.0;
/// A window whose rate is below this share of the recent median lost its traffic (its request
/// metrics, most often: a real drop, even the end of a burst, leaves more than this)...
pub const TRAFFIC_LOSS_SHARE: f64 = 0.02;
/// ...when that median is at least this many requests per second.
pub const MIN_TRAFFIC_RPS: f64 = 2.0;
/// Latency and errors are judged only after this many windows below capacity: a queue built
/// while the service was overloaded takes a while to drain, and that latency is load.
pub const CALM_WINDOWS: u32 = 3;
/// Windows of rate history the traffic check needs.
pub const MIN_HISTORY: usize = 10;
/// Consecutive windows of a latency, error or traffic anomaly after which it is the new normal.
pub const NEW_NORMAL_WINDOWS: u32 = 60;
/// Upper bounds of the utilization bands (the last band, at capacity or above, judges nothing).
const BAND_EDGES: [f64; 4] = [0.25, 0.5, 0.75, 1.0];
/// 1.4826 × MAD estimates a standard deviation for normal data.
const MAD_SCALE: f64 = 1.4826;

/// What the detector found in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: AnomalyKind,
    /// What the window measured (p95 seconds, error ratio, requests per second or unscraped
    /// targets, by kind).
    pub observed: f64,
    /// What is normal for the service (same unit).
    pub expected: f64,
    /// Robust deviations above normal (latency, errors) or the share lost (traffic, scrapes).
    pub score: f64,
    /// Load per replica over the capacity per replica.
    pub utilization: f64,
    /// One line for people.
    pub detail: String,
}

impl Finding {
    /// The message for the `anomalies` topic.
    pub fn to_anomaly(
        &self,
        service: &str,
        window_id: u64,
        detected_at: chrono::DateTime<chrono::Utc>,
    ) -> Anomaly {
        let clean = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
        Anomaly {
            service: service.to_owned(),
            window_id,
            kind: self.kind,
            observed: clean(self.observed),
            expected: clean(self.expected),
            score: clean(self.score),
            utilization: clean(self.utilization),
            detail: self.detail.clone(),
            detected_at,
        }
    }
}

/// The last values of one quantity, with their median and deviation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Normal {
    values: VecDeque<f64>,
}

impl Normal {
    fn learn(&mut self, value: f64) {
        while self.values.len() >= HISTORY {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// Median and robust deviation, once `min_windows` values are known.
    fn judge(&self, min_windows: usize) -> Option<(f64, f64)> {
        if self.values.len() < min_windows.max(1) {
            return None;
        }
        let mut sorted: Vec<f64> = self.values.iter().copied().collect();
        let median = median_of(&mut sorted);
        let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - median).abs()).collect();
        Some((median, MAD_SCALE * median_of(&mut deviations)))
    }
}

/// The median of `values` (sorted in place); 0 for none.
fn median_of(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// What the detector knows of one service. Its normal (latency per band, errors) is kept
/// across restarts like the capacity estimate; what it knows of the recent traffic is not.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detector {
    /// `ln p95` per utilization band below capacity.
    latency: [Normal; 4],
    /// Error ratio below capacity.
    errors: Normal,
    /// Request rates of the last normal windows.
    #[serde(skip)]
    rates: VecDeque<f64>,
    /// Consecutive windows with a latency or error anomaly.
    #[serde(skip)]
    streak: u32,
    /// Consecutive windows with lost traffic, with lost scrapes.
    #[serde(skip)]
    lost_streak: u32,
    #[serde(skip)]
    unscraped_streak: u32,
    /// Consecutive windows below capacity.
    #[serde(skip)]
    calm: u32,
}

/// One window as the detector reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub request_rate: f64,
    pub error_ratio: f64,
    pub p95: Option<f64>,
    /// Replicas scraped.
    pub replicas: u32,
    /// Targets Prometheus failed to scrape.
    pub unscraped: u32,
    /// Capacity per replica before this window.
    pub capacity: f64,
}

impl Detector {
    /// What another run of the service starts from: the normal learned here, nothing of the
    /// recent traffic.
    pub fn carried_over(&self) -> Detector {
        Detector {
            latency: self.latency.clone(),
            errors: self.errors.clone(),
            ..Detector::default()
        }
    }

    /// Judges `reading` (a band, and the errors, judge once `min_windows` normal windows are
    /// known: [`MIN_WINDOWS`] by default), then learns from it if it was normal.
    pub fn check(&mut self, reading: &Reading, sla: &Sla, min_windows: usize) -> Vec<Finding> {
        let per_replica = reading.request_rate / f64::from(reading.replicas.max(1));
        let utilization = if reading.capacity > 0.0 {
            per_replica / reading.capacity
        } else {
            0.0
        };
        let band = BAND_EDGES
            .iter()
            .position(|edge| utilization < *edge)
            .unwrap_or(BAND_EDGES.len());
        let mut found = Vec::new();
        let below = band < BAND_EDGES.len();
        let steady = below && self.calm >= CALM_WINDOWS;
        if steady {
            found.extend(self.latency_finding(reading, band, utilization, min_windows));
            found.extend(self.error_finding(reading, sla, utilization, min_windows));
        }
        let recent = (self.rates.len() >= MIN_HISTORY)
            .then(|| median_of(&mut self.rates.iter().copied().collect::<Vec<_>>()));
        if let Some(median) = recent
            && median >= MIN_TRAFFIC_RPS
            && reading.request_rate < TRAFFIC_LOSS_SHARE * median
        {
            found.push(Finding {
                kind: AnomalyKind::TrafficLoss,
                observed: reading.request_rate,
                expected: median,
                score: 1.0 - reading.request_rate / median,
                utilization,
                detail: format!(
                    "{:.1} req/s where the last windows' median is {median:.1}: traffic or its metrics were lost",
                    reading.request_rate
                ),
            });
        }
        if reading.unscraped > 0 && self.unscraped_streak < NEW_NORMAL_WINDOWS {
            let targets = reading.unscraped + reading.replicas;
            found.push(Finding {
                kind: AnomalyKind::ScrapeLoss,
                observed: f64::from(reading.unscraped),
                expected: 0.0,
                score: f64::from(reading.unscraped) / f64::from(targets),
                utilization,
                detail: format!(
                    "{} of {targets} targets not scraped (up == 0): the load read is partial",
                    reading.unscraped
                ),
            });
        }
        if found.iter().any(|f| f.kind.not_load()) {
            self.streak += 1;
            if self.streak >= NEW_NORMAL_WINDOWS {
                // It has lasted: this is how the service is now. Learn it again.
                *self = Detector::default();
            }
        } else {
            self.streak = 0;
        }
        if found.iter().any(|f| f.kind == AnomalyKind::TrafficLoss) {
            self.lost_streak += 1;
            if self.lost_streak >= NEW_NORMAL_WINDOWS {
                // The traffic is gone for good: this is the service now.
                self.rates.clear();
                self.lost_streak = 0;
            }
        } else {
            self.lost_streak = 0;
        }
        // Targets that stay unscraped (a replica crash-looping, a wrong port) are said for
        // NEW_NORMAL_WINDOWS, then no longer: the hold on scale-down does not last for ever.
        self.unscraped_streak = if reading.unscraped > 0 {
            self.unscraped_streak.saturating_add(1)
        } else {
            0
        };
        self.calm = if below {
            self.calm.saturating_add(1)
        } else {
            0
        };
        if found.is_empty() {
            if self.rates.len() == crate::LONG_WINDOWS {
                self.rates.pop_front();
            }
            self.rates.push_back(reading.request_rate);
        }
        if found.is_empty() && steady {
            if let Some(p95) = reading.p95.filter(|p| *p > 0.0) {
                self.latency[band].learn(p95.ln());
            }
            if reading.request_rate > 0.0 {
                self.errors.learn(reading.error_ratio);
            }
        }
        found
    }

    fn latency_finding(
        &self,
        reading: &Reading,
        band: usize,
        utilization: f64,
        min_windows: usize,
    ) -> Option<Finding> {
        let p95 = reading.p95.filter(|p| *p > 0.0)?;
        // Latency grows with load: the nearest learned band at this load or above bounds it.
        let (at, (median, deviation)) = (band..self.latency.len())
            .find_map(|b| Some((b, self.latency[b].judge(min_windows)?)))?;
        let limit = median + (DEVIATIONS * deviation).max(MIN_FACTOR.ln());
        let observed = p95.ln();
        (observed > limit).then(|| {
            let normal = median.exp();
            let low = if at == 0 { 0.0 } else { BAND_EDGES[at - 1] };
            Finding {
                kind: AnomalyKind::LatencyWithoutLoad,
                observed: p95,
                expected: normal,
                score: (observed - median) / deviation.max(1e-3),
                utilization,
                detail: format!(
                    "p95 {p95:.3} s at {:.0} % of capacity, where {normal:.3} s is normal at {:.0}-{:.0} %: not load",
                    utilization * 100.0,
                    low * 100.0,
                    BAND_EDGES[at] * 100.0
                ),
            }
        })
    }

    fn error_finding(
        &self,
        reading: &Reading,
        sla: &Sla,
        utilization: f64,
        min_windows: usize,
    ) -> Option<Finding> {
        if reading.request_rate <= 0.0 || reading.error_ratio <= sla.error_ratio {
            return None;
        }
        let (median, deviation) = self.errors.judge(min_windows)?;
        let limit = median + DEVIATIONS * deviation;
        (reading.error_ratio > limit).then(|| Finding {
            kind: AnomalyKind::ErrorsWithoutLoad,
            observed: reading.error_ratio,
            expected: median,
            score: (reading.error_ratio - median) / deviation.max(1e-3),
            utilization,
            detail: format!(
                "{:.1} % errors at {:.0} % of capacity, where {:.1} % is normal: not load",
                reading.error_ratio * 100.0,
                utilization * 100.0,
                median * 100.0
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(rate: f64, p95: f64, errors: f64) -> Reading {
        Reading {
            request_rate: rate,
            error_ratio: errors,
            p95: Some(p95),
            replicas: 2,
            unscraped: 0,
            capacity: 50.0,
        }
    }

    fn learned() -> Detector {
        let mut d = Detector::default();
        for i in 0..200 {
            let wobble = 1.0 + 0.05 * f64::from(i % 5);
            // 30 req/s per replica: 60 % of capacity, p95 0.15 s.
            assert!(
                d.check(
                    &reading(60.0, 0.15 * wobble, 0.0),
                    &Sla::DEFAULT,
                    MIN_WINDOWS
                )
                .is_empty()
            );
        }
        d
    }

    #[test]
    fn latency_without_the_load_to_explain_it_is_flagged_and_not_learned() {
        let mut d = learned();
        let found = d.check(&reading(60.0, 0.9, 0.0), &Sla::DEFAULT, MIN_WINDOWS);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, AnomalyKind::LatencyWithoutLoad);
        assert!(found[0].detail.contains("not load"), "{}", found[0].detail);
        // At a lower load, the band above bounds the normal: still abnormal.
        let found = d.check(&reading(20.0, 0.9, 0.0), &Sla::DEFAULT, MIN_WINDOWS);
        assert_eq!(found[0].kind, AnomalyKind::LatencyWithoutLoad);
        // At capacity, latency is load: nothing.
        assert!(
            d.check(&reading(110.0, 3.0, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
        // Twice normal is the least that counts.
        assert!(
            d.check(&reading(60.0, 0.25, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
    }

    #[test]
    fn latency_while_a_queue_drains_is_load() {
        let mut d = learned();
        // Overloaded (2.2 times capacity), then back below it with the backlog still queued.
        assert!(
            d.check(&reading(220.0, 9.0, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
        for _ in 0..CALM_WINDOWS {
            assert!(
                d.check(&reading(60.0, 5.0, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                    .is_empty()
            );
        }
        // Calm since: judged.
        assert!(
            !d.check(&reading(60.0, 0.9, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
    }

    #[test]
    fn a_band_never_seen_at_or_above_the_load_judges_nothing() {
        let mut d = learned();
        // 80 % of capacity: no band at or above it has been learned.
        assert!(
            d.check(&reading(80.0, 0.9, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
        assert!(
            Detector::default()
                .check(&reading(60.0, 5.0, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
    }

    #[test]
    fn errors_below_capacity_are_flagged() {
        let mut d = learned();
        let found = d.check(&reading(60.0, 0.15, 0.3), &Sla::DEFAULT, MIN_WINDOWS);
        assert_eq!(found[0].kind, AnomalyKind::ErrorsWithoutLoad);
        // Within the SLA's error ratio: not an anomaly.
        assert!(
            d.check(&reading(60.0, 0.15, 0.04), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
    }

    #[test]
    fn lost_traffic_and_lost_scrapes_are_suspect_telemetry() {
        let mut d = learned();
        // The end of a burst (to a tenth) is not a loss; metrics gone are.
        assert!(
            d.check(&reading(6.0, 0.15, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
        let found = d.check(&reading(0.0, 0.15, 0.0), &Sla::DEFAULT, MIN_WINDOWS);
        assert_eq!(found[0].kind, AnomalyKind::TrafficLoss);
        assert!(found[0].kind.suspect_telemetry());
        let mut partial = reading(30.0, 0.15, 0.0);
        partial.replicas = 1;
        partial.unscraped = 1;
        let found = d.check(&partial, &Sla::DEFAULT, MIN_WINDOWS);
        assert_eq!(found[0].kind, AnomalyKind::ScrapeLoss);
        assert!((found[0].score - 0.5).abs() < 1e-9);
        // Lost for long, it is the service now.
        let lost = (0..NEW_NORMAL_WINDOWS + 5)
            .filter(|_| {
                !d.check(&reading(0.0, 0.15, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                    .is_empty()
            })
            .count();
        assert_eq!(lost, NEW_NORMAL_WINDOWS as usize);
        // Targets unscraped for long are no longer said.
        partial.request_rate = 60.0;
        let said = (0..NEW_NORMAL_WINDOWS + 5)
            .filter(|_| !d.check(&partial, &Sla::DEFAULT, MIN_WINDOWS).is_empty())
            .count();
        assert_eq!(said, NEW_NORMAL_WINDOWS as usize);
        // A quiet service is not a lost one.
        let mut small = Detector::default();
        for _ in 0..40 {
            small.check(&reading(1.5, 0.15, 0.0), &Sla::DEFAULT, MIN_WINDOWS);
        }
        assert!(
            small
                .check(&reading(0.1, 0.15, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
    }

    #[test]
    fn the_normal_is_carried_over_and_the_recent_traffic_is_not() {
        let d = learned();
        let json = serde_json::to_string(&d).unwrap();
        let mut back: Detector = serde_json::from_str(&json).unwrap();
        assert!(back.rates.is_empty() && back.calm == 0);
        // Judges at once (its normal is known), without a traffic median from before.
        for _ in 0..CALM_WINDOWS {
            assert!(
                back.check(&reading(60.0, 0.15, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                    .is_empty()
            );
        }
        let found = back.check(&reading(60.0, 0.9, 0.0), &Sla::DEFAULT, MIN_WINDOWS);
        assert_eq!(found[0].kind, AnomalyKind::LatencyWithoutLoad);
        assert!(d.carried_over().rates.is_empty());
    }

    #[test]
    fn an_anomaly_that_lasts_becomes_the_new_normal() {
        let mut d = learned();
        let flagged = (0..NEW_NORMAL_WINDOWS + MIN_WINDOWS as u32 + 5)
            .filter(|_| {
                !d.check(&reading(60.0, 0.9, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                    .is_empty()
            })
            .count();
        assert_eq!(flagged, NEW_NORMAL_WINDOWS as usize);
        assert!(
            d.check(&reading(60.0, 0.9, 0.0), &Sla::DEFAULT, MIN_WINDOWS)
                .is_empty()
        );
    }
}
