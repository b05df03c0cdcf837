//! The trainer's evaluation report (`models/evaluation.json`): written by `trainer` with
//! everything it measured; read here for what the fleet acts on, the held-out F1 that weighs the
//! `weighted` vote (the scaler and the replay). The reader names only the fields it reads, so the
//! report can grow; the golden file (`tests/golden/evaluation.json`, cut from a real report)
//! and the trainer's own test keep writer and reader in step.

use std::collections::BTreeMap;

/// The weights of the `weighted` strategy from the trainer's `evaluation.json`: each model's
/// held-out F1 (the mean over the held-out patterns, `held_out[].classification.f1`); a model
/// without a score is left out. `Err` says why the bytes are not such a report.
pub fn held_out_f1(evaluation_json: &[u8]) -> Result<BTreeMap<String, f64>, String> {
    /// The part of the trainer's report the weights come from; the rest is not read.
    #[derive(serde::Deserialize)]
    struct Report {
        models: Vec<ModelScores>,
    }
    #[derive(serde::Deserialize)]
    struct ModelScores {
        model: String,
        #[serde(default)]
        held_out: Vec<HeldOut>,
    }
    #[derive(serde::Deserialize)]
    struct HeldOut {
        classification: Classification,
    }
    #[derive(serde::Deserialize)]
    struct Classification {
        /// `null` where the trainer had no windows to score.
        f1: Option<f64>,
    }
    let report: Report = serde_json::from_slice(evaluation_json)
        .map_err(|e| format!("not the trainer's evaluation report: {e}"))?;
    Ok(report
        .models
        .into_iter()
        .filter_map(|m| {
            let scores: Vec<f64> = (m.held_out.iter())
                .filter_map(|h| h.classification.f1.filter(|f1| f1.is_finite()))
                .collect();
            (!scores.is_empty() && !m.model.is_empty())
                .then(|| (m.model, scores.iter().sum::<f64>() / scores.len() as f64))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_come_from_the_held_out_f1() {
        let json = br#"{"models":[{"model":"xgboost","held_out":[
            {"pattern":"a","classification":{"f1":0.7}},
            {"pattern":"b","classification":{"f1":0.9}}]},{"model":"rf"}]}"#;
        assert_eq!(
            held_out_f1(json),
            Ok(BTreeMap::from([("xgboost".to_owned(), 0.8)]))
        );
        assert!(held_out_f1(b"not json").is_err());
        assert!(held_out_f1(br#"{"models":[{"held_out":[]}]}"#).is_err());
    }
}
