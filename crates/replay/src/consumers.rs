//! Consumer groups replayed (issue 14, the baselines): a trace of production rates against a
//! simulated Kafka consumer group, under KEDA's lag scaler, HPA on the consumers' CPU, a
//! forecasting policy and an oracle, in the set-up of the Federator.ai article (40 partitions,
//! 1 to 40 consumers, production between 20,000 and 120,000 messages a minute).
//!
//! The group, second by second: production is spread evenly over the partitions; partition `j`
//! belongs to consumer `j mod n`, and each consumer reads at most its capacity a second from its
//! partitions (so a count that does not divide the partitions leaves some consumers with one
//! partition more, and they bound the group: 14 to 19 consumers of 40 partitions all carry what
//! 13.3 consumers would, as some hold three partitions). A change of count
//! costs a rebalance: new consumers first start (`startup_sec`), then the whole group stops
//! reading for `rebalance_pause_sec` (an eager rebalance) and goes on with the new assignment.
//!
//! The KPI is lag in seconds: the lag read from the broker (the backlog, plus what was read
//! but not yet committed: half a commit interval's production) over the production rate (how
//! far behind the newest message the group is). A minute whose highest lag in seconds is above
//! `lag_target_sec` is a violation minute; policies see the same lag. Costs: consumer-minutes (starting consumers included) and rebalances.

use crate::policy::HoltWinters;
use anyhow::Context as _;
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::Path;

/// The simulated group and its KPI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupSpec {
    pub partitions: u32,
    /// Messages a second one consumer reads at most.
    pub capacity: f64,
    /// Seconds from a scale-up decision until the new consumers have started.
    pub startup_sec: f64,
    /// Seconds the whole group reads nothing while it rebalances.
    pub rebalance_pause_sec: f64,
    /// Lag in seconds above which a minute is a violation.
    pub lag_target_sec: f64,
    /// Seconds between the consumers' offset commits: the lag read from the broker (committed
    /// to end offsets) is the backlog plus what was read since the last commit, on average half
    /// an interval's production.
    pub commit_interval_sec: f64,
}

impl GroupSpec {
    /// The article's set-up: 40 partitions; a consumer reads 60 messages a second, so that the
    /// busiest minute (120,000 messages, 2,000 a second) needs all 40 (with 39, one consumer
    /// holds two partitions and the group carries 1,200 a second) and the quietest (20,000)
    /// needs 6.
    pub const ARTICLE: GroupSpec = GroupSpec {
        partitions: 40,
        capacity: 60.0,
        startup_sec: 10.0,
        rebalance_pause_sec: 15.0,
        lag_target_sec: 60.0,
        commit_interval_sec: 5.0,
    };

    /// Messages a second `n` consumers read at most, when production is even over the
    /// partitions: the consumers with the most partitions bound the group.
    pub fn group_capacity(&self, n: u32) -> f64 {
        let n = n.clamp(1, self.partitions.max(1));
        let most = self.partitions.div_ceil(n);
        f64::from(self.partitions) * self.capacity / f64::from(most)
    }

    /// The lag read from the broker: the partitions' backlog, plus what was read since the last
    /// commit (half a commit interval's production at `rate`, on average).
    fn read_lag(&self, backlog: &[f64], rate: f64) -> f64 {
        backlog.iter().sum::<f64>() + rate * self.commit_interval_sec / 2.0
    }

    /// Messages a second to read beyond production to drain the lag within half the target,
    /// once it is more than half the target behind (less drains on its own, and sizing for it
    /// would change the count, and pause the group, after every rebalance).
    fn drain(&self, seen: &Seen<'_>) -> f64 {
        let behind = seen.lag / seen.production.max(1e-9);
        if behind > self.lag_target_sec / 2.0 {
            seen.lag / (self.lag_target_sec / 2.0)
        } else {
            0.0
        }
    }

    /// Messages a second beyond `rate` that a smaller group needs to drain, within half the
    /// target, what production piles up during the rebalance that makes it smaller, when that
    /// is more than half the target (less stays within it as long as the group keeps up): a
    /// scale-down pays only if the smaller group can.
    fn pause_drain(&self, rate: f64) -> f64 {
        let piled = self.rebalance_pause_sec + self.commit_interval_sec / 2.0;
        if piled > self.lag_target_sec / 2.0 {
            rate * piled / (self.lag_target_sec / 2.0)
        } else {
            0.0
        }
    }

    /// More than a few seconds behind: no consumer is given back (the rebalance would add to
    /// the lag).
    fn behind(&self, seen: &Seen<'_>) -> bool {
        seen.lag / seen.production.max(1e-9) > 5.0
    }

