//! From a closed window's votes to a replica change and its record.
//!
//! 0. A service the operator did not hand over is refused, whatever the votes say: one that
//!    `SCALED_SERVICES` leaves out (before the engine is asked anything), one whose labels do
//!    not opt in (`autoscaler.enable=true`), one the engine does not know (or, through the Docker
//!    guard, that is not opted in). Each refusal is a `held` decision, counted in
//!    `scaler_refused_total` and logged in one line.
//! 1. The backend says how many replicas run now, and the service's bounds.
//! 2. [`decision::plan`]: the voting strategy turns the votes into an action, the proportional
//!    target follows from the agreeing votes, and it goes through the guardrails.
//! 3. The change is made (unless dry-run), with retries for failures that can pass; the count
//!    never goes past the guardrails' bounds.
//! 4. The record: the decision block on stdout, a structured log line, the `scaling-decisions`
//!    topic, `output/decisions.csv`.

use crate::backend::{Backend, BackendError, ServiceState};
use crate::config::ScalerConfig;
use crate::journal;
use crate::metrics::ScalerMetrics;
use chrono::Utc;
use contract::{DecisionOutcome, DecisionRecord, VoteSummary};
use decision::{Ballot, Guardrails, History, Strategy};
use fleet::csv_log::CsvLog;
use fleet::kafka::JsonProducer;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

/// Attempts of a backend call before the decision is recorded as failed.
const ATTEMPTS: u32 = 3;

/// Why a window's service is not touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotInScaledServices,
    NotOptedIn,
    UnknownService,
}

impl Refused {
    /// Every value of [`Refused::as_str`], for the counter's labels.
    pub const REASONS: [&'static str; 3] =
        ["not_in_scaled_services", "not_opted_in", "unknown_service"];

    pub fn as_str(self) -> &'static str {
        match self {
            Refused::NotInScaledServices => "not_in_scaled_services",
            Refused::NotOptedIn => "not_opted_in",
            Refused::UnknownService => "unknown_service",
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
        }
    }
}

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
    pub(crate) journal: CsvLog,
    pub(crate) metrics: ScalerMetrics,
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
        match self.config.limit_of(service) {
            Some(limit) => self
                .guardrails
                .with_bounds(Some(limit.min), Some(limit.max)),
            None => self.guardrails.with_bounds(state.min, state.max),
        }
    }

    /// Decides `ballots` in order and acts on each. A decision that touched the replicas is in
    /// the journal before the next one is made, so that a scaler stopped mid-batch, whose votes
    /// come again, refuses those windows instead of acting twice; the others (nothing changed,
    /// so deciding them again changes nothing twice) are written with the batch, and the blocks
    /// on stdout and the publications go out together.
    pub async fn decide_all(&mut self, ballots: Vec<Ballot>) -> Vec<DecisionRecord> {
        let mut records = Vec::with_capacity(ballots.len());
        let mut deferred = Vec::new();
        for ballot in ballots {
            let record = self.decide(ballot).await;
            let acted = matches!(
                record.outcome,
                DecisionOutcome::Applied | DecisionOutcome::Failed
            );
            if acted {
                self.write_journal(vec![journal::row(&record)]).await;
            } else {
                deferred.push(journal::row(&record));
            }
            records.push(record);
        }
        if !deferred.is_empty() {
            self.write_journal(deferred).await;
        }
        self.emit(&records).await;
        records
    }

    /// Appends rows to the journal (`DECISIONS_CSV`); a failure is logged, the decision stands.
    async fn write_journal(&self, rows: Vec<Vec<String>>) {
        let count = rows.len();
        if let Err(e) = self.journal.append(rows).await {
            tracing::error!(error = %format!("{e:#}"), decisions = count,
                "decisions could not be appended to DECISIONS_CSV");
        }
    }

    /// Decides `ballot` and acts; the record is not emitted yet.
    async fn decide(&mut self, ballot: Ballot) -> DecisionRecord {
        let votes: Vec<VoteSummary> = ballot
            .votes
            .iter()
            .map(|v| VoteSummary {
                model: v.model.clone(),
                action: v.action,
                confidence: v.confidence,
                safe_replicas: v.safe_replicas,
            })
            .collect();
        let service = ballot.service.clone();
        let observed = ballot.observed_replicas();
        let mut record = DecisionRecord {
            decision_id: self.next_id,
            service: service.clone(),
            window_id: ballot.window_id,
            strategy: self.strategy.name().to_owned(),
            votes,
            action: contract::Action::NoAction,
            average_confidence: 0.0,
            current_replicas: observed,
            target_replicas: observed,
            outcome: DecisionOutcome::Unchanged,
            reason: String::new(),
            features_produced_at: ballot.features_produced_at(),
            decided_at: Utc::now(),
        };
        self.next_id += 1;
        if !self.config.may_scale(&service) {
            self.refuse(&mut record, Refused::NotInScaledServices, None);
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

    /// Records a window whose service is not touched: held, counted, one log line.
    fn refuse(&self, record: &mut DecisionRecord, why: Refused, detail: Option<&str>) {
        let tallied = decision::voting::tally(&self.strategy, &record.votes, self.config.min_votes);
        record.action = tallied.action;
        record.average_confidence = tallied.average_confidence;
        record.outcome = DecisionOutcome::Held;
        record.reason = format!("{}; refused: {}", tallied.reason, why.explain());
        self.metrics
            .refused
            .with_label_values(&[why.as_str()])
            .inc();
        tracing::warn!(service = %record.service, window_id = record.window_id,
            action = tallied.action.as_str(), reason = why.as_str(), detail = detail.unwrap_or(""),
            "votes for a service the scaler may not change: refused, nothing touched");
    }

    async fn act(&mut self, record: &mut DecisionRecord, state: ServiceState) {
        let service = record.service.clone();
        let current = state.replicas;
        let guardrails = self.guardrails_for(&service, &state);
        let history = self.histories.entry(service.clone()).or_default();
        let plan = decision::plan(
            &self.strategy,
            self.config.min_votes,
            &record.votes,
            current,
            &guardrails,
            history,
            Utc::now(),
        );
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
        let backend = &self.backend;
        let target = plan.verdict.target;
        match with_retry(&self.metrics, || backend.scale(&service, current, target)).await {
            Ok(reached) => {
                record.target_replicas = reached;
                record.outcome = DecisionOutcome::Applied;
                if let Some(history) = self.histories.get_mut(&service) {
                    history.record_change(current, reached, Utc::now());
                }
            }
            Err(e) => {
                record.outcome = DecisionOutcome::Failed;
                record.reason = format!("{}; {e}", record.reason);
                tracing::error!(%service, from = current, to = target, error = %e,
                    "the replica change failed; an operator may need to act");
            }
        }
    }

    /// Prints, logs and publishes the records (the journal has them already).
    async fn emit(&self, records: &[DecisionRecord]) {
        let blocks: String = records.iter().map(decision::block::render).collect();
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
            self.metrics
                .target_replicas
                .with_label_values(&[&record.service])
                .set(i64::from(record.target_replicas));
            let latency = (record.decided_at - record.features_produced_at)
                .num_microseconds()
                .unwrap_or(0);
            self.metrics.decision_latency.observe(latency as f64 / 1e6);
        }
        if let Some(producer) = &self.producer {
            let sent = futures::future::join_all(
                records
                    .iter()
                    .map(|r| producer.send(&self.config.decisions_topic, r)),
            )
            .await;
            for (record, result) in records.iter().zip(sent) {
                if let Err(e) = result {
                    tracing::error!(error = %e, decision_id = record.decision_id,
                        "the decision record could not be published");
                }
            }
        }
    }
}
