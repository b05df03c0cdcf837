//! The development-mode CSV row of a feature vector: the contract between the aggregator, which
//! appends rows to `output/sockshop_metrics.csv`, and the trainer, which reads them back.
//!
//! One row per service per window; the feature columns follow the schema's order; a missing
//! optional value is an empty cell. The trainer labels a row by the row of the same service one
//! window later, so every column that labelling needs (p95 latency, error ratio, the window
//! times) is here.

use crate::{FEATURE_COUNT, FEATURE_SCHEMA, FeatureVector, Features, Message};
use chrono::{DateTime, Utc};

/// Columns before the features.
const LEADING: [&str; 6] = [
    "timestamp",
    "window_id",
    "service",
    "window_start",
    "poll_interval_sec",
    "produced_at",
];

/// The header of the development CSV.
pub fn csv_header() -> Vec<&'static str> {
    LEADING
        .iter()
        .copied()
        .chain(FEATURE_SCHEMA.iter().map(|spec| spec.name))
        .collect()
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl FeatureVector {
    /// The CSV cells of this vector, in [`csv_header`] order.
    pub fn csv_row(&self) -> Vec<String> {
        let mut row = vec![
            time(&self.window_end),
            self.window_id.to_string(),
            self.service.clone(),
            time(&self.window_start),
            self.poll_interval_sec.to_string(),
            time(&self.produced_at),
        ];
        row.extend(self.features.values().iter().map(|v| {
            if v.is_nan() {
                String::new()
            } else {
                v.to_string()
            }
        }));
        row
    }

    /// Reads a row written by [`FeatureVector::csv_row`] (cells in [`csv_header`] order).
    pub fn from_csv_row(cells: &[&str]) -> Result<Self, String> {
        let expected = LEADING.len() + FEATURE_COUNT;
        if cells.len() != expected {
            return Err(format!("{} cells, expected {expected}", cells.len()));
        }
        let parse_time = |i: usize| -> Result<DateTime<Utc>, String> {
            cells[i].parse().map_err(|e| format!("{}: {e}", LEADING[i]))
        };
        let mut values = [f64::NAN; FEATURE_COUNT];
        for (i, cell) in cells[LEADING.len()..].iter().enumerate() {
            if !cell.is_empty() {
                values[i] = cell
                    .parse()
                    .map_err(|_| format!("{}: {cell:?} is not a number", FEATURE_SCHEMA[i].name))?;
            }
        }
        let vector = FeatureVector {
            window_end: parse_time(0)?,
            window_id: cells[1].parse().map_err(|_| "window_id is not a number")?,
            service: cells[2].to_owned(),
            window_start: parse_time(3)?,
            poll_interval_sec: cells[4]
                .parse()
                .map_err(|_| "poll_interval_sec is not a number")?,
            produced_at: parse_time(5)?,
            features: Features::from_values(&values)?,
        };
        vector.validate()?;
        Ok(vector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_row_agree_and_round_trip() {
        let t: DateTime<Utc> = "2026-04-04T12:30:00Z".parse().unwrap();
        let mut values = [2.0; FEATURE_COUNT];
        values[FEATURE_COUNT - 1] = f64::NAN;
        let v = FeatureVector {
            service: "orders".into(),
            window_id: 1_775_305_800,
            window_start: t - chrono::Duration::seconds(30),
            window_end: t,
            poll_interval_sec: 30,
            produced_at: t,
            features: Features::from_values(&values).unwrap(),
        };
        let row = v.csv_row();
        assert_eq!(row.len(), csv_header().len());
        assert_eq!(row.last().map(String::as_str), Some(""));
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        assert_eq!(FeatureVector::from_csv_row(&cells).unwrap(), v);
        assert!(FeatureVector::from_csv_row(&cells[1..]).is_err());
    }
}
