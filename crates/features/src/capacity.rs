//! What one replica of a service carries within its SLA, learned online from the service's own
//! windows.
//!
//! Every steady window is evidence: at this load per replica the service kept, or broke, its SLA.
//! Steady means the replica count is the one of the window before (a starting replica is not
//! capacity); a window over the SLA counts after one within it only when its load did not jump
//! (a jump within the window makes its mean understate what broke it), and after one over it
//! only when that one counted and the load did not fall (a sustained overload is capacity; a
//! backlog left by a burst or by a change of replicas is not). Evidence is counted in bins of
//! load 5 % wide, for all replica counts together and per scale band (1, 2, 3-4, 5-8, ...
//! replicas: one replica alone carries less than each of ten behind a balancer). The capacity at
//! a count is one bin above the highest load carried in at least [`MIN_CARRIED`] windows, but
//! never into a load where that count's band violates: its violating share per bin, made
//! monotone in the load (pool adjacent violators: more load never makes a violation less
//! likely), over [`VIOLATING_SHARE`].
//!
//! Before there is evidence the estimate is a cautious prior. A service run below its capacity
//! learns it by being run one bin hotter at a time; the first violations above it set the
//! bound. Latency is not extrapolated: near saturation it rises too steeply (and for a service
//! of many slots too late) to say where the bound lies before it is reached. Old evidence fades
//! (a bin's counts are halved past [`BIN_MEMORY`] windows), so a release that makes the service
//! slower is learned too.

use contract::Sla;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Width of a load bin: each is 5 % above the one before.
const BIN_RATIO: f64 = 1.05;
/// Highest share of violating windows at the capacity (after the monotone fit).
pub const VIOLATING_SHARE: f64 = 0.05;
/// A bin's counts are halved when they reach this many windows: recent evidence weighs more.
const BIN_MEMORY: f64 = 40.0;
/// Windows a band of load must have carried within the SLA before the estimate goes past it.
pub const MIN_CARRIED: f64 = 3.0;
/// Violating windows needed before a band of load counts as over the SLA: one slow window is
/// not a capacity.
const MIN_VIOLATIONS: f64 = 2.0;
/// A window over the SLA whose load jumped by more than this factor over the window before is
/// not evidence (see [`Capacity::observe`]).
const JUMP: f64 = 1.25;
/// Windows with less load per replica than this say nothing about capacity.
const MIN_EVIDENCE_RPS: f64 = 0.05;

/// What the estimator needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CapacitySettings {
    /// Requests per second one replica is assumed to carry before the service has shown more.
    pub prior_rps: f64,
    /// What a violating window is.
    pub sla: Sla,
}

impl Default for CapacitySettings {
    fn default() -> Self {
        Self {
            prior_rps: DEFAULT_PRIOR_RPS,
            sla: Sla::DEFAULT,
        }
    }
}

/// The default prior: lower than what any service of the demo or Sock Shop carries, so that a
/// new service starts over-provisioned rather than over its SLA.
pub const DEFAULT_PRIOR_RPS: f64 = 10.0;

/// Evidence at one band of load per replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Bin {
    /// Windows within the SLA...
    ok: f64,
    /// ...and over it.
    violating: f64,
}

impl Bin {
    fn windows(&self) -> f64 {
        self.ok + self.violating
    }
}

/// The window before, to tell a steady window from a transient one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Previous {
    replicas: u32,
    load: f64,
    violated: bool,
    /// It was counted as evidence.
    counted: bool,
}

/// One service's capacity: the evidence and the estimate it gives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Bin index (`floor(ln(load) / ln(1.05))`) to evidence, at every replica count.
    bins: BTreeMap<i32, Bin>,
    /// The same evidence per scale band (`ceil(log2(replicas))`: 1, 2, 3-4, 5-8, ... replicas).
    /// What one replica carries depends on how many there are: a balancer spreading requests
    /// over many replicas evens out each one's arrivals (a demo replica carries 51 requests per
    /// second alone and 66 among ten), and a shared dependency can do the opposite. Where a
    /// band's own windows break the SLA below the estimate of all of them, that band is held
    /// under its own violations.
    #[serde(default)]
    bands: BTreeMap<u32, BTreeMap<i32, Bin>>,
    previous: Option<Previous>,
}

