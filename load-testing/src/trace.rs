//! Real traces (`../shared/traces/*.csv`: `t_seconds,requests` per 60-second interval) turned
//! into a [`Pattern::Trace`]: compressed in time, scaled in rate, cut to a window.

use crate::pattern::Pattern;
use anyhow::{Context, bail};
use std::path::Path;
use std::time::Duration;

/// One trace row: requests in one interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceRow {
    pub t_seconds: f64,
    pub requests: f64,
}

/// Reads a trace CSV with the header `t_seconds,requests`.
pub fn read_trace(path: &Path) -> anyhow::Result<Vec<TraceRow>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("cannot open trace {}", path.display()))?;
    let headers = reader.headers()?.clone();
    if headers.iter().collect::<Vec<_>>() != ["t_seconds", "requests"] {
        bail!("{}: expected the header t_seconds,requests", path.display());
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let field = |k: usize| -> anyhow::Result<f64> {
            let v: f64 = record[k]
                .trim()
                .parse()
                .with_context(|| format!("{} line {}: not a number", path.display(), i + 2))?;
            if !v.is_finite() || v < 0.0 {
                bail!(
                    "{} line {}: {v} is negative or not finite",
                    path.display(),
                    i + 2
                );
            }
            Ok(v)
        };
        rows.push(TraceRow {
            t_seconds: field(0)?,
            requests: field(1)?,
        });
    }
    if rows.len() < 2 {
        bail!("{}: a trace needs at least two rows", path.display());
    }
    Ok(rows)
}

/// How to replay a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayOptions {
    /// 60 means one trace minute is replayed in one second.
    pub compression: f64,
    /// The trace's busiest interval becomes this rate; `None` keeps the recorded rates.
    pub peak_rps: Option<f64>,
    /// Skip this much of the trace (in trace time) before replaying.
    pub start: Duration,
    /// Replay at most this much of the trace (in trace time); `None` for all of it.
    pub length: Option<Duration>,
}

/// The replay pattern: each row's rate (requests / interval) for interval / compression.
pub fn replay(rows: &[TraceRow], options: ReplayOptions) -> anyhow::Result<Pattern> {
    if !(options.compression.is_finite() && options.compression > 0.0) {
        bail!("compression must be a positive number");
    }
    let interval = rows[1].t_seconds - rows[0].t_seconds;
    if interval <= 0.0 {
        bail!("trace times must increase");
    }
    let start = options.start.as_secs_f64();
    let end = options
        .length
        .map_or(f64::INFINITY, |l| start + l.as_secs_f64());
    let mut rates: Vec<f64> = rows
        .iter()
        .filter(|r| r.t_seconds >= start && r.t_seconds < end)
        .map(|r| r.requests / interval)
        .collect();
    if rates.is_empty() {
        bail!("the chosen window of the trace is empty");
    }
    if let Some(peak) = options.peak_rps {
        let max = rates.iter().copied().fold(0.0, f64::max);
        if max > 0.0 {
            rates.iter_mut().for_each(|r| *r *= peak / max);
        }
    }
    Ok(Pattern::Trace {
        rates,
        slot: Duration::from_secs_f64(interval / options.compression),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compresses_scales_and_cuts() {
        let rows: Vec<TraceRow> = [60.0, 120.0, 600.0, 30.0]
            .iter()
            .enumerate()
            .map(|(i, r)| TraceRow {
                t_seconds: i as f64 * 60.0,
                requests: *r,
            })
            .collect();
        let options = ReplayOptions {
            compression: 60.0,
            peak_rps: Some(100.0),
            start: Duration::from_secs(60),
            length: Some(Duration::from_secs(120)),
        };
        let Pattern::Trace { rates, slot } = replay(&rows, options).unwrap() else {
            panic!()
        };
        assert_eq!(slot, Duration::from_secs(1));
        assert_eq!(rates, vec![20.0, 100.0]);
    }

    #[test]
    fn reads_the_shared_traces() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/traces");
        let rows = read_trace(&dir.join("alibaba2021_ms_6d9c26b9_1min.csv")).unwrap();
        assert_eq!(rows.len(), 711);
        assert_eq!(rows[1].t_seconds, 60.0);
    }

    #[test]
    fn rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "time,count\n0,1\n60,2\n").unwrap();
        assert!(
            read_trace(&path)
                .unwrap_err()
                .to_string()
                .contains("header")
        );
        std::fs::write(&path, "t_seconds,requests\n0,1\n60,-2\n").unwrap();
        assert!(read_trace(&path).is_err());
    }
}
