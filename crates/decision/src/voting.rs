//! Voting strategies: from the votes counted for one window to one action.
//!
//! - `majority`: the action more than half of the counted votes agree on.
//! - `unanimous`: the action every counted vote agrees on.
//! - `weighted`: the action with the largest sum of weight x confidence (weights per model, for
//!   example each model's held-out F1).
//!
//! Fewer votes than the quorum, or no winner, gives NO_ACTION: when the models cannot agree, the
//! replica count stays.

use contract::{Action, VoteSummary};
use std::collections::BTreeMap;
use std::fmt;

/// How votes are combined.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    Majority,
    Unanimous,
    /// Weight per model name; a model without one weighs 1.
    Weighted(BTreeMap<String, f64>),
}

impl Strategy {
    /// The name used in the decision record (`majority`, `unanimous`, `weighted`).
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Majority => "majority",
            Strategy::Unanimous => "unanimous",
            Strategy::Weighted(_) => "weighted",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The result of a vote.
#[derive(Debug, Clone, PartialEq)]
pub struct Tallied {
    pub action: Action,
    /// Votes per action, in [`Action::ALL`] order.
    pub counts: [usize; 3],
    /// Mean confidence of the counted votes.
    pub average_confidence: f64,
    /// Why this action, in a few words.
    pub reason: String,
}

fn index(action: Action) -> usize {
    Action::ALL.iter().position(|a| *a == action).unwrap_or(1)
}

/// Applies `strategy` to `votes`; fewer than `quorum` votes give NO_ACTION.
pub fn tally(strategy: &Strategy, votes: &[VoteSummary], quorum: usize) -> Tallied {
    let mut counts = [0usize; 3];
    for v in votes {
        counts[index(v.action)] += 1;
    }
    let average_confidence = if votes.is_empty() {
        0.0
    } else {
        votes.iter().map(|v| v.confidence).sum::<f64>() / votes.len() as f64
    };
    let result = |action: Action, reason: String| Tallied {
        action,
        counts,
        average_confidence,
        reason,
    };
    if votes.len() < quorum.max(1) {
        return result(
            Action::NoAction,
            format!("{} of the {quorum} votes needed", votes.len()),
        );
    }
    match strategy {
        Strategy::Majority => match Action::ALL
            .iter()
            .find(|a| 2 * counts[index(**a)] > votes.len())
        {
            Some(action) => result(*action, format!("majority {action}")),
            None => result(Action::NoAction, "no majority".into()),
        },
        Strategy::Unanimous => {
            if counts.contains(&votes.len()) {
                let action = votes[0].action;
                result(action, format!("unanimous {action}"))
            } else {
                result(Action::NoAction, "not unanimous".into())
            }
        }
        Strategy::Weighted(weights) => {
            let mut scores = [0.0f64; 3];
            for v in votes {
                scores[index(v.action)] +=
                    weights.get(&v.model).copied().unwrap_or(1.0) * v.confidence;
            }
            let best = (0..3)
                .max_by(|a, b| scores[*a].total_cmp(&scores[*b]))
                .unwrap_or(1);
            let tied = (0..3)
                .filter(|i| *i != best && scores[*i] == scores[best])
                .count()
                > 0;
            if tied {
                result(Action::NoAction, "weighted tie".into())
            } else {
                let action = Action::ALL[best];
                result(
                    action,
                    format!(
                        "weighted {action} ({:.2} of {:.2})",
                        scores[best],
                        scores.iter().sum::<f64>()
                    ),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(model: &str, action: Action, confidence: f64) -> VoteSummary {
        VoteSummary {
            model: model.into(),
            action,
            confidence,
            safe_replicas: 1,
        }
    }

    #[test]
    fn the_seeds_example() {
        let votes = [
            v("xgboost", Action::ScaleUp, 0.87),
            v("random_forest", Action::ScaleUp, 0.82),
            v("logistic_regression", Action::NoAction, 0.55),
        ];
        let t = tally(&Strategy::Majority, &votes, 2);
        assert_eq!(t.action, Action::ScaleUp);
        assert_eq!(t.counts, [2, 1, 0]);
        assert!((t.average_confidence - 0.7466666).abs() < 1e-6);
        assert_eq!(
            tally(&Strategy::Unanimous, &votes, 2).action,
            Action::NoAction
        );
    }

    #[test]
    fn split_votes_and_missing_quorum_hold() {
        let votes = [
            v("a", Action::ScaleUp, 0.9),
            v("b", Action::NoAction, 0.9),
            v("c", Action::ScaleDown, 0.9),
        ];
        assert_eq!(
            tally(&Strategy::Majority, &votes, 2).action,
            Action::NoAction
        );
        assert_eq!(
            tally(&Strategy::Majority, &votes[..1], 2).action,
            Action::NoAction
        );
        assert_eq!(
            tally(&Strategy::Unanimous, &votes[..1], 1).action,
            Action::ScaleUp
        );
    }

    #[test]
    fn weights_can_outvote_a_majority() {
        let votes = [
            v("xgboost", Action::ScaleUp, 0.95),
            v("random_forest", Action::NoAction, 0.6),
            v("logistic_regression", Action::NoAction, 0.6),
        ];
        let weights = BTreeMap::from([("xgboost".to_owned(), 3.0)]);
        assert_eq!(
            tally(&Strategy::Weighted(weights), &votes, 2).action,
            Action::ScaleUp
        );
        assert_eq!(
            tally(&Strategy::Weighted(BTreeMap::new()), &votes, 2).action,
            Action::NoAction
        );
    }
}