/// The scale band of a replica count.
fn band_of(replicas: u32) -> u32 {
    replicas.max(1).next_power_of_two().trailing_zeros()
}

/// Counts a window in `bins`, halving a bin's counts past [`BIN_MEMORY`].
fn count(bins: &mut BTreeMap<i32, Bin>, load: f64, violated: bool) {
    let bin = bins.entry(bin_of(load)).or_default();
    if violated {
        bin.violating += 1.0;
    } else {
        bin.ok += 1.0;
    }
    if bin.windows() >= BIN_MEMORY {
        *bin = Bin {
            ok: bin.ok / 2.0,
            violating: bin.violating / 2.0,
        };
    }
}

/// The pooled shares of `bins` and the position of the first bin of load over the SLA.
fn first_over(bins: &BTreeMap<i32, Bin>) -> (Vec<Pooled>, Option<usize>) {
    let shares = monotone_shares(bins);
    let first = shares
        .iter()
        .position(|s| s.share > VIOLATING_SHARE && s.violating >= MIN_VIOLATIONS);
    (shares, first)
}

fn bin_of(load: f64) -> i32 {
    (load.ln() / BIN_RATIO.ln()).floor() as i32
}

fn lower_edge(bin: i32) -> f64 {
    BIN_RATIO.powi(bin)
}

fn upper_edge(bin: i32) -> f64 {
    BIN_RATIO.powi(bin + 1)
}

impl Capacity {
    /// Learns from one window: `load` requests per second per replica over `replicas` replicas,
    /// with this p95 (none without requests) and error ratio.
    pub fn observe(
        &mut self,
        settings: &CapacitySettings,
        load: f64,
        replicas: u32,
        p95_seconds: Option<f64>,
        error_ratio: f64,
    ) {
        let violated = settings.sla.violated(p95_seconds, error_ratio);
        let steady = self.previous.is_some_and(|p| {
            p.replicas == replicas
                && match (p.violated, violated) {
                    (false, false) => true,
                    // Over the SLA after a sudden jump: the window's mean understates the
                    // load that caused it (the jump came within it); the next window, if it
                    // stays over, counts.
                    (false, true) => load <= p.load * JUMP,
                    // A sustained overload, if it began as evidence itself.
                    (true, true) => p.counted && load >= p.load,
                    (true, false) => false,
                }
        }) && load.is_finite()
            && load >= MIN_EVIDENCE_RPS;
        self.previous = Some(Previous {
            replicas,
            load,
            violated,
            counted: steady,
        });
        if !steady {
            return;
        }
        count(&mut self.bins, load, violated);
        count(
            self.bands.entry(band_of(replicas)).or_default(),
            load,
            violated,
        );
    }

    /// Requests per second one replica carries within the SLA at `replicas` replicas, as far as
    /// the evidence says: one bin above the highest load carried at any count, but not into the
    /// violations of this count's scale band.
    pub fn estimate(&self, settings: &CapacitySettings, replicas: u32) -> f64 {
        let prior = settings.prior_rps;
        let bound = self.bands.get(&band_of(replicas)).and_then(|bins| {
            let (shares, first) = first_over(bins);
            first.map(|i| lower_edge(shares[i].bin))
        });
        let carried = self
            .bins
            .iter()
            .rev()
            .filter(|(bin, _)| bound.is_none_or(|b| upper_edge(**bin) <= b * (1.0 + 1e-9)))
            .find(|(_, b)| b.ok >= MIN_CARRIED)
            .map(|(bin, _)| upper_edge(*bin) * BIN_RATIO);
        match bound {
            // Not into the violations, however little was carried below them.
            Some(bound) => carried.unwrap_or(prior).min(bound),
            None => carried.unwrap_or(prior).max(prior),
        }
    }

