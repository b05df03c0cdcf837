//! The labelled dataset: development-CSV rows assigned to the experiment runs they were
//! collected in, each labelled by whether the *next* window of the same service violated the SLA.
//!
//! A row is kept only when it lies inside a run (so it can be held out with its run), when the
//! next window of the same service exists and belongs to the same run, and when the replica count
//! did not change between the two (the models predict at the current replica count).

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use contract::{FeatureVector, csv_header};
use loadgen::experiment::{ExperimentRecord, read_records};
use models::Sla;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One experiment run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub pattern: String,
    pub service: String,
    pub replicas: Option<u32>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// One labelled window.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Index into [`Dataset::runs`].
    pub run: usize,
    pub vector: FeatureVector,
    /// The next window violated the SLA.
    pub label: bool,
    /// This window itself violated the SLA (for the persistence baseline).
    pub violating_now: bool,
}

/// Why rows were not used.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Dropped {
    pub outside_runs: usize,
    /// Rows of runs listed as excluded.
    pub excluded_runs: usize,
    pub no_next_window: usize,
    pub replicas_changed: usize,
}

/// Everything the trainer learns and evaluates from.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub runs: Vec<Run>,
    pub examples: Vec<Example>,
    pub dropped: Dropped,
    /// SHA-256 of the input files, in the order given.
    pub sha256: String,
    /// The aggregator window the rows were collected at.
    pub window_sec: u32,
}

/// Whether a window violates the SLA.
pub fn violates(vector: &FeatureVector, sla: &Sla) -> bool {
    sla.violated_by(&vector.features)
}

/// Reads the development CSVs (header checked against the contract).
pub fn read_vectors(path: &Path) -> anyhow::Result<Vec<FeatureVector>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    if header != csv_header() {
        bail!(
            "{} does not have the columns of this version's development CSV (contract::csv_header)",
            path.display()
        );
    }
    reader
        .records()
        .enumerate()
        .map(|(i, record)| {
            let record = record?;
            let cells: Vec<&str> = record.iter().collect();
            FeatureVector::from_csv_row(&cells)
                .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 2))
        })
        .collect()
}

fn to_run(record: ExperimentRecord) -> Run {
    Run {
        id: record.run_id,
        pattern: record.pattern,
        service: record.service,
        replicas: record.replicas,
        started_at: record.started_at,
        ended_at: record.ended_at,
    }
}

/// Run ids listed in an exclusion file (`run_id  # why` per line); none when the file is absent.
pub fn read_excluded(path: &Path) -> anyhow::Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Loads, assigns to runs and labels; rows of the `excluded` runs are left out.
pub fn load(
    data: &[PathBuf],
    experiments: &Path,
    excluded: &[String],
    sla: &Sla,
) -> anyhow::Result<Dataset> {
    let mut hasher = Sha256::new();
    let mut vectors = Vec::new();
    for path in data {
        hasher.update(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        vectors.extend(read_vectors(path)?);
    }
    hasher.update(
        std::fs::read(experiments)
            .with_context(|| format!("cannot read {}", experiments.display()))?,
    );
    let runs: Vec<Run> = read_records(experiments)?.into_iter().map(to_run).collect();
    if let Some(unknown) = excluded
        .iter()
        .find(|id| !runs.iter().any(|r| &r.id == *id))
    {
        bail!("excluded run {unknown} is not in {}", experiments.display());
    }
    let sha256 = format!("{:x}", hasher.finalize());
    Ok(label(vectors, runs, excluded, sha256, sla))
}

/// Assigns vectors to runs and labels them; pure, for tests.
pub fn label(
    vectors: Vec<FeatureVector>,
    runs: Vec<Run>,
    excluded: &[String],
    sha256: String,
    sla: &Sla,
) -> Dataset {
    let mut dropped = Dropped::default();
    let window_sec = most_common(vectors.iter().map(|v| v.poll_interval_sec)).unwrap_or(0);
    // (service, window_id) -> (run, vector)
    let mut by_window: BTreeMap<(String, u64), (usize, FeatureVector)> = BTreeMap::new();
    for v in vectors {
        let run = runs.iter().position(|r| {
            r.service == v.service && v.window_start >= r.started_at && v.window_end <= r.ended_at
        });
        match run {
            Some(run) if excluded.contains(&runs[run].id) => dropped.excluded_runs += 1,
            Some(run) => {
                by_window.insert((v.service.clone(), v.window_id), (run, v));
            }
            None => dropped.outside_runs += 1,
        }
    }
    let mut examples = Vec::new();
    for ((service, window_id), (run, vector)) in &by_window {
        let next_id = window_id + u64::from(vector.poll_interval_sec);
        match by_window.get(&(service.clone(), next_id)) {
            Some((next_run, next)) if next_run == run => {
                if next.features.replicas != vector.features.replicas {
                    dropped.replicas_changed += 1;
                    continue;
                }
                examples.push(Example {
                    run: *run,
                    vector: vector.clone(),
                    label: violates(next, sla),
                    violating_now: violates(vector, sla),
                });
            }
            _ => dropped.no_next_window += 1,
        }
    }
    Dataset {
        runs,
        examples,
        dropped,
        sha256,
        window_sec,
    }
}

fn most_common(values: impl Iterator<Item = u32>) -> Option<u32> {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(v, n)| (*n, *v))
        .map(|(v, _)| v)
}

