//! Where the throughput phase's time went, read afterwards from the files the services write
//! anyway (so the measure itself is not disturbed): each voter's predictions CSV (`voted_at`,
//! stamped when its batch's model call returns, before the row is written and the vote sent)
//! and the scaler's decisions CSV (`decided_at`).

use anyhow::Context;
use chrono::{DateTime, Utc};
use std::path::Path;

/// How far one stage got with the phase's vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    /// Rows of the phase's services.
    pub done: u64,
    /// The latest of them.
    pub last: Option<DateTime<Utc>>,
}

/// The rows of `path` whose `service` starts with `prefix`, and the latest `time_column` among
/// them. A file that does not exist has none.
pub fn read(name: &str, path: &Path, time_column: &str, prefix: &str) -> anyhow::Result<Stage> {
    let mut stage = Stage {
        name: name.to_owned(),
        done: 0,
        last: None,
    };
    if !path.exists() {
        return Ok(stage);
    }
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no column {name}", path.display()))
    };
    let (service, time) = (column("service")?, column(time_column)?);
    for record in reader.records() {
        let record = record.with_context(|| format!("cannot read {}", path.display()))?;
        if !record.get(service).is_some_and(|s| s.starts_with(prefix)) {
            continue;
        }
        stage.done += 1;
        let at = record
            .get(time)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        stage.last = stage.last.max(at);
    }
    Ok(stage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_phase_rows_and_finds_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.csv");
        std::fs::write(
            &path,
            "decision_id,decided_at,service\n\
             1,2026-01-01T00:00:01.000Z,warm-0\n\
             2,2026-01-01T00:00:03.500Z,svc-1\n\
             3,2026-01-01T00:00:02.000Z,svc-2\n",
        )
        .unwrap();
        let stage = read("scaler", &path, "decided_at", "svc-").unwrap();
        assert_eq!(stage.done, 2);
        assert_eq!(
            stage.last.unwrap().to_rfc3339(),
            "2026-01-01T00:00:03.500+00:00"
        );
        assert!(read("scaler", &path, "voted_at", "svc-").is_err());
        let none = read("x", &dir.path().join("missing.csv"), "t", "svc-").unwrap();
        assert_eq!((none.done, none.last), (0, None));
    }
}
