//! The authoritative scaler: votes in, replica changes and the decision log out.
//!
//! The vote consumer (at-least-once, the sole reader of its group) counts every vote into the tally; a window
//! closes when all expected models voted or `DECISION_WINDOW_SEC` after its first vote, and its
//! ballot goes to the decider, which runs one decision at a time so that decisions on a service
//! never interleave. A vote is done once tallied: a crash loses the windows still open (a few
//! seconds of votes), and never decides one twice, since decided windows are read back from
//! `output/decisions.csv` at start. A replica change is written to disk before the engine is
//! called ([`journal::Intent`]); one that a crash left in flight is reconciled against the engine
//! before the first vote is read.
//!
//! Only one scaler acts on a journal: it holds the lock beside it (`lock.rs`); another started on
//! the same journal stands by until the lock is free, then restores and goes on.

mod anomalies;
pub mod backend;
pub mod config;
mod decider;
pub mod journal;
mod lock;
mod metrics;

pub use config::{BackendName, ScalerConfig};

use anyhow::Context;
use backend::{Backend, ComposeBackend, Engine, LogBackend, SwarmBackend};
use chrono::Utc;
use contract::{Anomaly, Vote};
use decider::Decider;
use decision::{Added, Ballot, History, Tally, TallyConfig};
use lock::ActiveLock;
use metrics::ScalerMetrics;
use prometheus::Registry;
use service_runtime::config::Secs;
use service_runtime::csv_log::CsvLog;
use service_runtime::kafka::{
    AtLeastOnceConsumer, JsonProducer, KafkaMetrics, dead_letter_topic, ensure_topics,
};
use service_runtime::ops::Health;
use service_runtime::supervise::Tasks;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often open windows are checked for their deadline.
const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// Closed windows remembered in all to refuse their replayed votes (each only while a vote for
/// it could still be fresh, `MAX_VOTE_AGE_SEC`): a bound for floods of made-up windows. At the
/// default two minutes and a 15 s poll, 10,000 are every window of 1,250 services; beyond that a
/// service's floor refuses what was forgotten (`decision::tally`).
const REMEMBER_WINDOWS: usize = 10_000;
/// Windows open at once; a vote that would open another is refused (`overflow`). Each costs
/// about 200 bytes with three votes, and the table of open windows doubles past 28,672 of them
/// (from 1.9 to 3.7 MB): the bound stays under that. A fleet opens one window per service per
/// poll interval and closes it within the voters' lag; the pipeline benchmark's burst (1,000
/// services x 50 windows at once) keeps up to about 17,000 open (docs/BENCHMARKS.md).
const MAX_OPEN_WINDOWS: usize = 28_000;
/// Of these, windows of services not known (no window of theirs closed with two models' votes
/// lately): a service's first windows, and what made-up names and forged votes of one model
/// open (the benchmark's flood sends 50,000).
const MAX_OPEN_NEW_WINDOWS: usize = 5_000;

/// A built, not yet running scaler.
pub struct Application {
    config: ScalerConfig,
    ops_listener: TcpListener,
    registry: Registry,
    health: Health,
    metrics: ScalerMetrics,
    kafka_metrics: KafkaMetrics,
    /// Held for the process's life once this scaler is the active one.
    lock: ActiveLock,
    /// `None` while another scaler holds the lock.
    restored: Option<Restored>,
}

fn backend(config: &ScalerConfig) -> Backend {
    let engine = || Engine::with_timeout(&config.docker_host, config.docker_timeout_sec.get());
    match config.scaler_backend {
        BackendName::Log => Backend::Log(LogBackend),
        BackendName::Compose => Backend::Compose(ComposeBackend::new(
            engine(),
            config.compose_project.clone(),
            config.stop_timeout_sec.map(Secs::as_u32),
        )),
        BackendName::Swarm => Backend::Swarm(SwarmBackend::new(engine())),
    }
}

/// What a scaler decides with: restored from the journal once it is the active one.
struct Restored {
    tally: Tally,
    decider: Decider,
    /// A replica change left in flight by the last run, settled before deciding anything.
    in_flight: Option<journal::Intent>,
}

