//! The poll loop: at every multiple of the interval, read every service from Prometheus, build
//! the feature vectors and deliver them.
//!
//! Polls are aligned to wall-clock multiples of the interval, and the evaluation time is the
//! window id, so a restarted aggregator produces the same ids for the same windows. When
//! Prometheus does not answer, the poll is retried with backoff until the next one is due; the
//! outage is logged once when it starts and once when it ends, and nothing is published for the
//! windows it swallowed: no made-up values. A service whose CPU or memory comes from its process
//! metrics because cAdvisor has none is counted every window and logged once until cAdvisor has
//! them again.

use crate::metrics::AggregatorMetrics;
use crate::prometheus::{
    Fallbacks, PrometheusClient, QueryError, QueryPlan, Window, observe, request_rates,
};
use crate::sink::Sink;
use chrono::{DateTime, Utc};
use contract::{Anomaly, AnomalyKind, FeatureVector};
use features::{Capacity, Detector, FeatureBuilder, FeatureSettings, LONG_WINDOWS};
use service_runtime::ops::Health;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// What the poll loop needs to know.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// The queries: rate window, poll interval, histogram names, a day and a week ago.
    pub plan: QueryPlan,
    /// Trends, history features and the capacity estimates.
    pub features: FeatureSettings,
    /// Configured services; empty for discovery.
    pub fixed_services: Vec<String>,
    /// Where the capacity estimates are kept across restarts.
    pub capacity_state_path: PathBuf,
    /// Where the anomaly detector's normal is kept across restarts.
    pub anomaly_state_path: PathBuf,
    /// Services sized as consumer groups (`CONSUMER_GROUPS`): their own vectors come from the
    /// broker, so Prometheus' jobs of the same name give none (two vectors of one window would
    /// each get the models' votes).
    pub group_services: Vec<String>,
}

/// An ongoing Prometheus outage.
struct Outage {
    since: Instant,
    windows_skipped: u64,
}

pub struct Poller {
    /// Prometheus API client.
    client: PrometheusClient,
    /// Features and the per-service history trends need.
    builder: FeatureBuilder,
    /// Kafka or CSV.
    sink: Sink,
    /// Interval, window, services.
    settings: PollSettings,
    /// Counters.
    metrics: AggregatorMetrics,
    /// Reported on /healthz.
    health: Health,
    /// Set while Prometheus fails, to log an outage once.
    outage: Option<Outage>,
    /// Services currently skipped and why, to log each once until it recovers.
    skipping: HashMap<String, &'static str>,
    /// Each service's last CPU and memory fallbacks, to log a change once.
    fallbacks: HashMap<String, Fallbacks>,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The next window (the next multiple of `interval` seconds, Unix time) and how long until it.
pub(crate) fn next_window(interval: u64) -> (u64, Duration) {
    let interval = interval.max(1);
    let now = unix_now();
    let next = now.as_secs() / interval * interval + interval;
    (next, Duration::from_secs(next).saturating_sub(now))
}

fn at_time(secs: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs as i64, 0).unwrap_or_default()
}

impl Poller {
    pub fn new(
        client: PrometheusClient,
        sink: Sink,
        settings: PollSettings,
        metrics: AggregatorMetrics,
        health: Health,
    ) -> Self {
        let mut builder = FeatureBuilder::with_settings(settings.features);
        match read_capacities(&settings.capacity_state_path) {
            Ok(Some(learned)) => {
                tracing::info!(services = learned.len(), path = %settings.capacity_state_path.display(),
                    "capacity estimates restored");
                builder.restore_capacities(learned);
            }
            Ok(None) => {}
            // Not fatal: the estimates start again from the prior, which is cautious.
            Err(e) => tracing::warn!(path = %settings.capacity_state_path.display(), error = %e,
                "cannot read the saved capacity estimates; starting again from CAPACITY_PRIOR_RPS"),
        }
        match read_state::<HashMap<String, Detector>>(&settings.anomaly_state_path) {
            Ok(Some(learned)) => {
                tracing::info!(services = learned.len(), path = %settings.anomaly_state_path.display(),
                    "what is normal for each service restored (anomaly detection)");
                builder.restore_detectors(learned);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(path = %settings.anomaly_state_path.display(), error = %e,
                "cannot read what was normal for each service; anomaly detection learns it again"),
        }
        health.set("prometheus", true, "not polled yet");
        Self {
            client,
            builder,
            sink,
            settings,
            metrics,
            health,
            outage: None,
            skipping: HashMap::new(),
            fallbacks: HashMap::new(),
        }
    }

    /// Polls until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let interval = self.settings.plan.interval_secs;
        let first = unix_now().as_secs() / interval * interval + interval;
        self.backfill(first).await;
        loop {
            let (next, wait) = next_window(interval);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            self.poll(next, &shutdown).await;
        }
    }