    /// The fewest consumers that carry `rate` (with `capacity` a consumer), counting only the
    /// counts that are the smallest for their assignment (9 consumers of 40 partitions carry no
    /// more than 8: some still hold five). `partitions` if none does.
    pub fn fewest_for(&self, rate: f64, capacity: f64) -> u32 {
        (1..=self.partitions)
            .find(|&n| {
                let most = self.partitions.div_ceil(n);
                f64::from(self.partitions) * capacity / f64::from(most) >= rate
            })
            .unwrap_or(self.partitions)
    }
}

/// A policy for a consumer group: the consumer count to go to.
pub trait GroupPolicy {
    fn name(&self) -> String;
    /// Seconds between decisions.
    fn period(&self) -> f64;
    fn decide(&mut self, seen: &Seen<'_>) -> u32;
}

/// What a policy sees (with the minute history borrowed).
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub now: f64,
    pub production: f64,
    pub consumption: f64,
    pub lag: f64,
    pub consumers: u32,
    pub busy: f64,
    /// Minute-average production rates so far, oldest first.
    pub minutes: &'a [f64],
}

/// Kubernetes HPA's behaviour around a desired count, as KEDA's scalers get it: a tolerance of
/// 10 %, scale-up at once to the current recommendation by at most max(4, 100 %) a period, and
/// scale-down to the highest recommendation of the last 300 s.
#[derive(Debug, Clone)]
struct HpaBehaviour {
    recommendations: VecDeque<(f64, u32)>,
    max: u32,
}

impl HpaBehaviour {
    const TOLERANCE: f64 = 0.1;
    const STABILIZATION_SEC: f64 = 300.0;

    fn new(max: u32) -> Self {
        Self {
            recommendations: VecDeque::new(),
            max,
        }
    }

    /// `ratio` is the metric over its target (HPA's `currentMetric / desiredMetric`).
    fn apply(&mut self, now: f64, current: u32, ratio: f64) -> u32 {
        let current = current.max(1);
        let desired = if (ratio - 1.0).abs() <= Self::TOLERANCE {
            current
        } else {
            (f64::from(current) * ratio).ceil().max(1.0) as u32
        };
        let desired = desired.min(self.max);
        self.recommendations.push_back((now, desired));
        while self
            .recommendations
            .front()
            .is_some_and(|(at, _)| now - at > Self::STABILIZATION_SEC)
        {
            self.recommendations.pop_front();
        }
        // Kubernetes' rule: up at once to the current recommendation (a scale-up window of
        // 0 s), rate-limited; down only to the highest recommendation of the last 300 s.
        if desired > current {
            return desired.min(current.saturating_mul(2).max(current + 4));
        }
        let down = self
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(desired);
        down.min(current)
    }
}

/// KEDA's Kafka scaler: the metric is the group's total lag, its target `lag_threshold` a
/// consumer (`lagThreshold`), read every 30 s (`pollingInterval`), never more consumers than
/// partitions (`allowIdleConsumers: false`), through HPA's behaviour.
#[derive(Debug, Clone)]
pub struct KedaLag {
    pub lag_threshold: f64,
    hpa: HpaBehaviour,
}

impl KedaLag {
    pub fn new(lag_threshold: f64, spec: &GroupSpec) -> Self {
        Self {
            lag_threshold,
            hpa: HpaBehaviour::new(spec.partitions),
        }
    }
}

impl GroupPolicy for KedaLag {
    fn name(&self) -> String {
        format!("KEDA lag {}", self.lag_threshold)
    }

    fn period(&self) -> f64 {
        30.0
    }

    fn decide(&mut self, seen: &Seen<'_>) -> u32 {
        // HPA's AverageValue target: desired = ceil(total / target), as a ratio to the count.
        let average = seen.lag / f64::from(seen.consumers.max(1));
        self.hpa
            .apply(seen.now, seen.consumers, average / self.lag_threshold)
    }
}

/// HPA on the consumers' CPU at a target utilization, every 15 s.
#[derive(Debug, Clone)]
pub struct HpaCpu {
    pub target: f64,
    hpa: HpaBehaviour,
}

impl HpaCpu {
    pub fn new(target_percent: u32, spec: &GroupSpec) -> Self {
        Self {
            target: f64::from(target_percent) / 100.0,
            hpa: HpaBehaviour::new(spec.partitions),
        }
    }
}

impl GroupPolicy for HpaCpu {
    fn name(&self) -> String {
        format!("HPA CPU {:.0}%", self.target * 100.0)
    }

    fn period(&self) -> f64 {
        15.0
    }

    fn decide(&mut self, seen: &Seen<'_>) -> u32 {
        self.hpa
            .apply(seen.now, seen.consumers, seen.busy / self.target)
    }
}

