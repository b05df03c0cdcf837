//! From a feature vector to a model's input row: the model's features picked from the contract's
//! schema in the model's order, missing values filled, standardized where the model wants it.

use crate::metadata::{ModelMetadata, Standardization};
use contract::{FEATURE_COUNT, Features, feature_index};

/// How one model reads a [`Features`].
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Position in the contract's schema of each model feature, in model order.
    indices: Vec<usize>,
    /// Fill value per model feature.
    imputation: Vec<f64>,
    /// Per-feature standardization, if any.
    standardization: Option<Standardization>,
}

impl InputSpec {
    /// Checks the metadata's feature list against the contract: every name known, none twice,
    /// and every per-feature vector the same length.
    pub fn new(metadata: &ModelMetadata) -> Result<Self, String> {
        let names = &metadata.features;
        if names.is_empty() {
            return Err("the model lists no features".into());
        }
        let mut indices = Vec::with_capacity(names.len());
        for name in names {
            let index = feature_index(name).ok_or_else(|| {
                format!(
                    "feature {name:?} is not in the contract's schema (contract::FEATURE_SCHEMA)"
                )
            })?;
            if indices.contains(&index) {
                return Err(format!("feature {name:?} is listed twice"));
            }
            indices.push(index);
        }
        if metadata.imputation.len() != names.len() {
            return Err(format!(
                "{} imputation values for {} features",
                metadata.imputation.len(),
                names.len()
            ));
        }
        if let Some(s) = &metadata.standardization {
            if s.mean.len() != names.len() || s.std.len() != names.len() {
                return Err("standardization does not match the feature list".into());
            }
            if s.std.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err("standardization has a non-positive deviation".into());
            }
        }
        Ok(Self {
            indices,
            imputation: metadata.imputation.clone(),
            standardization: metadata.standardization.clone(),
        })
    }

    /// Number of inputs the model reads.
    pub fn width(&self) -> usize {
        self.indices.len()
    }

    /// Appends the model's input row for `features` to `out`.
    pub fn push_row(&self, features: &Features, out: &mut Vec<f64>) {
        let values: [f64; FEATURE_COUNT] = features.values();
        for (i, index) in self.indices.iter().enumerate() {
            let raw = values[*index];
            let value = if raw.is_nan() {
                self.imputation[i]
            } else {
                raw
            };
            out.push(match &self.standardization {
                Some(s) => (value - s.mean[i]) / s.std[i],
                None => value,
            });
        }
    }

    /// The model's input row for `features`.
    pub fn row(&self, features: &Features) -> Vec<f64> {
        let mut row = Vec::with_capacity(self.width());
        self.push_row(features, &mut row);
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::tests_support::metadata;

    fn features() -> Features {
        let mut values = [1.0; FEATURE_COUNT];
        values[feature_index("request_rate").unwrap()] = 120.0;
        values[feature_index("request_rate_per_replica").unwrap()] = 40.0;
        values[feature_index("replicas").unwrap()] = 3.0;
        values[feature_index("cpu_per_replica").unwrap()] = 0.3;
        values[feature_index("latency_p95").unwrap()] = f64::NAN;
        Features::from_values(&values).unwrap()
    }

    #[test]
    fn rows_follow_model_order_with_imputation_and_standardization() {
        let mut m = metadata(&["latency_p95", "request_rate_per_replica"]);
        m.imputation = vec![0.0, 0.0];
        assert_eq!(
            InputSpec::new(&m).unwrap().row(&features()),
            vec![0.0, 40.0]
        );
        m.standardization = Some(Standardization {
            mean: vec![0.0, 20.0],
            std: vec![1.0, 10.0],
        });
        assert_eq!(InputSpec::new(&m).unwrap().row(&features()), vec![0.0, 2.0]);
    }

    #[test]
    fn unknown_or_repeated_features_are_refused() {
        let err = InputSpec::new(&metadata(&["request_rate", "queue_length"])).unwrap_err();
        assert!(err.contains("queue_length"), "{err}");
        let err = InputSpec::new(&metadata(&["replicas", "replicas"])).unwrap_err();
        assert!(err.contains("twice"), "{err}");
        let mut m = metadata(&["replicas"]);
        m.imputation = vec![];
        assert!(InputSpec::new(&m).is_err());
    }
}
