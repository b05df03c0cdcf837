//! The models as the fleet runs them: each votes on the aggregator's feature vector with
//! [`models::LoadedModel::vote`] (what `ml-inference` calls), and the votes go through
//! [`decision::plan`] (what `authoritative-scaler` calls) with the scaler's guardrails, on
//! simulated time. One model alone is the same with a quorum of one.

use super::{Context, Policy};
use chrono::{DateTime, Utc};
use contract::VoteSummary;
use decision::{Guardrails, History, Strategy};
use models::LoadedModel;
use std::sync::Arc;

pub struct Voters {
    name: String,
    models: Vec<Arc<LoadedModel>>,
    strategy: Strategy,
    /// Fewer votes than this: NO_ACTION (the scaler's `MIN_VOTES`).
    quorum: usize,
    guardrails: Guardrails,
    history: History,
    /// Seconds between decisions: the poll interval.
    period: f64,
    /// Unix seconds of the run's time 0, for the guardrails' clock.
    epoch: i64,
}

impl Voters {
    /// The three models (or any set) under `strategy`, needing `quorum` votes.
    pub fn new(
        name: impl Into<String>,
        models: Vec<Arc<LoadedModel>>,
        strategy: Strategy,
        quorum: usize,
        guardrails: Guardrails,
        period: f64,
        epoch: i64,
    ) -> Self {
        Self {
            name: name.into(),
            models,
            strategy,
            quorum,
            guardrails,
            history: History::default(),
            period,
            epoch,
        }
    }

    fn clock(&self, now: f64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.epoch * 1000 + (now * 1000.0).round() as i64)
            .unwrap_or_default()
    }
}

impl Policy for Voters {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn period(&self) -> f64 {
        self.period
    }

    fn decide(&mut self, context: &Context<'_>) -> u32 {
        let current = context.existing;
        let Some(features) = context.features else {
            return current;
        };
        let votes: Vec<VoteSummary> = self
            .models
            .iter()
            .filter_map(|model| {
                let vote = model.vote(features).ok()?;
                Some(VoteSummary {
                    model: model.kind().as_str().to_owned(),
                    action: vote.action,
                    confidence: vote.confidence,
                    safe_replicas: vote.safe_replicas,
                })
            })
            .collect();
        let now = self.clock(context.now);
        let plan = decision::plan(
            &self.strategy,
            self.quorum,
            &votes,
            current,
            &self.guardrails,
            &mut self.history,
            now,
        );
        let target = plan.verdict.target;
        if target != current {
            self.history.record_change(current, target, now);
        }
        target
    }
}