/// Reads the journal and the change in flight, and prepares the tally and the decider.
fn restore(config: &ScalerConfig, metrics: &ScalerMetrics) -> anyhow::Result<Restored> {
    let restored = journal::restore(&config.decisions_csv)?;
    let journal = CsvLog::open(&config.decisions_csv, &journal::COLUMNS, "DECISIONS_CSV")?;
    let intent_path = journal::Intent::path_beside(&config.decisions_csv);
    let in_flight = journal::Intent::load(&intent_path)?;
    let mut tally = Tally::new(TallyConfig {
        expected_models: config.expected_models.0.clone(),
        window: config.decision_window_sec.delta(),
        max_vote_age: config.max_vote_age_sec.delta(),
        remember: REMEMBER_WINDOWS,
        max_open: MAX_OPEN_WINDOWS,
        max_open_new: MAX_OPEN_NEW_WINDOWS,
    });
    for (service, window, at) in &restored.decided {
        tally.mark_closed(service, *window, *at);
        tally.mark_known(service, *at);
    }
    if let Some(intent) = &in_flight {
        let decision = &intent.decision;
        tally.mark_closed(&decision.service, decision.window_id, decision.decided_at);
    }
    let mut histories: std::collections::HashMap<String, History> = Default::default();
    for (service, at) in &restored.last_scale_up {
        histories.entry(service.clone()).or_default().last_scale_up = Some(*at);
    }
    for (service, at) in &restored.last_scale_down {
        histories
            .entry(service.clone())
            .or_default()
            .last_scale_down = Some(*at);
    }
    let backend = backend(config);
    tracing::info!(
        backend = backend.name(),
        strategy = %config.strategy(),
        weights = ?config.voting_weights.0,
        dry_run = config.dry_run,
        next_decision = restored.next_decision_id,
        windows_restored = restored.decided.len(),
        change_in_flight = in_flight.is_some(),
        "scaler ready"
    );
    let durable = !matches!(backend, Backend::Log(_));
    let decider = Decider {
        strategy: config.strategy(),
        guardrails: config.guardrails(),
        config: config.clone(),
        backend,
        histories,
        next_id: restored.next_decision_id,
        producer: None,
        publishing: std::sync::Arc::new(tokio::sync::Semaphore::new(decider::PUBLISHING_BATCHES)),
        journal,
        intent_path,
        last_ballot: Default::default(),
        started: Utc::now(),
        without_votes: Default::default(),
        compact_above: journal::MAX_BYTES,
        compacting: None,
        durable,
        metrics: metrics.clone(),
        refusal_log: Default::default(),
        anomalies: Default::default(),
    };
    Ok(Restored {
        tally,
        decider,
        in_flight,
    })
}

impl Application {
    /// Takes the journal's lock if it is free and restores from the decisions CSV; prepares
    /// everything; fails on unusable settings. If another scaler holds the lock, this one will
    /// stand by in [`Application::run`].
    pub async fn build(config: ScalerConfig) -> anyhow::Result<Self> {
        let ops_listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {} (LISTEN_ADDR)", config.listen_addr))?;
        let registry = service_runtime::ops::registry();
        let metrics = ScalerMetrics::register(&registry)?;
        let kafka_metrics = KafkaMetrics::register(&registry)?;
        let lock = ActiveLock::open(&config.decisions_csv)?;
        let restored = if lock.try_take()? {
            metrics.active.set(1);
            Some(restore(&config, &metrics)?)
        } else {
            None
        };
        Ok(Self {
            config,
            ops_listener,
            registry,
            health: Health::default(),
            metrics,
            kafka_metrics,
            lock,
            restored,
        })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener
            .local_addr()
            .unwrap_or(self.config.listen_addr)
    }