    /// The estimate at the replica count of the last window (for the dashboards).
    pub fn latest(&self, settings: &CapacitySettings) -> f64 {
        self.estimate(settings, self.previous.map_or(1, |p| p.replicas))
    }

    /// Windows of evidence (for logs and tests).
    pub fn windows(&self) -> f64 {
        self.bins.values().map(Bin::windows).sum()
    }
}

/// A bin's violating share after pooling, and the violating windows of its pool.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pooled {
    bin: i32,
    share: f64,
    violating: f64,
}

/// Violating share per bin, in load order, made non-decreasing by pooling adjacent violators
/// weighted by their windows.
fn monotone_shares(bins: &BTreeMap<i32, Bin>) -> Vec<Pooled> {
    // Blocks of pooled bins: (first bin position, violating, windows).
    let mut blocks: Vec<(usize, f64, f64)> = Vec::new();
    for (i, bin) in bins.values().enumerate() {
        blocks.push((i, bin.violating, bin.windows()));
        while blocks.len() >= 2 {
            let (_, v2, w2) = blocks[blocks.len() - 1];
            let (_, v1, w1) = blocks[blocks.len() - 2];
            if v1 / w1.max(f64::MIN_POSITIVE) <= v2 / w2.max(f64::MIN_POSITIVE) {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last].1 = v1 + v2;
            blocks[last].2 = w1 + w2;
        }
    }
    let keys: Vec<i32> = bins.keys().copied().collect();
    let mut shares = Vec::with_capacity(keys.len());
    for (k, (start, violating, windows)) in blocks.iter().enumerate() {
        let end = blocks.get(k + 1).map_or(keys.len(), |b| b.0);
        let share = violating / windows.max(f64::MIN_POSITIVE);
        shares.extend(keys[*start..end].iter().map(|bin| Pooled {
            bin: *bin,
            share,
            violating: *violating,
        }));
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings() -> CapacitySettings {
        CapacitySettings {
            prior_rps: 10.0,
            sla: Sla::DEFAULT,
        }
    }

    /// A service that violates above `capacity` rps per replica, with p95 rising towards it.
    fn window(c: &mut Capacity, load: f64, capacity: f64) {
        let p95 = 0.15 + 0.1 * (load / capacity).powi(4);
        let p95 = if load > capacity { 1.0 } else { p95 };
        c.observe(&settings(), load, 2, Some(p95), 0.0);
    }

    #[test]
    fn the_prior_holds_until_there_is_evidence() {
        let c = Capacity::default();
        assert_eq!(c.estimate(&settings(), 2), 10.0);
        let mut c = Capacity::default();
        // The first window is never steady: nothing before it.
        window(&mut c, 50.0, 60.0);
        assert_eq!(c.windows(), 0.0);
        assert_eq!(c.estimate(&settings(), 2), 10.0);
    }

    #[test]
    fn violations_bound_the_estimate() {
        let mut c = Capacity::default();
        // Ramps from 20 to 80 rps per replica, again and again.
        for _ in 0..15 {
            for step in 0..=30 {
                window(&mut c, 20.0 + 2.0 * f64::from(step), 60.0);
            }
        }
        let estimate = c.estimate(&settings(), 2);
        assert!(estimate > 55.0 && estimate <= 61.0, "{estimate}");
    }

    #[test]
    fn a_service_run_cold_learns_by_probing() {
        // Capacity 300, run at the estimate each time: it climbs to the capacity and stops.
        let mut c = Capacity::default();
        let mut estimate = c.estimate(&settings(), 2);
        for _ in 0..400 {
            window(&mut c, estimate.min(400.0), 300.0);
            window(&mut c, estimate.min(400.0) * 0.95, 300.0);
            estimate = c.estimate(&settings(), 2);
        }
        assert!(estimate > 270.0 && estimate <= 310.0, "{estimate}");
    }

    #[test]
    fn a_sustained_overload_counts_every_window() {
        let mut c = Capacity::default();
        c.observe(&settings(), 50.0, 2, Some(0.1), 0.0);
        for load in [60.0, 61.0, 62.0] {
            c.observe(&settings(), load, 2, Some(2.0), 0.0);
        }
        // A rise of a fifth counts, and so does the overload that it began.
        assert_eq!(c.windows(), 3.0);
        assert!(c.estimate(&settings(), 2) <= 60.0);
        // A jump does not (the window's mean understates what broke it), nor the backlog it
        // leaves behind.
        let mut c = Capacity::default();
        c.observe(&settings(), 50.0, 2, Some(0.1), 0.0);
        for load in [90.0, 91.0, 92.0] {
            c.observe(&settings(), load, 2, Some(2.0), 0.0);
        }
        assert_eq!(c.windows(), 0.0);
    }

    #[test]
    fn a_slower_release_is_learned() {
        let mut c = Capacity::default();
        for _ in 0..200 {
            window(&mut c, 50.0, 60.0);
            window(&mut c, 55.0, 60.0);
        }
        assert!(c.estimate(&settings(), 2) > 55.0);
        for _ in 0..200 {
            for load in [30.0, 36.0, 43.0, 50.0] {
                window(&mut c, load, 40.0);
            }
        }
        let estimate = c.estimate(&settings(), 2);
        assert!(estimate < 50.0, "{estimate}");
    }

    #[test]
    fn backlog_after_a_violation_is_not_evidence() {
        let mut c = Capacity::default();
        c.observe(&settings(), 80.0, 2, Some(0.1), 0.0);
        c.observe(&settings(), 90.0, 2, Some(2.0), 0.0);
        // Draining the backlog at low load: over the SLA, but not because of this load.
        c.observe(&settings(), 5.0, 2, Some(1.0), 0.0);
        assert_eq!(c.windows(), 1.0);
        // A change of replicas: not steady either.
        c.observe(&settings(), 5.0, 3, Some(0.1), 0.0);
        assert_eq!(c.windows(), 1.0);
    }

    #[test]
    fn a_scale_that_breaks_the_sla_lower_is_held_under_it() {
        let mut c = Capacity::default();
        // Ten replicas carry 65 each, one replica only 50.
        for (replicas, capacity) in [(10, 65.0), (1, 50.0)] {
            for _ in 0..20 {
                for step in 0..=20 {
                    let load = 30.0 + 2.0 * f64::from(step);
                    let p95 = if load > capacity { 1.0 } else { 0.15 };
                    c.observe(&settings(), load, replicas, Some(p95), 0.0);
                }
            }
        }
        let (one, ten) = (c.estimate(&settings(), 1), c.estimate(&settings(), 10));
        assert!(one > 45.0 && one <= 51.0, "{one}");
        assert!(ten > 60.0 && ten <= 66.0, "{ten}");
        assert_eq!(
            c.latest(&settings()),
            one,
            "the last window had one replica"
        );
    }

    proptest! {
        /// Whatever the windows, the estimate is a positive finite rate.
        #[test]
        fn the_estimate_is_always_a_rate(windows in proptest::collection::vec(
            (0.0f64..1e5, 1u32..5, proptest::option::of(0.0f64..20.0), 0.0f64..1.0), 0..200)) {
            let mut c = Capacity::default();
            for (load, replicas, p95, errors) in windows {
                c.observe(&settings(), load, replicas, p95, errors);
                let e = c.estimate(&settings(), 2);
                prop_assert!(e.is_finite() && e > 0.0, "{e}");
            }
        }

        /// Shares after pooling never fall with load.
        #[test]
        fn pooled_shares_are_monotone(counts in proptest::collection::vec((0u8..10, 0u8..10), 1..30)) {
            let bins: BTreeMap<i32, Bin> = counts.iter().enumerate()
                .filter(|(_, (ok, bad))| ok + bad > 0)
                .map(|(i, (ok, bad))| (i as i32, Bin {
                    ok: f64::from(*ok), violating: f64::from(*bad),
                }))
                .collect();
            let shares = monotone_shares(&bins);
            prop_assert_eq!(shares.len(), bins.len());
            for pair in shares.windows(2) {
                prop_assert!(pair[0].share <= pair[1].share + 1e-12);
            }
        }
    }
}
