//! The message on `metrics`: one feature vector per service per poll of the aggregator.

use crate::{Features, Message, from_json_bytes, to_json_bytes, validate_service, validate_window};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One service's features over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureVector {
    /// The service (Prometheus `job`, compose service name) the features describe.
    pub service: String,
    /// Identifies the window: the Unix time in seconds at which the aggregator evaluated it.
    /// Polls are aligned to the interval, so the id is the same after a restart, and votes and
    /// decisions carry it to tie them to this vector.
    pub window_id: u64,
    /// Start of the rate window the features were computed over.
    pub window_start: DateTime<Utc>,
    /// End of the rate window (the evaluation time).
    pub window_end: DateTime<Utc>,
    /// The aggregator's poll interval: a new window arrives this often.
    pub poll_interval_sec: u32,
    /// When the aggregator built this vector (for end-to-end latency).
    pub produced_at: DateTime<Utc>,
    /// The values, in the shared schema.
    pub features: Features,
}

/// Version 2 added the history features (`rate_*`, `day_ago_*`, `week_ago_*`) and the
/// capacity estimate; a version 1 vector reads as one without them (null).
#[derive(Serialize)]
#[serde(tag = "version")]
enum WireRef<'a> {
    #[serde(rename = "2")]
    V2(&'a FeatureVector),
}

#[derive(Deserialize)]
#[serde(tag = "version")]
enum Wire {
    #[serde(rename = "1")]
    V1(FeatureVector),
    #[serde(rename = "2")]
    V2(FeatureVector),
}

impl Message for FeatureVector {
    const KIND: &'static str = "feature_vector";
    const SUPPORTED_VERSIONS: &'static [&'static str] = &["1", "2"];

    fn key(&self) -> &str {
        &self.service
    }

    fn validate(&self) -> Result<(), String> {
        validate_service(&self.service)?;
        if self.window_start > self.window_end {
            return Err("window_start is after window_end".into());
        }
        validate_window(self.window_id)?;
        if !(1..=86_400).contains(&self.poll_interval_sec) {
            return Err(format!(
                "poll_interval_sec is {}, outside [1, 86400]",
                self.poll_interval_sec
            ));
        }
        self.features.validate()
    }

    fn encode(&self) -> Vec<u8> {
        to_json_bytes(&WireRef::V2(self))
    }

    fn decode_wire(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        from_json_bytes::<Wire>(bytes).map(|wire| match wire {
            Wire::V1(v) | Wire::V2(v) => v,
        })
    }
}