    /// Fills the history with the windows before `first`, so trends and the history features
    /// exist from the first published vector on: the request rates of the long look back, then
    /// whole observations for the trends. Best effort: a failure only means they start later.
    async fn backfill(&mut self, first: u64) {
        let interval = self.settings.plan.interval_secs;
        let times: Vec<u64> = (1..LONG_WINDOWS as u64)
            .rev()
            .filter_map(|k| first.checked_sub(k * interval))
            .collect();
        let rates = futures::future::join_all(
            times
                .iter()
                .map(|at| request_rates(&self.client, *at, &self.settings.plan)),
        )
        .await;
        for (at, rates) in times.iter().zip(rates) {
            for (service, rate) in rates.unwrap_or_default() {
                self.builder.remember_rate(&service, *at, rate);
            }
        }
        for k in (1..self.builder.trend_windows() as u64).rev() {
            let Some(at) = first.checked_sub(k * interval) else {
                continue;
            };
            let Ok(observed) = self.observe(at).await else {
                return;
            };
            for (service, observed) in observed {
                if let Ok(observed) = observed {
                    let _ = self.builder.push(&service, observed.observation);
                }
            }
        }
    }

    async fn observe(&self, at: u64) -> Result<Window, QueryError> {
        let s = &self.settings;
        observe(&self.client, at, &s.plan, &s.fixed_services).await
    }

    /// One poll: read (retrying until the next poll is due), build, deliver.
    pub async fn poll(&mut self, at: u64, shutdown: &CancellationToken) {
        let started = Instant::now();
        let Some(observed) = self.observe_with_retry(at, shutdown).await else {
            self.metrics.polls.with_label_values(&["failed"]).inc();
            self.metrics
                .skipped
                .with_label_values(&["prometheus_unavailable"])
                .inc();
            if let Some(outage) = self.outage.as_mut() {
                outage.windows_skipped += 1;
            }
            return;
        };
        self.metrics.services.set(observed.len() as i64);
        let (vectors, anomalies) = self.build(at, observed);
        self.save_learned().await;
        let count = vectors.len();
        // The vectors first: a trouble of the anomalies topic must not delay them.
        let (delivered, errors) = self.sink.publish(vectors).await;
        let anomaly_errors = self.sink.publish_anomalies(&anomalies).await;
        if let Some(first) = anomaly_errors.first() {
            self.metrics
                .publish_errors
                .with_label_values(&[self.sink.name()])
                .inc_by(anomaly_errors.len() as u64);
            tracing::warn!(error = %first, failed = anomaly_errors.len(),
                "anomalies could not be published; the scaler will not hold for them");
        }
        let sink = self.sink.name();
        self.metrics
            .vectors
            .with_label_values(&[sink])
            .inc_by(delivered as u64);
        if errors.is_empty() {
            self.metrics.polls.with_label_values(&["ok"]).inc();
            self.metrics.last_success.set(at as i64);
            self.health.set(
                "sink",
                true,
                format!("{delivered} vectors delivered at {at}"),
            );
        } else {
            self.metrics.polls.with_label_values(&["failed"]).inc();
            self.metrics
                .publish_errors
                .with_label_values(&[sink])
                .inc_by(errors.len() as u64);
            self.health.set("sink", false, errors[0].clone());
            // Lost data: ERROR, per the log-level policy.
            tracing::error!(sink, failed = errors.len(), of = count, first = %errors[0],
                "feature vectors could not be delivered");
        }
        self.metrics
            .poll_duration
            .observe(started.elapsed().as_secs_f64());
        tracing::debug!(window_id = at, delivered, took = ?started.elapsed(), "poll done");
    }

