//! The dataset: development-CSV rows assigned to the experiment runs they were collected in,
//! each with what the models forecast (the highest request rate of the next windows against
//! this one's) and what the SLA did next.
//!
//! A row is kept only when it lies inside a run (so it can be held out with its run) and when the
//! next windows of the same service over the longer horizon exist in the same run. Rows written
//! before the history features joined the schema get them computed here, by the aggregator's own
//! code, from the windows before them.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use contract::{FeatureVector, Sla};
use features::{FeatureBuilder, Observation, Quantiles};
use formats::experiments::ExperimentRecord;
use models::Horizons;
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

/// One window with what followed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Index into [`Dataset::runs`].
    pub run: usize,
    pub vector: FeatureVector,
    /// `ln((peak + floor) / (rate + floor))`: the highest request rate of the next windows over
    /// each horizon against this window's.
    pub targets: Horizons<f64>,
    /// The SLA was violated in one of the next scale-up horizon's windows.
    pub violation_ahead: bool,
    /// The replica count stayed the same over those windows (what "the current replicas will be
    /// overrun" can be checked against).
    pub steady_ahead: bool,
    /// This window itself violated the SLA (for the persistence baseline).
    pub violating_now: bool,
}

/// Why rows were not used.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dropped {
    pub outside_runs: usize,
    /// Rows of runs listed as excluded.
    pub excluded_runs: usize,
    /// Rows without the longer horizon's windows after them in their run.
    pub short_of_horizon: usize,
}

/// Which examples go where.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub calibration: Vec<usize>,
    pub held_out: Vec<usize>,
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

/// What the targets are made of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Targets {
    /// Windows ahead, per horizon.
    pub horizons: Horizons<u32>,
    /// Requests per second added to both rates of a ratio.
    pub rate_floor: f64,
    pub sla: Sla,
}

/// Whether a window violates the SLA.
pub fn violates(vector: &FeatureVector, sla: &Sla) -> bool {
    sla.violated_by(&vector.features)
}

