//! Memory and CPU of the processes under test, read from `/proc/<pid>` (fleet's reader, the one
//! behind every service's `process_*` metrics).

use fleet::ops::{ProcessSample, sample_process};

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
}

/// Reads every watched process now.
pub fn sample_all(watched: &[Watched]) -> Vec<Option<ProcessSample>> {
    watched
        .iter()
        .map(|w| w.pid.and_then(sample_process))
        .collect()
}

/// The figures now, with the CPU used since `before` (taken by [`sample_all`] on the same list).
pub fn figures_since(watched: &[Watched], before: &[Option<ProcessSample>]) -> Vec<ProcessFigures> {
    watched
        .iter()
        .zip(before)
        .map(|(w, before)| {
            let sample = w.pid.and_then(sample_process);
            let cpu_during = match (sample, before) {
                (Some(now), Some(then)) => Some(now.cpu_seconds - then.cpu_seconds),
                _ => None,
            };
            ProcessFigures {
                name: w.name.clone(),
                pid: w.pid,
                sample,
                cpu_during,
            }
        })
        .collect()
}
