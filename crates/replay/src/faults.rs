//! `replay faults`: the traces with injected faults (issue 15), under HPA, the seed's threshold
//! scaler and the ensemble with and without anomaly awareness, and the detector's precision and
//! recall on what was injected.
//!
//! Three dependency slowdowns (at a quarter, half and three quarters of the run) and three
//! scrape losses between them (half the replicas not scraped; then every replica scraped but
//! its request metrics gone, so the load reads as zero; then half again), each
//! `--fault-minutes` of replay long. During a slowdown
//! every request also calls a dependency that serves 60 % of the load offered when it began
//! (`SLOWED_SHARE`), `SLOW_CALL_SEC` a call, holding its replica's slot: latency and errors rise,
//! and more replicas only queue more requests at the dependency.

use crate::catalog::{PolicySpec, Trained};
use crate::evaluate::{Replayed, run_policies};
use crate::policy::{Capacities, Oracle};
use crate::service::{ServiceModel, Slowdown};
use crate::simulation::{Faults, Run, ScrapeLoss, Settings, WindowRecord};
use crate::traces::TraceLoad;
use std::fmt::Write;

/// Seconds a call to the slowed dependency takes.
pub const SLOW_CALL_SEC: f64 = 0.4;
/// What the slowed dependency serves, as a share of the load offered when the slowdown began.
pub const SLOWED_SHARE: f64 = 0.6;
/// Share of the replicas not scraped during a scrape loss.
pub const LOST_SHARE: f64 = 0.5;
/// Windows after a fault in which a flag still counts as caused by it (queues drain).
const AFTERMATH_WINDOWS: f64 = 6.0;

/// The policies compared with faults.
pub fn policies() -> Vec<PolicySpec> {
    vec![
        PolicySpec::Hpa(
            crate::catalog::REFERENCE_HPA,
            crate::catalog::HPA_STABILIZATION,
        ),
        PolicySpec::Threshold,
        PolicySpec::Ensemble("majority", None),
        PolicySpec::EnsembleAware,
    ]
}

/// The faults of a run of `duration` seconds on `load`, each `length` seconds.
pub fn schedule(load: &TraceLoad, length: f64) -> Faults {
    let at = |share: f64| load.duration * share;
    Faults {
        slowdowns: [0.25, 0.5, 0.75]
            .map(|s| Slowdown {
                start: at(s),
                end: at(s) + length,
                call: SLOW_CALL_SEC,
                slots: (SLOWED_SHARE * load.rate(at(s)) * SLOW_CALL_SEC)
                    .round()
                    .max(1.0) as usize,
            })
            .to_vec(),
        scrape_losses: [(0.375, false), (0.625, true), (0.875, false)]
            .map(|(s, requests_only)| ScrapeLoss {
                start: at(s),
                end: at(s) + length,
                share: LOST_SHARE,
                requests_only,
            })
            .to_vec(),
    }
}

/// What one policy did in the faults.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaultFigures {
    pub policy: String,
    pub violation_minutes: f64,
    pub replica_minutes: f64,
    /// Replicas added during the slowdowns: the most that existed in each less those at its
    /// start, summed.
    pub added_in_slowdowns: u32,
    /// Of those, beyond what the trace's load asked for meanwhile (the oracle's count over the
    /// same windows, which knows nothing of the fault), summed over the slowdowns.
    pub added_beyond_load: u32,
    /// Of those, beyond what the same policy added over the same windows in its run without the
    /// faults (the fault's own effect; the earlier faults may have left the two runs at other
    /// counts), summed over the slowdowns; `None` without that run.
    pub added_beyond_own: Option<u32>,
    /// Replicas removed during the scrape losses, likewise.
    pub removed_in_scrape_losses: u32,
}

fn within(w: &WindowRecord, start: f64, end: f64) -> bool {
    w.end > start && w.end <= end
}

/// What the load alone asked for during each slowdown: the rise of `needs` (one count per
/// window of `interval` seconds, the oracle's) over it.
fn load_rise(needs: &[u32], interval: f64, start: f64, end: f64) -> u32 {
    let at = |t: f64| ((t / interval).floor().max(0.0) as usize).min(needs.len().saturating_sub(1));
    let before = needs.get(at(start).saturating_sub(1)).copied().unwrap_or(0);
    let most = needs
        .get(at(start)..at(end).max(at(start) + 1).min(needs.len()))
        .and_then(|n| n.iter().copied().max())
        .unwrap_or(before);
    most.saturating_sub(before)
}

/// How far the count of a run's `windows` rose (`up`) or fell during `start..end`: the most
/// (or fewest) replicas that existed in it against those at its start.
fn change(windows: &[WindowRecord], start: f64, end: f64, up: bool) -> u32 {
    let before = windows
        .iter()
        .rfind(|w| w.end <= start)
        .map_or(0, |w| w.existing);
    let during = windows.iter().filter(|w| within(w, start, end));
    if up {
        during
            .map(|w| w.existing)
            .max()
            .unwrap_or(before)
            .saturating_sub(before)
    } else {
        before.saturating_sub(during.map(|w| w.existing).min().unwrap_or(before))
    }
}