/// The forecasting policy the issue asks the models to learn, without a model: a Holt-Winters
/// forecast of the production rate (daily season), one consumer's capacity learned from what
/// the consumers read against how busy they are (from a cautious prior of a third of the
/// truth), and the group sized so that the highest forecast of the next minutes, plus the lag
/// drained within half the target, fits at `utilization`; only counts that are the smallest
/// for their assignment; scaled down only when the smaller count fits the next quarter hour's
/// forecast with the lag its rebalance piles up drained, for two decisions in a row (a
/// rebalance must pay).
#[derive(Debug, Clone)]
pub struct Forecast {
    pub utilization: f64,
    spec: GroupSpec,
    model: HoltWinters,
    minutes_seen: usize,
    capacity: f64,
    lower_since: Option<(u32, u32)>,
}

impl Forecast {
    /// Minutes ahead provisioned for when scaling up (start-up, rebalance and a period), and
    /// before giving a consumer back.
    const UP_MINUTES: usize = 2;
    const DOWN_MINUTES: usize = 15;

    pub fn new(utilization_percent: u32, spec: &GroupSpec) -> Self {
        Self {
            utilization: f64::from(utilization_percent) / 100.0,
            spec: *spec,
            model: HoltWinters::new(1440),
            minutes_seen: 0,
            capacity: spec.capacity / 3.0,
            lower_since: None,
        }
    }

    fn highest(&self, minutes: usize) -> f64 {
        (1..=minutes)
            .map(|m| self.model.forecast(m))
            .fold(0.0, f64::max)
    }
}

impl GroupPolicy for Forecast {
    fn name(&self) -> String {
        format!("forecast {:.0}%", self.utilization * 100.0)
    }

    fn period(&self) -> f64 {
        30.0
    }

    fn decide(&mut self, seen: &Seen<'_>) -> u32 {
        for &rate in &seen.minutes[self.minutes_seen.min(seen.minutes.len())..] {
            self.model.update(rate);
        }
        self.minutes_seen = seen.minutes.len();
        if seen.busy > 0.2 && seen.consumers > 0 {
            let measured = seen.consumption / (f64::from(seen.consumers) * seen.busy);
            self.capacity = 0.8 * self.capacity + 0.2 * measured;
        }
        let drain = self.spec.drain(seen);
        let usable = self.capacity * self.utilization;
        let now_rate = seen.production.max(if self.minutes_seen > 0 {
            self.highest(Self::UP_MINUTES)
        } else {
            seen.production
        });
        let up = self.spec.fewest_for(now_rate + drain, usable);
        if up >= seen.consumers || self.spec.behind(seen) {
            self.lower_since = None;
            return up.max(seen.consumers);
        }
        let highest = self.highest(Self::DOWN_MINUTES).max(now_rate);
        let down = self
            .spec
            .fewest_for(highest + self.spec.pause_drain(highest) + drain, usable)
            .max(up);
        if down >= seen.consumers {
            self.lower_since = None;
            return seen.consumers;
        }
        let times = match self.lower_since {
            Some((count, times)) if count == down => times + 1,
            _ => 1,
        };
        self.lower_since = Some((down, times));
        if times >= 2 { down } else { seen.consumers }
    }
}

/// The ensemble as the fleet runs it on a consumer group: every poll interval the aggregator's
/// vector of the group's kind (the production rate's history through the same
/// `FeatureBuilder`, one consumer's capacity learned by `features::ConsumerCapacity` from the
/// windows the group was behind), each model's vote by `models::vote::decide_group` at the
/// forecast quantile, and [`decision::plan`] with the scaler's guardrails for a consumer group
/// (bounds 1 to the partitions, a scale-up in one step).
pub struct Ensemble {
    spec: GroupSpec,
    level: f64,
    features: features::GroupFeatures,
    voters: crate::policy::Voters,
    /// When it last changed the count: the windows until the change is done (start-up, pause)
    /// teach nothing of the capacity, as the aggregator skips windows whose members changed.
    changed_at: Option<f64>,
}

impl Ensemble {
    /// Seconds between decisions: the fleet's poll interval, the models' window.
    const PERIOD_SEC: f64 = 10.0;

