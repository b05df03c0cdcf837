//! The voters' predictions CSVs (`output/predictions_<model>.csv`): one row per vote, the vote
//! first, then its feature vector as the development CSV has it, so that outcomes observed
//! later can be joined on (service, window_id) for retraining. Written by `ml-inference`, read
//! by the live replay's report.

use crate::dev_csv::{self, time};
use contract::{FeatureVector, Vote};

/// Columns before the feature vector's own.
pub const VOTE_COLUMNS: [&str; 10] = [
    "voted_at",
    "model",
    "model_version",
    "action",
    "confidence",
    "violation_probability",
    "current_replicas",
    "safe_replicas",
    "forecast_rps",
    "inference_us",
];

/// The header: [`VOTE_COLUMNS`], then [`dev_csv::header`].
pub fn header() -> Vec<&'static str> {
    VOTE_COLUMNS
        .iter()
        .copied()
        .chain(dev_csv::header())
        .collect()
}

/// The cells of one vote on `vector`, whose forecast was `forecast_rps`, in [`header`] order.
pub fn row(vote: &Vote, forecast_rps: f64, vector: &FeatureVector) -> Vec<String> {
    let mut row = vec![
        time(&vote.voted_at),
        vote.model.clone(),
        vote.model_version.clone(),
        vote.action.as_str().to_owned(),
        vote.confidence.to_string(),
        vote.violation_probability.to_string(),
        vote.current_replicas.to_string(),
        vote.safe_replicas.to_string(),
        format!("{forecast_rps:.3}"),
        format!("{:.1}", vote.inference_us),
    ];
    row.extend(dev_csv::row(vector));
    row
}

/// The feature vector of a row written by [`row`].
pub fn parse_vector(cells: &[&str]) -> Result<FeatureVector, String> {
    let features = cells
        .get(VOTE_COLUMNS.len()..)
        .ok_or_else(|| format!("{} cells, fewer than the vote's", cells.len()))?;
    dev_csv::parse_row(features)
}