impl Dataset {
    /// Indices of the examples whose run's pattern is (or is not) held out.
    pub fn split(&self, held_out: &[String]) -> (Vec<usize>, Vec<usize>) {
        (0..self.examples.len()).partition(|i| {
            let pattern = &self.runs[self.examples[*i].run].pattern;
            !held_out.contains(pattern)
        })
    }

    /// Example counts and violations per pattern, for the report.
    pub fn per_pattern(&self) -> BTreeMap<String, (usize, usize)> {
        let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for e in &self.examples {
            let entry = out.entry(self.runs[e.run].pattern.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(e.label);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{FEATURE_COUNT, Features, feature_index};

    fn vector(service: &str, window_id: u64, p95: f64, replicas: f64) -> FeatureVector {
        let at = DateTime::from_timestamp(window_id as i64, 0).unwrap();
        let mut values = [0.0; FEATURE_COUNT];
        values[feature_index("latency_p95").unwrap()] = p95;
        values[feature_index("replicas").unwrap()] = replicas;
        FeatureVector {
            service: service.into(),
            window_id,
            window_start: at - chrono::Duration::seconds(10),
            window_end: at,
            poll_interval_sec: 10,
            produced_at: at,
            features: Features::from_values(&values).unwrap(),
        }
    }

    fn run(id: &str, service: &str, from: i64, to: i64) -> Run {
        Run {
            id: id.into(),
            pattern: id.into(),
            service: service.into(),
            replicas: Some(1),
            started_at: DateTime::from_timestamp(from, 0).unwrap(),
            ended_at: DateTime::from_timestamp(to, 0).unwrap(),
        }
    }

    const SLA: Sla = Sla {
        p95_seconds: 0.25,
        error_ratio: 0.05,
    };

    #[test]
    fn labels_read_the_next_window_of_the_same_service_and_run() {
        let vectors = vec![
            vector("a", 110, 0.1, 1.0),
            vector("a", 120, 0.3, 1.0),
            vector("a", 130, 0.1, 1.0),
            vector("b", 120, 0.9, 1.0), // b's run is elsewhere: outside runs
            vector("a", 140, 0.1, 2.0), // replicas changed from 130
            vector("a", 150, 0.1, 2.0), // last of the run: no next window
        ];
        let runs = vec![run("r1", "a", 100, 150), run("r2", "b", 500, 600)];
        let d = label(vectors, runs, &[], "h".into(), &SLA);
        let labels: Vec<(u64, bool, bool)> = d
            .examples
            .iter()
            .map(|e| (e.vector.window_id, e.label, e.violating_now))
            .collect();
        assert_eq!(
            labels,
            vec![(110, true, false), (120, false, true), (140, false, false)]
        );
        assert_eq!(
            d.dropped,
            Dropped {
                outside_runs: 1,
                excluded_runs: 0,
                no_next_window: 1,
                replicas_changed: 1
            }
        );
        assert_eq!(d.window_sec, 10);
    }

    #[test]
    fn split_by_pattern() {
        let vectors = vec![
            vector("a", 110, 0.1, 1.0),
            vector("a", 120, 0.1, 1.0),
            vector("a", 130, 0.1, 1.0),
        ];
        let runs = vec![run("ramp", "a", 100, 125), run("trace", "a", 125, 200)];
        let d = label(vectors.clone(), runs.clone(), &[], "h".into(), &SLA);
        assert_eq!(
            d.examples.len(),
            1,
            "the window ending at 130 straddles the two runs"
        );
        let (train, test) = d.split(&["trace".into()]);
        assert_eq!((train.len(), test.len()), (1, 0));
        let d = label(vectors, runs, &["ramp".into()], "h".into(), &SLA);
        assert_eq!((d.examples.len(), d.dropped.excluded_runs), (0, 2));
    }
}
