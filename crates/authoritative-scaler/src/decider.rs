//! From a closed window's votes to a replica change and its record.
//!
//! 0. A service the operator did not hand over is refused, whatever the votes say: one that
//!    `SCALED_SERVICES` leaves out (before the engine is asked anything), one whose labels do
//!    not opt in (`autoscaler.enable=true`), one the engine does not know (or, through the Docker
//!    guard, that is not opted in). Each refusal is a `held` decision (its block and outcome
//!    line), counted in `scaler_refused_total` and warned of (one warning per reason every ten
//!    seconds, with how many refusals it stands for).
//! 1. The backend says how many replicas run now, and the service's bounds.
//! 2. [`decision::plan`]: the voting strategy turns the votes into an action, the proportional
//!    target follows from the agreeing votes, and it goes through the guardrails.
//! 3. The change is made (unless dry-run), with retries for failures that can pass; the count
//!    never goes past the guardrails' bounds. Before the engine is called, the change is written
//!    to disk as an [`Intent`] (synced); it is removed once the decision's row is synced to the
//!    journal. A scaler killed in between reconciles the intent at start ([`Decider::reconcile`]):
//!    the engine's count is recorded as what was reached, and the window is never decided again.
//!    A failed change records the count the engine reached.
//! 4. The record: the decision block on stdout and, right after it, one line saying what was
//!    done (applied, held and why, failed); a structured log line, the `scaling-decisions`
//!    topic, `output/decisions.csv`.
//!
//! 5. The controller ([`Decider::control`]), every `RECONCILE_INTERVAL_SEC` whatever the votes:
//!    each opted-in service is brought back within its bounds, and one without votes for
//!    `NO_VOTES_AFTER_SEC` is flagged (`scaler_without_votes`) and held, or set to
//!    `FALLBACK_REPLICAS`.
//!
//! A ballot whose votes grew stale while it waited (older than `MAX_VOTE_AGE_SEC` when its turn
//! comes, behind a slow engine) is held, not acted on.

use crate::backend::{Backend, BackendError, ServiceState};
use crate::config::ScalerConfig;
use crate::journal::{self, Intent};
use crate::metrics::ScalerMetrics;
use chrono::{DateTime, Utc};
use contract::{DecisionOutcome, DecisionRecord};
use decision::{Ballot, Guardrails, History, Strategy};
use service_runtime::csv_log::CsvLog;
use service_runtime::kafka::JsonProducer;
use service_runtime::telemetry::LogThrottle;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Attempts of a backend call before the decision is recorded as failed.
const ATTEMPTS: u32 = 3;

/// Why a window's service is not touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotInScaledServices,
    NotOptedIn,
    UnknownService,
    TooManyServices,
}

/// Services the scaler keeps state for (guardrail history, when votes last came, the
/// per-service series): a decision for another one is refused (`too_many_services`). The
/// engine's opt-in bounds them already, except under the log backend, which takes every
/// service that has votes; a flood of made-up names must not grow the scaler without bound.
pub const MAX_SERVICES: usize = 2_000;

impl Refused {
    /// Every value of [`Refused::as_str`], for the counter's labels.
    pub const REASONS: [&'static str; 4] = [
        "not_in_scaled_services",
        "not_opted_in",
        "unknown_service",
        "too_many_services",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::NotInScaledServices => "not_in_scaled_services",
            Refused::NotOptedIn => "not_opted_in",
            Refused::UnknownService => "unknown_service",
            Refused::TooManyServices => "too_many_services",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Refused::NotInScaledServices => "the service is not in SCALED_SERVICES",
            Refused::NotOptedIn => {
                "the service is not opted in to autoscaling (label autoscaler.enable=true)"
            }
            Refused::UnknownService => {
                "no opted-in service by that name (label autoscaler.enable=true) in the engine"
            }
            Refused::TooManyServices => {
                "the scaler already keeps state for MAX_SERVICES (2,000) other services"
            }
        }
    }
}

/// Batches of decision records awaiting their acknowledgement at once.
pub(crate) const PUBLISHING_BATCHES: usize = 16;

