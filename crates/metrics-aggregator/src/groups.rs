//! Consumer groups the operator names, read from the broker every poll: lag (in all, and in
//! seconds at the group's consumption rate), production and consumption rates, partitions and
//! members, exported on /metrics for the dashboard. A group that cannot be read is counted and
//! warned of (one line per group every five minutes, saying how many failures it stands for: a
//! topic not created yet is no reason to fill the log); the others go on.
//!
//! A group to scale (`CONSUMER_GROUPS`, as opposed to one only watched,
//! `WATCH_CONSUMER_GROUPS`) also becomes a feature vector on `metrics` every window, of the
//! consumer group's kind ([`contract::ConsumerGroup`]): the production rate and its history
//! features in place of the request rate, the members as replicas, and what one consumer reads
//! a second ([`features::ConsumerCapacity`], learned from the group's own windows) as the
//! capacity. The voters size the group from it. Its windows are the aggregator's (the same ids
//! as the HTTP services' vectors).

use crate::sink::Sink;
use contract::{ConsumerGroup, FeatureVector};
use features::{ConsumerCapacity, GroupFeatures};
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use service_runtime::kafka::{GroupProbe, GroupRates, GroupReading, KafkaArgs};
use service_runtime::telemetry::LogThrottle;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One consumer group to watch: `service=group@topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTarget {
    /// The consuming service, the label of its series (and the service scaled).
    pub service: String,
    pub group: String,
    pub topic: String,
    /// Whether its windows go to `metrics` for the models to vote on (`CONSUMER_GROUPS`), or it
    /// is only measured (`WATCH_CONSUMER_GROUPS`).
    pub scaled: bool,
}

impl GroupTarget {
    /// Parses `service=group@topic`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (service, group, topic) = service_runtime::config::group_target(s)?;
        Ok(Self {
            service,
            group,
            topic,
            scaled: true,
        })
    }

    /// Parses `service=group@topic` of a group only measured.
    pub fn parse_watched(s: &str) -> Result<Self, String> {
        Self::parse(s).map(|t| Self { scaled: false, ..t })
    }
}

/// A comma-separated list of groups (`CONSUMER_GROUPS`, `WATCH_CONSUMER_GROUPS`); empty entries,
/// and an empty setting, name none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupTargets(pub Vec<GroupTarget>);

impl GroupTargets {
    /// Groups to scale.
    pub fn parse(s: &str) -> Result<Self, String> {
        service_runtime::config::comma_list(s, GroupTarget::parse).map(Self)
    }

    /// Groups only measured.
    pub fn parse_watched(s: &str) -> Result<Self, String> {
        service_runtime::config::comma_list(s, GroupTarget::parse_watched).map(Self)
    }
}

/// What turning a group's windows into feature vectors needs.
#[derive(Clone)]
pub struct VectorSettings {
    /// Where the vectors go (the aggregator's Kafka sink).
    pub sink: Sink,
    /// Seconds between windows (`POLL_INTERVAL_SEC`).
    pub interval_secs: u64,
    /// History and trend settings, as for the HTTP services.
    pub features: features::FeatureSettings,
    /// Messages a second one consumer is assumed to read until the group has shown more.
    pub capacity_prior: f64,
    /// The KPI the voters size the group for: seconds of lag.
    pub lag_target_sec: f64,
    /// Where the learned capacities are kept across restarts (`None`: not kept).
    pub state_path: Option<PathBuf>,
}

/// The gauges of the watched groups (labelled by the configured service only).
#[derive(Clone)]
pub struct GroupMetrics {
    pub lag: GaugeVec,
    pub lag_max_partition: GaugeVec,
    pub lag_seconds: GaugeVec,
    pub production: GaugeVec,
    pub consumption: GaugeVec,
    pub partitions: GaugeVec,
    pub members: GaugeVec,
    pub capacity: GaugeVec,
    pub errors: IntCounterVec,
    pub vectors: IntCounterVec,
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
        let vectors = IntCounterVec::new(
            Opts::new(
                "aggregator_consumer_vectors_total",
                "Feature vectors of a consumer group to scale published to the metrics topic",
            ),
            &["service"],
        )?;
        registry.register(Box::new(vectors.clone()))?;
        for target in targets {
            errors.with_label_values(&[&target.service]);
            if target.scaled {
                vectors.with_label_values(&[&target.service]);
            }
        }
        Ok(Self {
            lag: gauge(
                "aggregator_consumer_lag_messages",
                "Messages the consumer group has not read (end offsets minus committed)",
            )?,
            lag_max_partition: gauge(
                "aggregator_consumer_lag_max_partition_messages",
                "Lag of the group's partition furthest behind",
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
            capacity: gauge(
                "aggregator_consumer_capacity",
                "Messages a second one consumer of a group to scale reads, as learned",
            )?,
            errors,
            vectors,
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
    /// Set when the groups to scale go to `metrics`.
    vectors: Option<Vectors>,
}

/// The feature vectors of the groups to scale.
struct Vectors {
    settings: VectorSettings,
    features: GroupFeatures,
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
            vectors: None,
        }
    }

    /// Publishes the windows of the groups to scale as feature vectors.
    /// The capacities learned by an earlier run are taken up from `settings.state_path`.
    pub fn with_vectors(mut self, settings: VectorSettings) -> Self {
        let mut features = GroupFeatures::new(settings.features, settings.capacity_prior);
        if let Some(path) = &settings.state_path {
            match crate::poller::read_state::<HashMap<String, ConsumerCapacity>>(path) {
                Ok(Some(learned)) => {
                    tracing::info!(groups = learned.len(), path = %path.display(),
                        "consumer capacity estimates restored");
                    features.restore(learned);
                }
                Ok(None) => {}
                // Not fatal: the estimates start again from the prior, which is cautious.
                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                    "cannot read the saved consumer capacities; starting again from CONSUMER_CAPACITY_PRIOR"),
            }
        }
        self.vectors = Some(Vectors { settings, features });
        self
    }

    /// Reads every group once and sets its gauges (rates from the second reading on); with
    /// [`GroupWatcher::with_vectors`], publishes the window `at` (Unix seconds) of each group
    /// to scale.
    pub async fn poll(&mut self, at: u64) {
        let mut vectors = Vec::new();
        for target in self.targets.clone() {
            match self.read(&target).await {
                Ok(reading) => {
                    if let Some(vector) = self.record(&target, reading, at) {
                        vectors.push(vector);
                    }
                }
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
        let Some(vectors_state) = self.vectors.as_ref() else {
            return;
        };
        let sink = vectors_state.settings.sink.clone();
        if let Some(path) = vectors_state.settings.state_path.clone() {
            let learned = vectors_state.features.capacities().clone();
            let written =
                tokio::task::spawn_blocking(move || crate::poller::write_state(&path, &learned))
                    .await;
            if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
                tracing::warn!(error = %e,
                    "cannot save the consumer capacities; a restart will start them again from the prior");
            }
        }
        let (_, errors) = sink.publish(vectors.clone()).await;
        for vector in &vectors {
            let failed = format!("{} window {}:", vector.service, vector.window_id);
            if !errors.iter().any(|e| e.starts_with(&failed)) {
                self.metrics
                    .vectors
                    .with_label_values(&[&vector.service])
                    .inc();
            }
        }
        if let Some(first) = errors.first() {
            // Lost data: ERROR, per the log-level policy.
            tracing::error!(failed = errors.len(), first = %first,
                "consumer groups' feature vectors could not be delivered");
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

    /// Sets the gauges; returns the group's vector of window `at` when it is one to scale and
    /// this is not its first reading.
    fn record(
        &mut self,
        target: &GroupTarget,
        reading: GroupReading,
        at: u64,
    ) -> Option<FeatureVector> {
        let labels = [target.service.as_str()];
        let m = &self.metrics;
        m.lag.with_label_values(&labels).set(reading.lag() as f64);
        let furthest = reading.partitions.iter().map(|p| p.lag()).max();
        m.lag_max_partition
            .with_label_values(&labels)
            .set(furthest.unwrap_or(0) as f64);
        m.partitions
            .with_label_values(&labels)
            .set(reading.partitions.len() as f64);
        if let Some(members) = reading.members {
            m.members.with_label_values(&labels).set(f64::from(members));
        }
        let mut vector = None;
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
            if let Some(vectors) = self.vectors.as_mut().filter(|_| target.scaled) {
                // A window whose members changed holds a rebalance's pause and consumers that
                // just joined: it says nothing of what one consumer reads.
                let steady = previous.members == reading.members;
                vector = vectors.vector(target, &rates, at, steady);
                if let Some(capacity) = vectors.features.capacities().get(&target.service) {
                    m.capacity
                        .with_label_values(&labels)
                        .set(capacity.estimate());
                }
            }
        }
        self.previous.insert(target.service.clone(), reading);
        vector
    }

    /// Polls at every multiple of `interval_secs` (the aggregator's windows) until `stop`.
    pub async fn run(mut self, stop: CancellationToken, interval_secs: u64) {
        loop {
            let (at, wait) = crate::poller::next_window(interval_secs);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => self.poll(at).await,
            }
        }
    }
}

impl Vectors {
    /// The window `at` of `target` from `rates` (learning the capacity from it when the members
    /// are `steady`); `None` (logged at debug) while the group has no member: there is no
    /// consumer to size from, and the scaler keeps its minimum.
    fn vector(
        &mut self,
        target: &GroupTarget,
        rates: &GroupRates,
        at: u64,
        steady: bool,
    ) -> Option<FeatureVector> {
        let s = &self.settings;
        let members = rates.members.unwrap_or(0);
        let group = ConsumerGroup {
            group: target.group.clone(),
            topic: target.topic.clone(),
            partitions: rates.partitions.clamp(1, contract::MAX_PARTITIONS),
            lag_messages: rates.lag.max(0) as f64,
            lag_max_partition: rates
                .lag_per_partition
                .iter()
                .copied()
                .max()
                .unwrap_or(0)
                .max(0) as f64,
            consumption_rate: rates.consumption,
            lag_target_sec: s.lag_target_sec,
        };
        let features = match self.features.push(
            &target.service,
            at,
            rates.production,
            members,
            &group,
            steady,
        ) {
            Ok(features) => features,
            Err(skip) => {
                tracing::debug!(service = %target.service, reason = skip.reason(),
                    "no vector for the consumer group this window");
                return None;
            }
        };
        let end = chrono::DateTime::from_timestamp(at as i64, 0).unwrap_or_default();
        Some(FeatureVector {
            service: target.service.clone(),
            window_id: at,
            window_start: end - chrono::Duration::seconds(s.interval_secs as i64),
            window_end: end,
            poll_interval_sec: s.interval_secs.clamp(1, 86_400) as u32,
            produced_at: chrono::Utc::now(),
            features,
            consumer_group: Some(group),
        })
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
