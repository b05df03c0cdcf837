//! `replay export`: a trace through the simulated service under a policy, written as the
//! aggregator's development-mode CSV and an experiment log, so that the trainer learns from a
//! real trace's windows exactly as it learns from collected runs.
//!
//! The simulation runs the whole trace at once (the history features and the capacity estimate
//! carry on from window to window, as in a service that runs for weeks); the windows are then
//! cut into runs: at every collection gap of the trace (minutes without a request, which in the
//! Twitter trace are missing data, not quiet) and at the bounds of the named parts, so that whole
//! days can be fitted on, used for corrections, or held out.

use crate::simulation::{Load, Settings, WindowRecord, run_with};
use crate::traces::TraceLoad;
use crate::{catalog, policy::Oracle, service::ServiceModel};
use anyhow::Context;
use chrono::{DateTime, Utc};
use contract::{FeatureVector, Features};
use formats::dev_csv;
use formats::experiments::ExperimentRecord;
use std::path::Path;

/// Windows without load this long or longer are a gap in the trace, not a quiet spell.
const GAP_WINDOWS: usize = 5;

/// A named part of the trace, in trace days.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The experiment pattern its runs get.
    pub pattern: String,
    pub from_day: f64,
    pub to_day: f64,
}

impl Part {
    /// Parses `NAME:FROM-TO` (days, TO may be empty for the end).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (pattern, days) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: NAME:FROM-TO (trace days) expected"))?;
        let (from, to) = days
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: the days are FROM-TO"))?;
        let day = |d: &str, default: f64| -> Result<f64, String> {
            if d.trim().is_empty() {
                return Ok(default);
            }
            d.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{s:?}: {d:?} is not a number of days"))
        };
        let part = Part {
            pattern: pattern.trim().to_owned(),
            from_day: day(from, 0.0)?,
            to_day: day(to, f64::INFINITY)?,
        };
        if part.pattern.is_empty() || part.from_day >= part.to_day {
            return Err(format!("{s:?}: a name and FROM below TO expected"));
        }
        Ok(part)
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub windows: usize,
    pub runs: usize,
}

/// Replays `load` under `spec` and writes `<out>.csv` and `<out>.experiments.csv`.
#[allow(clippy::too_many_arguments)]
pub fn export(
    load: &TraceLoad,
    service: &str,
    model: &ServiceModel,
    settings: &Settings,
    spec: &catalog::PolicySpec,
    oracle: &Oracle,
    compression: f64,
    parts: &[Part],
    out: &Path,
) -> anyhow::Result<Exported> {
    let mut policy = catalog::build(spec, settings, oracle, None)?;
    let initial = policy
        .initial()
        .unwrap_or_else(|| oracle.needs().first().copied().unwrap_or(1));
    let rate = |t: f64| load.rate(t);
    let mut windows: Vec<(WindowRecord, Option<Features>)> = Vec::new();
    run_with(
        &Load {
            name: service.to_owned(),
            rate: &rate,
            duration: load.duration,
        },
        model,
        settings,
        policy.as_mut(),
        initial,
        None,
        &mut |record, features| windows.push((*record, features.copied())),
    );
    let day_seconds = 86_400.0 / compression;
    let part_of = |end: f64| {
        let day = (end - settings.interval / 2.0) / day_seconds;
        parts
            .iter()
            .position(|p| day >= p.from_day && day < p.to_day)
    };
    // A window is in a gap when it lies in a stretch of GAP_WINDOWS or more without load.
    let idle: Vec<bool> = windows.iter().map(|(w, _)| w.offered_rps <= 0.0).collect();
    let mut in_gap = vec![false; idle.len()];
    let mut i = 0;
    while i < idle.len() {
        let j = (i..idle.len()).find(|k| !idle[*k]).unwrap_or(idle.len());
        if j - i >= GAP_WINDOWS {
            in_gap[i..j].iter_mut().for_each(|g| *g = true);
        }
        i = j.max(i + 1);
    }
    let at = |seconds: f64| -> DateTime<Utc> {
        DateTime::from_timestamp_millis(((settings.epoch as f64 + seconds) * 1000.0).round() as i64)
            .unwrap_or_default()
    };
    let csv_path = out.with_extension("csv");
    let runs_path = out.with_extension("experiments.csv");
    if let Some(dir) = csv_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut rows = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    rows.write_record(dev_csv::header())?;
    let mut records = Vec::new();
    let mut current: Option<(usize, usize, f64)> = None; // (part, first window, start seconds)
    let mut written = 0;
    let close = |current: &mut Option<(usize, usize, f64)>, end: f64, records: &mut Vec<_>| {
        if let Some((part, first, start)) = current.take() {
            let pattern: &str = &parts[part].pattern;
            records.push(ExperimentRecord {
                run_id: format!("{pattern}-{service}-{first}"),
                name: pattern.to_owned(),
                service: service.to_owned(),
                pattern: pattern.to_owned(),
                description: format!("{} replayed under {spec}", service),
                scenario: "replay".into(),
                replicas: None,
                started_at: at(start),
                ended_at: at(end),
                sent: 0,
                errors: 0,
                dropped: 0,
                p95_ms: 0.0,
            });
        }
    };
    let mut last_end = 0.0;
    for (k, (record, features)) in windows.iter().enumerate() {
        let part = part_of(record.end).filter(|_| !in_gap[k]);
        let features = features.filter(|_| part.is_some());
        match (part, current) {
            (Some(p), Some((q, _, _))) if p == q => {}
            (Some(p), _) => {
                close(&mut current, last_end, &mut records);
                current = Some((p, k, record.end - settings.interval));
            }
            (None, _) => close(&mut current, last_end, &mut records),
        }
        last_end = record.end;
        let Some(features) = features else { continue };
        let vector = FeatureVector {
            service: service.to_owned(),
            window_id: (settings.epoch as f64 + record.end).round() as u64,
            window_start: at(record.end - settings.interval),
            window_end: at(record.end),
            poll_interval_sec: settings.interval.round() as u32,
            produced_at: at(record.end),
            features,
            consumer_group: None,
        };
        rows.write_record(dev_csv::row(&vector))?;
        written += 1;
    }
    close(&mut current, last_end, &mut records);
    rows.flush()?;
    let mut log = csv::Writer::from_path(&runs_path)
        .with_context(|| format!("cannot write {}", runs_path.display()))?;
    for r in &records {
        log.serialize(r)?;
    }
    log.flush()?;
    Ok(Exported {
        windows: written,
        runs: records.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_parse_with_open_ends() {
        assert_eq!(
            Part::parse("twitter:0-15").unwrap(),
            Part {
                pattern: "twitter".into(),
                from_day: 0.0,
                to_day: 15.0
            }
        );
        assert_eq!(Part::parse("held:18-").unwrap().to_day, f64::INFINITY);
        for bad in ["twitter", "twitter:5", "x:3-1", ":1-2", "x:a-2"] {
            assert!(Part::parse(bad).is_err(), "{bad}");
        }
    }
}
