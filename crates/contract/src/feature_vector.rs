//! The message on `metrics`: one feature vector per service per poll of the aggregator, of one
//! of two kinds. A vector of an HTTP service (version 2) describes its requests; a vector of a
//! consumer group (version 3, with [`ConsumerGroup`]) describes the messages written to its topic:
//! there `request_rate` is the production rate, `replicas` the group's members and the capacity
//! what one consumer reads a second, and the group's lag comes with it.

use crate::{
    Features, MAX_REPLICAS, Message, from_json_bytes, to_json_bytes, validate_name,
    validate_service, validate_window,
};
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
    /// Set on a consumer group's vector: what the group must keep up with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_group: Option<ConsumerGroup>,
}

/// A consumer group's state over a window, read from the broker (committed and end offsets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerGroup {
    /// The Kafka consumer group.
    pub group: String,
    /// The topic it consumes.
    pub topic: String,
    /// Partitions of the topic: more consumers than this would read nothing.
    pub partitions: u32,
    /// Messages written and not yet committed as read, over all partitions.
    pub lag_messages: f64,
    /// The lag of the partition furthest behind (a skew the total hides: one slow consumer, or
    /// keys that load one partition).
    pub lag_max_partition: f64,
    /// Messages a second the group committed as read over the window.
    pub consumption_rate: f64,
    /// The KPI: the lag, in seconds of production, the group must stay under.
    pub lag_target_sec: f64,
}

/// The most partitions a vector may report: far above any real topic, low enough that no
/// candidate count loop over them is costly.
pub const MAX_PARTITIONS: u32 = MAX_REPLICAS;

impl ConsumerGroup {
    /// How far behind the newest message the group is, in seconds of production at `production`
    /// messages a second (0 without lag; the lag itself over one message a second when nothing
    /// is produced).
    pub fn lag_seconds(&self, production: f64) -> f64 {
        if self.lag_messages <= 0.0 {
            0.0
        } else {
            self.lag_messages / production.max(1.0)
        }
    }

    fn validate(&self) -> Result<(), String> {
        validate_name("consumer_group.group", &self.group)?;
        validate_name("consumer_group.topic", &self.topic)?;
        if !(1..=MAX_PARTITIONS).contains(&self.partitions) {
            return Err(format!(
                "consumer_group.partitions is {}, outside [1, {MAX_PARTITIONS}]",
                self.partitions
            ));
        }
        for (name, value, max) in [
            ("lag_messages", self.lag_messages, 1e15),
            ("lag_max_partition", self.lag_max_partition, 1e15),
            ("consumption_rate", self.consumption_rate, 1e9),
            ("lag_target_sec", self.lag_target_sec, 86_400.0),
        ] {
            if !(value.is_finite() && (0.0..=max).contains(&value)) {
                return Err(format!(
                    "consumer_group.{name} is {value}, outside [0, {max}]"
                ));
            }
        }
        if self.lag_max_partition > self.lag_messages {
            return Err("consumer_group.lag_max_partition is above lag_messages".into());
        }
        if self.lag_target_sec <= 0.0 {
            return Err("consumer_group.lag_target_sec must be above 0".into());
        }
        Ok(())
    }
}

/// Version 2 added the history features (`rate_*`, `day_ago_*`, `week_ago_*`) and the
/// capacity estimate; a version 1 vector reads as one without them (null). Version 3 is the
/// consumer group's kind (`consumer_group` set); an HTTP service's vector stays at version 2,
/// so readers of version 2 go on reading them.
#[derive(Serialize)]
#[serde(tag = "version")]
enum WireRef<'a> {
    #[serde(rename = "2")]
    V2(&'a FeatureVector),
    #[serde(rename = "3")]
    V3(&'a FeatureVector),
}

#[derive(Deserialize)]
#[serde(tag = "version")]
enum Wire {
    #[serde(rename = "1")]
    V1(FeatureVector),
    #[serde(rename = "2")]
    V2(FeatureVector),
    #[serde(rename = "3")]
    V3(FeatureVector),
}

impl Message for FeatureVector {
    const KIND: &'static str = "feature_vector";
    const SUPPORTED_VERSIONS: &'static [&'static str] = &["1", "2", "3"];

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
        self.features.validate()?;
        match &self.consumer_group {
            Some(group) => group.validate(),
            None => Ok(()),
        }
    }

    fn encode(&self) -> Vec<u8> {
        if self.consumer_group.is_some() {
            to_json_bytes(&WireRef::V3(self))
        } else {
            to_json_bytes(&WireRef::V2(self))
        }
    }

    fn decode_wire(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        match from_json_bytes::<Wire>(bytes)? {
            Wire::V1(v) | Wire::V2(v) => Ok(FeatureVector {
                consumer_group: None,
                ..v
            }),
            Wire::V3(v) if v.consumer_group.is_none() => Err(serde::de::Error::custom(
                "a version 3 vector is a consumer group's and needs consumer_group",
            )),
            Wire::V3(v) => Ok(v),
        }
    }
}
