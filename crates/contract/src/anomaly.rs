//! The message on `anomalies`: what a service's own history says is not normal in one window.
//!
//! The aggregator publishes one message per finding and window, keyed by service. Two kinds say
//! that the latency or the errors are not load (more replicas would not help: the scaler holds
//! a scale-up), two that the telemetry is suspect (the load it reads may not be real: the
//! scaler holds a scale-down).

use crate::{Message, from_json_bytes, to_json_bytes, validate_service, validate_window};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest detail an anomaly carries.
const MAX_DETAIL_LEN: usize = 512;

/// What is abnormal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// p95 latency far above what the service shows at this load per replica.
    LatencyWithoutLoad,
    /// An error ratio above the SLA's and the service's normal, below its capacity.
    ErrorsWithoutLoad,
    /// The request rate fell to a small share of its recent median within one window.
    TrafficLoss,
    /// Prometheus failed to scrape some of the service's targets (`up == 0`).
    ScrapeLoss,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 4] = [
        AnomalyKind::LatencyWithoutLoad,
        AnomalyKind::ErrorsWithoutLoad,
        AnomalyKind::TrafficLoss,
        AnomalyKind::ScrapeLoss,
    ];

    /// A bounded label for counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::LatencyWithoutLoad => "latency_without_load",
            AnomalyKind::ErrorsWithoutLoad => "errors_without_load",
            AnomalyKind::TrafficLoss => "traffic_loss",
            AnomalyKind::ScrapeLoss => "scrape_loss",
        }
    }

    /// The latency or the errors are not explained by load: replicas would not help.
    pub fn not_load(self) -> bool {
        matches!(
            self,
            AnomalyKind::LatencyWithoutLoad | AnomalyKind::ErrorsWithoutLoad
        )
    }

    /// The telemetry itself is in doubt: a quiet reading may not be a quiet service.
    pub fn suspect_telemetry(self) -> bool {
        matches!(self, AnomalyKind::TrafficLoss | AnomalyKind::ScrapeLoss)
    }
}

/// One finding for one service and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The service it is about (the message key).
    pub service: String,
    /// The window of the feature vector it was found in.
    pub window_id: u64,
    pub kind: AnomalyKind,
    /// What the window measured (seconds of p95 latency, error ratio, requests per second, or
    /// unscraped targets, by kind).
    pub observed: f64,
    /// What the service's history says is normal for it (same unit).
    pub expected: f64,
    /// How far outside normal: robust deviations above the normal for latency and errors, the
    /// share lost for traffic and scrapes.
    pub score: f64,
    /// Load per replica over the learned capacity per replica in that window.
    pub utilization: f64,
    /// One line for people.
    pub detail: String,
    /// When it was found.
    pub detected_at: DateTime<Utc>,
}

#[derive(Serialize)]
#[serde(tag = "version")]
enum WireRef<'a> {
    #[serde(rename = "1")]
    V1(&'a Anomaly),
}

#[derive(Deserialize)]
#[serde(tag = "version")]
enum Wire {
    #[serde(rename = "1")]
    V1(Anomaly),
}

impl Message for Anomaly {
    const KIND: &'static str = "anomaly";
    const SUPPORTED_VERSIONS: &'static [&'static str] = &["1"];

    fn key(&self) -> &str {
        &self.service
    }

    fn validate(&self) -> Result<(), String> {
        validate_service(&self.service)?;
        validate_window(self.window_id)?;
        for (name, value) in [
            ("observed", self.observed),
            ("expected", self.expected),
            ("score", self.score),
            ("utilization", self.utilization),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{name} {value} is not a finite number >= 0"));
            }
        }
        if self.detail.len() > MAX_DETAIL_LEN || self.detail.chars().any(char::is_control) {
            return Err(format!(
                "detail is not one line of at most {MAX_DETAIL_LEN} bytes"
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