    /// Tallies and decides until `shutdown` is cancelled. Every part runs supervised
    /// ([`service_runtime::supervise`]): one that stops early fails `/healthz` and makes this return an
    /// error, so that the process exits non-zero and its restart policy acts.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = Tasks::with_ops(&shutdown, self.ops_listener, self.registry, &self.health);
        let stop = tasks.stop_token();
        let config = self.config;
        let lock = self.lock;
        let restored = match self.restored {
            Some(restored) => restored,
            None => match stand_by(&config, &lock, &self.health, &self.metrics, &stop).await? {
                Some(restored) => restored,
                None => return tasks.join().await,
            },
        };
        self.health.set("active", true, "the active scaler");
        let Some((producer, consumer, anomaly_reader)) =
            connect(&config, &self.health, &self.kafka_metrics, &stop).await?
        else {
            return tasks.join().await;
        };
        let Restored {
            tally,
            mut decider,
            in_flight,
        } = restored;
        decider.producer = Some(producer.clone());
        tasks.spawn(
            "anomalies",
            read_anomalies(
                anomaly_reader,
                decider.anomalies.clone(),
                self.metrics.clone(),
                stop.clone(),
            ),
        );
        let (ballots, inbox) = mpsc::channel::<Ballot>(1024);
        let tally = Arc::new(Mutex::new(tally));
        let rounds = config.reconcile_interval_sec.std();
        tasks.spawn("decider", decide(decider, in_flight, inbox, rounds));
        tasks.spawn(
            "window-timer",
            close_due_windows(
                tally.clone(),
                ballots.clone(),
                self.metrics.clone(),
                stop.clone(),
            ),
        );
        self.health.set("tally", true, "counting votes");
        tracing::info!(from = %config.votes_topic, to = %config.decisions_topic, "deciding");
        tasks.spawn(
            "consumer",
            count_votes(consumer, tally, ballots, self.metrics.clone(), stop),
        );
        let result = tasks.join().await;
        if let Err(e) = producer.flush(Duration::from_secs(10)).await {
            tracing::error!(error = %e, "decision records still queued at shutdown were not published");
        }
        result?;
        drop(lock);
        tracing::info!("authoritative-scaler stopped");
        Ok(())
    }
}

/// Waits while another scaler holds the journal's lock; restores once this one has it (`None`:
/// stopped first).
async fn stand_by(
    config: &ScalerConfig,
    lock: &ActiveLock,
    health: &Health,
    metrics: &ScalerMetrics,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Restored>> {
    health.set("active", true, format!("standing by: {}", lock.holder()));
    tracing::warn!(lock = %lock.path.display(), holder = %lock.holder(),
        "another scaler is active on this journal; standing by until it stops");
    if !lock.wait(stop).await? {
        return Ok(None);
    }
    metrics.active.set(1);
    tracing::info!(lock = %lock.path.display(), "the active scaler stopped; this one takes over");
    restore(config, metrics).map(Some)
}

/// Creates the topics (retrying while the broker is away), then the decision producer and the
/// vote consumer (`None`: stopped first).
async fn connect(
    config: &ScalerConfig,
    health: &Health,
    kafka_metrics: &KafkaMetrics,
    stop: &CancellationToken,
) -> anyhow::Result<Option<(JsonProducer, AtLeastOnceConsumer, AtLeastOnceConsumer)>> {
    let dead_letters = dead_letter_topic(&config.votes_topic);
    let topics = [
        config.votes_topic.as_str(),
        config.decisions_topic.as_str(),
        dead_letters.as_str(),
        config.anomalies_topic.as_str(),
    ];
    let create = || ensure_topics(&config.kafka, &topics);
    if !service_runtime::retry::until_ok(stop, health, "kafka", "creating the topics", create).await
    {
        return Ok(None);
    }
    let producer = JsonProducer::new(&config.kafka, "authoritative-scaler", kafka_metrics.clone())?;
    let consumer = AtLeastOnceConsumer::sole(
        &config.kafka,
        "authoritative-scaler",
        &config.consumer_group,
        &config.votes_topic,
        kafka_metrics.clone(),
    )?
    .dead_letters(producer.clone());
    // Anomalies matter only while they last: no dead letters, a bad one is skipped and counted.
    let anomalies = AtLeastOnceConsumer::sole(
        &config.kafka,
        "authoritative-scaler",
        &format!("{}-anomalies", config.consumer_group),
        &config.anomalies_topic,
        kafka_metrics.clone(),
    )?;
    Ok(Some((producer, consumer, anomalies)))
}

/// Keeps the aggregator's anomalies for the decisions (see [`anomalies`]).
async fn read_anomalies(
    consumer: AtLeastOnceConsumer,
    store: Arc<anomalies::Anomalies>,
    metrics: ScalerMetrics,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    consumer
        .run(&stop, move |anomaly: &Anomaly| {
            metrics
                .anomalies
                .with_label_values(&[anomaly.kind.as_str()])
                .inc();
            let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
            store.note(anomaly, now);
            async { Ok(()) }
        })
        .await?;
    Ok(())
}

/// The decider: settles a change left in flight, then decides the ballots in batches, with the
/// controller's rounds in between (the first one at once). Ends once the consumer and the window
/// timer, which hold the senders, have ended.
async fn decide(
    mut decider: Decider,
    in_flight: Option<journal::Intent>,
    mut inbox: mpsc::Receiver<Ballot>,
    every: Duration,
) -> anyhow::Result<()> {
    if let Some(intent) = in_flight {
        decider.reconcile(intent).await;
    }
    let mut rounds = tokio::time::interval(every);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ballot = tokio::select! {
            ballot = inbox.recv() => ballot,
            _ = rounds.tick() => {
                decider.control().await;
                continue;
            }
        };
        let Some(ballot) = ballot else { break };
        let mut batch = vec![ballot];
        while batch.len() < service_runtime::kafka::MAX_BATCH {
            match inbox.try_recv() {
                Ok(ballot) => batch.push(ballot),
                Err(_) => break,
            }
        }
        decider.decide_all(batch).await;
    }
    decider.published().await;
    Ok(())
}

