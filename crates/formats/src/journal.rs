//! The decision journal (`output/decisions.csv`): one row per decision, appended by the
//! authoritative scaler and read back by it at start and when it compacts the file (the
//! scaler's `journal` module), and by the end-to-end tests. Votes are written as
//! `model:ACTION:confidence:safe_replicas` joined by `|`; confidences to four decimals.

use crate::dev_csv::time;
use chrono::{DateTime, Utc};
use contract::{Action, DecisionOutcome, DecisionRecord, VoteSummary};

/// The columns of the decisions CSV.
pub const COLUMNS: [&str; 13] = [
    "decision_id",
    "decided_at",
    "service",
    "window_id",
    "strategy",
    "action",
    "average_confidence",
    "votes",
    "current_replicas",
    "target_replicas",
    "outcome",
    "reason",
    "features_produced_at",
];

/// The cells of one decision, in [`COLUMNS`] order.
pub fn row(r: &DecisionRecord) -> Vec<String> {
    let votes: Vec<String> = r
        .votes
        .iter()
        .map(|v| {
            format!(
                "{}:{}:{:.4}:{}",
                v.model,
                v.action.as_str(),
                v.confidence,
                v.safe_replicas
            )
        })
        .collect();
    vec![
        r.decision_id.to_string(),
        time(&r.decided_at),
        r.service.clone(),
        r.window_id.to_string(),
        r.strategy.clone(),
        r.action.as_str().to_owned(),
        format!("{:.4}", r.average_confidence),
        votes.join("|"),
        r.current_replicas.to_string(),
        r.target_replicas.to_string(),
        r.outcome.as_str().to_owned(),
        r.reason.clone(),
        time(&r.features_produced_at),
    ]
}

/// Parses an action as the journal writes it (`SCALE_UP`, `NO_ACTION`, `SCALE_DOWN`).
pub fn parse_action(s: &str) -> Option<Action> {
    Action::ALL.into_iter().find(|a| a.as_str() == s)
}

fn parse_outcome(s: &str) -> Option<DecisionOutcome> {
    DecisionOutcome::ALL.into_iter().find(|o| o.as_str() == s)
}

fn parse_vote(s: &str) -> Result<VoteSummary, String> {
    let bad = || format!("vote {s:?} is not model:ACTION:confidence:safe_replicas");
    let mut parts = s.split(':');
    let (Some(model), Some(action), Some(confidence), Some(safe), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad());
    };
    Ok(VoteSummary {
        model: model.to_owned(),
        action: parse_action(action).ok_or_else(bad)?,
        confidence: confidence.parse().map_err(|_| bad())?,
        safe_replicas: safe.parse().map_err(|_| bad())?,
    })
}

/// Reads one row written by [`row`]; `Err` names the first cell that is not what it should be.
pub fn parse<'a>(cells: impl IntoIterator<Item = &'a str>) -> Result<DecisionRecord, String> {
    let cells: Vec<&str> = cells.into_iter().collect();
    if cells.len() != COLUMNS.len() {
        return Err(format!("{} cells, expected {}", cells.len(), COLUMNS.len()));
    }
    let number = |i: usize| -> Result<u64, String> {
        cells[i]
            .parse()
            .map_err(|_| format!("{}: {:?} is not a number", COLUMNS[i], cells[i]))
    };
    let count = |i: usize| -> Result<u32, String> {
        cells[i]
            .parse()
            .map_err(|_| format!("{}: {:?} is not a replica count", COLUMNS[i], cells[i]))
    };
    let at = |i: usize| -> Result<DateTime<Utc>, String> {
        cells[i]
            .parse()
            .map_err(|_| format!("{}: {:?} is not a time", COLUMNS[i], cells[i]))
    };
    let votes = if cells[7].is_empty() {
        Vec::new()
    } else {
        cells[7]
            .split('|')
            .map(parse_vote)
            .collect::<Result<_, _>>()?
    };
    Ok(DecisionRecord {
        decision_id: number(0)?,
        decided_at: at(1)?,
        service: cells[2].to_owned(),
        window_id: number(3)?,
        strategy: cells[4].to_owned(),
        action: parse_action(cells[5]).ok_or_else(|| format!("action: {:?}", cells[5]))?,
        average_confidence: cells[6]
            .parse()
            .map_err(|_| format!("average_confidence: {:?}", cells[6]))?,
        votes,
        current_replicas: count(8)?,
        target_replicas: count(9)?,
        outcome: parse_outcome(cells[10]).ok_or_else(|| format!("outcome: {:?}", cells[10]))?,
        reason: cells[11].to_owned(),
        features_produced_at: at(12)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        assert_eq!(parse_action("SCALE_DOWN"), Some(Action::ScaleDown));
        assert_eq!(parse_action("scale_down"), None);
        for o in DecisionOutcome::ALL {
            assert_eq!(parse_outcome(o.as_str()), Some(o));
        }
    }

    #[test]
    fn a_bad_cell_is_named() {
        let t: DateTime<Utc> = "2026-04-04T12:30:00Z".parse().unwrap();
        let record = DecisionRecord {
            decision_id: 7,
            service: "orders".into(),
            window_id: 1_775_305_800,
            strategy: "majority".into(),
            votes: vec![VoteSummary {
                model: "xgboost".into(),
                action: Action::ScaleUp,
                confidence: 0.9,
                safe_replicas: 3,
            }],
            action: Action::ScaleUp,
            average_confidence: 0.9,
            current_replicas: 2,
            target_replicas: 3,
            outcome: DecisionOutcome::Applied,
            reason: "a, with a comma".into(),
            features_produced_at: t,
            decided_at: t,
        };
        let mut cells = row(&record);
        assert_eq!(parse(cells.iter().map(String::as_str)).unwrap(), record);
        cells[9] = "many".into();
        let err = parse(cells.iter().map(String::as_str)).unwrap_err();
        assert!(err.contains("target_replicas"), "{err}");
        cells[9] = "3".into();
        cells[7] = "xgboost:SCALE_UP:0.9".into();
        assert!(
            parse(cells.iter().map(String::as_str))
                .unwrap_err()
                .contains("vote")
        );
    }
}
