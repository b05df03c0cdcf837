//! `replay history`: a service's own request rate, read from the user's Prometheus over a range,
//! written as a trace (`t_seconds,requests`, one row per step), so that the replay can answer
//! "what would the ensemble and HPA have run on my last week".

use metrics_aggregator::prometheus::{PrometheusClient, service_request_rate};
use std::path::Path;
use std::time::Duration;

/// Points Prometheus answers per series at most; longer ranges are read in parts.
const MAX_POINTS: u64 = 10_000;

/// What was read.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Requests per step, from `start`.
    pub requests: Vec<f64>,
    /// Steps Prometheus had no sample for (written as 0).
    pub missing: usize,
}

/// Reads `job`'s request rate every `step` from `start` to `end` (Unix seconds).
pub async fn read(
    client: &PrometheusClient,
    job: &str,
    histograms: &[String],
    start: u64,
    end: u64,
    step: Duration,
) -> anyhow::Result<History> {
    let step_secs = step.as_secs().max(1);
    let promql = service_request_rate(job, step_secs, histograms);
    let steps = (end.saturating_sub(start) / step_secs) as usize;
    let mut requests = vec![None; steps];
    let mut from = start;
    while from < end {
        let to = (from + step_secs * (MAX_POINTS - 1)).min(end);
        let series = client
            .query_range(&promql, from + step_secs, to, step_secs)
            .await
            .map_err(|e| anyhow::anyhow!("{e} (PROMETHEUS_URL {})", client.base()))?;
        for (t, rate) in series.iter().flat_map(|s| &s.points) {
            // The rate at t covers the step ending at t.
            let index = ((*t as u64).saturating_sub(start + step_secs) / step_secs) as usize;
            if let Some(slot) = requests.get_mut(index)
                && rate.is_finite()
            {
                *slot = Some(rate.max(0.0) * step_secs as f64);
            }
        }
        from = to;
    }
    let missing = requests.iter().filter(|r| r.is_none()).count();
    if missing == requests.len() {
        anyhow::bail!(
            "Prometheus has no request rate of job {job:?} in that range: check the job name \
             (`count by (job) (request_duration_seconds_count)` lists them) and the range"
        );
    }
    Ok(History {
        requests: requests.into_iter().map(|r| r.unwrap_or(0.0)).collect(),
        missing,
    })
}

/// Writes `history` as a trace with rows `step` apart.
pub fn write(path: &Path, history: &History, step: Duration) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut writer = csv::Writer::from_path(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    writer.write_record(["t_seconds", "requests"])?;
    for (i, requests) in history.requests.iter().enumerate() {
        writer.write_record([
            (i as u64 * step.as_secs().max(1)).to_string(),
            format!("{}", requests.round()),
        ])?;
    }
    writer.flush()?;
    Ok(())
}
