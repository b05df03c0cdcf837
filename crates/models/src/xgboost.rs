//! XGBoost on the real XGBoost library (`xgb` crate, libxgboost): the model file is XGBoost's
//! own format (UBJSON as the trainer writes it; its text JSON loads too), loaded into a booster
//! that predicts on one thread. The booster is trained
//! with XGBoost's quantile loss (`reg:quantileerror`) at every level of the forecast at once, so
//! one prediction answers all of them.
//!
//! The booster is not `Sync`, so it sits behind a mutex; predictions are short and the inference
//! service runs them on its blocking pool.

use std::sync::Mutex;
use xgb::{Booster, DMatrix};

/// A loaded booster.
pub struct Xgb {
    booster: Mutex<Booster>,
    width: usize,
    /// Outputs per row: one per quantile level.
    outputs: usize,
}

impl std::fmt::Debug for Xgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Xgb").field("width", &self.width).finish()
    }
}

impl Xgb {
    /// Loads an XGBoost model (UBJSON or JSON, as libxgboost tells them apart) whose feature
    /// names must be `features`, in that order, answering `outputs` quantiles per row.
    pub fn load(bytes: &[u8], features: &[String], outputs: usize) -> Result<Self, String> {
        let mut booster =
            Booster::load_buffer(bytes).map_err(|e| format!("not an XGBoost model: {e}"))?;
        // One thread: a single row gains nothing from a thread pool, and the service runs
        // several predictions side by side.
        booster
            .set_param("nthread", "1")
            .map_err(|e| e.to_string())?;
        let names = booster.get_feature_names().map_err(|e| e.to_string())?;
        if names != features {
            return Err(format!(
                "the booster's features {names:?} are not the metadata's {features:?}"
            ));
        }
        Ok(Self {
            booster: Mutex::new(booster),
            width: features.len(),
            outputs,
        })
    }

    /// The quantiles of each row of `rows` (row-major, `width` values per row): `outputs` values
    /// per row, row after row.
    pub fn quantiles(&self, rows: &[f64]) -> Result<Vec<f64>, String> {
        let data: Vec<f32> = rows.iter().map(|v| *v as f32).collect();
        let n = data.len() / self.width;
        let matrix = DMatrix::from_dense(&data, n).map_err(|e| e.to_string())?;
        let booster = self
            .booster
            .lock()
            .map_err(|_| "booster lock poisoned".to_string())?;
        let out = booster.predict(&matrix).map_err(|e| e.to_string())?;
        if out.len() != n * self.outputs {
            return Err(format!(
                "the booster answered {} values for {n} rows; {} quantiles per row expected",
                out.len(),
                self.outputs
            ));
        }
        Ok(out.into_iter().map(f64::from).collect())
    }
}
