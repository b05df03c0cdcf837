//! The vote rule, independent of which model gives the probabilities.
//!
//! - SCALE_UP when a violation is likely at the current replica count (P >= `scale_up`).
//! - SCALE_DOWN only when the model predicts the service stays within its SLA with one replica
//!   fewer: the features are evaluated as they would be with that replica (its per-replica
//!   load rises) and P must be below the stricter `scale_down` threshold.
//! - NO_ACTION otherwise.
//!
//! Every vote also carries the smallest replica count the model predicts to be safe, for the
//! scaler's proportional decisions, and the model's probability for the action it chose as its
//! confidence.

use crate::metadata::Thresholds;
use contract::Action;

/// What one model votes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoteDecision {
    pub action: Action,
    /// The model's probability for `action`.
    pub confidence: f64,
    /// P(violation in the next window) at the current replica count.
    pub violation_probability: f64,
    /// Smallest replica count predicted safe: above the current count for SCALE_UP, below it
    /// for SCALE_DOWN, at most the current count for NO_ACTION.
    pub safe_replicas: u32,
}

/// How far above the current count the safe search looks: double, plus a margin for 1 or 2.
pub fn candidate_replicas(current: u32) -> Vec<u32> {
    let current = current.max(1);
    let top = current
        .saturating_mul(2)
        .saturating_add(4)
        .min(current.saturating_add(64));
    (1..=top).collect()
}

/// Decides from `probabilities[i]`, P(violation) with `candidates[i]` replicas, where
/// `candidates` is [`candidate_replicas`]`(current)`.
pub fn decide(current: u32, probabilities: &[f64], thresholds: Thresholds) -> VoteDecision {
    let current = current.max(1);
    let p = |replicas: u32| -> f64 {
        probabilities
            .get(replicas as usize - 1)
            .copied()
            .filter(|v| v.is_finite())
            .map_or(1.0, |v| v.clamp(0.0, 1.0))
    };
    let top = probabilities.len().max(1) as u32;
    let p_now = p(current);
    if p_now >= thresholds.scale_up {
        let safe = (current + 1..=top)
            .find(|r| p(*r) < thresholds.scale_up)
            .unwrap_or(top.max(current + 1));
        return VoteDecision {
            action: Action::ScaleUp,
            confidence: p_now,
            violation_probability: p_now,
            safe_replicas: safe,
        };
    }
    // The lowest count from which every count up to the current one is predicted safe.
    let mut safe = current;
    while safe > 1 && p(safe - 1) < thresholds.scale_up {
        safe -= 1;
    }
    if current > 1 && p(current - 1) < thresholds.scale_down {
        return VoteDecision {
            action: Action::ScaleDown,
            confidence: 1.0 - p(current - 1),
            violation_probability: p_now,
            safe_replicas: safe,
        };
    }
    VoteDecision {
        action: Action::NoAction,
        confidence: 1.0 - p_now,
        violation_probability: p_now,
        safe_replicas: safe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Thresholds = Thresholds {
        scale_up: 0.5,
        scale_down: 0.2,
    };

    /// P(violation) falling with replicas: load `load` replicas' worth.
    fn curve(load: f64, current: u32) -> Vec<f64> {
        candidate_replicas(current)
            .iter()
            .map(|r| (1.0 / (1.0 + (-(load - f64::from(*r)) * 3.0).exp())).clamp(0.0, 1.0))
            .collect()
    }

    #[test]
    fn overloaded_service_scales_up_to_the_first_safe_count() {
        let v = decide(2, &curve(4.5, 2), T);
        assert_eq!(v.action, Action::ScaleUp);
        assert_eq!(v.safe_replicas, 5);
        assert_eq!(v.confidence, v.violation_probability);
    }

    #[test]
    fn idle_service_scales_down_only_when_one_fewer_is_safe() {
        let v = decide(4, &curve(1.2, 4), T);
        assert_eq!(v.action, Action::ScaleDown);
        assert_eq!(v.safe_replicas, 2);
        // One fewer would be borderline (P between the thresholds): hold.
        let v = decide(3, &curve(1.8, 3), T);
        assert_eq!(v.action, Action::NoAction);
        assert_eq!(v.safe_replicas, 2);
    }

    #[test]
    fn one_replica_never_scales_down() {
        let v = decide(1, &curve(-5.0, 1), T);
        assert_eq!(v.action, Action::NoAction);
        assert_eq!(v.safe_replicas, 1);
    }

    proptest! {
        /// Whatever a model answers, the vote is consistent with itself.
        #[test]
        fn votes_are_consistent(current in 1u32..40, probabilities in proptest::collection::vec(
            prop_oneof![0.0f64..=1.0, Just(f64::NAN), Just(2.0)], 1..90)) {
            let candidates = candidate_replicas(current);
            let probabilities: Vec<f64> = candidates.iter().enumerate()
                .map(|(i, _)| probabilities[i % probabilities.len()]).collect();
            let v = decide(current, &probabilities, T);
            prop_assert!(v.safe_replicas >= 1);
            prop_assert!((0.0..=1.0).contains(&v.confidence));
            prop_assert!((0.0..=1.0).contains(&v.violation_probability));
            match v.action {
                Action::ScaleUp => prop_assert!(v.safe_replicas > current),
                Action::ScaleDown => prop_assert!(current > 1 && v.safe_replicas < current),
                Action::NoAction => prop_assert!(v.safe_replicas <= current),
            }
        }
    }
}