/// Decides one window at a time, in arrival order.
pub struct Decider {
    pub(crate) config: ScalerConfig,
    pub(crate) strategy: Strategy,
    pub(crate) guardrails: Guardrails,
    pub(crate) backend: Backend,
    /// Guardrail memory per service.
    pub(crate) histories: HashMap<String, History>,
    pub(crate) next_id: u64,
    pub(crate) producer: Option<JsonProducer>,
    /// Batches of decision records whose acknowledgements are awaited beside the decisions
    /// (at most [`PUBLISHING_BATCHES`]); waiting for each batch's in line held the decisions
    /// to one broker round trip per batch.
    pub(crate) publishing: Arc<Semaphore>,
    pub(crate) journal: CsvLog,
    /// Where the change in flight is kept ([`Intent::path_beside`] the journal).
    pub(crate) intent_path: PathBuf,
    /// When each opted-in service last had a ballot acted on (its start, if none yet).
    pub(crate) last_ballot: HashMap<String, DateTime<Utc>>,
    /// When this scaler started deciding: a service not heard of since counts from here.
    pub(crate) started: DateTime<Utc>,
    /// Services flagged as without votes (`NO_VOTES_AFTER_SEC`).
    pub(crate) without_votes: BTreeSet<String>,
    /// The journal is compacted once past this size: [`journal::MAX_BYTES`], or twice what the
    /// last compaction kept, so that a journal of rows all still needed is not rewritten on
    /// every decision.
    pub(crate) compact_above: u64,
    /// A compaction being prepared beside the decisions.
    pub(crate) compacting: Option<tokio::task::JoinHandle<anyhow::Result<journal::Prepared>>>,
    /// Whether a change is written to disk (intent, synced journal row) before and after the
    /// engine call: not with the log backend, which changes nothing (a sync costs about a
    /// millisecond; an engine's change, a second).
    pub(crate) durable: bool,
    pub(crate) metrics: ScalerMetrics,
    /// Refusal warnings, one per reason every ten seconds.
    pub(crate) refusal_log: LogThrottle,
    /// The aggregator's anomalies, read beside the votes.
    pub(crate) anomalies: Arc<crate::anomalies::Anomalies>,
}

/// Retries `call` with backoff while its error may pass.
async fn with_retry<T, F, Fut>(metrics: &ScalerMetrics, mut call: F) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let mut backoff = Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                metrics.backend_errors.with_label_values(&[e.kind()]).inc();
                if !e.retryable() || attempt >= ATTEMPTS {
                    return Err(e);
                }
                tracing::warn!(error = %e, attempt, "backend call failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
        }
    }
}

impl Decider {
    /// The guardrails of one service: configured bounds win over labels.
    fn guardrails_for(&self, service: &str, state: &ServiceState) -> Guardrails {
        let bounded = match self.config.limit_of(service) {
            Some(limit) => self
                .guardrails
                .with_bounds(Some(limit.min), Some(limit.max)),
            None => self.guardrails.with_bounds(state.min, state.max),
        };
        if self.config.is_consumer_group(service) {
            bounded.for_consumer_group()
        } else {
            bounded
        }
    }

    /// Decides `ballots` in order and acts on each. A decision that touched the replicas is on
    /// disk in the journal (and its intent removed) before the next one is made, so that a
    /// scaler stopped mid-batch, whose votes come again, refuses those windows instead of acting
    /// twice; the others (nothing changed, so deciding them again changes nothing twice) are
    /// written with the batch, and the blocks on stdout and the publications go out together.
    pub async fn decide_all(&mut self, ballots: Vec<Ballot>) -> Vec<DecisionRecord> {
        let mut records = Vec::with_capacity(ballots.len());
        let mut deferred = Vec::new();
        for ballot in ballots {
            let record = self.decide(ballot).await;
            self.journal_or_defer(&record, &mut deferred).await;
            records.push(record);
        }
        self.finish(&records, deferred).await;
        records
    }

    /// Writes `record` to disk now if it touched the replicas ([`Decider::write_acted`]);
    /// otherwise keeps its row in `deferred`, to be written with its batch.
    async fn journal_or_defer(&mut self, record: &DecisionRecord, deferred: &mut Vec<Vec<String>>) {
        if matches!(
            record.outcome,
            DecisionOutcome::Applied | DecisionOutcome::Failed
        ) {
            self.write_acted(record).await;
        } else {
            deferred.push(journal::row(record));
        }
    }

    /// Writes a batch's deferred rows, then prints, logs and publishes its records.
    async fn finish(&mut self, records: &[DecisionRecord], deferred: Vec<Vec<String>>) {
        if !deferred.is_empty() {
            self.write_journal(deferred, false).await;
        }
        self.emit(records).await;
    }

    /// Writes a decision that touched the replicas to disk, then removes its intent. If the row
    /// cannot be written, the intent stays, and a restart reconciles it.
    async fn write_acted(&mut self, record: &DecisionRecord) {
        let durable = self.durable;
        if self
            .write_journal(vec![journal::row(record)], durable)
            .await
            && let Err(e) = Intent::clear(&self.intent_path)
        {
            tracing::error!(error = %e, path = %self.intent_path.display(),
                "the change in flight could not be cleared; a restart will reconcile it again");
        }
    }

