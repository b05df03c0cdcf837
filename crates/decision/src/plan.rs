//! One window's decision, from its votes to the replica count to go to: the voting strategy, the
//! proportional target, then the guardrails. The scaler runs this for every closed window and
//! then acts on the result; the offline trace replay runs the same function on simulated time.

use crate::guardrails::{Guardrails, History, Verdict};
use crate::target;
use crate::voting::{self, Strategy, Tallied};
use chrono::{DateTime, Utc};
use contract::VoteSummary;

/// What the votes of one window ask for, and what the guardrails allow.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The strategy's action and vote counts.
    pub tallied: Tallied,
    /// The proportional count the votes ask for, before guardrails.
    pub desired: u32,
    /// The count to go to.
    pub verdict: Verdict,
    /// Why, in one line: the vote, the target, the guardrails.
    pub reason: String,
}

/// Decides one window: `votes` under `strategy` (fewer than `quorum` votes: NO_ACTION), the
/// target from the agreeing votes' safe counts, and the guardrails from `current` at `now`.
/// `history` remembers the recommendation; call [`History::record_change`] once the change is
/// made.
pub fn plan(
    strategy: &Strategy,
    quorum: usize,
    votes: &[VoteSummary],
    current: u32,
    guardrails: &Guardrails,
    history: &mut History,
    now: DateTime<Utc>,
) -> Plan {
    let tallied = voting::tally(strategy, votes, quorum);
    let (desired, why) = target::desired(tallied.action, votes, current);
    let verdict = guardrails.apply(history, current, desired, now);
    let reason = format!("{}; {why}; {}", tallied.reason, verdict.reason);
    Plan {
        tallied,
        desired,
        verdict,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::Action;

    fn v(model: &str, action: Action, safe_replicas: u32) -> VoteSummary {
        VoteSummary {
            model: model.into(),
            action,
            confidence: 0.9,
            safe_replicas,
        }
    }

    #[test]
    fn votes_to_a_guarded_count() {
        let votes = [
            v("a", Action::ScaleUp, 6),
            v("b", Action::ScaleUp, 9),
            v("c", Action::NoAction, 2),
        ];
        let (g, mut h) = (Guardrails::default(), History::default());
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let p = plan(&Strategy::Majority, 2, &votes, 2, &g, &mut h, now);
        assert_eq!(p.tallied.action, Action::ScaleUp);
        assert_eq!(p.desired, 9);
        assert_eq!(p.verdict.target, 6, "at most 4 more at once: {p:?}");
        assert!(p.reason.contains("majority SCALE UP"), "{}", p.reason);
        assert!(p.reason.contains("step limit"), "{}", p.reason);
        let p = plan(&Strategy::Unanimous, 2, &votes, 2, &g, &mut h, now);
        assert_eq!((p.tallied.action, p.verdict.target), (Action::NoAction, 2));
    }
}
