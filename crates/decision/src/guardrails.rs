//! Guardrails between what the vote wants and what is done: bounds, step limits, cooldowns and
//! Kubernetes HPA's scale-down stabilization.
//!
//! In order:
//! 1. Stabilization (HPA's `behavior.scaleDown.stabilizationWindowSeconds`): a scale-down goes
//!    only as low as the highest count desired during the window, so one quiet window after a busy
//!    one does not remove replicas that the next busy window needs. Scale-ups are immediate.
//! 2. Step limits: at most `max_step_up` more (or `max_step_up_percent` of the current count,
//!    whichever is more, as HPA's `max(4 pods, 100 %)`) and `max_step_down` fewer (or
//!    `max_step_down_percent`) per decision; a consumer group's scale-up has no step limit
//!    ([`Guardrails::for_consumer_group`]).
//! 3. Bounds: the result always lies in [min, max] (a count outside them is brought back in,
//!    cooldowns notwithstanding).
//! 4. Cooldowns: no scale-up within `scale_up_cooldown` of the last scale-up; no scale-down
//!    within `scale_down_cooldown` of the last change in either direction.
//!
//! The defaults (4 replicas or 100 % up and 2 or 20 % down per decision, cooldowns of 10 s and
//! 20 s, a 20 s window) were chosen by replaying a held-out Twitter day in every scenario of the
//! evaluation (`replay`, docs/EVALUATION.md): HPA's 300 s window suits a reactive signal; the
//! votes already size a scale-down for the peak of the next 90 s, so a long window only kept
//! replicas for bursts long gone, and longer cooldowns only delayed the catch-up after a burst
//! no forecast saw coming.

use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// The limits of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct Guardrails {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub max_step_up: u32,
    /// A decision may also add this share of the current count, when that is more.
    pub max_step_up_percent: u32,
    pub max_step_down: u32,
    /// A decision may also remove this share of the current count, when that is more.
    pub max_step_down_percent: u32,
    pub scale_up_cooldown: Duration,
    pub scale_down_cooldown: Duration,
    pub stabilization: Duration,
}

impl Default for Guardrails {
    fn default() -> Self {
        Self {
            min_replicas: 1,
            max_replicas: 10,
            max_step_up: 4,
            max_step_up_percent: 100,
            max_step_down: 2,
            max_step_down_percent: 20,
            scale_up_cooldown: Duration::seconds(10),
            scale_down_cooldown: Duration::seconds(20),
            stabilization: Duration::seconds(20),
        }
    }
}

impl Guardrails {
    /// Most replicas one decision may add to `current`.
    pub fn step_up(&self, current: u32) -> u32 {
        self.max_step_up
            .max(share(current, self.max_step_up_percent))
    }

    /// Most replicas one decision may remove from `current`.
    pub fn step_down(&self, current: u32) -> u32 {
        self.max_step_down
            .max(share(current, self.max_step_down_percent))
    }

    /// The limits of a consumer group: a scale-up goes the whole way in one decision. Each
    /// change of a group's members is a rebalance that stops the whole group for a while, so
    /// reaching the count a burst needs in steps pays that pause once per step while the lag
    /// piles up (in the replay's set-up, steps of at most 4 or 100 % left lag above the target
    /// on a synthetic trace of sudden bursts where one jump left none, and on the Twitter trace
    /// changed the consumer-minutes by 0.3 %). Scale-downs keep their steps.
    pub fn for_consumer_group(&self) -> Self {
        Self {
            max_step_up: self.max_replicas.max(self.max_step_up),
            ..self.clone()
        }
    }

    /// The same limits with other bounds (per-service overrides).
    pub fn with_bounds(&self, min: Option<u32>, max: Option<u32>) -> Self {
        let min_replicas = min.unwrap_or(self.min_replicas).max(1);
        Self {
            min_replicas,
            max_replicas: max.unwrap_or(self.max_replicas).max(min_replicas),
            ..self.clone()
        }
    }