    /// Appends rows to the journal (`DECISIONS_CSV`), synced to disk if `durable`; a failure is
    /// logged and the decision stands. Whether the rows were written.
    async fn write_journal(&mut self, rows: Vec<Vec<String>>, durable: bool) -> bool {
        let count = rows.len();
        let written = if durable {
            self.journal.append_durable(rows).await
        } else {
            self.journal.append(rows).await
        };
        if let Err(e) = &written {
            tracing::error!(error = %format!("{e:#}"), decisions = count,
                "decisions could not be appended to DECISIONS_CSV");
        }
        self.compact_if_large().await;
        written.is_ok()
    }

    /// Compacts the journal once it is past [`journal::MAX_BYTES`]: prepared on the blocking
    /// pool while decisions go on ([`journal::prepare_compaction`]), then, after a later append,
    /// finished and the journal reopened. A failure is logged and the journal goes on growing.
    async fn compact_if_large(&mut self) {
        let path = self.journal.path().to_owned();
        match self.compacting.take() {
            Some(task) if task.is_finished() => {
                let finished = match task.await {
                    Ok(Ok(prepared)) => {
                        let finishing = path.clone();
                        tokio::task::spawn_blocking(move || {
                            journal::finish_compaction(&finishing, prepared)
                        })
                        .await
                        .unwrap_or_else(|e| Err(e.into()))
                    }
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(e.into()),
                };
                let reopened = finished.and_then(|kept| {
                    CsvLog::open(&path, &journal::COLUMNS, "DECISIONS_CSV").map(|log| (log, kept))
                });
                match reopened {
                    Ok((log, kept)) => {
                        self.journal = log;
                        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                        self.compact_above = journal::MAX_BYTES.max(size.saturating_mul(2));
                        tracing::info!(path = %path.display(), kept,
                            "the decision journal was compacted; the full one is kept as .1");
                    }
                    Err(e) => tracing::error!(error = %format!("{e:#}"), path = %path.display(),
                        "the decision journal could not be compacted; it goes on growing"),
                }
            }
            Some(task) => self.compacting = Some(task),
            None => {
                // Read here, between two appends, where the journal ends with a whole row.
                let Ok(upto) = std::fs::metadata(&path).map(|m| m.len()) else {
                    return;
                };
                if upto <= self.compact_above {
                    return;
                }
                let keep_since = Utc::now()
                    - self.config.max_vote_age_sec.delta()
                    - self.config.decision_window_sec.delta();
                self.compacting = Some(tokio::task::spawn_blocking(move || {
                    journal::prepare_compaction(&path, upto, keep_since)
                }));
            }
        }
    }

    /// Settles a change that a stopped scaler left in flight: the engine's count now is what it
    /// reached. Recorded as its decision, with its votes (applied if the count moved toward the
    /// target, failed otherwise) and the cooldown it started; the window was marked decided at
    /// start, so its replayed votes are refused. Nothing is changed: its votes are old by now.
    pub async fn reconcile(&mut self, intent: Intent) -> DecisionRecord {
        let mut record = intent.decision;
        let (from, to) = (record.current_replicas, record.target_replicas);
        // The log backend changes nothing: what it last logged is what it has.
        let backend = &self.backend;
        let state = with_retry(&self.metrics, || backend.inspect(&record.service, to)).await;
        let moved = |reached: u32| (to > from && reached > from) || (to < from && reached < from);
        let (reached, outcome, found) = match &state {
            Ok(state) if moved(state.replicas) => (
                state.replicas,
                DecisionOutcome::Applied,
                format!("the engine has {}", state.replicas),
            ),
            Ok(state) => (
                state.replicas,
                DecisionOutcome::Failed,
                format!("the engine has {}: the change was not made", state.replicas),
            ),
            Err(e) => (
                from,
                DecisionOutcome::Failed,
                format!("the engine cannot say what it has: {e}"),
            ),
        };
        record.target_replicas = reached;
        record.outcome = outcome;
        record.reason = format!(
            "{}; reconciled at start: the change from {from} to {to} was in flight when the scaler stopped; {found}",
            record.reason
        );
        tracing::warn!(service = %record.service, window_id = record.window_id, from, to, reached,
            outcome = outcome.as_str(),
            "a replica change was in flight when the scaler stopped; reconciled against the engine");
        self.metrics
            .reconciled
            .with_label_values(&[outcome.as_str()])
            .inc();
        if outcome == DecisionOutcome::Applied {
            self.histories
                .entry(record.service.clone())
                .or_default()
                .record_change(from, reached, record.decided_at);
        }
        self.next_id = self.next_id.max(record.decision_id + 1);
        self.write_acted(&record).await;
        self.emit(std::slice::from_ref(&record)).await;
        record
    }