/// Computes the history features and capacity estimates of rows that lack them (written before
/// they joined the schema), per service in time order, as the aggregator would have, with the
/// SLA `sla`. Rows that have them are left as they are.
pub fn complete_history(vectors: &mut [FeatureVector], sla: &Sla) {
    let mut order: Vec<usize> = (0..vectors.len())
        .filter(|i| vectors[*i].features.capacity_per_replica.is_none())
        .collect();
    order.sort_by(|a, b| {
        (&vectors[*a].service, vectors[*a].window_id)
            .cmp(&(&vectors[*b].service, vectors[*b].window_id))
    });
    let mut builders: HashMap<u32, FeatureBuilder> = HashMap::new();
    for i in order {
        let v = &vectors[i];
        let interval = v.poll_interval_sec;
        let builder = builders.entry(interval).or_insert_with(|| {
            let mut settings = features::FeatureSettings::new(
                features::DEFAULT_TREND_WINDOWS,
                u64::from(interval),
            );
            settings.capacity.sla = *sla;
            FeatureBuilder::with_settings(settings)
        });
        let f = &v.features;
        let latency = match (f.latency_p50, f.latency_p95, f.latency_p99) {
            (Some(p50), Some(p95), Some(p99)) => Some(Quantiles { p50, p95, p99 }),
            _ => None,
        };
        let observation = Observation {
            at_secs: v.window_id,
            request_rate: f.request_rate,
            error_rate: f.error_ratio * f.request_rate,
            latency,
            replicas: f.replicas.round().max(1.0) as u32,
            replicas_unscraped: 0,
            cpu_per_replica: f.cpu_per_replica,
            memory_per_replica: f.memory_per_replica,
            day_ago: None,
            week_ago: None,
        };
        if let Ok(rebuilt) = builder.push(&v.service, observation) {
            vectors[i].features = rebuilt;
        }
    }
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

/// Loads, completes the history features, assigns to runs and computes the targets; rows of
/// the `excluded` runs are left out.
pub fn load(
    data: &[PathBuf],
    experiments: &[PathBuf],
    excluded: &[String],
    targets: &Targets,
) -> anyhow::Result<Dataset> {
    let mut hasher = Sha256::new();
    let mut vectors = Vec::new();
    for path in data {
        hasher.update(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        vectors.extend(formats::dev_csv::read(path)?);
    }
    let mut runs: Vec<Run> = Vec::new();
    for path in experiments {
        hasher.update(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        runs.extend(formats::experiments::read(path)?.into_iter().map(to_run));
    }
    if let Some(unknown) = excluded
        .iter()
        .find(|id| !runs.iter().any(|r| &r.id == *id))
    {
        bail!("excluded run {unknown} is in none of the experiment logs");
    }
    let sha256 = format!("{:x}", hasher.finalize());
    complete_history(&mut vectors, &targets.sla);
    Ok(label(vectors, runs, excluded, sha256, targets))
}

/// Assigns vectors to runs and computes what followed each; pure, for tests.
pub fn label(
    vectors: Vec<FeatureVector>,
    runs: Vec<Run>,
    excluded: &[String],
    sha256: String,
    targets: &Targets,
) -> Dataset {
    let sla = &targets.sla;
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
    let (up, down) = (
        targets.horizons.up,
        targets.horizons.down.max(targets.horizons.up),
    );
    let floor = targets.rate_floor;
    for ((service, window_id), (run, vector)) in &by_window {
        let step = u64::from(vector.poll_interval_sec);
        let next: Option<Vec<&FeatureVector>> = (1..=u64::from(down))
            .map(|k| {
                by_window
                    .get(&(service.clone(), window_id + k * step))
                    .filter(|(r, _)| r == run)
                    .map(|(_, v)| v)
            })
            .collect();
        let Some(next) = next else {
            dropped.short_of_horizon += 1;
            continue;
        };
        let rate = vector.features.request_rate;
        let target = |windows: usize| {
            let peak = next[..windows]
                .iter()
                .map(|v| v.features.request_rate)
                .fold(0.0, f64::max);
            ((peak + floor) / (rate + floor)).ln()
        };
        let ahead = &next[..up as usize];
        examples.push(Example {
            run: *run,
            vector: vector.clone(),
            targets: Horizons {
                up: target(up as usize),
                down: target(down as usize),
            },
            violation_ahead: ahead.iter().any(|v| violates(v, sla)),
            steady_ahead: ahead
                .iter()
                .all(|v| v.features.replicas == vector.features.replicas),
            violating_now: violates(vector, sla),
        });
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
    /// Indices of the examples for fitting, for the corrections (`calibration` patterns) and
    /// held out (`held_out` patterns).
    pub fn split(&self, calibration: &[String], held_out: &[String]) -> Split {
        let mut split = Split::default();
        for (i, e) in self.examples.iter().enumerate() {
            let pattern = &self.runs[e.run].pattern;
            if held_out.contains(pattern) {
                split.held_out.push(i);
            } else if calibration.contains(pattern) {
                split.calibration.push(i);
            } else {
                split.train.push(i);
            }
        }
        split
    }

    /// Windows and windows followed by a violation per pattern, for the report.
    pub fn per_pattern(&self) -> BTreeMap<String, (usize, usize)> {
        let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for e in &self.examples {
            let entry = out.entry(self.runs[e.run].pattern.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(e.violation_ahead);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{FEATURE_COUNT, Features, feature_index};

    fn vector(service: &str, window_id: u64, rate: f64, p95: f64, replicas: f64) -> FeatureVector {
        let at = DateTime::from_timestamp(window_id as i64, 0).unwrap();
        let mut values = [f64::NAN; FEATURE_COUNT];
        values[feature_index("request_rate").unwrap()] = rate;
        values[feature_index("request_rate_per_replica").unwrap()] = rate / replicas;
        values[feature_index("error_ratio").unwrap()] = 0.0;
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
            consumer_group: None,
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

    const TARGETS: Targets = Targets {
        horizons: Horizons { up: 1, down: 2 },
        rate_floor: 1.0,
        sla: Sla::DEFAULT,
    };

    #[test]
    fn targets_read_the_next_windows_of_the_same_service_and_run() {
        let vectors = vec![
            vector("a", 110, 9.0, 0.1, 1.0),
            vector("a", 120, 19.0, 0.3, 1.0),
            vector("a", 130, 39.0, 0.1, 1.0),
            vector("b", 120, 9.0, 0.9, 1.0), // b's run is elsewhere: outside runs
            vector("a", 140, 9.0, 0.1, 2.0),
            vector("a", 150, 9.0, 0.1, 2.0), // no two windows after it
        ];
        let runs = vec![run("r1", "a", 100, 150), run("r2", "b", 500, 600)];
        let d = label(vectors, runs, &[], "h".into(), &TARGETS);
        let got: Vec<(u64, f64, f64, bool, bool)> = d
            .examples
            .iter()
            .map(|e| {
                (
                    e.vector.window_id,
                    (e.targets.up.exp() * 1e9).round() / 1e9,
                    (e.targets.down.exp() * 1e9).round() / 1e9,
                    e.violation_ahead,
                    e.steady_ahead,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (110, 2.0, 4.0, true, true),
                (120, 2.0, 2.0, false, true),
                (130, 0.25, 0.25, false, false),
            ]
        );
        assert_eq!(
            d.dropped,
            Dropped {
                outside_runs: 1,
                excluded_runs: 0,
                short_of_horizon: 2,
            }
        );
        assert_eq!(d.window_sec, 10);
    }

    #[test]
    fn split_by_pattern() {
        let vectors: Vec<FeatureVector> = (0..8)
            .map(|k| vector("a", 110 + k * 10, 5.0, 0.1, 1.0))
            .collect();
        let runs = vec![
            run("ramp", "a", 100, 145),
            run("calibration", "a", 145, 185),
            run("trace", "a", 185, 200),
        ];
        let d = label(vectors.clone(), runs.clone(), &[], "h".into(), &TARGETS);
        let split = d.split(&["calibration".into()], &["trace".into()]);
        assert_eq!(
            (
                split.train.len(),
                split.calibration.len(),
                split.held_out.len()
            ),
            (2, 1, 0)
        );
        let d = label(vectors, runs, &["ramp".into()], "h".into(), &TARGETS);
        assert_eq!(d.dropped.excluded_runs, 4);
    }

    #[test]
    fn older_rows_get_the_history_features() {
        let mut vectors: Vec<FeatureVector> = (0..5)
            .map(|k| vector("a", 110 + k * 10, 10.0 * (k + 1) as f64, 0.1, 1.0))
            .collect();
        complete_history(&mut vectors, &Sla::DEFAULT);
        let last = &vectors[4].features;
        assert_eq!(last.rate_min_recent, Some(11.0 / 51.0));
        assert!(last.capacity_per_replica.is_some());
    }
}