    /// The models voting at quantile `level`, one consumer assumed to read `prior` messages a
    /// second until the group has been behind.
    pub fn new(
        spec: &GroupSpec,
        models: Vec<std::sync::Arc<models::LoadedModel>>,
        level: f64,
        prior: f64,
    ) -> Self {
        let guardrails = decision::Guardrails {
            min_replicas: 1,
            max_replicas: spec.partitions.max(1),
            ..decision::Guardrails::default()
        }
        .for_consumer_group();
        let ballot = crate::policy::Ballot {
            strategy: decision::Strategy::Majority,
            quorum: 2,
            level,
            calibration_step: models::calibration::DEFAULT_STEP,
        };
        Self {
            spec: *spec,
            level,
            features: features::GroupFeatures::new(
                features::FeatureSettings::new(4, Self::PERIOD_SEC as u64),
                prior,
            ),
            voters: crate::policy::Voters::new(
                "ensemble",
                models,
                ballot,
                guardrails,
                Self::PERIOD_SEC,
                0,
            ),
            changed_at: None,
        }
    }
}

impl GroupPolicy for Ensemble {
    fn name(&self) -> String {
        format!("ensemble P{:.0}", self.level * 100.0)
    }

    fn period(&self) -> f64 {
        Self::PERIOD_SEC
    }

    fn decide(&mut self, seen: &Seen<'_>) -> u32 {
        let group = contract::ConsumerGroup {
            group: "replay".into(),
            topic: "replay".into(),
            partitions: self.spec.partitions.clamp(1, contract::MAX_PARTITIONS),
            lag_messages: seen.lag.max(0.0),
            lag_max_partition: 0.0,
            consumption_rate: seen.consumption,
            lag_target_sec: self.spec.lag_target_sec,
        };
        let settling = self.spec.startup_sec + self.spec.rebalance_pause_sec + Self::PERIOD_SEC;
        let steady = self.changed_at.is_none_or(|at| seen.now - at > settling);
        let at = seen.now as u64;
        let Ok(features) = self.features.push(
            "replay",
            at,
            seen.production,
            seen.consumers,
            &group,
            steady,
        ) else {
            return seen.consumers;
        };
        let vector = contract::FeatureVector {
            service: "replay".into(),
            window_id: at,
            window_start: chrono::DateTime::default(),
            window_end: chrono::DateTime::default(),
            poll_interval_sec: Self::PERIOD_SEC as u32,
            produced_at: chrono::DateTime::default(),
            features,
            consumer_group: Some(group),
        };
        let target = self.voters.decide_on(&vector, seen.consumers, at as f64);
        if target != seen.consumers {
            self.changed_at = Some(seen.now);
        }
        target
    }
}

/// The oracle: knows the production to come, and keeps the fewest consumers (among the counts
/// that are the smallest for their assignment) that carry the highest rate until its next
/// change could take effect at full capacity, plus the lag drained within half the target;
/// it gives consumers back as the forecasting policy does (only when the smaller group can
/// drain what the rebalance piles up). A reference that knows the future, not an optimum.
#[derive(Debug, Clone)]
pub struct Oracle {
    spec: GroupSpec,
    /// Production a second, for the whole trace.
    rates: std::sync::Arc<[f64]>,
}

impl Oracle {
    pub fn new(spec: &GroupSpec, rates: std::sync::Arc<[f64]>) -> Self {
        Self { spec: *spec, rates }
    }
}

impl GroupPolicy for Oracle {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn period(&self) -> f64 {
        30.0
    }

    fn decide(&mut self, seen: &Seen<'_>) -> u32 {
        let from = seen.now as usize;
        let highest_within = |seconds: usize| {
            let until = (from + seconds).min(self.rates.len());
            self.rates[from.min(until)..until]
                .iter()
                .copied()
                .fold(0.0, f64::max)
        };
        let ahead =
            (self.period() + self.spec.startup_sec + self.spec.rebalance_pause_sec) as usize;
        let highest = highest_within(2 * ahead);
        let drain = self.spec.drain(seen);
        let want = self.spec.fewest_for(highest + drain, self.spec.capacity);
        if want >= seen.consumers {
            return want;
        }
        if self.spec.behind(seen) {
            return seen.consumers;
        }
        // As long ahead as the forecasting policy looks before giving a consumer back.
        let highest = highest_within(Forecast::DOWN_MINUTES * 60).max(highest);
        let down = highest + self.spec.pause_drain(highest) + drain;
        self.spec
            .fewest_for(down, self.spec.capacity)
            .min(seen.consumers)
    }
}

/// A policy's figures on one trace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupFigures {
    pub policy: String,
    pub consumer_minutes: f64,
    /// Minutes whose highest lag in seconds was above the target.
    pub violation_minutes: u64,
    pub rebalances: u64,
    pub p95_lag_seconds: f64,
    pub max_lag_seconds: f64,
}

/// A change of count under way.
#[derive(Debug, Clone, Copy)]
struct Change {
    to: u32,
    /// When the group stops reading to rebalance, and when it reads again.
    pause_at: f64,
    resume_at: f64,
}

