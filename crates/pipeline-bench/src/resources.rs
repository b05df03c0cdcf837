//! Memory and CPU of the processes under test, read from `/proc/<pid>` (fleet's reader, the one
//! behind every service's `process_*` metrics).

use service_runtime::ops::{ProcessSample, sample_process};
use std::time::Instant;

/// A process to watch.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: Option<u32>,
}

/// A process's figures at the end of the throughput phase.
#[derive(Debug, Clone)]
pub struct ProcessFigures {
    pub name: String,
    pub pid: Option<u32>,
    /// `None` when the process is gone or unreadable.
    pub sample: Option<ProcessSample>,
    /// CPU seconds it used during the throughput phase.
    pub cpu_during: Option<f64>,
    /// `cpu_during` over the wall time between the two readings: 1.0 is one core busy.
    pub cpu_share: Option<f64>,
}

/// Every watched process read at one moment.
pub struct Readings {
    at: Instant,
    samples: Vec<Option<ProcessSample>>,
}

/// Reads every watched process now.
pub fn sample_all(watched: &[Watched]) -> Readings {
    Readings {
        at: Instant::now(),
        samples: watched
            .iter()
            .map(|w| w.pid.and_then(sample_process))
            .collect(),
    }
}

/// The figures now, with the CPU used since `before` (taken by [`sample_all`] on the same list)
/// and its share of the time between the readings.
pub fn figures_since(watched: &[Watched], before: &Readings) -> Vec<ProcessFigures> {
    let after = sample_all(watched);
    let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
    watched
        .iter()
        .zip(before.samples.iter().zip(after.samples))
        .map(|(w, (then, now))| {
            let cpu_during = match (now, then) {
                (Some(now), Some(then)) => Some(now.cpu_seconds - then.cpu_seconds),
                _ => None,
            };
            ProcessFigures {
                name: w.name.clone(),
                pid: w.pid,
                sample: now,
                cpu_during,
                cpu_share: cpu_during.map(|cpu| cpu / wall),
            }
        })
        .collect()
}
