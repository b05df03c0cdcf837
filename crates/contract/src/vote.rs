//! The message on `model-votes`: one model's vote on one feature vector.

use crate::{
    Message, from_json_bytes, to_json_bytes, validate_name, validate_replicas, validate_service,
    validate_unit_interval, validate_window,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a model (or the scaler, after tallying) wants done with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    ScaleUp,
    NoAction,
    ScaleDown,
}

impl Action {
    /// All actions, in the order the decision log counts them.
    pub const ALL: [Action; 3] = [Action::ScaleUp, Action::NoAction, Action::ScaleDown];

    /// The wire name (`SCALE_UP`), also used as a counter label.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ScaleUp => "SCALE_UP",
            Action::NoAction => "NO_ACTION",
            Action::ScaleDown => "SCALE_DOWN",
        }
    }
}

/// The human form used in the decision log: `SCALE UP`, `NO ACTION`, `SCALE DOWN`.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::ScaleUp => "SCALE UP",
            Action::NoAction => "NO ACTION",
            Action::ScaleDown => "SCALE DOWN",
        })
    }
}

/// One model's vote for one service and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    /// The service voted on (also the message key).
    pub service: String,
    /// The window of the feature vector this vote answers.
    pub window_id: u64,
    /// Which model voted (`xgboost`, `random_forest`, `logistic_regression`, ...).
    pub model: String,
    /// The model artifact's version (its training data hash and date), for audits.
    pub model_version: String,
    /// The action the model chose.
    pub action: Action,
    /// The model's probability for the action it chose.
    pub confidence: f64,
    /// The model's probability that the current replicas are overrun within its scale-up horizon
    /// (its forecast peak above what they carry).
    pub violation_probability: f64,
    /// Replicas the service had in the window.
    pub current_replicas: u32,
    /// The replica count the model wants: what its forecast peak needs at the service's learned
    /// capacity (more than now for SCALE_UP, fewer for SCALE_DOWN, at most now otherwise).
    pub safe_replicas: u32,
    /// Time the model took to predict, in microseconds.
    pub inference_us: f64,
    /// When the feature vector was produced (carried along to measure end-to-end latency).
    pub features_produced_at: DateTime<Utc>,
    /// When the vote was cast.
    pub voted_at: DateTime<Utc>,
}

#[derive(Serialize)]
#[serde(tag = "version")]
enum WireRef<'a> {
    #[serde(rename = "1")]
    V1(&'a Vote),
}

#[derive(Deserialize)]
#[serde(tag = "version")]
enum Wire {
    #[serde(rename = "1")]
    V1(Vote),
}

impl Message for Vote {
    const KIND: &'static str = "vote";
    const SUPPORTED_VERSIONS: &'static [&'static str] = &["1"];

    fn key(&self) -> &str {
        &self.service
    }

    fn validate(&self) -> Result<(), String> {
        validate_service(&self.service)?;
        validate_window(self.window_id)?;
        validate_name("model", &self.model)?;
        validate_name("model_version", &self.model_version)?;
        validate_unit_interval("confidence", self.confidence)?;
        validate_unit_interval("violation_probability", self.violation_probability)?;
        validate_replicas("current_replicas", self.current_replicas, 0)?;
        validate_replicas("safe_replicas", self.safe_replicas, 1)?;
        // An hour: far beyond any model call, bounded so that sums and histograms stay sane.
        if !(self.inference_us.is_finite() && (0.0..=3.6e9).contains(&self.inference_us)) {
            return Err(format!(
                "inference_us {} is not a duration",
                self.inference_us
            ));
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        to_json_bytes(&WireRef::V1(self))
    }

    fn decode_wire(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        from_json_bytes::<Wire>(bytes).map(|Wire::V1(v)| v)
    }
}
