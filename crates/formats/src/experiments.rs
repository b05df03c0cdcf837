//! The experiment log (`output/experiments.csv`): one row per load run, appended by
//! `load-testing experiment` and by `replay export`, so that the trainer can tell which rows of
//! the development CSV belong to which run (by time) and hold whole runs out for testing.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One line of `experiments.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// `<name>-<start time>`, unique per run.
    pub run_id: String,
    pub name: String,
    /// The service (Prometheus job) the load went to.
    pub service: String,
    pub pattern: String,
    pub description: String,
    pub scenario: String,
    /// Replica count the run was made at, when it was set.
    pub replicas: Option<u32>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub sent: u64,
    pub errors: u64,
    pub dropped: u64,
    pub p95_ms: f64,
}

/// The file name of the experiment log inside the output directory.
pub const EXPERIMENTS_CSV: &str = "experiments.csv";

/// Appends one record, writing the header when the file is new.
pub fn append(path: &Path, record: &ExperimentRecord) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let new = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    let mut writer = csv::WriterBuilder::new().has_headers(new).from_writer(file);
    writer.serialize(record)?;
    writer.flush()?;
    Ok(())
}

/// Reads every record of an experiments file.
pub fn read(path: &Path) -> anyhow::Result<Vec<ExperimentRecord>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    reader
        .deserialize()
        .map(|r| r.with_context(|| format!("{}: unreadable record", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_append_with_one_header_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/experiments.csv");
        let t: DateTime<Utc> = "2026-04-04T12:00:00Z".parse().unwrap();
        let record = ExperimentRecord {
            run_id: "ramp-20260404T120000Z".into(),
            name: "ramp".into(),
            service: "orders".into(),
            pattern: "ramp".into(),
            description: "ramp 10 -> 200 rps".into(),
            scenario: "url".into(),
            replicas: Some(2),
            started_at: t,
            ended_at: t + chrono::Duration::minutes(30),
            sent: 10,
            errors: 0,
            dropped: 0,
            p95_ms: 12.5,
        };
        append(&path, &record).unwrap();
        append(
            &path,
            &ExperimentRecord {
                replicas: None,
                ..record.clone()
            },
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("run_id").count(), 1);
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], record);
        assert_eq!(back[1].replicas, None);
    }
}
