//! The message on `scaling-decisions`: the scaler's record of one decision (the audit stream).

use crate::{
    Action, Message, from_json_bytes, to_json_bytes, validate_name, validate_replicas,
    validate_service, validate_unit_interval, validate_window,
};

/// The most votes one decision record counts (models of the ensemble).
const MAX_VOTES: usize = 64;
/// The longest reason a decision record carries.
const MAX_REASON_LEN: usize = 2048;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One model's vote as the decision saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoteSummary {
    pub model: String,
    pub action: Action,
    pub confidence: f64,
    pub safe_replicas: u32,
}

/// What became of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// The replica count was changed.
    Applied,
    /// Dry-run mode: the change was decided and logged, not made.
    DryRun,
    /// Nothing to change: the target equals the current count.
    Unchanged,
    /// A guardrail (cooldown, stabilization, bounds) kept the count; `reason` says which.
    Held,
    /// The change was attempted and failed; `reason` says why.
    Failed,
}

impl DecisionOutcome {
    pub const ALL: [DecisionOutcome; 5] = [
        DecisionOutcome::Applied,
        DecisionOutcome::DryRun,
        DecisionOutcome::Unchanged,
        DecisionOutcome::Held,
        DecisionOutcome::Failed,
    ];

    /// A bounded label for counters.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionOutcome::Applied => "applied",
            DecisionOutcome::DryRun => "dry_run",
            DecisionOutcome::Unchanged => "unchanged",
            DecisionOutcome::Held => "held",
            DecisionOutcome::Failed => "failed",
        }
    }
}

/// One decision of the authoritative scaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Sequence number in the scaler's decision log (`SCALING DECISION #n`).
    pub decision_id: u64,
    /// The service decided on.
    pub service: String,
    /// The window the votes answered; a window is decided at most once.
    pub window_id: u64,
    /// The voting strategy in force (`majority`, `unanimous`, `weighted`).
    pub strategy: String,
    /// The votes that were counted.
    pub votes: Vec<VoteSummary>,
    /// The action the vote produced.
    pub action: Action,
    /// Mean confidence of the counted votes.
    pub average_confidence: f64,
    /// Replicas before the decision.
    pub current_replicas: u32,
    /// Replicas wanted after guardrails.
    pub target_replicas: u32,
    /// What became of it.
    pub outcome: DecisionOutcome,
    /// Why: the guardrail that applied, the error, or the rule that set the target.
    pub reason: String,
    /// When the feature vector was produced (for end-to-end latency).
    pub features_produced_at: DateTime<Utc>,
    /// When the decision was made.
    pub decided_at: DateTime<Utc>,
}

#[derive(Serialize)]
#[serde(tag = "version")]
enum WireRef<'a> {
    #[serde(rename = "1")]
    V1(&'a DecisionRecord),
}

#[derive(Deserialize)]
#[serde(tag = "version")]
enum Wire {
    #[serde(rename = "1")]
    V1(DecisionRecord),
}

impl Message for DecisionRecord {
    const KIND: &'static str = "decision";
    const SUPPORTED_VERSIONS: &'static [&'static str] = &["1"];

    fn key(&self) -> &str {
        &self.service
    }

    fn validate(&self) -> Result<(), String> {
        validate_service(&self.service)?;
        validate_window(self.window_id)?;
        validate_name("strategy", &self.strategy)?;
        validate_unit_interval("average_confidence", self.average_confidence)?;
        validate_replicas("current_replicas", self.current_replicas, 0)?;
        validate_replicas("target_replicas", self.target_replicas, 0)?;
        if self.votes.len() > MAX_VOTES {
            return Err(format!(
                "{} votes; a decision counts at most {MAX_VOTES}",
                self.votes.len()
            ));
        }
        for vote in &self.votes {
            validate_name("vote model", &vote.model)?;
            validate_unit_interval("vote confidence", vote.confidence)?;
            validate_replicas("vote safe_replicas", vote.safe_replicas, 0)?;
        }
        if self.reason.len() > MAX_REASON_LEN {
            return Err(format!(
                "reason is {} bytes, more than {MAX_REASON_LEN}",
                self.reason.len()
            ));
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        to_json_bytes(&WireRef::V1(self))
    }

    fn decode_wire(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        from_json_bytes::<Wire>(bytes).map(|Wire::V1(v)| v)
    }
}
