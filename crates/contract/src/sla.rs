//! The service-level agreement every part of the fleet measures windows against: the trainer's
//! labels, the aggregator's capacity estimates, the replay's violation minutes.

use crate::Features;
use serde::{Deserialize, Serialize};

/// A window violates the SLA when its p95 latency or its error ratio is above these.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    /// A window violates the SLA when its p95 latency is above this many seconds...
    pub p95_seconds: f64,
    /// ...or its error ratio is above this.
    pub error_ratio: f64,
}

impl Sla {
    /// The seed's SLA: p95 under 250 ms, at most 5 % errors.
    pub const DEFAULT: Sla = Sla {
        p95_seconds: 0.25,
        error_ratio: 0.05,
    };

    /// Whether a window with these features violates the SLA.
    pub fn violated_by(&self, features: &Features) -> bool {
        self.violated(features.latency_p95, features.error_ratio)
    }

    /// Whether a window with this p95 (none without requests) and error ratio violates it.
    pub fn violated(&self, p95_seconds: Option<f64>, error_ratio: f64) -> bool {
        p95_seconds.is_some_and(|p95| p95 > self.p95_seconds) || error_ratio > self.error_ratio
    }

    /// One line saying what is wrong with these values, if anything.
    pub fn check(&self) -> Result<(), String> {
        if !(self.p95_seconds.is_finite() && self.p95_seconds > 0.0) {
            return Err(format!(
                "SLA_P95_SECONDS: {} is not a positive number of seconds",
                self.p95_seconds
            ));
        }
        if !(0.0..=1.0).contains(&self.error_ratio) {
            return Err(format!(
                "SLA_ERROR_RATIO: {} is not a ratio between 0 and 1",
                self.error_ratio
            ));
        }
        Ok(())
    }
}

impl Default for Sla {
    fn default() -> Self {
        Sla::DEFAULT
    }
}
