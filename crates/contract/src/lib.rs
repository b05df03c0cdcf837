//! The message contract of the fleet.
//!
//! Every message on a topic is one JSON object with a `version` field, the `service` it is about
//! and the `window_id` that ties a feature vector to its votes and to the decision made on them.
//! Messages are keyed by service name. A consumer decodes with [`Message::decode`], which never
//! panics: anything it cannot read comes back as a [`DecodeError`] whose [`DecodeError::reason`]
//! is a bounded label for a counter.
//!
//! Versioning follows quickwit's pattern: each message has a wire enum tagged by `version`, one
//! variant per version. Today every message is at version `"1"`; a later version adds a variant
//! and a conversion from the older one, so old messages still decode.

mod anomaly;
mod decision;
mod feature_vector;
mod features;
mod sla;
mod vote;

pub use anomaly::{Anomaly, AnomalyKind};
pub use decision::{DecisionOutcome, DecisionRecord, VoteSummary};
pub use feature_vector::{ConsumerGroup, FeatureVector, MAX_PARTITIONS};
pub use features::{
    FEATURE_COUNT, FEATURE_SCHEMA, FeatureSpec, Features, MAX_REPLICAS, feature_index,
    feature_names,
};
pub use sla::Sla;
pub use vote::{Action, Vote};

use serde::de::DeserializeOwned;
use std::borrow::Cow;

/// Default topic of feature vectors.
pub const METRICS_TOPIC: &str = "metrics";
/// Default topic of model votes.
pub const VOTES_TOPIC: &str = "model-votes";
/// Default topic of scaling decisions (the audit stream).
pub const DECISIONS_TOPIC: &str = "scaling-decisions";
/// Default topic of anomalies.
pub const ANOMALIES_TOPIC: &str = "anomalies";

/// The largest message a consumer reads: a feature vector is about 1.5 KiB, a decision record
/// with its votes about 1 KiB. Anything larger is refused before it is parsed.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The last window id a message may carry: windows are Unix seconds, and this is 2100-01-01.
pub const MAX_WINDOW_ID: u64 = 4_102_444_800;
/// The longest name (model, version, strategy) a message may carry.
const MAX_NAME_LEN: usize = 200;

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{size} bytes, more than the {max} a message of this system can have")]
    TooLarge { size: usize, max: usize },
    #[error("not a JSON object: {0}")]
    Malformed(serde_json::Error),
    #[error("no `version` field; this is not a message of this system")]
    MissingVersion,
    #[error("{kind} version {found:?} is not supported (this build reads {supported:?})")]
    UnsupportedVersion {
        kind: &'static str,
        found: String,
        supported: &'static [&'static str],
    },
    #[error("invalid {kind}: {detail}")]
    Invalid { kind: &'static str, detail: String },
}

impl DecodeError {
    /// Every value [`DecodeError::reason`] can take, to initialize counters at 0.
    pub const REASONS: [&'static str; 5] = [
        "too_large",
        "malformed_json",
        "missing_version",
        "unsupported_version",
        "invalid",
    ];

    /// A bounded label for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Malformed(_) => "malformed_json",
            DecodeError::MissingVersion => "missing_version",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::Invalid { .. } => "invalid",
        }
    }
}

/// A message of the contract: how it is keyed, encoded, decoded and checked.
pub trait Message: Sized {
    /// Short name used in errors and counter labels (`feature_vector`, `vote`, `decision`).
    const KIND: &'static str;
    /// The `version` values this build can read.
    const SUPPORTED_VERSIONS: &'static [&'static str];

    /// The Kafka message key: the service name.
    fn key(&self) -> &str;

    /// Checks what serde cannot: finite numbers, non-empty names, ranges.
    fn validate(&self) -> Result<(), String>;

    /// The JSON bytes of the current version.
    fn encode(&self) -> Vec<u8>;

    /// Decodes the wire form (any supported version) into the current type.
    fn decode_wire(bytes: &[u8]) -> Result<Self, serde_json::Error>;

    /// Decodes and validates one message.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        peek_version::<Self>(bytes)?;
        let message = Self::decode_wire(bytes).map_err(|e| DecodeError::Invalid {
            kind: Self::KIND,
            detail: e.to_string(),
        })?;
        message.validate().map_err(|detail| DecodeError::Invalid {
            kind: Self::KIND,
            detail,
        })?;
        Ok(message)
    }
}

/// Reads only the `version` field, so that an unknown version gets its own clear error.
fn peek_version<M: Message>(bytes: &[u8]) -> Result<(), DecodeError> {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(borrow, default)]
        version: Option<Cow<'a, str>>,
    }
    let peek: Peek<'_> = serde_json::from_slice(bytes).map_err(DecodeError::Malformed)?;
    let found = peek.version.ok_or(DecodeError::MissingVersion)?;
    if M::SUPPORTED_VERSIONS.contains(&found.as_ref()) {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion {
            kind: M::KIND,
            found: found.into_owned(),
            supported: M::SUPPORTED_VERSIONS,
        })
    }
}

/// Encodes a serializable wire value; serializing our own types to a `Vec` cannot fail.
fn to_json_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| unreachable!("contract types serialize: {e}"))
}

/// Decodes a wire enum from bytes.
fn from_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// A service name must be usable as a Kafka key, a CSV cell and a Prometheus label value.
pub fn validate_service(service: &str) -> Result<(), String> {
    if service.is_empty() {
        return Err("service is empty".into());
    }
    if service.len() > 200 || service.chars().any(|c| c.is_control() || c == ',') {
        return Err(format!("service name {service:?} is not a valid name"));
    }
    Ok(())
}

/// A name a message carries (model, version, strategy): not empty, not huge, no control characters.
fn validate_name(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(format!(
            "{field} is not a name (at most {MAX_NAME_LEN} bytes, no control characters)"
        ));
    }
    Ok(())
}

/// A window id is Unix seconds up to [`MAX_WINDOW_ID`].
fn validate_window(window_id: u64) -> Result<(), String> {
    if window_id > MAX_WINDOW_ID {
        return Err(format!(
            "window_id {window_id} is after 2100 ({MAX_WINDOW_ID}); window ids are Unix seconds"
        ));
    }
    Ok(())
}

/// A replica count a message carries lies in [`min`, MAX_REPLICAS].
fn validate_replicas(field: &str, value: u32, min: u32) -> Result<(), String> {
    if !(min..=MAX_REPLICAS).contains(&value) {
        return Err(format!(
            "{field} is {value}, outside [{min}, {MAX_REPLICAS}]"
        ));
    }
    Ok(())
}

/// A probability or confidence must lie in [0, 1].
fn validate_unit_interval(name: &str, value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("{name} {value} is outside [0, 1]"))
    }
}
