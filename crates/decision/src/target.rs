//! How many replicas: the winning action and the models' safe replica counts give the desired
//! count, before guardrails.
//!
//! Scaling up goes straight to the largest safe count among the votes for SCALE_UP (the most
//! cautious model wins; at least one more replica); scaling down goes to the largest safe count
//! among the votes for SCALE_DOWN (again the most cautious; at least one fewer). Proportional
//! steps are what HPA does from a utilization ratio; here the models say how far.

use contract::{Action, VoteSummary};

/// The desired replica count and why.
pub fn desired(action: Action, votes: &[VoteSummary], current: u32) -> (u32, String) {
    let current = current.max(1);
    let safe_of = |wanted: Action| {
        votes
            .iter()
            .filter(|v| v.action == wanted)
            .map(|v| v.safe_replicas)
            .max()
    };
    match action {
        Action::ScaleUp => {
            let safe = safe_of(Action::ScaleUp).unwrap_or(current + 1);
            let target = safe.max(current + 1);
            (
                target,
                format!("largest safe count among SCALE_UP votes: {safe}"),
            )
        }
        Action::ScaleDown => {
            let safe = safe_of(Action::ScaleDown).unwrap_or(current.saturating_sub(1));
            let target = safe.clamp(1, current.saturating_sub(1).max(1));
            (
                target,
                format!("largest safe count among SCALE_DOWN votes: {safe}"),
            )
        }
        Action::NoAction => (current, "no change voted".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(action: Action, safe_replicas: u32) -> VoteSummary {
        VoteSummary {
            model: "m".into(),
            action,
            confidence: 0.9,
            safe_replicas,
        }
    }

    #[test]
    fn proportional_in_both_directions() {
        let up = [
            v(Action::ScaleUp, 5),
            v(Action::ScaleUp, 7),
            v(Action::NoAction, 2),
        ];
        assert_eq!(desired(Action::ScaleUp, &up, 2).0, 7);
        let weak_up = [v(Action::ScaleUp, 1)];
        assert_eq!(
            desired(Action::ScaleUp, &weak_up, 2).0,
            3,
            "at least one more"
        );
        let down = [
            v(Action::ScaleDown, 2),
            v(Action::ScaleDown, 3),
            v(Action::NoAction, 6),
        ];
        assert_eq!(desired(Action::ScaleDown, &down, 6).0, 3);
        assert_eq!(
            desired(Action::ScaleDown, &[v(Action::ScaleDown, 9)], 6).0,
            5,
            "at least one fewer"
        );
        assert_eq!(desired(Action::ScaleDown, &down, 1).0, 1);
        assert_eq!(desired(Action::NoAction, &down, 4).0, 4);
    }
}
