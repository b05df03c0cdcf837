//! The models as the fleet runs them: each votes on the aggregator's feature vector with
//! [`models::LoadedModel::vote`] at the forecast quantile `level` (what `ml-inference` calls
//! with its `FORECAST_QUANTILE`), and the votes go through
//! [`decision::plan`] (what `authoritative-scaler` calls) with the scaler's guardrails, on
//! simulated time. One model alone is the same with a quorum of one.

use super::{Context, Policy};
use chrono::{DateTime, Utc};
use contract::{FeatureVector, VoteSummary};
use decision::{AnomalyHolds, Guardrails, History, Strategy};
use models::{Calibrator, LoadedModel};
use std::sync::Arc;

/// How the models' votes are asked for and counted.
#[derive(Debug, Clone)]
pub struct Ballot {
    pub strategy: Strategy,
    /// Fewer votes than this: NO_ACTION (the scaler's `MIN_VOTES`).
    pub quorum: usize,
    /// The forecast quantile the models size replicas for (`FORECAST_QUANTILE`).
    pub level: f64,
    /// How fast each model's forecasts are calibrated online to the service
    /// (`FORECAST_CALIBRATION_STEP`, [`models::calibration`]); 0: as the models give them.
    pub calibration_step: f64,
}

pub struct Voters {
    name: String,
    models: Vec<Arc<LoadedModel>>,
    /// One per model, as each `ml-inference` keeps its own.
    calibrators: Vec<Calibrator>,
    ballot: Ballot,
    guardrails: Guardrails,
    history: History,
    /// Seconds between decisions: the poll interval.
    period: f64,
    /// Unix seconds of the run's time 0, for the guardrails' clock.
    epoch: i64,
    /// Reads the window's anomalies and holds as the scaler does (off unless asked for: the
    /// evaluation measures the decision core without them; `replay faults` with them).
    aware: bool,
}

impl Voters {
    /// The three models (or any set) voting by `ballot`.
    pub fn new(
        name: impl Into<String>,
        models: Vec<Arc<LoadedModel>>,
        ballot: Ballot,
        guardrails: Guardrails,
        period: f64,
        epoch: i64,
    ) -> Self {
        let calibrators = models
            .iter()
            .map(|m| m.calibrator(ballot.level, ballot.calibration_step))
            .collect();
        Self {
            name: name.into(),
            models,
            calibrators,
            ballot,
            guardrails,
            history: History::default(),
            period,
            epoch,
            aware: false,
        }
    }

    /// The same policy aware of anomalies, as the fleet runs it by default: the simulated
    /// aggregator's detector flags windows (which then teach the capacity estimate nothing) and
    /// the scaler's holds apply.
    pub fn aware(mut self) -> Self {
        self.aware = true;
        self.name = format!("{}, anomaly-aware", self.name);
        self
    }

    /// The same policy on the forecasts as the models give them (no online calibration).
    pub fn uncalibrated(mut self) -> Self {
        self.ballot.calibration_step = 0.0;
        self.calibrators = self
            .models
            .iter()
            .map(|m| m.calibrator(self.ballot.level, 0.0))
            .collect();
        self.name = format!("{}, uncalibrated", self.name);
        self
    }

    fn clock(&self, now: f64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.epoch * 1000 + (now * 1000.0).round() as i64)
            .unwrap_or_default()
    }

    /// Each model's vote on `vector`, as the scaler reads it.
    fn summaries(&mut self, vector: &FeatureVector) -> Vec<VoteSummary> {
        let level = self.ballot.level;
        self.models
            .iter()
            .zip(self.calibrators.iter_mut())
            .filter_map(|(model, calibrator)| {
                let vote = model
                    .votes_on(std::slice::from_ref(vector), level, Some(calibrator))
                    .ok()?
                    .pop()?;
                Some(VoteSummary {
                    model: model.kind().as_str().to_owned(),
                    action: vote.action,
                    confidence: vote.confidence,
                    safe_replicas: vote.safe_replicas,
                })
            })
            .collect()
    }

    /// Counts `votes` as the scaler does, on `current` replicas at `now` (seconds of the run):
    /// the count to go to, remembered by the guardrails when it is a change.
    fn count(
        &mut self,
        votes: &[VoteSummary],
        current: u32,
        now: f64,
        holds: &AnomalyHolds,
    ) -> u32 {
        let now = self.clock(now);
        let mut plan = decision::plan(
            &self.ballot.strategy,
            self.ballot.quorum,
            votes,
            current,
            &self.guardrails,
            &mut self.history,
            now,
        );
        plan.hold_for(current, holds, &self.guardrails);
        let target = plan.verdict.target;
        if target != current {
            self.history.record_change(current, target, now);
        }
        target
    }

    /// The decision on a feature vector of either kind (a consumer group's is sized by
    /// `models::vote::decide_group`), on `current` replicas at `now`.
    pub fn decide_on(&mut self, vector: &FeatureVector, current: u32, now: f64) -> u32 {
        let votes = self.summaries(vector);
        self.count(&votes, current, now, &AnomalyHolds::default())
    }
}

impl Policy for Voters {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn period(&self) -> f64 {
        self.period
    }

    fn anomaly_aware(&self) -> bool {
        self.aware
    }

    fn decide(&mut self, context: &Context<'_>) -> u32 {
        let current = context.existing;
        let Some(features) = context.features else {
            return current;
        };
        let vector = FeatureVector {
            service: "replay".into(),
            window_id: (self.epoch as f64 + context.now).round().max(0.0) as u64,
            window_start: DateTime::default(),
            window_end: DateTime::default(),
            poll_interval_sec: self.period.round().max(1.0) as u32,
            produced_at: DateTime::default(),
            features: *features,
            consumer_group: None,
        };
        let votes = self.summaries(&vector);
        let holds = if self.aware {
            AnomalyHolds::from_anomalies(
                context
                    .anomalies
                    .iter()
                    .map(|f| (f.kind, f.detail.as_str())),
                true,
                true,
            )
        } else {
            AnomalyHolds::default()
        };
        self.count(&votes, current, context.now, &holds)
    }
}