/// Replays `rates` (messages a second, one per second) under `policy`, from `initial`
/// consumers.
pub fn simulate(
    spec: &GroupSpec,
    rates: &[f64],
    policy: &mut dyn GroupPolicy,
    initial: u32,
) -> GroupFigures {
    let partitions = spec.partitions.max(1) as usize;
    let mut lags = vec![0.0_f64; partitions];
    let mut consumers = initial.clamp(1, spec.partitions.max(1));
    let mut change: Option<Change> = None;
    // The first decision comes after a period of readings, as a controller's first sync
    // compares two scrapes.
    let mut next_decision = policy.period().min(rates.len() as f64);
    let (mut produced, mut consumed, mut busy_seconds) = (0.0, 0.0, 0.0);
    let mut period_start = 0.0;
    let mut minutes: Vec<f64> = Vec::with_capacity(rates.len() / 60 + 1);
    let mut minute_total = 0.0;
    let mut minute_worst = 0.0_f64;
    let mut lag_seconds: Vec<f32> = Vec::with_capacity(rates.len());
    let mut figures = GroupFigures {
        policy: policy.name(),
        consumer_minutes: 0.0,
        violation_minutes: 0,
        rebalances: 0,
        p95_lag_seconds: 0.0,
        max_lag_seconds: 0.0,
    };
    for (second, &rate) in rates.iter().enumerate() {
        let now = second as f64;
        if let Some(c) = change
            && now >= c.resume_at
        {
            consumers = c.to;
            change = None;
        }
        if now >= next_decision {
            let span = (now - period_start).max(1.0);
            let production = produced / span;
            let seen = Seen {
                now,
                production,
                consumption: consumed / span,
                lag: spec.read_lag(&lags, production),
                consumers,
                busy: busy_seconds / (span * f64::from(consumers)),
                minutes: &minutes,
            };
            let want = policy.decide(&seen).clamp(1, spec.partitions.max(1));
            if change.is_none() && want != consumers {
                let pause_at = if want > consumers {
                    now + spec.startup_sec
                } else {
                    now
                };
                change = Some(Change {
                    to: want,
                    pause_at,
                    resume_at: pause_at + spec.rebalance_pause_sec,
                });
                figures.rebalances += 1;
            }
            (produced, consumed, busy_seconds) = (0.0, 0.0, 0.0);
            period_start = now;
            next_decision = now + policy.period();
        }
        let paused = change.is_some_and(|c| now >= c.pause_at);
        let existing = change.map_or(consumers, |c| c.to.max(consumers));
        figures.consumer_minutes += f64::from(existing) / 60.0;
        let inflow = rate / partitions as f64;
        for lag in &mut lags {
            *lag += inflow;
        }
        produced += rate;
        if !paused {
            let n = consumers as usize;
            for consumer in 0..n {
                let owned = (consumer..partitions).step_by(n);
                let waiting: f64 = owned.clone().map(|p| lags[p]).sum();
                let read = waiting.min(spec.capacity);
                if waiting > 0.0 {
                    let share = read / waiting;
                    for p in owned {
                        lags[p] -= lags[p] * share;
                    }
                }
                consumed += read;
                busy_seconds += read / spec.capacity;
            }
        }
        let lag = spec.read_lag(&lags, rate);
        let behind = lag / rate.max(1e-9);
        lag_seconds.push(behind as f32);
        minute_worst = minute_worst.max(behind);
        minute_total += rate;
        if second % 60 == 59 {
            minutes.push(minute_total / 60.0);
            if minute_worst > spec.lag_target_sec {
                figures.violation_minutes += 1;
            }
            minute_total = 0.0;
            minute_worst = 0.0;
        }
    }
    if !lag_seconds.is_empty() {
        lag_seconds.sort_by(f32::total_cmp);
        let at = |q: f64| f64::from(lag_seconds[((lag_seconds.len() - 1) as f64 * q) as usize]);
        figures.p95_lag_seconds = at(0.95);
        figures.max_lag_seconds = at(1.0);
    }
    figures
}

/// A trace's minutes as production a second, its lowest minute at `low` and its busiest at
/// `high` messages a minute (linearly between), one value per second.
pub fn production(file: &Path, low: f64, high: f64) -> anyhow::Result<Vec<f64>> {
    let rows = load_testing::trace::read_trace(file)?;
    let (min, max) = rows.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
        (lo.min(r.requests), hi.max(r.requests))
    });
    anyhow::ensure!(
        !rows.is_empty() && max > min,
        "{}: a trace of at least two different minutes is needed",
        file.display()
    );
    Ok(rows
        .iter()
        .flat_map(|r| {
            let per_minute = low + (r.requests - min) / (max - min) * (high - low);
            std::iter::repeat_n(per_minute / 60.0, 60)
        })
        .collect())
}

