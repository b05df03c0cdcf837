//! What one consumer of a Kafka consumer group reads a second, learned online from the group's
//! own windows (issue 14).
//!
//! A group that is behind reads as fast as it can: its consumption rate over its members is one
//! consumer's capacity (or a little less: when the partitions do not divide evenly, the consumers
//! with the most of them bound the group). A group that keeps up reads what is produced, which
//! says only that a consumer carries at least that much. So a window behind by more than
//! [`BEHIND_SEC`] is a measurement, averaged over the recent ones; a window that keeps up can
//! only raise the estimate, to [`PROBE`] times what each consumer read: a group sized by the
//! estimate is then run a little hotter, one step at a time, until it falls behind and its
//! capacity is measured (as the request capacity is learned one bin hotter at a time). Before
//! any of either, the estimate is a cautious prior.

use crate::{FeatureBuilder, FeatureSettings, Observation, Skip};
use contract::{ConsumerGroup, Features};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A window more than this many seconds behind the newest message (lag over production) reads
/// at full speed: its consumption is the group's capacity.
pub const BEHIND_SEC: f64 = 5.0;
/// A window that kept up raises the estimate to this many times what each consumer read.
pub const PROBE: f64 = 1.05;
/// Weight of the newest measurement in the average.
const WEIGHT: f64 = 0.3;

/// The estimate for one group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConsumerCapacity {
    /// Messages a second one consumer reads.
    estimate: f64,
    /// Windows behind seen so far.
    measured: u64,
}

impl ConsumerCapacity {
    /// Starts from `prior` messages a second a consumer (a positive, finite value).
    pub fn new(prior: f64) -> Self {
        Self {
            estimate: prior,
            measured: 0,
        }
    }

    /// Learns from one window: `consumption` messages a second read by `members` consumers,
    /// `behind_sec` seconds behind. Windows of a group without members, and values that are not
    /// numbers, teach nothing.
    pub fn observe(&mut self, consumption: f64, members: u32, behind_sec: f64) {
        if members == 0 || !(consumption.is_finite() && consumption > 0.0) {
            return;
        }
        let per_consumer = consumption / f64::from(members);
        if behind_sec > BEHIND_SEC {
            self.estimate = if self.measured == 0 {
                per_consumer
            } else {
                (1.0 - WEIGHT) * self.estimate + WEIGHT * per_consumer
            };
            self.measured += 1;
        } else {
            self.estimate = self.estimate.max(per_consumer * PROBE);
        }
    }

    /// Messages a second one consumer reads.
    pub fn estimate(&self) -> f64 {
        self.estimate
    }

    /// Windows behind it has learned from.
    pub fn measured(&self) -> u64 {
        self.measured
    }
}

/// The features of consumer groups' windows, as the aggregator publishes them and the replay
/// replays them: the production rate's history through a [`FeatureBuilder`], and one
/// consumer's capacity learned per group.
#[derive(Debug, Clone)]
pub struct GroupFeatures {
    builder: FeatureBuilder,
    capacity: HashMap<String, ConsumerCapacity>,
    /// Messages a second one consumer is assumed to read before a group has shown more.
    prior: f64,
}

impl GroupFeatures {
    pub fn new(settings: FeatureSettings, prior: f64) -> Self {
        Self {
            builder: FeatureBuilder::with_settings(settings),
            capacity: HashMap::new(),
            prior,
        }
    }

    /// Takes up what an earlier run learned.
    pub fn restore(&mut self, learned: HashMap<String, ConsumerCapacity>) {
        self.capacity = learned;
    }

    /// What every group's capacity estimate learned, to persist.
    pub fn capacities(&self) -> &HashMap<String, ConsumerCapacity> {
        &self.capacity
    }

    /// The features of `service`'s window at `at_secs`: `production` messages a second written
    /// to `group`'s topic, read by `members` consumers. The window teaches the capacity only
    /// when `steady` (its members did not change: a window holding a rebalance's pause and
    /// consumers that just joined says nothing of what one consumer reads), and members
    /// beyond the partitions are not counted (they read nothing).
    pub fn push(
        &mut self,
        service: &str,
        at_secs: u64,
        production: f64,
        members: u32,
        group: &ConsumerGroup,
        steady: bool,
    ) -> Result<Features, Skip> {
        let capacity = self
            .capacity
            .entry(service.to_owned())
            .or_insert_with(|| ConsumerCapacity::new(self.prior));
        if steady {
            capacity.observe(
                group.consumption_rate,
                members.min(group.partitions),
                group.lag_seconds(production),
            );
        }
        let observation = Observation {
            at_secs,
            request_rate: production,
            error_rate: 0.0,
            latency: None,
            replicas: members,
            replicas_unscraped: 0,
            cpu_per_replica: None,
            memory_per_replica: None,
            day_ago: None,
            week_ago: None,
        };
        let estimate = capacity.estimate();
        self.builder.push_group(service, observation, estimate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_behind_measures_its_capacity_and_one_keeping_up_only_raises_it() {
        let mut c = ConsumerCapacity::new(10.0);
        // Keeping up at 8 a consumer says nothing new; at 12 it carried more than the prior,
        // and is tried a step hotter.
        c.observe(16.0, 2, 0.5);
        assert_eq!(c.estimate(), 10.0);
        c.observe(24.0, 2, 0.5);
        assert!((c.estimate() - 12.6).abs() < 1e-9, "{c:?}");
        // Behind: 4 consumers read 200 a second, 50 each, which replaces the prior.
        c.observe(200.0, 4, 30.0);
        assert_eq!((c.estimate(), c.measured()), (50.0, 1));
        c.observe(160.0, 4, 30.0);
        assert!((c.estimate() - 47.0).abs() < 1e-9, "{c:?}");
        // Nothing to learn from no members or no reading.
        c.observe(160.0, 0, 30.0);
        c.observe(f64::NAN, 4, 30.0);
        c.observe(0.0, 4, 30.0);
        assert!((c.estimate() - 47.0).abs() < 1e-9, "{c:?}");
    }
}