    /// Turns `desired` into the count to go to from `current`, and remembers the recommendation
    /// in the service's `history`.
    pub fn apply(
        &self,
        history: &mut History,
        current: u32,
        desired: u32,
        now: DateTime<Utc>,
    ) -> Verdict {
        let mut applied = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        history.recommendations.push_back((now, desired));
        while history
            .recommendations
            .front()
            .is_some_and(|(at, _)| now - *at > self.stabilization)
        {
            history.recommendations.pop_front();
        }
        let mut target = desired;
        if target < current {
            let highest = history
                .recommendations
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(desired);
            if highest > target {
                target = highest.min(current);
                applied.push(Held::Stabilization);
                notes.push(format!(
                    "stabilization: {highest} desired within the last {}s",
                    self.stabilization.num_seconds()
                ));
            }
        }
        let stepped = target.clamp(
            current.saturating_sub(self.step_down(current)),
            current.saturating_add(self.step_up(current)),
        );
        if stepped != target {
            applied.push(Held::StepLimit);
            notes.push(format!("step limit: {target} -> {stepped}"));
            target = stepped;
        }
        let bounded = target.clamp(self.min_replicas, self.max_replicas);
        if bounded != target {
            applied.push(Held::Bounds);
            notes.push(format!(
                "bounds [{}, {}]: {target} -> {bounded}",
                self.min_replicas, self.max_replicas
            ));
            target = bounded;
        }
        let inside = (self.min_replicas..=self.max_replicas).contains(&current);
        if inside
            && target > current
            && history
                .last_scale_up
                .is_some_and(|t| now - t < self.scale_up_cooldown)
        {
            applied.push(Held::ScaleUpCooldown);
            notes.push(format!(
                "scale-up cooldown of {}s",
                self.scale_up_cooldown.num_seconds()
            ));
            target = current;
        }
        if inside
            && target < current
            && history
                .last_change()
                .is_some_and(|t| now - t < self.scale_down_cooldown)
        {
            applied.push(Held::ScaleDownCooldown);
            notes.push(format!(
                "scale-down cooldown of {}s",
                self.scale_down_cooldown.num_seconds()
            ));
            target = current;
        }
        let reason = if notes.is_empty() {
            "within guardrails".to_owned()
        } else {
            notes.join("; ")
        };
        Verdict {
            target,
            applied,
            reason,
        }
    }
}

/// `percent` % of `count`, rounded down (a step of "20 % of 4" is no step beyond the count's).
fn share(count: u32, percent: u32) -> u32 {
    (u64::from(count) * u64::from(percent) / 100).min(u64::from(u32::MAX)) as u32
}

/// What a service's guardrails remember.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub last_scale_up: Option<DateTime<Utc>>,
    pub last_scale_down: Option<DateTime<Utc>>,
    /// Desired counts of recent decisions, oldest first.
    recommendations: VecDeque<(DateTime<Utc>, u32)>,
}

/// Which guardrail changed or held the desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Stabilization,
    StepLimit,
    Bounds,
    ScaleUpCooldown,
    ScaleDownCooldown,
    /// An anomaly says more replicas would not help ([`crate::plan::AnomalyHolds`]).
    NotLoad,
    /// An anomaly says the load read may not be real.
    SuspectTelemetry,
}

impl Held {
    pub fn as_str(self) -> &'static str {
        match self {
            Held::Stabilization => "stabilization",
            Held::StepLimit => "step_limit",
            Held::Bounds => "bounds",
            Held::ScaleUpCooldown => "scale_up_cooldown",
            Held::ScaleDownCooldown => "scale_down_cooldown",
            Held::NotLoad => "anomaly_not_load",
            Held::SuspectTelemetry => "anomaly_suspect_telemetry",
        }
    }
}

/// The count to go to.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub target: u32,
    /// The guardrails that changed the desired count, in the order they applied.
    pub applied: Vec<Held>,
    pub reason: String,
}

impl History {
    /// Records that the count changed from `from` to `to` at `at` (call once it is done).
    pub fn record_change(&mut self, from: u32, to: u32, at: DateTime<Utc>) {
        if to > from {
            self.last_scale_up = Some(at);
        } else if to < from {
            self.last_scale_down = Some(at);
        }
    }

