//! Logistic Regression as a distribution: trained by smartcore on standardized inputs plus one
//! more, a threshold `t`, to answer P(target > t) = sigmoid(w . x + b + w_t t) (a threshold
//! model: every training window appears once per threshold of a grid, labelled by whether its
//! target exceeds it). Its serde JSON is the model file; the weights come from smartcore's
//! `coefficients()` and `intercept()` (smartcore itself only answers with a class).
//!
//! Because the score is linear in `t`, the quantile at a level has a closed form: the `t` at
//! which P(target > t) is one minus the level. `w_t` must be negative (a higher threshold is
//! exceeded less often); a model where it is not is refused.

use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::LogisticRegression;

/// smartcore's logistic regression for our data.
pub type SmartcoreLogistic = LogisticRegression<f64, i32, DenseMatrix<f64>, Vec<i32>>;

/// A trained logistic regression: `sigmoid(w . x + b + w_t t)` is P(target > t).
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    /// The inputs' weights, then the threshold's.
    weights: Vec<f64>,
    intercept: f64,
}

impl Logistic {
    /// Reads smartcore's JSON of a binary model trained on `width` inputs and the threshold,
    /// with labels 0 and 1.
    pub fn from_smartcore_json(bytes: &[u8], width: usize) -> Result<Self, String> {
        let model: SmartcoreLogistic = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a smartcore logistic regression: {e}"))?;
        Self::from_smartcore(&model, width)
    }

    /// Reads the coefficients of a trained smartcore model of `width` inputs and the threshold.
    pub fn from_smartcore(model: &SmartcoreLogistic, width: usize) -> Result<Self, String> {
        let width = width + 1;
        if model.classes().as_slice() != [0, 1] {
            return Err(format!(
                "classes {:?}; a binary model of 0 and 1 is expected",
                model.classes()
            ));
        }
        let coefficients = model.coefficients();
        let (rows, cols) = coefficients.shape();
        if rows != 1 || cols != width {
            return Err(format!("{rows}x{cols} coefficients for {width} inputs"));
        }
        let weights: Vec<f64> = (0..cols).map(|j| *coefficients.get((0, j))).collect();
        let threshold_weight = weights[cols - 1];
        if !(threshold_weight.is_finite() && threshold_weight < 0.0) {
            return Err(format!(
                "the threshold's weight is {threshold_weight}: P(target > t) must fall with t"
            ));
        }
        Ok(Self {
            weights,
            intercept: *model.intercept().get((0, 0)),
        })
    }

    /// The score without the threshold's term, for one standardized input row.
    fn score(&self, row: &[f64]) -> f64 {
        self.weights
            .iter()
            .zip(row)
            .map(|(w, x)| w * x)
            .sum::<f64>()
            + self.intercept
    }

    /// P(target > `threshold`) for one standardized input row.
    pub fn exceedance(&self, row: &[f64], threshold: f64) -> f64 {
        let w_t = self.weights[self.weights.len() - 1];
        1.0 / (1.0 + (-(self.score(row) + w_t * threshold)).exp())
    }

    /// Appends the quantiles at `levels` for one standardized input row to `out`.
    pub fn quantiles(&self, row: &[f64], levels: &[f64], out: &mut Vec<f64>) {
        let w_t = self.weights[self.weights.len() - 1];
        let score = self.score(row);
        out.extend(levels.iter().map(|level| {
            let p = (1.0 - level).clamp(1e-9, 1.0 - 1e-9);
            ((p / (1.0 - p)).ln() - score) / w_t
        }));
    }

    /// The weights, in input order, the threshold's last (for the evaluation report).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
}
