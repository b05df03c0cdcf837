//! A consumer group's position, read from the broker itself (the Kafka API, no JMX): for each
//! partition of the group's topic the end offset and the offset the group committed, the
//! group's members, and from two readings the production and consumption rates, the lag per
//! partition and in all, and the lag in seconds. What a consumer group is scaled on (KEDA's
//! Kafka scaler reads the same offsets).
//!
//! The probe is a consumer that carries the group's id but never subscribes, so it never joins
//! the group nor moves its offsets: it only asks the broker (`OffsetFetch`, `ListOffsets`,
//! `DescribeGroups`). Its calls block; run them off the async runtime (`spawn_blocking`).

use super::KafkaArgs;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Reads one group's position on one topic.
pub struct GroupProbe {
    consumer: BaseConsumer,
    group: String,
    topic: String,
    timeout: Duration,
}

/// Where one partition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPosition {
    pub partition: i32,
    /// The oldest offset still on the broker, and the next offset to be written.
    pub start: i64,
    pub end: i64,
    /// The group's committed offset (the next it will read); `None` if it never committed
    /// one.
    pub committed: Option<i64>,
}

impl PartitionPosition {
    /// Messages on the partition the group has not read: from its committed offset, or from
    /// the oldest message kept if it has none (what `auto.offset.reset=earliest` would read).
    pub fn lag(&self) -> i64 {
        let from = self.committed.unwrap_or(self.start).max(self.start);
        (self.end - from).max(0)
    }
}

/// One reading of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReading {
    pub at: Instant,
    /// In partition order.
    pub partitions: Vec<PartitionPosition>,
    /// The group's members now (its consumers), if the broker told.
    pub members: Option<u32>,
}

/// What two readings of a group say about the time between them.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRates {
    /// Messages a second written to the topic, and committed as read by the group.
    pub production: f64,
    pub consumption: f64,
    /// Unread messages now, in all and per partition.
    pub lag: i64,
    pub lag_per_partition: Vec<i64>,
    /// How long the group takes to read its lag at its consumption rate; `None` while it reads
    /// nothing and has lag.
    pub lag_seconds: Option<f64>,
    pub partitions: u32,
    pub members: Option<u32>,
}

impl GroupReading {
    pub fn lag(&self) -> i64 {
        self.partitions.iter().map(PartitionPosition::lag).sum()
    }

    /// Rates between `earlier` and this reading (of the same group and topic).
    pub fn since(&self, earlier: &GroupReading) -> GroupRates {
        let seconds = self
            .at
            .saturating_duration_since(earlier.at)
            .as_secs_f64()
            .max(1e-3);
        let (mut produced, mut consumed) = (0_i64, 0_i64);
        for now in &self.partitions {
            let Some(before) = earlier
                .partitions
                .iter()
                .find(|p| p.partition == now.partition)
            else {
                continue;
            };
            produced += (now.end - before.end).max(0);
            let read_to = |p: &PartitionPosition| p.committed.unwrap_or(p.start).max(p.start);
            consumed += (read_to(now) - read_to(before)).max(0);
        }
        let consumption = consumed as f64 / seconds;
        let lag = self.lag();
        GroupRates {
            production: produced as f64 / seconds,
            consumption,
            lag,
            lag_per_partition: self.partitions.iter().map(PartitionPosition::lag).collect(),
            lag_seconds: if lag == 0 {
                Some(0.0)
            } else {
                (consumption > 0.0).then(|| lag as f64 / consumption)
            },
            partitions: self.partitions.len() as u32,
            members: self.members,
        }
    }
}

impl GroupProbe {
    /// A probe of `group` on `topic`, each broker call waiting at most `timeout`.
    pub fn new(
        args: &KafkaArgs,
        group: &str,
        topic: &str,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let mut config = args.consumer_config("group-probe", group);
        config.set("enable.auto.commit", "false");
        Ok(Self {
            consumer: config.create()?,
            group: group.to_owned(),
            topic: topic.to_owned(),
            timeout,
        })
    }

    /// Reads where the group stands on every partition of its topic (blocks).
    pub fn read(&self) -> Result<GroupReading, KafkaError> {
        // Serves the client's queue (errors while the broker was away), which nothing else
        // polls: it never subscribes, so no message comes.
        let _ = self.consumer.poll(Duration::ZERO);
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.topic), self.timeout)?;
        let mut ids: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        ids.sort_unstable();
        let mut wanted = TopicPartitionList::new();
        for id in &ids {
            wanted.add_partition(&self.topic, *id);
        }
        let committed = self.consumer.committed_offsets(wanted, self.timeout)?;
        let mut partitions = Vec::with_capacity(ids.len());
        for id in ids {
            let (start, end) = self
                .consumer
                .fetch_watermarks(&self.topic, id, self.timeout)?;
            let committed =
                committed
                    .find_partition(&self.topic, id)
                    .and_then(|p| match p.offset() {
                        Offset::Offset(o) if o >= 0 => Some(o),
                        _ => None,
                    });
            partitions.push(PartitionPosition {
                partition: id,
                start,
                end,
                committed,
            });
        }
        let members = self
            .consumer
            .fetch_group_list(Some(&self.group), self.timeout)
            .ok()
            .and_then(|list| {
                list.groups()
                    .iter()
                    .find(|g| g.name() == self.group)
                    .map(|g| g.members().len() as u32)
            });
        Ok(GroupReading {
            at: Instant::now(),
            partitions,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, end: i64, committed: Option<i64>) -> PartitionPosition {
        PartitionPosition {
            partition,
            start: 0,
            end,
            committed,
        }
    }

    #[test]
    fn rates_and_lag_from_two_readings() {
        let t0 = Instant::now();
        let earlier = GroupReading {
            at: t0,
            partitions: vec![at(0, 100, Some(90)), at(1, 50, None)],
            members: Some(2),
        };
        let later = GroupReading {
            at: t0 + Duration::from_secs(10),
            partitions: vec![at(0, 300, Some(250)), at(1, 150, Some(140))],
            members: Some(2),
        };
        let rates = later.since(&earlier);
        assert_eq!(rates.production, 30.0, "300 messages in 10 s");
        assert_eq!(rates.consumption, 30.0, "160 + 140 read");
        assert_eq!(rates.lag, 60);
        assert_eq!(rates.lag_per_partition, vec![50, 10]);
        assert_eq!(rates.lag_seconds, Some(2.0));
        assert_eq!(earlier.lag(), 10 + 50, "no commit: all it keeps is unread");
        let idle = later.since(&later);
        assert_eq!(
            idle.lag_seconds, None,
            "nothing read: no time to read the lag"
        );
    }
}