    fn last_change(&self) -> Option<DateTime<Utc>> {
        self.last_scale_up.max(self.last_scale_down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn g() -> Guardrails {
        Guardrails {
            min_replicas: 1,
            max_replicas: 8,
            max_step_up: 3,
            max_step_up_percent: 0,
            max_step_down: 2,
            max_step_down_percent: 0,
            scale_up_cooldown: Duration::seconds(30),
            scale_down_cooldown: Duration::seconds(60),
            stabilization: Duration::seconds(120),
        }
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let (g, mut h) = (g(), History::default());
        assert_eq!(g.apply(&mut h, 4, 4, t(0)).target, 4);
        // Quiet from t=10 on: the 4 desired at t=0 holds the count until it leaves the window.
        let v = g.apply(&mut h, 4, 2, t(10));
        assert_eq!(
            (v.target, v.applied.as_slice()),
            (4, [Held::Stabilization].as_slice())
        );
        assert_eq!(g.apply(&mut h, 4, 2, t(100)).target, 4);
        assert_eq!(g.apply(&mut h, 4, 2, t(130)).target, 2);
    }

    #[test]
    fn steps_bounds_and_cooldowns() {
        let (g, mut h) = (g(), History::default());
        let v = g.apply(&mut h, 2, 20, t(0));
        assert_eq!(v.target, 5, "step limit first: {v:?}");
        h.record_change(2, 5, t(0));
        let v = g.apply(&mut h, 5, 7, t(10));
        assert_eq!(
            (v.target, v.applied.as_slice()),
            (5, [Held::ScaleUpCooldown].as_slice())
        );
        assert_eq!(g.apply(&mut h, 5, 7, t(31)).target, 7);
        let v = g.apply(&mut h, 5, 12, t(40));
        assert_eq!(v.target, 8, "bounds: {v:?}");
        // Outside the bounds (scaled by hand): brought back in despite a cooldown.
        h.record_change(5, 8, t(45));
        assert_eq!(g.apply(&mut h, 11, 11, t(46)).target, 8);
    }

    #[test]
    fn steps_grow_with_the_count_like_hpa() {
        let g = Guardrails::default().with_bounds(Some(1), Some(100));
        assert_eq!((g.step_up(2), g.step_up(10), g.step_up(60)), (4, 10, 60));
        assert_eq!((g.step_down(5), g.step_down(50)), (2, 10));
        let mut h = History::default();
        assert_eq!(g.apply(&mut h, 30, 90, t(0)).target, 60);
    }

    #[test]
    fn a_consumer_group_scales_up_in_one_step_and_down_in_steps() {
        let g = Guardrails::default()
            .with_bounds(Some(1), Some(40))
            .for_consumer_group();
        let mut h = History::default();
        assert_eq!(g.apply(&mut h, 6, 34, t(0)).target, 34);
        h.record_change(6, 34, t(0));
        assert_eq!(g.apply(&mut h, 34, 6, t(600)).target, 28, "20 % down");
        assert_eq!(Guardrails::default().for_consumer_group().max_step_up, 10);
    }

    #[test]
    fn no_scale_down_right_after_a_scale_up() {
        let mut g = g();
        g.stabilization = Duration::zero();
        let mut h = History::default();
        h.record_change(2, 4, t(0));
        let v = g.apply(&mut h, 4, 3, t(30));
        assert_eq!(
            (v.target, v.applied.as_slice()),
            (4, [Held::ScaleDownCooldown].as_slice())
        );
        assert_eq!(g.apply(&mut h, 4, 3, t(61)).target, 3);
    }

    proptest! {
        /// Whatever is desired, the target stays in [min, max] and moves by bounded steps.
        #[test]
        fn never_outside_bounds(desires in proptest::collection::vec(0u32..50, 1..60),
                                start in 1u32..12, min in 1u32..4, extra in 0u32..8) {
            let mut g = g();
            g.min_replicas = min;
            g.max_replicas = min + extra;
            let mut h = History::default();
            let mut current = start;
            for (i, d) in desires.into_iter().enumerate() {
                let now = t(i as i64 * 10);
                let v = g.apply(&mut h, current, d, now);
                prop_assert!(v.target >= g.min_replicas && v.target <= g.max_replicas, "{v:?}");
                if (g.min_replicas..=g.max_replicas).contains(&current) {
                    prop_assert!(v.target <= current + g.step_up(current));
                    prop_assert!(v.target + g.step_down(current) >= current);
                }
                h.record_change(current, v.target, now);
                current = v.target;
            }
        }

        /// Votes that alternate between more and fewer replicas every window do not make the
        /// count flap: after a scale-up, no scale-down for the stabilization window.
        #[test]
        fn alternating_votes_do_not_flap(high in 2u32..8, windows in 10usize..80) {
            let g = g();
            let mut h = History::default();
            let mut current = 1;
            let mut changes = Vec::new();
            for i in 0..windows {
                let now = t(i as i64 * 10);
                let desired = if i % 2 == 0 { high } else { 1 };
                let v = g.apply(&mut h, current, desired, now);
                if v.target != current {
                    changes.push((i, v.target > current));
                    h.record_change(current, v.target, now);
                    current = v.target;
                }
            }
            // Only the first scale-up; the count never comes down while ups keep being desired.
            prop_assert!(changes.iter().all(|(_, up)| *up), "{changes:?}");
        }

        /// Cooldowns hold: two scale-ups are never closer than the scale-up cooldown.
        #[test]
        fn cooldowns_are_respected(desires in proptest::collection::vec(1u32..9, 2..60)) {
            let g = g();
            let mut h = History::default();
            let mut current = 1;
            let mut ups: Vec<i64> = Vec::new();
            let mut downs: Vec<i64> = Vec::new();
            for (i, d) in desires.into_iter().enumerate() {
                let secs = i as i64 * 10;
                let v = g.apply(&mut h, current, d, t(secs));
                if v.target > current { ups.push(secs) }
                if v.target < current { downs.push(secs) }
                h.record_change(current, v.target, t(secs));
                current = v.target;
            }
            prop_assert!(ups.windows(2).all(|w| w[1] - w[0] >= 30), "{ups:?}");
            for d in &downs {
                prop_assert!(ups.iter().all(|u| u >= d || d - u >= 60), "down at {d} after ups {ups:?}");
            }
        }
    }
}
