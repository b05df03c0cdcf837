//! The feature vectors the benchmark sends: real contract messages as the aggregator publishes
//! them, with the trainer's synthetic features over a spread of loads and replica counts so that
//! the models vote every way (scale up, no action, scale down).
//!
//! A vector is named by a service and a window index; its `window_id` is the run's first window
//! plus ten seconds per index, as the aggregator's ids advance. Each phase uses its own service
//! prefix, so a message or decision is told apart by its service name alone.

use chrono::{DateTime, Utc};
use contract::{FeatureVector, Message};

/// The aggregator's poll interval the committed models were trained at.
pub const POLL_INTERVAL_SEC: u32 = 10;

/// An encoded message ready to send: its key (the service) and its JSON bytes.
pub struct Encoded {
    pub key: String,
    pub payload: Vec<u8>,
}

impl Encoded {
    pub fn of(vector: &FeatureVector) -> Self {
        Self {
            key: vector.key().to_owned(),
            payload: vector.encode(),
        }
    }
}

/// Builds the vectors of one run.
#[derive(Debug, Clone, Copy)]
pub struct VectorSource {
    /// `window_id` of window index 0: the start of the run, aligned to the poll interval.
    first_window: u64,
}

impl VectorSource {
    /// Windows counted from now.
    pub fn now() -> Self {
        let now = Utc::now().timestamp().max(0) as u64;
        Self {
            first_window: now - now % u64::from(POLL_INTERVAL_SEC),
        }
    }

    /// The vector of `service` at window `index`, produced now; `load` picks the load and the
    /// replica count (any number; the same number gives the same features).
    pub fn vector(&self, service: String, index: u64, load: u64) -> FeatureVector {
        let interval = u64::from(POLL_INTERVAL_SEC);
        let window_id = self.first_window + index * interval;
        let window_end = DateTime::from_timestamp(window_id as i64, 0).unwrap_or_default();
        let rate = (load * 37 % 110) as f64;
        let replicas = (load % 4 + 1) as u32;
        FeatureVector {
            service,
            window_id,
            window_start: window_end - chrono::Duration::seconds(interval as i64),
            window_end,
            poll_interval_sec: POLL_INTERVAL_SEC,
            produced_at: Utc::now(),
            features: features::synthetic::features(rate, replicas),
            consumer_group: None,
        }
    }

    /// The window index of `window_id` (the inverse of [`VectorSource::vector`]'s numbering).
    pub fn index_of(&self, window_id: u64) -> u64 {
        window_id.saturating_sub(self.first_window) / u64::from(POLL_INTERVAL_SEC)
    }

    /// `count` vectors spread over `services` services named `<prefix>-<n>`, window after window
    /// (every service's window 0, then every service's window 1, ...), so each service's windows
    /// arrive in order as the aggregator sends them.
    pub fn batch(&self, prefix: &str, services: u64, count: u64) -> Vec<FeatureVector> {
        let services = services.max(1);
        (0..count)
            .map(|i| self.vector(format!("{prefix}-{}", i % services), i / services, i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_valid_unique_and_varied() {
        let source = VectorSource::now();
        let batch = source.batch("svc", 3, 7);
        let keys: std::collections::BTreeSet<(String, u64)> = batch
            .iter()
            .map(|v| (v.service.clone(), v.window_id))
            .collect();
        assert_eq!(keys.len(), 7, "each (service, window) once");
        assert_eq!(batch[3].service, "svc-0");
        assert_eq!(batch[3].window_id, batch[0].window_id + 10);
        assert_eq!(source.index_of(batch[6].window_id), 2);
        for v in &batch {
            // The wire form rounds the features; the identity must survive exactly.
            let decoded = FeatureVector::decode(&Encoded::of(v).payload).unwrap();
            assert_eq!(
                (&decoded.service, decoded.window_id),
                (&v.service, v.window_id)
            );
            assert_eq!(decoded.produced_at, v.produced_at);
        }
        let replicas: std::collections::BTreeSet<u64> =
            batch.iter().map(|v| v.features.replicas as u64).collect();
        assert!(replicas.len() > 1, "{replicas:?}");
    }
}