/// The forecast quantiles the ensemble is replayed at: the models' default and more cautious.
pub const ENSEMBLE_LEVELS: [f64; 3] = [0.75, 0.9, 0.97];

/// The ensemble's quantile compared with KEDA in the goals, chosen on the Twitter trace as the
/// forecasting policy's setting was (the fewest consumer-minutes with no minute above the
/// target there: P75, 579,756 against 653,062 at P90); never on NASA or Alibaba.
pub const CHOSEN_ENSEMBLE_LEVEL: f64 = 0.75;

/// The policies compared: KEDA at several lag thresholds, HPA on CPU at 50 to 90 %, the
/// forecasting policy at 60 to 90 %, the ensemble of `models` (if any) at
/// [`ENSEMBLE_LEVELS`], the oracle.
pub fn standard_policies(
    spec: &GroupSpec,
    rates: &std::sync::Arc<[f64]>,
    models: &[std::sync::Arc<models::LoadedModel>],
) -> Vec<Box<dyn GroupPolicy>> {
    let mut policies: Vec<Box<dyn GroupPolicy>> = Vec::new();
    for threshold in [100.0, 500.0, 1_000.0, 5_000.0] {
        policies.push(Box::new(KedaLag::new(threshold, spec)));
    }
    for target in [50, 70, 90] {
        policies.push(Box::new(HpaCpu::new(target, spec)));
    }
    for utilization in [60, 75, 90] {
        policies.push(Box::new(Forecast::new(utilization, spec)));
    }
    if !models.is_empty() {
        for level in ENSEMBLE_LEVELS {
            policies.push(Box::new(Ensemble::new(
                spec,
                models.to_vec(),
                level,
                spec.capacity / 3.0,
            )));
        }
    }
    policies.push(Box::new(Oracle::new(spec, rates.clone())));
    policies
}

/// Every standard policy on one trace, from the count that carries its first minute.
pub fn compare(
    spec: &GroupSpec,
    rates: &[f64],
    models: &[std::sync::Arc<models::LoadedModel>],
) -> Vec<GroupFigures> {
    let shared: std::sync::Arc<[f64]> = rates.into();
    let initial = spec.fewest_for(rates.first().copied().unwrap_or(0.0), spec.capacity);
    standard_policies(spec, &shared, models)
        .iter_mut()
        .map(|policy| simulate(spec, rates, policy.as_mut(), initial))
        .collect()
}

/// The markdown table of one trace's figures.
pub fn table(title: &str, figures: &[GroupFigures]) -> String {
    let mut out = format!(
        "### {title}\n\n| policy | consumer-minutes | minutes with lag above the target | rebalances | p95 lag (s) | max lag (s) |\n|---|---:|---:|---:|---:|---:|\n"
    );
    for f in figures {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {:.1} | {:.1} |",
            f.policy,
            f.consumer_minutes,
            f.violation_minutes,
            f.rebalances,
            f.p95_lag_seconds,
            f.max_lag_seconds
        );
    }
    out
}

/// The forecasting policy's setting compared with KEDA in the goals, chosen on the Twitter
/// trace (the fewest consumer-minutes with no minute above the target there); never on NASA or
/// Alibaba.
pub const CHOSEN_UTILIZATION: u32 = 90;

/// The goal against each KEDA setting: no more minutes above the target, at least 20 %
/// fewer consumer-minutes, fewer rebalances, for the forecasting policy at
/// [`CHOSEN_UTILIZATION`]; a markdown list.
pub fn goals(figures: &[GroupFigures]) -> String {
    let mut out = goals_of(figures, &format!("forecast {CHOSEN_UTILIZATION}%"));
    out.push_str(&goals_of(
        figures,
        &format!("ensemble P{:.0}", CHOSEN_ENSEMBLE_LEVEL * 100.0),
    ));
    out
}

/// [`goals`] of the policy named `chosen`.
fn goals_of(figures: &[GroupFigures], chosen: &str) -> String {
    let Some(ours) = figures.iter().find(|f| f.policy == chosen) else {
        return format!("- ({chosen} was not run)\n");
    };
    let mut out = String::new();
    for keda in figures.iter().filter(|f| f.policy.starts_with("KEDA")) {
        let saving = 1.0 - ours.consumer_minutes / keda.consumer_minutes.max(1e-9);
        let met = ours.violation_minutes <= keda.violation_minutes
            && saving >= 0.2
            && ours.rebalances < keda.rebalances;
        let _ = writeln!(
            out,
            "- {chosen} against {}: minutes above the target {} against {}, consumer-minutes \
             {:+.0} %, rebalances {} against {}: {}",
            keda.policy,
            ours.violation_minutes,
            keda.violation_minutes,
            -saving * 100.0,
            ours.rebalances,
            keda.rebalances,
            if met { "**met**" } else { "not met" }
        );
    }
    out
}

