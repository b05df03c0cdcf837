//! The real traces of `../shared/traces/` as loads: read, cut, scaled and compressed by the load
//! generator's own replay code (`load_testing::trace`), so that the simulator and a live replay with
//! `load-testing` apply the same rates at the same moments.

use load_testing::pattern::Pattern;
use load_testing::trace::{ReplayOptions, read_trace, replay};
use std::path::Path;
use std::time::Duration;

/// A trace of the evaluation, and the part of it replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceSpec {
    /// Short name, for file names.
    pub key: &'static str,
    pub file: &'static str,
    pub title: &'static str,
    /// Trace minutes skipped at the start.
    pub start_minutes: u64,
    /// Trace minutes replayed; `None` for all of it.
    pub length_minutes: Option<u64>,
    /// Why this part.
    pub note: &'static str,
}

/// The traces the evaluation replays.
pub const STANDARD: [TraceSpec; 3] = [
    TraceSpec {
        key: "nasa",
        file: "nasa_http_jul1995_1min.csv",
        title: "NASA HTTP, July 1995",
        start_minutes: 0,
        length_minutes: None,
        note: "all 27.6 days",
    },
    TraceSpec {
        key: "alibaba",
        file: "alibaba2021_ms_6d9c26b9_1min.csv",
        title: "Alibaba microservice, 2021",
        start_minutes: 0,
        length_minutes: None,
        note: "all 11.85 hours",
    },
    TraceSpec {
        key: "twitter",
        file: "twitter_stream_aug2021_1min.csv",
        title: "Twitter sample stream, August 2021",
        start_minutes: 19 * 1440,
        length_minutes: Some(1410),
        note: "day 20, which the models never saw (held out in training), up to its collection gap",
    },
];

/// The trace of [`STANDARD`] named `key` (nasa, alibaba, twitter).
pub fn standard(key: &str) -> Option<&'static TraceSpec> {
    STANDARD.iter().find(|t| t.key == key)
}

/// A trace ready to replay.
#[derive(Debug, Clone)]
pub struct TraceLoad {
    pub pattern: Pattern,
    /// Seconds of replay.
    pub duration: f64,
    /// Trace minutes replayed.
    pub minutes: usize,
}

impl TraceLoad {
    /// Requests per second at `t` seconds into the replay.
    pub fn rate(&self, t: f64) -> f64 {
        if t >= self.duration {
            return 0.0;
        }
        let total = Duration::from_secs_f64(self.duration);
        self.pattern
            .rate_at(Duration::from_secs_f64(t.max(0.0)), total)
    }
}

/// Reads `file`, keeps the part from `start_minutes` for `length_minutes`, scales its busiest
/// minute to `peak_rps` (keeps the recorded rates without) and compresses it `compression`
/// times.
pub fn load(
    file: &Path,
    start_minutes: u64,
    length_minutes: Option<u64>,
    compression: f64,
    peak_rps: Option<f64>,
) -> anyhow::Result<TraceLoad> {
    let rows = read_trace(file)?;
    let pattern = replay(
        &rows,
        ReplayOptions {
            compression,
            peak_rps,
            start: Duration::from_secs(start_minutes * 60),
            length: length_minutes.map(|m| Duration::from_secs(m * 60)),
        },
    )?;
    let Pattern::Trace { rates, slot } = &pattern else {
        anyhow::bail!("{}: not a trace", file.display());
    };
    Ok(TraceLoad {
        duration: rates.len() as f64 * slot.as_secs_f64(),
        minutes: rates.len(),
        pattern,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alibaba_trace_at_one_minute_per_window() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces");
        let load = load(&dir.join(STANDARD[1].file), 0, None, 6.0, Some(500.0)).unwrap();
        assert_eq!(load.minutes, 711);
        assert!((load.duration - 7110.0).abs() < 1e-6);
        let peak = (0..7110)
            .map(|s| load.rate(f64::from(s)))
            .fold(0.0, f64::max);
        assert!((peak - 500.0).abs() < 1e-9, "{peak}");
        assert_eq!(load.rate(7110.0), 0.0, "no wrap-around");
    }
}