    /// Reads the window, retrying with backoff until it succeeds or the next poll is due.
    async fn observe_with_retry(
        &mut self,
        at: u64,
        shutdown: &CancellationToken,
    ) -> Option<Window> {
        let interval = self.settings.plan.interval_secs;
        let deadline = Duration::from_secs(at + interval);
        let max_backoff = Duration::from_secs(interval).max(Duration::from_secs(2)) / 2;
        let mut backoff = Duration::from_millis(500).min(max_backoff);
        loop {
            match self.observe(at).await {
                Ok(observed) => {
                    self.end_outage();
                    return Some(observed);
                }
                Err(e) => {
                    self.metrics
                        .prometheus_errors
                        .with_label_values(&[e.kind()])
                        .inc();
                    self.start_outage(&e);
                }
            }
            let left = deadline.saturating_sub(unix_now());
            if left <= backoff {
                return None;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    fn start_outage(&mut self, error: &QueryError) {
        self.health.set("prometheus", false, error.to_string());
        if self.outage.is_none() {
            tracing::warn!(url = %self.client.base(), error = %error,
                "Prometheus is not answering; retrying with backoff, and publishing nothing until it does");
            self.outage = Some(Outage {
                since: Instant::now(),
                windows_skipped: 0,
            });
        } else {
            tracing::debug!(error = %error, "Prometheus still not answering");
        }
    }

    fn end_outage(&mut self) {
        self.health.set(
            "prometheus",
            true,
            format!("answering at {}", self.client.base()),
        );
        if let Some(outage) = self.outage.take() {
            tracing::info!(url = %self.client.base(), after = ?outage.since.elapsed(),
                windows_skipped = outage.windows_skipped, "Prometheus answers again");
        }
    }

    /// Features of every observed service, and the anomalies found in them; skipped ones are
    /// counted and logged once.
    fn build(&mut self, at: u64, mut observed: Window) -> (Vec<FeatureVector>, Vec<Anomaly>) {
        observed.retain(|service, _| !self.settings.group_services.contains(service));
        self.skipping
            .retain(|service, _| observed.contains_key(service));
        self.fallbacks
            .retain(|service, _| observed.contains_key(service));
        self.builder
            .retain(|service| observed.contains_key(service));
        let produced_at = Utc::now();
        let mut vectors = Vec::with_capacity(observed.len());
        let mut anomalies = Vec::new();
        for (service, observation) in observed {
            if let Ok(o) = &observation {
                self.note_fallbacks(&service, o.fallbacks);
            }
            let features = observation
                .map_err(|m| (m.reason(), "no request_duration_seconds series".to_owned()))
                .and_then(|o| {
                    self.builder
                        .push(&service, o.observation)
                        .map_err(|s| (s.reason(), s.to_string()))
                });
            match features {
                Ok(features) => {
                    if let Some(capacity) = features.capacity_per_replica {
                        self.metrics
                            .capacity
                            .with_label_values(&[&service])
                            .set(capacity);
                    }
                    if let Some(utilization) = features.capacity_utilization {
                        self.metrics
                            .capacity_utilization
                            .with_label_values(&[&service])
                            .set(utilization);
                    }
                    if self.skipping.remove(&service).is_some() {
                        tracing::info!(%service, "feature vectors resume");
                    }
                    let found = self.builder.findings(&service);
                    for kind in AnomalyKind::ALL {
                        let finding = found.iter().find(|f| f.kind == kind);
                        let gauge = self
                            .metrics
                            .anomaly
                            .with_label_values(&[service.as_str(), kind.as_str()]);
                        let was = gauge.get() > 0.0;
                        gauge.set(if finding.is_some() { 1.0 } else { 0.0 });
                        match finding {
                            Some(f) => {
                                self.metrics
                                    .anomalies
                                    .with_label_values(&[kind.as_str()])
                                    .inc();
                                if !was {
                                    tracing::warn!(%service, kind = kind.as_str(), detail = %f.detail,
                                        "anomaly: published on the anomalies topic every window it lasts");
                                }
                                anomalies.push(f.to_anomaly(&service, at, produced_at));
                            }
                            None if was => {
                                tracing::info!(%service, kind = kind.as_str(), "anomaly over")
                            }
                            None => {}
                        }
                    }
                    vectors.push(FeatureVector {
                        service,
                        window_id: at,
                        window_start: at_time(at.saturating_sub(self.settings.plan.window_secs)),
                        window_end: at_time(at),
                        poll_interval_sec: u32::try_from(self.settings.plan.interval_secs)
                            .unwrap_or(u32::MAX),
                        produced_at,
                        features,
                        consumer_group: None,
                    });
                }
                Err((reason, detail)) => {
                    self.metrics.skipped.with_label_values(&[reason]).inc();
                    if self.skipping.insert(service.clone(), reason) != Some(reason) {
                        tracing::info!(%service, reason, %detail,
                            "no feature vector for this service until it has data again");
                    }
                }
            }
        }
        (vectors, anomalies)
    }
}

impl Poller {
    /// Counts each resource read from the process metrics in place of cAdvisor's, and logs when
    /// a service's sources change: WARN when cAdvisor stops answering for it (its scrape fails
    /// or times out), INFO when it has none from the first window (not deployed) or again.
    fn note_fallbacks(&mut self, service: &str, now: Fallbacks) {
        for resource in now.resources() {
            self.metrics
                .resource_fallbacks
                .with_label_values(&[resource])
                .inc();
        }
        let before = self.fallbacks.insert(service.to_owned(), now);
        if before == Some(now) {
            return;
        }
        let from_process = now.resources().collect::<Vec<_>>().join(",");
        match (before.map(Fallbacks::any), now.any()) {
            (Some(false), true) => tracing::warn!(%service, from_process,
                "cAdvisor has no CPU or memory for this service any more (is its scrape failing or timing out? see the cadvisor target in Prometheus); using the process metrics"),
            (None, true) => tracing::info!(%service, from_process,
                "no CPU or memory from cAdvisor for this service (not deployed, or not scraped); using the process metrics"),
            (Some(true), true) => tracing::info!(%service, from_process,
                "resources read from the process metrics changed"),
            (Some(true), false) => tracing::info!(%service, "CPU and memory from cAdvisor again"),
            (_, false) => {}
        }
    }

    /// Writes the capacity estimates and what is normal for each service where the next start
    /// reads them, on the blocking pool (small files, each replaced whole: a crash mid-write
    /// leaves the previous one).
    async fn save_learned(&self) {
        let path = self.settings.capacity_state_path.clone();
        let learned = self.builder.capacities().clone();
        let written = tokio::task::spawn_blocking(move || write_capacities(&path, &learned)).await;
        if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
            tracing::warn!(path = %self.settings.capacity_state_path.display(), error = %e,
                "cannot save the capacity estimates (CAPACITY_STATE_PATH); a restart will start them again from the prior");
        }
        if self.builder.detectors().is_empty() {
            return;
        }
        let path = self.settings.anomaly_state_path.clone();
        let normal = self.builder.detectors().clone();
        let written = tokio::task::spawn_blocking(move || write_state(&path, &normal)).await;
        if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
            tracing::warn!(path = %self.settings.anomaly_state_path.display(), error = %e,
                "cannot save what is normal for each service; a restart will learn it again");
        }
    }
}

/// The estimates saved by an earlier run; `None` when there are none yet.
fn read_capacities(path: &std::path::Path) -> std::io::Result<Option<BTreeMap<String, Capacity>>> {
    read_state(path)
}

fn write_capacities(
    path: &std::path::Path,
    learned: &BTreeMap<String, Capacity>,
) -> std::io::Result<()> {
    write_state(path, learned)
}

/// A JSON state file written by an earlier run; `None` when there is none yet.
pub(crate) fn read_state<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a JSON state file whole (a temporary file renamed over it: a crash leaves the old one).
pub(crate) fn write_state<T: serde::Serialize>(
    path: &std::path::Path,
    state: &T,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(state).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}
