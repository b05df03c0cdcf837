//! The voters evaluate XGBoost boosters in Rust (`models::Xgb`); libxgboost trains them. Both
//! must give the same quantiles, to the bit, for the same inputs, on the shipped boosters.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use xgb::{Booster, DMatrix};

/// A small deterministic generator (xorshift), so that a failure can be reproduced.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn the_rust_booster_predicts_as_libxgboost() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/xgboost");
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    let features: Vec<String> = serde_json::from_value(metadata["features"].clone()).unwrap();
    let width = features.len();
    // Inputs across and beyond the trained range, some exactly on split conditions (a value
    // equal to its node's condition goes right), some missing (the node's default way).
    let mut rng = Rng(0x5eed);
    let rows = 4_000;
    let mut data = Vec::with_capacity(rows * width);
    for _ in 0..rows * width {
        let u = rng.next();
        data.push(if u < 0.03 {
            f64::NAN
        } else if u < 0.2 {
            [0.0, 0.5, 1.0, 2.0307693481445312, -1.0][(u * 1000.0) as usize % 5]
        } else {
            rng.next() * 12.0 - 4.0
        });
    }
    let data32: Vec<f32> = data.iter().map(|v| *v as f32).collect();
    for file in ["up.ubj", "down.ubj"] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let rust = models::Xgb::load(&bytes, &features, 7).unwrap();
        let ours = rust.quantiles(&data).unwrap();
        let mut booster = Booster::load_buffer(&bytes).unwrap();
        booster.set_param("nthread", "1").unwrap();
        let matrix = DMatrix::from_dense(&data32, rows).unwrap();
        let theirs = booster.predict(&matrix).unwrap();
        assert_eq!(ours.len(), theirs.len(), "{file}");
        let differences: Vec<f64> = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - f64::from(*b)).abs())
            .filter(|d| *d != 0.0)
            .collect();
        assert!(
            differences.is_empty(),
            "{file}: the Rust booster differs from libxgboost on {} of {} outputs, by up to {}",
            differences.len(),
            ours.len(),
            differences.iter().copied().fold(0.0, f64::max)
        );
    }
}