    /// A ballot for `service` was acted on: it has votes again.
    fn votes_came(&mut self, service: &str, replicas: u32) {
        self.last_ballot.insert(service.to_owned(), Utc::now());
        if self.without_votes.remove(service) {
            self.metrics
                .without_votes
                .with_label_values(&[service])
                .set(0);
            tracing::info!(%service, replicas, "votes again: the service is decided by its votes");
        }
    }

    /// One round of the controller, on its own schedule: every opted-in service the engine
    /// lists, and every one decided before, is brought back within its bounds; one without
    /// votes for `NO_VOTES_AFTER_SEC` is flagged and held, or set to `FALLBACK_REPLICAS`. Each
    /// change is a decision of its own (strategy `controller`, window 0, no votes), journaled,
    /// printed as its one line, and published. The log backend has no engine to read: nothing.
    pub async fn control(&mut self) -> Vec<DecisionRecord> {
        if matches!(self.backend, Backend::Log(_)) {
            return Vec::new();
        }
        let mut services: BTreeSet<String> = self.histories.keys().cloned().collect();
        match self.backend.opted_in_services().await {
            Ok(listed) => services.extend(listed),
            Err(e) => tracing::warn!(error = %e,
                "the controller cannot list the opted-in services; checking those it knows"),
        }
        services.retain(|s| self.config.may_scale(s));
        let (mut records, mut deferred) = (Vec::new(), Vec::new());
        for service in services {
            if let Some(record) = self.control_one(&service).await {
                self.journal_or_defer(&record, &mut deferred).await;
                records.push(record);
            }
        }
        self.finish(&records, deferred).await;
        records
    }