/// Sends the ballots of windows whose deadline passed, every [`EXPIRY_TICK`].
async fn close_due_windows(
    tally: Arc<Mutex<Tally>>,
    ballots: mpsc::Sender<Ballot>,
    metrics: ScalerMetrics,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        // In batches, so that a flood's windows timing out together are not all copied at once.
        loop {
            let due = {
                let mut tally = tally
                    .lock()
                    .map_err(|_| anyhow::anyhow!("tally lock poisoned"))?;
                let due = tally.expire(Utc::now(), service_runtime::kafka::MAX_BATCH);
                metrics.tally(&tally);
                due
            };
            let more = due.len() == service_runtime::kafka::MAX_BATCH;
            for ballot in due {
                ballots
                    .send(ballot)
                    .await
                    .map_err(|_| anyhow::anyhow!("the decider stopped"))?;
            }
            if !more {
                break;
            }
        }
    }
}

/// Counts every vote into the tally and sends the ballots of the windows it completes.
async fn count_votes(
    consumer: AtLeastOnceConsumer,
    tally: Arc<Mutex<Tally>>,
    ballots: mpsc::Sender<Ballot>,
    metrics: ScalerMetrics,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    consumer
        .run_batches(
            &stop,
            service_runtime::kafka::MAX_BATCH,
            move |votes: &[Vote]| {
                let now = Utc::now();
                let complete = tally
                    .lock()
                    .map(|mut tally| {
                        let mut complete = Vec::new();
                        for vote in votes {
                            let added = tally.add(vote, now);
                            metrics.votes.with_label_values(&[added.as_str()]).inc();
                            if let Added::Complete(ballot) = added {
                                complete.push(ballot);
                            }
                        }
                        metrics.tally(&tally);
                        complete
                    })
                    .map_err(|_| anyhow::anyhow!("tally lock poisoned"));
                let ballots = ballots.clone();
                async move {
                    for ballot in complete? {
                        ballots
                            .send(ballot)
                            .await
                            .map_err(|_| anyhow::anyhow!("the decider stopped"))?;
                    }
                    Ok(())
                }
            },
        )
        .await
        .context("consuming votes failed")
}

/// Started by [`service_runtime::service::main`].
impl service_runtime::service::Service for Application {
    const NAME: &'static str = "authoritative-scaler";
    type Config = ScalerConfig;

    fn log_args(config: &ScalerConfig) -> &service_runtime::telemetry::LogArgs {
        &config.log
    }

    async fn build(config: ScalerConfig) -> anyhow::Result<Self> {
        Application::build(config).await
    }

    fn ops_addr(&self) -> SocketAddr {
        Application::ops_addr(self)
    }

    async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        Application::run(self, shutdown).await
    }
}