/// The figures of `run` under `faults`; `needs` is the oracle's count per window of `interval`
/// seconds (what the load asked for), `clean` the same policy's run without the faults.
pub fn figures(
    run: &Run,
    faults: &Faults,
    needs: &[u32],
    interval: f64,
    clean: Option<&Run>,
) -> FaultFigures {
    let beyond = |baseline: &dyn Fn(f64, f64) -> u32| -> u32 {
        faults
            .slowdowns
            .iter()
            .map(|s| {
                change(&run.windows, s.start, s.end, true).saturating_sub(baseline(s.start, s.end))
            })
            .sum()
    };
    FaultFigures {
        policy: run.summary.policy.clone(),
        violation_minutes: run.summary.violation_minutes,
        replica_minutes: run.summary.replica_minutes,
        added_in_slowdowns: beyond(&|_, _| 0),
        added_beyond_load: beyond(&|start, end| load_rise(needs, interval, start, end)),
        added_beyond_own: clean
            .map(|clean| beyond(&|start, end| change(&clean.windows, start, end, true))),
        removed_in_scrape_losses: faults
            .scrape_losses
            .iter()
            .map(|s| change(&run.windows, s.start, s.end, false))
            .sum(),
    }
}

/// The detector's precision and recall in an anomaly-aware run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Detection {
    /// Share of the slowdowns' windows flagged as not load.
    pub slowdown_recall: f64,
    /// Share of the scrape losses' windows flagged as suspect telemetry.
    pub scrape_recall: f64,
    /// Share of flagged windows within a fault or the few windows after it.
    pub precision: f64,
    pub flagged: usize,
    /// Of the flagged windows outside the faults, those where the trace itself offered no
    /// request: the trace's own outages, a loss of traffic the detector is right to flag.
    pub silent: usize,
    pub windows: usize,
}

pub fn detection(run: &Run, faults: &Faults, interval: f64) -> Detection {
    let after = AFTERMATH_WINDOWS * interval;
    let share = |hit: usize, of: usize| if of == 0 { 0.0 } else { hit as f64 / of as f64 };
    let recall = |spans: &[(f64, f64)], flag: fn(&WindowRecord) -> bool| {
        let inside: Vec<&WindowRecord> = run
            .windows
            .iter()
            .filter(|w| spans.iter().any(|(s, e)| within(w, *s, *e)))
            .collect();
        share(inside.iter().filter(|w| flag(w)).count(), inside.len())
    };
    let slow: Vec<(f64, f64)> = faults.slowdowns.iter().map(|s| (s.start, s.end)).collect();
    let lost: Vec<(f64, f64)> = faults
        .scrape_losses
        .iter()
        .map(|s| (s.start, s.end))
        .collect();
    let flagged: Vec<&WindowRecord> = run
        .windows
        .iter()
        .filter(|w| w.not_load || w.suspect_telemetry)
        .collect();
    let is_caused = |w: &WindowRecord| {
        slow.iter()
            .chain(&lost)
            .any(|(s, e)| within(w, *s, *e + after))
    };
    let caused = flagged.iter().filter(|w| is_caused(w)).count();
    let silent = flagged
        .iter()
        .filter(|w| !is_caused(w) && w.offered_rps <= 0.0)
        .count();
    Detection {
        slowdown_recall: recall(&slow, |w| w.not_load),
        scrape_recall: recall(&lost, |w| w.suspect_telemetry),
        precision: share(caused, flagged.len()),
        flagged: flagged.len(),
        silent,
        windows: run.windows.len(),
    }
}

/// One trace, with and without the faults.
pub struct Study {
    pub title: String,
    pub faulty: Vec<FaultFigures>,
    pub clean: Vec<FaultFigures>,
    pub detection: Detection,
    /// The detector in the anomaly-aware ensemble's run without faults (every flag is outside
    /// a fault).
    pub clean_detection: Detection,
}

