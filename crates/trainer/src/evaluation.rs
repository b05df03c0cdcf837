//! The seed's evaluation table (accuracy, precision, recall, F1 and ROC-AUC) and how well a
//! forecast's quantiles hold (coverage and pinball loss).

use serde::{Deserialize, Serialize};

/// Scores of one classifier on one set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: f64,
    pub true_positives: usize,
    pub false_positives: usize,
    pub true_negatives: usize,
    pub false_negatives: usize,
}

/// Scores of binary `predicted` against `actual`, with `scores` (probabilities) for ROC-AUC.
pub fn score(actual: &[bool], predicted: &[bool], scores: &[f64]) -> Scores {
    let mut c = [0usize; 4]; // tp, fp, tn, fn
    for (a, p) in actual.iter().zip(predicted) {
        let i = match (*a, *p) {
            (true, true) => 0,
            (false, true) => 1,
            (false, false) => 2,
            (true, false) => 3,
        };
        c[i] += 1;
    }
    let [tp, fp, tn, fn_] = c.map(|v| v as f64);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    Scores {
        accuracy: ratio(tp + tn, tp + tn + fp + fn_),
        precision,
        recall,
        f1: ratio(2.0 * precision * recall, precision + recall),
        roc_auc: roc_auc(actual, scores),
        true_positives: c[0],
        false_positives: c[1],
        true_negatives: c[2],
        false_negatives: c[3],
    }
}

/// Area under the ROC curve: the probability that a random violation scores above a random
/// non-violation, ties counting half (Mann-Whitney). 0.5 when one class is absent.
pub fn roc_auc(actual: &[bool], scores: &[f64]) -> f64 {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(actual.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = actual.iter().filter(|a| **a).count() as f64;
    let negatives = actual.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    // Sum of the positives' ranks, tied scores sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += pairs[i..j].iter().filter(|p| p.1).count() as f64 * mean_rank;
        i = j;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// How well a forecast's quantiles hold on a set of windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastScores {
    pub windows: usize,
    /// Per level: the share of windows whose target was at most the forecast quantile.
    pub coverage: Vec<(f64, f64)>,
    /// Mean pinball loss at the default level (lower is better).
    pub pinball: f64,
}

/// The pinball (quantile) loss of `forecast` for `target` at `level`.
pub fn pinball(level: f64, target: f64, forecast: f64) -> f64 {
    let d = target - forecast;
    if d >= 0.0 {
        level * d
    } else {
        (level - 1.0) * d
    }
}

/// Scores of `forecasts[i]` (the quantiles at `levels`) against `targets[i]`, the pinball loss at
/// `level`.
pub fn forecast_scores(
    targets: &[f64],
    forecasts: &[Vec<f64>],
    levels: &[f64],
    level: f64,
) -> ForecastScores {
    let n = targets.len().max(1) as f64;
    let coverage = levels
        .iter()
        .enumerate()
        .map(|(l, lv)| {
            let covered = targets
                .iter()
                .zip(forecasts)
                .filter(|(t, f)| **t <= f[l])
                .count();
            (*lv, covered as f64 / n)
        })
        .collect();
    let at = levels
        .iter()
        .position(|l| (*l - level).abs() < 1e-9)
        .unwrap_or(levels.len().saturating_sub(1));
    let pinball = targets
        .iter()
        .zip(forecasts)
        .map(|(t, f)| pinball(level, *t, f[at]))
        .sum::<f64>()
        / n;
    ForecastScores {
        windows: targets.len(),
        coverage,
        pinball,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ratios() {
        let actual = [true, true, false, false, true];
        let predicted = [true, false, false, true, true];
        let s = score(&actual, &predicted, &[0.9, 0.4, 0.1, 0.6, 0.8]);
        assert_eq!(
            (
                s.true_positives,
                s.false_positives,
                s.true_negatives,
                s.false_negatives
            ),
            (2, 1, 1, 1)
        );
        assert!((s.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.accuracy - 0.6).abs() < 1e-12);
    }

    #[test]
    fn auc_matches_hand_computed_values() {
        assert_eq!(roc_auc(&[false, true], &[0.1, 0.9]), 1.0);
        assert_eq!(roc_auc(&[true, false], &[0.1, 0.9]), 0.0);
        assert_eq!(roc_auc(&[true, false], &[0.5, 0.5]), 0.5);
        // Positives at 0.8 and 0.4, negatives at 0.6 and 0.2: 3 of 4 pairs ordered.
        assert_eq!(
            roc_auc(&[true, false, true, false], &[0.8, 0.6, 0.4, 0.2]),
            0.75
        );
    }

    #[test]
    fn coverage_and_pinball() {
        let targets = [0.0, 1.0, 2.0, 3.0];
        let forecasts = vec![vec![0.5, 1.5]; 4];
        let s = forecast_scores(&targets, &forecasts, &[0.5, 0.9], 0.9);
        assert_eq!(s.coverage, vec![(0.5, 0.25), (0.9, 0.5)]);
        // Under by 0.5 and 1.5 (x0.9), over by 1.5 and 0.5 (x0.1): 2.0 in all.
        assert!((s.pinball - 0.5).abs() < 1e-12, "{}", s.pinball);
    }
}
