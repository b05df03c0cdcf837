//! The decision block users tail with `docker compose logs -f authoritative-scaler`, in the
//! seed's format, exactly:
//!
//! ```text
//! ================================================================================
//! SCALING DECISION #1 @ 2026-04-04 12:30:02 UTC
//! ================================================================================
//! Service: orders
//! ------------------------------------------------------------
//! xgboost -> SCALE UP (confidence: 87.00%)
//! random_forest -> SCALE UP (confidence: 82.00%)
//! logistic_regression -> NO ACTION (confidence: 55.00%)
//! ------------------------------------------------------------
//! DECISION: SCALE UP
//! Vote Count: 2 SCALE UP, 1 NO ACTION (3 total)
//! Average Confidence: 74.67%
//! ================================================================================
//! ```

use contract::{Action, DecisionRecord};
use std::fmt::Write as _;

const HEAVY: &str =
    "================================================================================";
const LIGHT: &str = "------------------------------------------------------------";

/// The block for one decision, ending with a newline.
pub fn render(record: &DecisionRecord) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{HEAVY}");
    let _ = writeln!(
        s,
        "SCALING DECISION #{} @ {}",
        record.decision_id,
        record.decided_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let _ = writeln!(s, "{HEAVY}");
    let _ = writeln!(s, "Service: {}", record.service);
    let _ = writeln!(s, "{LIGHT}");
    for vote in &record.votes {
        let _ = writeln!(
            s,
            "{} -> {} (confidence: {:.2}%)",
            vote.model,
            vote.action,
            vote.confidence * 100.0
        );
    }
    let _ = writeln!(s, "{LIGHT}");
    let _ = writeln!(s, "DECISION: {}", record.action);
    let counts: Vec<String> = Action::ALL
        .iter()
        .filter_map(|a| {
            let n = record.votes.iter().filter(|v| v.action == *a).count();
            (n > 0).then(|| format!("{n} {a}"))
        })
        .collect();
    let _ = writeln!(
        s,
        "Vote Count: {} ({} total)",
        counts.join(", "),
        record.votes.len()
    );
    let _ = writeln!(
        s,
        "Average Confidence: {:.2}%",
        record.average_confidence * 100.0
    );
    let _ = writeln!(s, "{HEAVY}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{DecisionOutcome, VoteSummary};

    #[test]
    fn renders_the_seeds_example_exactly() {
        let v = |model: &str, action, confidence| VoteSummary {
            model: model.into(),
            action,
            confidence,
            safe_replicas: 3,
        };
        let record = DecisionRecord {
            decision_id: 1,
            service: "orders".into(),
            window_id: 1,
            strategy: "majority".into(),
            votes: vec![
                v("xgboost", Action::ScaleUp, 0.87),
                v("random_forest", Action::ScaleUp, 0.82),
                v("logistic_regression", Action::NoAction, 0.55),
            ],
            action: Action::ScaleUp,
            average_confidence: (0.87 + 0.82 + 0.55) / 3.0,
            current_replicas: 2,
            target_replicas: 3,
            outcome: DecisionOutcome::Applied,
            reason: String::new(),
            features_produced_at: "2026-04-04T12:30:00Z".parse().unwrap(),
            decided_at: "2026-04-04T12:30:02.417Z".parse().unwrap(),
        };
        let expected = "\
================================================================================
SCALING DECISION #1 @ 2026-04-04 12:30:02 UTC
================================================================================
Service: orders
------------------------------------------------------------
xgboost -> SCALE UP (confidence: 87.00%)
random_forest -> SCALE UP (confidence: 82.00%)
logistic_regression -> NO ACTION (confidence: 55.00%)
------------------------------------------------------------
DECISION: SCALE UP
Vote Count: 2 SCALE UP, 1 NO ACTION (3 total)
Average Confidence: 74.67%
================================================================================
";
        assert_eq!(render(&record), expected);
    }
}