/// Runs the study on `load`.
pub fn study(
    title: &str,
    load: &TraceLoad,
    model: &ServiceModel,
    settings: &Settings,
    trained: &Trained,
    fault_minutes: f64,
    jobs: usize,
) -> anyhow::Result<Study> {
    let faults = schedule(load, fault_minutes * 60.0);
    let faulty_settings = Settings {
        faults: faults.clone(),
        ..settings.clone()
    };
    // The policies here take only their first count from the oracle.
    let capacities = Capacities::rough(model, settings.guardrails.max_replicas);
    let oracle = Oracle::plan(&|t| load.rate(t), load.duration, &capacities, settings);
    let replayed = |settings| Replayed {
        name: title,
        load,
        oracle: &oracle,
        model,
        settings,
    };
    let policies = policies();
    let faulty = run_policies(
        &[replayed(&faulty_settings)],
        &policies,
        Some(trained),
        jobs,
    )?
    .pop()
    .unwrap_or_default();
    let clean = run_policies(&[replayed(settings)], &policies, Some(trained), jobs)?
        .pop()
        .unwrap_or_default();
    let aware_run = |runs: &[Run], specs: &[PolicySpec]| -> anyhow::Result<Run> {
        specs
            .iter()
            .position(|p| *p == PolicySpec::EnsembleAware)
            .and_then(|i| runs.get(i).cloned())
            .ok_or_else(|| anyhow::anyhow!("the anomaly-aware ensemble did not run"))
    };
    let aware = aware_run(&faulty, &policies)?;
    let clean_aware = aware_run(&clean, &policies)?;
    let none = Faults::default();
    Ok(Study {
        title: title.to_owned(),
        faulty: faulty
            .iter()
            .zip(&clean)
            .map(|(r, c)| figures(r, &faults, oracle.needs(), settings.interval, Some(c)))
            .collect(),
        clean: clean
            .iter()
            .map(|r| figures(r, &none, oracle.needs(), settings.interval, None))
            .collect(),
        detection: detection(&aware, &faults, settings.interval),
        clean_detection: detection(&clean_aware, &none, settings.interval),
    })
}

/// The study as Markdown.
pub fn report(study: &Study) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {}\n", study.title);
    let _ = writeln!(
        out,
        "| policy | violation minutes | replica-minutes | replicas added in slowdowns | of them beyond what the load asked for | of them beyond its own run without faults | replicas removed in scrape losses |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for f in &study.faulty {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.0} | {} | {} | {} | {} |",
            f.policy,
            f.violation_minutes,
            f.replica_minutes,
            f.added_in_slowdowns,
            f.added_beyond_load,
            f.added_beyond_own.map_or("-".to_owned(), |n| n.to_string()),
            f.removed_in_scrape_losses
        );
    }
    let d = &study.detection;
    let _ = writeln!(
        out,
        "\nDetector (anomaly-aware ensemble's run): slowdown windows flagged as not load {:.0} %, \
         scrape-loss windows flagged as suspect telemetry {:.0} %, precision {:.0} % ({} of {} windows flagged; \
         of those outside the faults, {} where the trace itself offered no request, its own outages).",
        d.slowdown_recall * 100.0,
        d.scrape_recall * 100.0,
        d.precision * 100.0,
        d.flagged,
        d.windows,
        d.silent
    );
    let clean = &study.clean_detection;
    let _ = writeln!(
        out,
        "\nWithout faults: {} of {} windows flagged ({:.2} %), {} of them where the trace itself offered no request.\n",
        clean.flagged,
        clean.windows,
        if clean.windows == 0 {
            0.0
        } else {
            clean.flagged as f64 / clean.windows as f64 * 100.0
        },
        clean.silent
    );
    let _ = writeln!(
        out,
        "| policy, no faults | violation minutes | replica-minutes |"
    );
    let _ = writeln!(out, "|---|---:|---:|");
    for f in &study.clean {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.0} |",
            f.policy, f.violation_minutes, f.replica_minutes
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{WindowRecord, change, load_rise};

    fn windows(counts: &[u32]) -> Vec<WindowRecord> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &existing)| WindowRecord {
                end: (i as f64 + 1.0) * 10.0,
                offered_rps: 0.0,
                ready: existing,
                existing,
                p95: None,
                violation: false,
                capacity_rps: None,
                not_load: false,
                suspect_telemetry: false,
            })
            .collect()
    }

    #[test]
    fn a_change_is_against_the_count_at_the_start() {
        // Windows ending at 10..60 s; the span 20..50 s holds the windows ending at 30, 40, 50.
        let run = windows(&[2, 3, 5, 4, 1, 6]);
        assert_eq!(change(&run, 20.0, 50.0, true), 2, "from 3 up to 5");
        assert_eq!(change(&run, 20.0, 50.0, false), 2, "from 3 down to 1");
        assert_eq!(change(&run, 60.0, 90.0, true), 0, "no window in the span");
        assert_eq!(change(&[], 0.0, 10.0, true), 0);
    }

    #[test]
    fn the_load_rise_is_the_oracles_over_the_span() {
        let needs = [2, 2, 3, 5, 4, 2];
        // Windows 2 to 4 (20 s to 50 s): from 2 before to 5.
        assert_eq!(load_rise(&needs, 10.0, 20.0, 50.0), 3);
        // A falling load asked for nothing.
        assert_eq!(load_rise(&needs, 10.0, 40.0, 60.0), 0);
        assert_eq!(load_rise(&[], 10.0, 0.0, 10.0), 0);
    }
}