    /// The controller's look at one service; a record if it changes (or would change) it.
    async fn control_one(&mut self, service: &str) -> Option<DecisionRecord> {
        let state = match self.backend.inspect(service, 1).await {
            Ok(state) if state.opted_in => state,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(%service, error = %e, "the controller cannot read the service; next round");
                return None;
            }
        };
        for (kind, n) in [
            ("counted", state.replicas),
            ("starting", state.starting),
            ("restarting", state.restarting),
        ] {
            self.metrics
                .replicas
                .with_label_values(&[service, kind])
                .set(i64::from(n));
        }
        let guardrails = self.guardrails_for(service, &state);
        let (min, max, now) = (guardrails.min_replicas, guardrails.max_replicas, Utc::now());
        let silent = now
            - self
                .last_ballot
                .get(service)
                .copied()
                .unwrap_or(self.started);
        let limit = self.config.no_votes_after_sec;
        if silent > limit.delta() && self.without_votes.insert(service.to_owned()) {
            self.metrics
                .without_votes
                .with_label_values(&[service])
                .set(1);
            let then = match self.config.fallback_replicas {
                Some(n) => format!("going to FALLBACK_REPLICAS ({n}, within [{min}, {max}])"),
                None => "holding where it is (no FALLBACK_REPLICAS)".to_owned(),
            };
            tracing::warn!(%service, replicas = state.replicas, seconds = silent.num_seconds(),
                "no votes for the service for more than NO_VOTES_AFTER_SEC ({limit} s): {then}");
        }
        let current = state.replicas;
        let (target, reason) = if current < min || current > max {
            (
                current.clamp(min, max),
                format!("controller: {current} replicas is outside the bounds [{min}, {max}]"),
            )
        } else {
            match self.config.fallback_replicas {
                Some(n) if self.without_votes.contains(service) && n.clamp(min, max) != current => {
                    (
                        n.clamp(min, max),
                        format!(
                            "controller: no votes for {} s (NO_VOTES_AFTER_SEC {limit}): FALLBACK_REPLICAS {n}",
                            silent.num_seconds()
                        ),
                    )
                }
                _ => return None,
            }
        };
        let mut record = DecisionRecord {
            decision_id: self.next_id,
            service: service.to_owned(),
            window_id: 0,
            strategy: "controller".to_owned(),
            votes: Vec::new(),
            action: if target > current {
                contract::Action::ScaleUp
            } else {
                contract::Action::ScaleDown
            },
            average_confidence: 0.0,
            current_replicas: current,
            target_replicas: target,
            outcome: DecisionOutcome::DryRun,
            reason,
            features_produced_at: now,
            decided_at: now,
        };
        self.next_id += 1;
        if !self.config.dry_run {
            self.change(&mut record, target).await;
        }
        Some(record)
    }

    /// Decides `ballot` and acts; the record is not emitted yet.
    async fn decide(&mut self, ballot: Ballot) -> DecisionRecord {
        let service = ballot.service;
        let observed = ballot.observed_replicas;
        let mut record = DecisionRecord {
            decision_id: self.next_id,
            service: service.clone(),
            window_id: ballot.window_id,
            strategy: self.strategy.name().to_owned(),
            votes: ballot.votes,
            action: contract::Action::NoAction,
            average_confidence: 0.0,
            current_replicas: observed,
            target_replicas: observed,
            outcome: DecisionOutcome::Unchanged,
            reason: String::new(),
            features_produced_at: ballot.features_produced_at,
            decided_at: Utc::now(),
        };
        self.next_id += 1;
        if !self.config.may_scale(&service) {
            self.refuse(&mut record, Refused::NotInScaledServices, None);
            return record;
        }
        if self.histories.len() >= MAX_SERVICES && !self.histories.contains_key(&service) {
            self.refuse(&mut record, Refused::TooManyServices, None);
            return record;
        }
        let age = Utc::now() - record.features_produced_at;
        if age > self.config.max_vote_age_sec.delta() {
            let tallied =
                decision::voting::tally(&self.strategy, &record.votes, self.config.min_votes);
            record.action = tallied.action;
            record.average_confidence = tallied.average_confidence;
            record.outcome = DecisionOutcome::Held;
            record.reason = format!(
                "{}; not acted on: the votes are {} s old when their turn came, more than MAX_VOTE_AGE_SEC ({} s)",
                tallied.reason,
                age.num_seconds(),
                self.config.max_vote_age_sec
            );
            record.decided_at = Utc::now();
            return record;
        }
        let backend = &self.backend;
        let state = with_retry(&self.metrics, || backend.inspect(&service, observed)).await;
        match state {
            Err(BackendError::UnknownService(detail)) => {
                self.refuse(&mut record, Refused::UnknownService, Some(&detail))
            }
            Ok(state) if !state.opted_in => self.refuse(&mut record, Refused::NotOptedIn, None),
            Err(e) => {
                let tallied =
                    decision::voting::tally(&self.strategy, &record.votes, self.config.min_votes);
                record.action = tallied.action;
                record.average_confidence = tallied.average_confidence;
                record.outcome = DecisionOutcome::Failed;
                record.reason = format!("{}; cannot read the replica count: {e}", tallied.reason);
            }
            Ok(state) => self.act(&mut record, state).await,
        }
        record.decided_at = Utc::now();
        record
    }

    /// Records a window whose service is not touched: held, counted, and a warning (one per
    /// reason every ten seconds, saying how many it stands for: the decision block and its
    /// outcome line say it for each window already).
    fn refuse(&mut self, record: &mut DecisionRecord, why: Refused, detail: Option<&str>) {
        let tallied = decision::voting::tally(&self.strategy, &record.votes, self.config.min_votes);
        record.action = tallied.action;
        record.average_confidence = tallied.average_confidence;
        record.outcome = DecisionOutcome::Held;
        record.reason = format!("{}; refused: {}", tallied.reason, why.explain());
        self.metrics
            .refused
            .with_label_values(&[why.as_str()])
            .inc();
        if let Some(held_back) = self.refusal_log.allow(why.as_str()) {
            tracing::warn!(service = %record.service, window_id = record.window_id,
                action = tallied.action.as_str(), reason = why.as_str(),
                detail = detail.unwrap_or(""), refused_before_not_logged = held_back,
                "votes for a service the scaler may not change: refused, nothing touched");
        }
    }

    async fn act(&mut self, record: &mut DecisionRecord, state: ServiceState) {
        let service = record.service.clone();
        let current = state.replicas;
        self.votes_came(&service, current);
        let guardrails = self.guardrails_for(&service, &state);
        let history = self.histories.entry(service.clone()).or_default();
        let mut plan = decision::plan(
            &self.strategy,
            self.config.min_votes,
            &record.votes,
            current,
            &guardrails,
            history,
            Utc::now(),
        );
        let holds = self.anomalies.holds(
            &service,
            record.window_id,
            self.config.hold_scale_up_on_anomaly,
            self.config.hold_scale_down_on_suspect_telemetry,
        );
        plan.hold_for(current, &holds, &guardrails);
        if let Some(held) = plan.verdict.applied.iter().find(|h| {
            matches!(
                h,
                decision::Held::NotLoad | decision::Held::SuspectTelemetry
            )
        }) {
            self.metrics
                .anomaly_holds
                .with_label_values(&[held.as_str()])
                .inc();
        }
        record.action = plan.tallied.action;
        record.average_confidence = plan.tallied.average_confidence;
        record.current_replicas = current;
        record.target_replicas = plan.verdict.target;
        record.reason = plan.reason;
        if plan.verdict.target == current {
            record.outcome = if plan.desired != current {
                DecisionOutcome::Held
            } else {
                DecisionOutcome::Unchanged
            };
            return;
        }
        if self.config.dry_run {
            record.outcome = DecisionOutcome::DryRun;
            return;
        }
        self.change(record, plan.verdict.target).await;
    }

    /// Makes `record`'s change from its `current_replicas` to `target`: the intent on disk
    /// first, then the engine, with retries; the record says what was reached.
    async fn change(&mut self, record: &mut DecisionRecord, target: u32) {
        let (service, current) = (record.service.clone(), record.current_replicas);
        record.decided_at = Utc::now();
        let intent = Intent {
            decision: record.clone(),
        };
        let path = self.intent_path.clone();
        let stored = if self.durable {
            tokio::task::spawn_blocking(move || intent.store(&path)).await
        } else {
            Ok(Ok(()))
        };
        if let Err(e) = stored.map_err(std::io::Error::other).and_then(|r| r) {
            record.outcome = DecisionOutcome::Failed;
            record.target_replicas = current;
            record.reason = format!(
                "{}; nothing changed: the change could not be written to {} first ({e}); check the disk of DECISIONS_CSV",
                record.reason,
                self.intent_path.display()
            );
            tracing::error!(%service, error = %e, "the intent of a replica change could not be made durable; not changing");
            return;
        }
        let backend = &self.backend;
        match with_retry(&self.metrics, || backend.scale(&service, current, target)).await {
            Ok(reached) => {
                record.target_replicas = reached;
                record.outcome = DecisionOutcome::Applied;
                self.histories
                    .entry(service.clone())
                    .or_default()
                    .record_change(current, reached, Utc::now());
            }
            Err(e) => {
                // What the engine reached, if it can say; otherwise the count before.
                let reached = backend
                    .inspect(&service, current)
                    .await
                    .map_or(current, |state| state.replicas);
                record.outcome = DecisionOutcome::Failed;
                record.target_replicas = reached;
                record.reason =
                    format!("{}; wanted {target}, reached {reached}: {e}", record.reason);
                if reached != current {
                    self.histories
                        .entry(service.clone())
                        .or_default()
                        .record_change(current, reached, Utc::now());
                }
                tracing::error!(%service, from = current, to = target, reached, error = %e,
                    "the replica change failed; an operator may need to act");
            }
        }
    }

    /// Prints, logs and publishes the records (the journal has them already).
    async fn emit(&self, records: &[DecisionRecord]) {
        // The controller's changes have no votes: their line alone, without the seed's block.
        let blocks: String = records
            .iter()
            .flat_map(|r| {
                let block = if r.votes.is_empty() {
                    String::new()
                } else {
                    decision::block::render(r)
                };
                [block, decision::block::outcome_line(r)]
            })
            .collect();
        {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(blocks.as_bytes());
            let _ = out.flush();
        }
        for record in records {
            tracing::info!(
                decision_id = record.decision_id,
                service = %record.service,
                window_id = record.window_id,
                action = record.action.as_str(),
                outcome = record.outcome.as_str(),
                from = record.current_replicas,
                to = record.target_replicas,
                reason = %record.reason,
                "decision"
            );
            self.metrics
                .decisions
                .with_label_values(&[record.action.as_str(), record.outcome.as_str()])
                .inc();
            // Only services the scaler may act on get a series: made-up names would grow it.
            if self.histories.contains_key(&record.service) {
                self.metrics
                    .target_replicas
                    .with_label_values(&[&record.service])
                    .set(i64::from(record.target_replicas));
            }
            let latency = (record.decided_at - record.features_produced_at)
                .num_microseconds()
                .unwrap_or(0);
            self.metrics.decision_latency.observe(latency as f64 / 1e6);
        }
        if let Some(producer) = &self.producer {
            // Queued here, in order; acknowledged beside the next decisions.
            let mut deliveries = Vec::with_capacity(records.len());
            for record in records {
                let delivery = producer.queue(&self.config.decisions_topic, record).await;
                deliveries.push((record.decision_id, delivery));
            }
            let Ok(permit) = self.publishing.clone().acquire_owned().await else {
                return;
            };
            tokio::spawn(async move {
                for (decision_id, delivery) in deliveries {
                    if let Err(e) = delivery.await {
                        tracing::error!(error = %e, decision_id,
                            "the decision record could not be published");
                    }
                }
                drop(permit);
            });
        }
    }

    /// Waits until every decision record queued so far is acknowledged or failed.
    pub async fn published(&self) {
        let _ = self
            .publishing
            .acquire_many(PUBLISHING_BATCHES as u32)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use contract::{Action, Vote};

    /// A decider on the log backend, its journal and intent in `dir`.
    fn decider(dir: &std::path::Path, args: &[&str]) -> Decider {
        let config = ScalerConfig::try_parse_from(
            ["authoritative-scaler", "--scaler-backend", "log"]
                .iter()
                .chain(args),
        )
        .unwrap();
        let csv = dir.join("decisions.csv");
        Decider {
            strategy: config.strategy(),
            guardrails: config.guardrails(),
            backend: crate::backend(&config),
            config,
            histories: HashMap::new(),
            next_id: 1,
            producer: None,
            publishing: Arc::new(Semaphore::new(PUBLISHING_BATCHES)),
            journal: CsvLog::open(&csv, &journal::COLUMNS, "DECISIONS_CSV").unwrap(),
            intent_path: Intent::path_beside(&csv),
            last_ballot: HashMap::new(),
            started: Utc::now(),
            without_votes: BTreeSet::new(),
            compact_above: journal::MAX_BYTES,
            compacting: None,
            // As with an engine: these tests are about what is on disk.
            durable: true,
            metrics: ScalerMetrics::register(&prometheus::Registry::new()).unwrap(),
            refusal_log: Default::default(),
            anomalies: Default::default(),
        }
    }

    fn ballot(service: &str, window_id: u64, age_sec: i64) -> Ballot {
        let produced = Utc::now() - chrono::Duration::seconds(age_sec);
        let votes = ["xgboost", "random_forest", "logistic_regression"]
            .into_iter()
            .map(|model| Vote {
                service: service.into(),
                window_id,
                model: model.into(),
                model_version: "test".into(),
                action: Action::ScaleUp,
                confidence: 0.9,
                violation_probability: 0.9,
                current_replicas: 2,
                safe_replicas: 4,
                inference_us: 1.0,
                features_produced_at: produced,
                voted_at: produced,
            })
            .collect::<Vec<Vote>>();
        Ballot::of(service, window_id, &votes, true)
    }

    fn journal_rows(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("decisions.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect()
    }

    /// Past its size limit the journal is compacted while deciding goes on; a restart reads
    /// the same numbering from the compacted journal.
    #[tokio::test]
    async fn the_journal_is_compacted_beside_the_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let mut decider = decider(dir.path(), &[]);
        decider.compact_above = 2_000;
        let full = dir.path().join("decisions.csv.1");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut window = 1;
        while !full.exists() && std::time::Instant::now() < deadline {
            decider.decide_all(vec![ballot("orders", window, 1)]).await;
            window += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(full.exists(), "compacted after {window} windows");
        let restored = journal::restore(&dir.path().join("decisions.csv")).unwrap();
        assert_eq!(restored.next_decision_id, decider.next_id);
    }

    /// A consumer group's scale-up goes the whole way at once; another service's keeps its steps.
    #[tokio::test]
    async fn a_consumer_group_scales_up_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut decider = decider(
            dir.path(),
            &[
                "--max-step-up",
                "1",
                "--max-step-up-percent",
                "0",
                "--consumer-groups",
                "workers=workers@jobs",
            ],
        );
        let records = decider
            .decide_all(vec![ballot("orders", 100, 1), ballot("workers", 100, 1)])
            .await;
        let reached: Vec<(u32, u32)> = records
            .iter()
            .map(|r| (r.current_replicas, r.target_replicas))
            .collect();
        assert_eq!(reached, [(2, 3), (2, 4)], "{records:?}");
    }

    #[tokio::test]
    async fn an_applied_change_is_on_disk_and_leaves_no_intent() {
        let dir = tempfile::tempdir().unwrap();
        let mut decider = decider(dir.path(), &[]);
        let records = decider.decide_all(vec![ballot("orders", 100, 1)]).await;
        assert_eq!(records[0].outcome, DecisionOutcome::Applied);
        assert_eq!(
            (records[0].current_replicas, records[0].target_replicas),
            (2, 4)
        );
        assert!(
            decision::block::outcome_line(&records[0])
                .starts_with("APPLIED: orders from 2 to 4 replicas")
        );
        assert_eq!(journal_rows(dir.path()).len(), 1);
        assert!(!decider.intent_path.exists(), "the intent is cleared");
    }

    #[tokio::test]
    async fn stale_votes_are_held_and_services_not_handed_over_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut decider = decider(
            dir.path(),
            &["--max-vote-age-sec", "30", "--scaled-services", "orders"],
        );
        let records = decider
            .decide_all(vec![ballot("orders", 100, 60), ballot("kafka", 100, 1)])
            .await;
        assert_eq!(records[0].outcome, DecisionOutcome::Held);
        assert!(
            records[0].reason.contains("MAX_VOTE_AGE_SEC (30 s)"),
            "{}",
            records[0].reason
        );
        assert_eq!(records[0].target_replicas, 2, "nothing changed");
        assert_eq!(records[1].outcome, DecisionOutcome::Held);
        assert!(
            records[1].reason.contains("SCALED_SERVICES"),
            "{}",
            records[1].reason
        );
        assert_eq!(
            decider
                .metrics
                .refused
                .with_label_values(&["not_in_scaled_services"])
                .get(),
            1
        );
        assert_eq!(journal_rows(dir.path()).len(), 2);
    }

    /// The log backend takes every service that has votes: a flood of made-up names stops at
    /// MAX_SERVICES, and the services already known are still decided.
    #[tokio::test]
    async fn a_flood_of_made_up_services_is_refused_past_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut decider = decider(dir.path(), &[]);
        let ballots: Vec<Ballot> = (0..MAX_SERVICES + 10)
            .map(|i| ballot(&format!("made-up-{i}"), 100, 1))
            .collect();
        let records = decider.decide_all(ballots).await;
        assert_eq!(decider.histories.len(), MAX_SERVICES);
        assert_eq!(decider.last_ballot.len(), MAX_SERVICES);
        let refused: Vec<&DecisionRecord> = records
            .iter()
            .filter(|r| r.reason.contains("MAX_SERVICES"))
            .collect();
        assert_eq!(refused.len(), 10);
        assert!(refused.iter().all(|r| r.outcome == DecisionOutcome::Held));
        let known = decider.decide_all(vec![ballot("made-up-0", 101, 1)]).await;
        assert!(!known[0].reason.contains("refused"), "{}", known[0].reason);
        assert_eq!(
            decider
                .metrics
                .refused
                .with_label_values(&["too_many_services"])
                .get(),
            10
        );
    }

    #[tokio::test]
    async fn dry_run_decides_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut decider = decider(dir.path(), &["--dry-run"]);
        let records = decider.decide_all(vec![ballot("orders", 100, 1)]).await;
        assert_eq!(records[0].outcome, DecisionOutcome::DryRun);
        assert!(!decider.intent_path.exists());
        assert!(
            decision::block::outcome_line(&records[0])
                .starts_with("DRY RUN: orders would go from 2 to 4")
        );
    }

    #[tokio::test]
    async fn a_change_whose_intent_cannot_be_written_is_not_made() {
        let dir = tempfile::tempdir().unwrap();
        let mut decider = decider(dir.path(), &[]);
        decider.intent_path = dir.path().join("missing/decisions.intent.json");
        let records = decider.decide_all(vec![ballot("orders", 100, 1)]).await;
        assert_eq!(records[0].outcome, DecisionOutcome::Failed);
        assert_eq!(records[0].target_replicas, 2, "nothing changed");
        assert!(
            records[0].reason.contains("could not be written"),
            "{}",
            records[0].reason
        );
    }

    #[tokio::test]
    async fn a_change_left_in_flight_is_recorded_once_with_its_cooldown() {
        // The decision a scaler made before it was killed, in another directory.
        let before = tempfile::tempdir().unwrap();
        let mut decision = decider(before.path(), &[])
            .decide_all(vec![ballot("orders", 100, 1)])
            .await
            .remove(0);
        decision.decision_id = 41;
        let dir = tempfile::tempdir().unwrap();
        let mut decider = decider(dir.path(), &[]);
        let intent = Intent { decision };
        intent.store(&decider.intent_path).unwrap();
        let record = decider.reconcile(intent).await;
        assert_eq!(record.outcome, DecisionOutcome::Applied);
        assert_eq!((record.decision_id, record.target_replicas), (41, 4));
        assert!(
            record
                .reason
                .contains("; reconciled at start: the change from 2 to 4"),
            "{}",
            record.reason
        );
        assert_eq!(record.votes.len(), 3, "the votes behind it are kept");
        assert_eq!(decider.next_id, 42);
        assert!(!decider.intent_path.exists());
        assert!(
            decider.histories["orders"].last_scale_up.is_some(),
            "the cooldown holds"
        );
        let restored = journal::restore(&dir.path().join("decisions.csv")).unwrap();
        assert_eq!(restored.decided.len(), 1);
        assert_eq!(
            (restored.decided[0].0.as_str(), restored.decided[0].1),
            ("orders", 100)
        );
        assert_eq!(
            decider
                .metrics
                .reconciled
                .with_label_values(&["applied"])
                .get(),
            1
        );
    }
}
