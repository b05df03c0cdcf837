//! Consumer groups the operator names (`CONSUMER_GROUPS`), read from the broker every poll: lag
//! (in all, and in seconds at the group's consumption rate), production and consumption rates,
//! partitions and members, exported on /metrics for the dashboard (issue 14's measurement; the
//! models do not vote for consumer groups yet). A group that cannot be read is counted and
//! warned of (one line per group every five minutes, saying how many failures it stands for: a
//! topic not created yet is no reason to fill the log); the others go on.

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use service_runtime::kafka::{GroupProbe, GroupReading, KafkaArgs};
use service_runtime::telemetry::LogThrottle;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One consumer group to watch: `service=group@topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTarget {
    /// The consuming service, the label of its series.
    pub service: String,
    pub group: String,
    pub topic: String,
}

impl GroupTarget {
    /// Parses `service=group@topic`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not service=group@topic");
        let (service, rest) = s.split_once('=').ok_or_else(bad)?;
        let (group, topic) = rest.rsplit_once('@').ok_or_else(bad)?;
        contract::validate_service(service.trim())?;
        let legal = |name: &str| {
            !name.is_empty()
                && name.len() <= 249
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if !legal(topic.trim()) || group.trim().is_empty() || group.len() > 249 {
            return Err(format!(
                "{s:?}: the topic must be a Kafka topic name (letters, digits, . _ -) and the \
                 group not empty"
            ));
        }
        Ok(Self {
            service: service.trim().to_owned(),
            group: group.trim().to_owned(),
            topic: topic.trim().to_owned(),
        })
    }
}

/// The gauges of the watched groups (labelled by the configured service only).
#[derive(Clone)]
pub struct GroupMetrics {
    pub lag: GaugeVec,
    pub lag_seconds: GaugeVec,
    pub production: GaugeVec,
    pub consumption: GaugeVec,
    pub partitions: GaugeVec,
    pub members: GaugeVec,
    pub errors: IntCounterVec,
}

impl GroupMetrics {
    pub fn register(registry: &Registry, targets: &[GroupTarget]) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<GaugeVec> {
            let g = GaugeVec::new(Opts::new(name, help), &["service"])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let errors = IntCounterVec::new(
            Opts::new(
                "aggregator_consumer_group_errors_total",
                "Readings of a consumer group that failed (broker unreachable, no such topic)",
            ),
            &["service"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        for target in targets {
            errors.with_label_values(&[&target.service]);
        }
        Ok(Self {
            lag: gauge(
                "aggregator_consumer_lag_messages",
                "Messages the consumer group has not read (end offsets minus committed)",
            )?,
            lag_seconds: gauge(
                "aggregator_consumer_lag_seconds",
                "How long the group takes to read its lag at its consumption rate",
            )?,
            production: gauge(
                "aggregator_consumer_production_rate",
                "Messages a second written to the group's topic",
            )?,
            consumption: gauge(
                "aggregator_consumer_consumption_rate",
                "Messages a second the group committed as read",
            )?,
            partitions: gauge(
                "aggregator_consumer_partitions",
                "Partitions of the group's topic",
            )?,
            members: gauge(
                "aggregator_consumer_members",
                "Consumers in the group, as the broker reports them",
            )?,
            errors,
        })
    }
}

/// Reads each group every poll and keeps its gauges.
pub struct GroupWatcher {
    kafka: KafkaArgs,
    targets: Vec<GroupTarget>,
    metrics: GroupMetrics,
    probes: HashMap<String, Arc<GroupProbe>>,
    previous: HashMap<String, GroupReading>,
    warnings: LogThrottle,
}

/// How long one broker call of a reading may wait.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl GroupWatcher {
    pub fn new(kafka: KafkaArgs, targets: Vec<GroupTarget>, metrics: GroupMetrics) -> Self {
        Self {
            kafka,
            targets,
            metrics,
            probes: HashMap::new(),
            previous: HashMap::new(),
            warnings: LogThrottle::new(Duration::from_secs(300)),
        }
    }

    /// Reads every group once and sets its gauges (rates from the second reading on).
    pub async fn poll(&mut self) {
        for target in self.targets.clone() {
            match self.read(&target).await {
                Ok(reading) => self.record(&target, reading),
                Err(e) => {
                    self.metrics
                        .errors
                        .with_label_values(&[&target.service])
                        .inc();
                    if let Some(held_back) = self.warnings.allow(&target.service) {
                        tracing::warn!(service = %target.service, group = %target.group,
                            topic = %target.topic, error = %e, failures_not_logged = held_back,
                            "cannot read the consumer group's offsets from the broker; check \
                             KAFKA_BOOTSTRAP_SERVERS and CONSUMER_GROUPS");
                    }
                }
            }
        }
    }

    async fn read(&mut self, target: &GroupTarget) -> anyhow::Result<GroupReading> {
        let probe = match self.probes.get(&target.service) {
            Some(probe) => probe.clone(),
            None => {
                let probe = Arc::new(GroupProbe::new(
                    &self.kafka,
                    &target.group,
                    &target.topic,
                    CALL_TIMEOUT,
                )?);
                self.probes.insert(target.service.clone(), probe.clone());
                probe
            }
        };
        let reading = tokio::task::spawn_blocking(move || probe.read()).await??;
        anyhow::ensure!(
            !reading.partitions.is_empty(),
            "the topic {} has no partitions (does it exist?)",
            target.topic
        );
        Ok(reading)
    }

    fn record(&mut self, target: &GroupTarget, reading: GroupReading) {
        let labels = [target.service.as_str()];
        let m = &self.metrics;
        m.lag.with_label_values(&labels).set(reading.lag() as f64);
        m.partitions
            .with_label_values(&labels)
            .set(reading.partitions.len() as f64);
        if let Some(members) = reading.members {
            m.members.with_label_values(&labels).set(f64::from(members));
        }
        if let Some(previous) = self.previous.get(&target.service) {
            let rates = reading.since(previous);
            m.production
                .with_label_values(&labels)
                .set(rates.production);
            m.consumption
                .with_label_values(&labels)
                .set(rates.consumption);
            m.lag_seconds
                .with_label_values(&labels)
                .set(rates.lag_seconds.unwrap_or(f64::INFINITY));
        }
        self.previous.insert(target.service.clone(), reading);
    }

    /// Polls every `every` until `stop`.
    pub async fn run(mut self, stop: CancellationToken, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.poll().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_service_group_and_topic() {
        let t = GroupTarget::parse("shipping=shipping-workers@orders.v1").unwrap();
        assert_eq!(
            (t.service.as_str(), t.group.as_str(), t.topic.as_str()),
            ("shipping", "shipping-workers", "orders.v1")
        );
        for bad in [
            "shipping",
            "shipping=workers",
            "=g@t",
            "s=@t",
            "s=g@",
            "s=g@bad topic",
        ] {
            assert!(GroupTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
