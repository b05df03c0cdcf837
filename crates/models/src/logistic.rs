//! Logistic Regression: trained by smartcore on standardized inputs; its serde JSON is the
//! model file. The probability of a violation is the sigmoid of the linear score, computed from
//! smartcore's `coefficients()` and `intercept()` (smartcore itself only answers with a class).

use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::LogisticRegression;

/// smartcore's logistic regression for our data.
pub type SmartcoreLogistic = LogisticRegression<f64, i32, DenseMatrix<f64>, Vec<i32>>;

/// A trained logistic regression: `sigmoid(w . x + b)` is P(violation).
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    weights: Vec<f64>,
    intercept: f64,
}

impl Logistic {
    /// Reads smartcore's JSON of a binary model trained on `width` inputs with labels 0 and 1.
    pub fn from_smartcore_json(bytes: &[u8], width: usize) -> Result<Self, String> {
        let model: SmartcoreLogistic = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a smartcore logistic regression: {e}"))?;
        Self::from_smartcore(&model, width)
    }

    /// Reads the coefficients of a trained smartcore model.
    pub fn from_smartcore(model: &SmartcoreLogistic, width: usize) -> Result<Self, String> {
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
        let weights = (0..cols).map(|j| *coefficients.get((0, j))).collect();
        Ok(Self {
            weights,
            intercept: *model.intercept().get((0, 0)),
        })
    }

    /// P(violation) for one standardized input row.
    pub fn probability(&self, row: &[f64]) -> f64 {
        let score: f64 = self
            .weights
            .iter()
            .zip(row)
            .map(|(w, x)| w * x)
            .sum::<f64>()
            + self.intercept;
        1.0 / (1.0 + (-score).exp())
    }

    /// The weights, in input order (for the evaluation report).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
}
