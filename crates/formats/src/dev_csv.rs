//! The development CSV (`output/sockshop_metrics.csv`): one feature vector per row, appended by
//! the aggregator in development mode and by `replay export`, read back by the trainer, the
//! replay's calibration and the voters' predictions CSVs (which carry the same columns).
//!
//! One row per service per window; the feature columns follow the schema's order; a missing
//! optional value is an empty cell. The trainer labels a row by the row of the same service one
//! window later, so every column that labelling needs (p95 latency, error ratio, the window
//! times) is here.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use contract::{FEATURE_COUNT, FEATURE_SCHEMA, FeatureVector, Features, Message};
use std::path::Path;

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
pub fn header() -> Vec<&'static str> {
    LEADING
        .iter()
        .copied()
        .chain(FEATURE_SCHEMA.iter().map(|spec| spec.name))
        .collect()
}

/// A time as every file of the fleet writes it: RFC 3339, milliseconds, `Z`.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The cells of `vector`, in [`header`] order; a missing value is an empty cell.
pub fn row(vector: &FeatureVector) -> Vec<String> {
    let mut row = vec![
        time(&vector.window_end),
        vector.window_id.to_string(),
        vector.service.clone(),
        time(&vector.window_start),
        vector.poll_interval_sec.to_string(),
        time(&vector.produced_at),
    ];
    row.extend(vector.features.values().iter().map(|v| {
        if v.is_nan() {
            String::new()
        } else {
            v.to_string()
        }
    }));
    row
}

/// Reads a row written by [`row`] (cells in [`header`] order).
pub fn parse_row(cells: &[&str]) -> Result<FeatureVector, String> {
    Layout::current().read(cells)
}

/// Reads a whole development CSV; files of earlier versions (fewer feature columns) read with
/// the newer features missing. A row that is not a valid feature vector fails the read, with
/// its line.
pub fn read(path: &Path) -> anyhow::Result<Vec<FeatureVector>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let layout = Layout::from_header(&header).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a development CSV this version reads: {e}",
            path.display()
        )
    })?;
    reader
        .records()
        .enumerate()
        .map(|(i, record)| {
            let record = record?;
            let cells: Vec<&str> = record.iter().collect();
            layout
                .read(&cells)
                .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 2))
        })
        .collect()
}

/// Where each column of a development CSV is, read from its header. A file written before a
/// feature joined the schema reads with that feature missing (null); a column this build does
/// not know is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Positions of the leading columns, in [`LEADING`] order.
    leading: [usize; LEADING.len()],
    /// Position of each schema feature, where the file has it.
    features: [Option<usize>; FEATURE_COUNT],
    width: usize,
}

impl Layout {
    /// The layout of [`header`].
    pub fn current() -> Self {
        let header = header();
        Self::from_header(&header).unwrap_or_else(|_| unreachable!("header() is a layout"))
    }

    /// The layout of a file with this header.
    pub fn from_header(header: &[&str]) -> Result<Self, String> {
        let position = |name: &str| header.iter().position(|h| *h == name);
        let mut leading = [0; LEADING.len()];
        for (i, name) in LEADING.iter().enumerate() {
            leading[i] = position(name).ok_or_else(|| format!("no column {name:?}"))?;
        }
        let mut features = [None; FEATURE_COUNT];
        for (i, spec) in FEATURE_SCHEMA.iter().enumerate() {
            features[i] = position(spec.name);
            if features[i].is_none() && !spec.optional {
                return Err(format!("no column {:?}", spec.name));
            }
        }
        if let Some(unknown) = header
            .iter()
            .find(|h| !LEADING.contains(h) && contract::feature_index(h).is_none())
        {
            return Err(format!(
                "column {unknown:?} is not in this build's schema (written by a newer version?)"
            ));
        }
        Ok(Self {
            leading,
            features,
            width: header.len(),
        })
    }

    /// Reads one row of a file with this layout.
    pub fn read(&self, cells: &[&str]) -> Result<FeatureVector, String> {
        if cells.len() != self.width {
            return Err(format!("{} cells, expected {}", cells.len(), self.width));
        }
        let cell = |i: usize| cells[self.leading[i]];
        let parse_time = |i: usize| -> Result<DateTime<Utc>, String> {
            cell(i).parse().map_err(|e| format!("{}: {e}", LEADING[i]))
        };
        let mut values = [f64::NAN; FEATURE_COUNT];
        for (i, position) in self.features.iter().enumerate() {
            let Some(text) = position.map(|p| cells[p]).filter(|c| !c.is_empty()) else {
                continue;
            };
            values[i] = text
                .parse()
                .map_err(|_| format!("{}: {text:?} is not a number", FEATURE_SCHEMA[i].name))?;
        }
        let vector = FeatureVector {
            window_end: parse_time(0)?,
            window_id: cell(1).parse().map_err(|_| "window_id is not a number")?,
            service: cell(2).to_owned(),
            window_start: parse_time(3)?,
            poll_interval_sec: cell(4)
                .parse()
                .map_err(|_| "poll_interval_sec is not a number")?,
            produced_at: parse_time(5)?,
            features: Features::from_values(&values)?,
            consumer_group: None,
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
        values[contract::feature_index("error_ratio").unwrap()] = 0.5;
        let v = FeatureVector {
            service: "orders".into(),
            window_id: 1_775_305_800,
            window_start: t - chrono::Duration::seconds(30),
            window_end: t,
            poll_interval_sec: 30,
            produced_at: t,
            features: Features::from_values(&values).unwrap(),
            consumer_group: None,
        };
        let row = row(&v);
        assert_eq!(row.len(), header().len());
        assert_eq!(row.last().map(String::as_str), Some(""));
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        assert_eq!(parse_row(&cells).unwrap(), v);
        assert!(parse_row(&cells[1..]).is_err());
    }

    #[test]
    fn older_files_read_with_the_newer_features_missing() {
        let header = header();
        let keep = header
            .iter()
            .position(|h| *h == "cpu_per_replica_trend")
            .unwrap()
            + 1;
        let layout = Layout::from_header(&header[..keep]).unwrap();
        let t = "2026-04-04T12:30:00Z";
        let mut cells = vec![t, "1775305800", "orders", t, "30", t];
        cells.extend(["10", "5", "0", "2", "", "", "", "", "", "", "", ""]);
        let v = layout.read(&cells).unwrap();
        assert_eq!(v.features.request_rate, 10.0);
        assert_eq!(v.features.capacity_per_replica, None);
        let err = Layout::from_header(&["timestamp", "queue_length"]).unwrap_err();
        assert!(err.contains("window_id"), "{err}");
        let mut unknown = header.clone();
        unknown.push("queue_length");
        let err = Layout::from_header(&unknown).unwrap_err();
        assert!(err.contains("queue_length"), "{err}");
    }
}
