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
//!
//! The block says what the votes decided; [`outcome_line`], printed right after it, says what
//! was done, so that the log alone tells the story (a `DECISION: SCALE DOWN` that a cooldown
//! held is followed by `HELD: orders stays at 4 replicas: ...`).

use contract::{Action, DecisionOutcome, DecisionRecord};
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

/// One line, printed right after the block: what was done with the decision and why.
pub fn outcome_line(record: &DecisionRecord) -> String {
    let (service, from, to) = (
        &record.service,
        record.current_replicas,
        record.target_replicas,
    );
    let why = if record.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", record.reason)
    };
    match record.outcome {
        DecisionOutcome::Applied => {
            format!("APPLIED: {service} from {from} to {to} replicas{why}\n")
        }
        DecisionOutcome::DryRun => {
            format!(
                "DRY RUN: {service} would go from {from} to {to} replicas; nothing changed (DRY_RUN)\n"
            )
        }
        DecisionOutcome::Unchanged => {
            format!("UNCHANGED: {service} stays at {from} replicas{why}\n")
        }
        DecisionOutcome::Held => format!("HELD: {service} stays at {from} replicas{why}\n"),
        DecisionOutcome::Failed => {
            format!("FAILED: {service} at {to} replicas, was {from}{why}\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::VoteSummary;

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

    #[test]
    fn the_line_after_the_block_says_what_was_done() {
        let record = |outcome, from, to, reason: &str| DecisionRecord {
            decision_id: 2,
            service: "orders".into(),
            window_id: 1,
            strategy: "majority".into(),
            votes: vec![],
            action: Action::ScaleDown,
            average_confidence: 0.8,
            current_replicas: from,
            target_replicas: to,
            outcome,
            reason: reason.into(),
            features_produced_at: "2026-04-04T12:30:00Z".parse().unwrap(),
            decided_at: "2026-04-04T12:30:02Z".parse().unwrap(),
        };
        assert_eq!(
            outcome_line(&record(
                DecisionOutcome::Applied,
                4,
                3,
                "majority SCALE DOWN"
            )),
            "APPLIED: orders from 4 to 3 replicas: majority SCALE DOWN\n"
        );
        assert_eq!(
            outcome_line(&record(
                DecisionOutcome::Held,
                4,
                4,
                "scale-down cooldown: 30 s left"
            )),
            "HELD: orders stays at 4 replicas: scale-down cooldown: 30 s left\n"
        );
        assert_eq!(
            outcome_line(&record(DecisionOutcome::Failed, 4, 2, "engine unreachable")),
            "FAILED: orders at 2 replicas, was 4: engine unreachable\n"
        );
        assert_eq!(
            outcome_line(&record(DecisionOutcome::DryRun, 4, 3, "")),
            "DRY RUN: orders would go from 4 to 3 replicas; nothing changed (DRY_RUN)\n"
        );
    }
}