/// The frontiers of one trace's figures: each policy across its settings (named by what
/// follows the policy's name: `KEDA lag 100` is `100` on the `KEDA lag` line), the oracle a
/// point.
pub fn frontiers(figures: &[GroupFigures]) -> Vec<crate::plot::Frontier> {
    let mut out: Vec<crate::plot::Frontier> = Vec::new();
    for f in figures {
        let (name, setting) = f.policy.rsplit_once(' ').unwrap_or((f.policy.as_str(), ""));
        let point = (
            f.consumer_minutes,
            f.violation_minutes as f64,
            setting.to_owned(),
        );
        match out.iter_mut().find(|l| l.name == name) {
            Some(line) => line.points.push(point),
            None => out.push(crate::plot::Frontier {
                name: name.to_owned(),
                points: vec![point],
            }),
        }
    }
    out
}

/// Reads a trace for [`compare`], with what went wrong named.
pub fn trace_rates(dir: &Path, file: &str, low: f64, high: f64) -> anyhow::Result<Vec<f64>> {
    production(&dir.join(file), low, high)
        .with_context(|| format!("cannot read the trace {file} in {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: GroupSpec = GroupSpec::ARTICLE;

    /// A fixed count.
    struct Fixed(u32);

    impl GroupPolicy for Fixed {
        fn name(&self) -> String {
            format!("fixed {}", self.0)
        }
        fn period(&self) -> f64 {
            1.0
        }
        fn decide(&mut self, _: &Seen<'_>) -> u32 {
            self.0
        }
    }

    #[test]
    fn frontiers_are_each_policy_across_its_settings() {
        let f = |policy: &str, minutes: f64, violations: u64| GroupFigures {
            policy: policy.into(),
            consumer_minutes: minutes,
            violation_minutes: violations,
            rebalances: 0,
            p95_lag_seconds: 0.0,
            max_lag_seconds: 0.0,
        };
        let lines = frontiers(&[
            f("KEDA lag 100", 10.0, 0),
            f("KEDA lag 500", 8.0, 3),
            f("ensemble P75", 6.0, 1),
            f("oracle", 5.0, 0),
        ]);
        let shape: Vec<(&str, Vec<&str>)> = lines
            .iter()
            .map(|l| {
                (
                    l.name.as_str(),
                    l.points.iter().map(|p| p.2.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("KEDA lag", vec!["100", "500"]),
                ("ensemble", vec!["P75"]),
                ("oracle", vec![""]),
            ]
        );
        assert_eq!((lines[0].points[1].0, lines[0].points[1].1), (8.0, 3.0));
    }

    #[test]
    fn an_uneven_assignment_is_bounded_by_the_busiest_consumer() {
        assert_eq!(SPEC.group_capacity(40), 2_400.0);
        assert_eq!(SPEC.group_capacity(39), 1_200.0);
        assert_eq!(SPEC.group_capacity(20), 1_200.0);
        assert_eq!(SPEC.fewest_for(2_000.0, 60.0), 40);
        assert_eq!(SPEC.fewest_for(20_000.0 / 60.0, 60.0), 6);
        // 14 to 19 consumers: some hold three partitions, so the group carries 40/3 consumers.
        for n in 14..20 {
            assert!((SPEC.group_capacity(n) - 800.0).abs() < 1e-9, "{n}");
        }
        assert_eq!(SPEC.fewest_for(790.0, 60.0), 14);
        assert_eq!(SPEC.fewest_for(810.0, 60.0), 20);
        assert_eq!(SPEC.fewest_for(1e9, 60.0), 40);
    }

    /// Messages are conserved: what was produced was read or is lag.
    #[test]
    fn the_group_reads_what_it_can_and_the_rest_is_lag() {
        let rates = vec![1_000.0; 600];
        let few = simulate(&SPEC, &rates, &mut Fixed(10), 10);
        // 10 consumers read 600 a second of 1,000: the lag grows by 400 a second, past a
        // minute's production after 150 s; half a commit interval's production is lag too.
        let uncommitted = SPEC.commit_interval_sec / 2.0;
        assert_eq!(few.rebalances, 0);
        assert!(
            (few.max_lag_seconds - 240.0 - uncommitted).abs() < 1.0,
            "{few:?}"
        );
        assert_eq!(few.violation_minutes, 8, "from the third minute on");
        let many = simulate(&SPEC, &rates, &mut Fixed(20), 20);
        assert_eq!(many.violation_minutes, 0);
        assert!((many.max_lag_seconds - uncommitted).abs() < 1e-6);
        assert!((many.consumer_minutes - 200.0).abs() < 1e-6);
    }

    #[test]
    fn a_change_costs_a_start_and_a_pause() {
        let rates = vec![1_000.0; 120];
        let f = simulate(&SPEC, &rates, &mut Fixed(20), 10);
        assert_eq!(f.rebalances, 1);
        // Decided after the first second; 11 s of lag growth at 400 a second (that second and
        // the start-up), then 15 s at 1,000 (the pause).
        let lag = 11.0 * 400.0 + 15.0 * 1_000.0;
        let uncommitted = SPEC.commit_interval_sec / 2.0;
        assert!(
            (f.max_lag_seconds - lag / 1_000.0 - uncommitted).abs() < 0.5,
            "{f:?}"
        );
    }

    #[test]
    fn keda_scales_on_lag_and_never_past_the_partitions() {
        let mut keda = KedaLag::new(100.0, &SPEC);
        let seen = Seen {
            now: 0.0,
            production: 1_000.0,
            consumption: 600.0,
            lag: 1_000_000.0,
            consumers: 10,
            busy: 1.0,
            minutes: &[],
        };
        assert_eq!(keda.decide(&seen), 20, "at most double in one step");
        assert_eq!(
            keda.decide(&Seen {
                consumers: 30,
                ..seen
            }),
            40
        );
        // Lag gone: scale-down waits for the highest recommendation of five minutes.
        let idle = Seen {
            now: 60.0,
            lag: 0.0,
            consumers: 40,
            ..seen
        };
        assert_eq!(keda.decide(&idle), 40);
        assert_eq!(keda.decide(&Seen { now: 400.0, ..idle }), 1);
    }

    #[test]
    fn the_oracle_and_the_forecast_keep_up_with_a_steady_rate() {
        let rates = vec![1_000.0; 3_600];
        let shared: std::sync::Arc<[f64]> = rates.clone().into();
        // 20 consumers carry 1,000 a second at 83 % (19 would leave some with three partitions):
        // both settle there, after draining what one consumer left in the first 30 s.
        for policy in [
            &mut Oracle::new(&SPEC, shared) as &mut dyn GroupPolicy,
            &mut Forecast::new(90, &SPEC),
        ] {
            let f = simulate(&SPEC, &rates, policy, 1);
            assert_eq!(f.violation_minutes, 0, "{f:?}");
            assert!(f.max_lag_seconds < SPEC.lag_target_sec, "{f:?}");
            assert!(f.consumer_minutes < 1.3 * 20.0 * 60.0, "{f:?}");
            assert!(f.rebalances <= 4, "{f:?}");
        }
    }

    #[test]
    fn the_goal_asks_for_all_three_against_each_keda_setting() {
        let figures = |policy: &str, minutes: f64, violations: u64, rebalances: u64| GroupFigures {
            policy: policy.into(),
            consumer_minutes: minutes,
            violation_minutes: violations,
            rebalances,
            p95_lag_seconds: 0.0,
            max_lag_seconds: 0.0,
        };
        let lines = goals(&[
            figures("KEDA lag 100", 1_000.0, 5, 50),
            figures("KEDA lag 5000", 700.0, 90, 40),
            figures("KEDA lag 500", 1_000.0, 1, 50),
            figures(&format!("forecast {CHOSEN_UTILIZATION}%"), 750.0, 2, 10),
        ]);
        let lines: Vec<&str> = lines.lines().collect();
        assert!(lines[0].ends_with("**met**"), "{lines:?}");
        assert!(
            lines[1].ends_with("not met"),
            "cheaper, though far worse: {lines:?}"
        );
        assert!(lines[2].ends_with("not met"), "fewer violations: {lines:?}");
        assert!(lines[0].contains("consumer-minutes -25 %"), "{lines:?}");
    }

    #[test]
    fn a_trace_is_scaled_between_its_lowest_and_busiest_minute() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces");
        let rates = trace_rates(
            &dir,
            "alibaba2021_ms_6d9c26b9_1min.csv",
            20_000.0,
            120_000.0,
        )
        .unwrap();
        assert_eq!(rates.len(), 711 * 60);
        let max = rates.iter().copied().fold(0.0, f64::max);
        let min = rates.iter().copied().fold(f64::MAX, f64::min);
        assert!((max - 2_000.0).abs() < 1e-9 && (min - 20_000.0 / 60.0).abs() < 1e-9);
    }
}
