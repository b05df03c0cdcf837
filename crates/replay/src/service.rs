//! The simulated service: the demo target's queueing, request by request.
//!
//! Requests arrive as a Poisson process at the trace's rate and are spread round-robin over the
//! ready replicas, as the load generator spreads them over every replica address. Each replica
//! is what `demo-service` is: `concurrency` slots, a service time of the configured mean
//! (exponential by default), first come first served, at most `max_queue` waiting, a 503 past
//! that. A new replica serves only after the start-up delay; a removed one takes no new
//! requests and finishes what it holds (a graceful stop), as the Compose backend does.
//!
//! Every answer is counted, in the poll window in which it completes, into the demo's latency
//! buckets, so a window reads like the aggregator reads Prometheus: completions per second,
//! 5xx per second, and percentiles by `histogram_quantile` over those buckets.

use crate::queueing::histogram_quantile;
use features::{Observation, Quantiles};
use hdrhistogram::Histogram;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Exp};
use std::collections::VecDeque;

/// Arrival rates are read from the trace once per this many seconds.
const RATE_STEP: f64 = 1.0;
/// How long a refused request (503) takes to be answered.
const REFUSAL_SECONDS: f64 = 0.001;

/// How one replica of the simulated service behaves: the demo target's settings, and what the
/// calibration measured for CPU and memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceModel {
    /// Requests one replica serves at once (`CONCURRENCY`).
    pub concurrency: u32,
    /// Mean service time in seconds (`SERVICE_TIME_MS`).
    pub service_time: f64,
    /// Exponential service times; else every request takes the mean.
    pub exponential: bool,
    /// Requests that may wait per replica; more are refused with 503 (`MAX_QUEUE`).
    pub max_queue: usize,
    /// CPU cores a replica uses at rest...
    pub cpu_idle: f64,
    /// ...and per request per second it serves.
    pub cpu_per_rps: f64,
    /// Resident memory of a replica, bytes.
    pub memory: f64,
    /// Bucket bounds of the latency histogram, seconds (the demo's).
    pub buckets: Vec<f64>,
}

/// What one replica is, as the demo target's settings say it: its slots and mean service time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Profile {
    /// Requests served at once (`CONCURRENCY`).
    pub concurrency: u32,
    /// Mean service time, milliseconds (`SERVICE_TIME_MS`).
    pub service_time_ms: f64,
}

impl Profile {
    /// The demo target the dataset was collected on.
    pub const DEMO: Profile = Profile {
        concurrency: demo_service::DEFAULT_CONCURRENCY,
        service_time_ms: demo_service::DEFAULT_SERVICE_TIME_MS,
    };
}

impl ServiceModel {
    /// The same service with other slots and service time (CPU, memory and buckets kept).
    pub fn with_profile(&self, profile: Profile) -> ServiceModel {
        ServiceModel {
            concurrency: profile.concurrency.max(1),
            service_time: profile.service_time_ms / 1000.0,
            ..self.clone()
        }
    }

    /// Requests per second one replica can serve.
    pub fn capacity_rps(&self) -> f64 {
        f64::from(self.concurrency) / self.service_time
    }
}

/// What one poll window measured, as the aggregator would read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// End of the window, seconds since the start of the run.
    pub end: f64,
    /// Requests that arrived, per second.
    pub offered_rps: f64,
    /// Answers given (served or refused), per second: Prometheus' request rate.
    pub served_rps: f64,
    /// 5xx answers per second.
    pub error_rps: f64,
    /// p50, p95, p99 by histogram_quantile; `None` without answers.
    pub latency: Option<Quantiles>,
    /// Mean latency of the answers (the histogram's sum over its count).
    pub mean_latency: Option<f64>,
    /// Busy slot time over available slot time of the ready replicas, 0 to 1 (what CPU
    /// utilization is for a CPU-bound service).
    pub utilization: f64,
    /// Replicas serving at the end of the window (Prometheus' targets up).
    pub ready: u32,
    /// Replicas that exist, starting ones included (what the Docker engine lists).
    pub existing: u32,
}

impl Window {
    /// The aggregator's observation of this window, `at_secs` being its end in Unix seconds.
    pub fn observation(&self, model: &ServiceModel, at_secs: u64) -> Observation {
        let per_replica = self.served_rps / f64::from(self.ready.max(1));
        Observation {
            at_secs,
            request_rate: self.served_rps,
            error_rate: self.error_rps,
            latency: self.latency,
            replicas: self.ready,
            replicas_unscraped: 0,
            cpu_per_replica: Some(model.cpu_idle + model.cpu_per_rps * per_replica),
            memory_per_replica: Some(model.memory),
            day_ago: None,
            week_ago: None,
        }
    }
}

/// Counts of one window, filled as requests complete.
#[derive(Debug, Clone, Default)]
struct Counts {
    arrivals: u64,
    answers: u64,
    errors: u64,
    /// Per bucket (not cumulative), the last one being +Inf.
    buckets: Vec<u64>,
    latency_sum: f64,
    busy: f64,
}

/// One replica.
#[derive(Debug, Clone)]
struct Replica {
    /// When it starts serving.
    ready_at: f64,
    /// When each slot is next free.
    free_at: Vec<f64>,
    /// Start times of the requests waiting for a slot, in order (first come, first served).
    waiting: VecDeque<f64>,
}

/// A dependency every replica calls, slowed for a while (issue 15's fault): from `start` to
/// `end` (seconds of the run) each request, after its own service time, also waits for one of
/// the dependency's `slots` calls of `call` seconds, first come first served, and holds its
/// replica's slot meanwhile. What the dependency serves (`slots / call` a second) does not grow
/// with the replicas: more of them only queue more requests at it.
#[derive(Debug, Clone, PartialEq)]
pub struct Slowdown {
    pub start: f64,
    pub end: f64,
    pub call: f64,
    pub slots: usize,
}

/// A slowdown and when each of its dependency's slots is next free.
#[derive(Debug, Clone)]
struct Dependency {
    slowdown: Slowdown,
    free_at: Vec<f64>,
}

/// The simulated service, advanced in time by the caller.
pub struct Service {
    model: ServiceModel,
    /// Poll window length, seconds.
    interval: f64,
    /// Oldest first: scale-down removes from the end, as the Compose backend removes the
    /// highest-numbered containers.
    replicas: Vec<Replica>,
    /// Round-robin position among the ready replicas.
    next: usize,
    now: f64,
    /// Arrivals drawn for the current rate step, not yet offered.
    drawn: VecDeque<f64>,
    drawn_until: f64,
    /// Arrivals and service times come from separate streams, so every policy sees the same
    /// arrivals.
    arrival_rng: StdRng,
    service_rng: StdRng,
    service_time: Option<Exp<f64>>,
    /// Counts of the windows not yet observed; `pending[0]` is window `base`.
    pending: VecDeque<Counts>,
    base: u64,
    /// Latency of every served request, microseconds.
    served_latency: Histogram<u64>,
    /// Time integral of the replicas that exist.
    replica_seconds: f64,
    /// Slowed dependencies (none unless injected).
    dependencies: Vec<Dependency>,
}

impl Service {
    /// A service with `replicas` ready replicas at time 0.
    pub fn new(model: ServiceModel, interval: f64, replicas: u32, seed: u64) -> Self {
        let service_time = model
            .exponential
            .then(|| Exp::new(1.0 / model.service_time).ok())
            .flatten();
        let mut service = Self {
            interval,
            replicas: Vec::new(),
            next: 0,
            now: 0.0,
            drawn: VecDeque::new(),
            drawn_until: 0.0,
            arrival_rng: StdRng::seed_from_u64(seed),
            service_rng: StdRng::seed_from_u64(seed ^ 0x5eed_5eed),
            service_time,
            pending: VecDeque::new(),
            base: 0,
            served_latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds are valid"),
            replica_seconds: 0.0,
            dependencies: Vec::new(),
            model,
        };
        service.scale_to(replicas.max(1), 0.0, 0.0);
        service
    }

    /// Injects `slowdowns` of a dependency.
    pub fn with_slowdowns(mut self, slowdowns: &[Slowdown]) -> Self {
        self.dependencies = slowdowns
            .iter()
            .map(|s| Dependency {
                slowdown: s.clone(),
                free_at: vec![s.start; s.slots.max(1)],
            })
            .collect();
        self
    }

    /// When a request that leaves its replica's own work at `done` (having arrived at `t`) is
    /// answered: at `done`, or after a call to a slowed dependency.
    fn through_dependencies(&mut self, t: f64, done: f64) -> f64 {
        let Some(dependency) = self
            .dependencies
            .iter_mut()
            .find(|d| (d.slowdown.start..d.slowdown.end).contains(&t))
        else {
            return done;
        };
        let (slot, free) = dependency
            .free_at
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, done));
        let finish = free.max(done) + dependency.slowdown.call;
        if let Some(f) = dependency.free_at.get_mut(slot) {
            *f = finish;
        }
        finish
    }

    pub fn model(&self) -> &ServiceModel {
        &self.model
    }

    /// Replicas that exist now, starting ones included.
    pub fn existing(&self) -> u32 {
        self.replicas.len() as u32
    }

    /// Replicas serving at `t`.
    pub fn ready_at(&self, t: f64) -> u32 {
        // Replicas are appended in time order with the same delay: the ready ones are a prefix.
        self.replicas.partition_point(|r| r.ready_at <= t) as u32
    }

    /// Replica-seconds so far (replicas that exist, starting ones included).
    pub fn replica_seconds(&self) -> f64 {
        self.replica_seconds
    }

    /// Latency of every request served so far (refusals excluded), microseconds.
    pub fn served_latency(&self) -> &Histogram<u64> {
        &self.served_latency
    }

    /// Goes to `replicas` at `at`: new ones serve from `at + startup_delay`; removed ones are
    /// the newest.
    pub fn scale_to(&mut self, replicas: u32, at: f64, startup_delay: f64) {
        let replicas = replicas.max(1) as usize;
        let slots = self.model.concurrency.max(1) as usize;
        while self.replicas.len() < replicas {
            self.replicas.push(Replica {
                ready_at: at + startup_delay,
                free_at: vec![at; slots],
                waiting: VecDeque::new(),
            });
        }
        self.replicas.truncate(replicas);
    }

    /// Runs the service until `to`, with arrivals at `rate(t)` requests per second.
    pub fn advance(&mut self, to: f64, rate: &dyn Fn(f64) -> f64) {
        if to <= self.now {
            return;
        }
        self.replica_seconds += self.replicas.len() as f64 * (to - self.now);
        loop {
            while let Some(t) = self.drawn.front().copied() {
                if t >= to {
                    break;
                }
                self.drawn.pop_front();
                self.arrive(t);
            }
            if !self.drawn.is_empty() || self.drawn_until >= to {
                break;
            }
            self.draw_step(rate(self.drawn_until));
        }
        self.now = to;
    }

    /// Draws the Poisson arrivals of the next rate step.
    fn draw_step(&mut self, rate: f64) {
        let (start, end) = (self.drawn_until, self.drawn_until + RATE_STEP);
        if let Ok(gap) = Exp::new(rate) {
            let mut t = start + gap.sample(&mut self.arrival_rng);
            while t < end {
                self.drawn.push_back(t);
                t += gap.sample(&mut self.arrival_rng);
            }
        }
        self.drawn_until = end;
    }

    fn counts(&mut self, t: f64) -> &mut Counts {
        let window = (t / self.interval).floor().max(0.0) as u64;
        let index = window.saturating_sub(self.base) as usize;
        let buckets = self.model.buckets.len() + 1;
        while self.pending.len() <= index {
            self.pending.push_back(Counts {
                buckets: vec![0; buckets],
                ..Counts::default()
            });
        }
        &mut self.pending[index]
    }

    /// One request arriving at `t`.
    fn arrive(&mut self, t: f64) {
        self.counts(t).arrivals += 1;
        let ready = self.ready_at(t) as usize;
        if ready == 0 {
            return self.answer(t + REFUSAL_SECONDS, REFUSAL_SECONDS, 0.0, true);
        }
        self.next = (self.next + 1) % ready;
        let service = match &self.service_time {
            Some(exp) => exp.sample(&mut self.service_rng),
            None => self.model.service_time,
        };
        let max_queue = self.model.max_queue;
        let replica = &mut self.replicas[self.next];
        while replica.waiting.front().is_some_and(|s| *s <= t) {
            replica.waiting.pop_front();
        }
        let (slot, free) = replica
            .free_at
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, t));
        let start = free.max(t);
        if start > t && replica.waiting.len() >= max_queue {
            return self.answer(t + REFUSAL_SECONDS, REFUSAL_SECONDS, 0.0, true);
        }
        if start > t {
            replica.waiting.push_back(start);
        }
        let done = start + service;
        let finish = self.through_dependencies(t, done);
        // The slot is held through the dependency's call, if any.
        let busy = if finish > done {
            finish - start
        } else {
            service
        };
        if let Some(free) = self
            .replicas
            .get_mut(self.next)
            .and_then(|r| r.free_at.get_mut(slot))
        {
            *free = finish;
        }
        self.answer(finish, finish - t, busy, false);
    }

    /// Counts an answer completing at `at` after `latency`, having held a slot for `busy`.
    fn answer(&mut self, at: f64, latency: f64, busy: f64, refused: bool) {
        let bucket = self.model.buckets.partition_point(|b| *b < latency);
        let counts = self.counts(at);
        counts.answers += 1;
        counts.buckets[bucket] += 1;
        counts.latency_sum += latency;
        counts.busy += busy;
        if refused {
            counts.errors += 1;
        } else {
            let micros = (latency * 1e6).round().max(1.0) as u64;
            self.served_latency.saturating_record(micros);
        }
    }

    /// The window ending at `self.now` (a multiple of the interval), as the aggregator reads it.
    /// Windows must be observed in order, one per interval.
    pub fn observe(&mut self) -> Window {
        let end = self.now;
        let window = ((end / self.interval).round() as u64).saturating_sub(1);
        while self.base < window {
            self.pending.pop_front();
            self.base += 1;
        }
        let counts = self.pending.pop_front().unwrap_or_else(|| Counts {
            buckets: vec![0; self.model.buckets.len() + 1],
            ..Counts::default()
        });
        self.base = window + 1;
        let mut cumulative = counts.buckets.clone();
        for i in 1..cumulative.len() {
            cumulative[i] += cumulative[i - 1];
        }
        let quantile = |q| histogram_quantile(q, &self.model.buckets, &cumulative);
        let latency = match (quantile(0.5), quantile(0.95), quantile(0.99)) {
            (Some(p50), Some(p95), Some(p99)) => Some(Quantiles { p50, p95, p99 }),
            _ => None,
        };
        let ready = self.ready_at(end);
        let slot_seconds = f64::from(self.model.concurrency) * self.interval * f64::from(ready);
        Window {
            end,
            offered_rps: counts.arrivals as f64 / self.interval,
            served_rps: counts.answers as f64 / self.interval,
            error_rps: counts.errors as f64 / self.interval,
            latency,
            mean_latency: (counts.answers > 0).then(|| counts.latency_sum / counts.answers as f64),
            utilization: if slot_seconds > 0.0 {
                (counts.busy / slot_seconds).min(1.0)
            } else {
                0.0
            },
            ready,
            existing: self.existing(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::queueing::response_time_quantile;

    pub(crate) fn demo() -> ServiceModel {
        ServiceModel {
            concurrency: 4,
            service_time: 0.05,
            exponential: true,
            max_queue: 512,
            cpu_idle: 0.001,
            cpu_per_rps: 0.0001,
            memory: 5e6,
            buckets: vec![
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0,
                1.5, 2.0, 2.5, 5.0, 10.0,
            ],
        }
    }

    fn run(rate: f64, replicas: u32, windows: usize) -> Vec<Window> {
        let mut s = Service::new(demo(), 10.0, replicas, 7);
        (1..=windows)
            .map(|k| {
                s.advance(k as f64 * 10.0, &|_| rate);
                s.observe()
            })
            .collect()
    }

    #[test]
    fn steady_load_matches_the_queueing_formula() {
        let windows = run(120.0, 2, 60);
        let served: f64 = windows.iter().map(|w| w.served_rps).sum::<f64>() / 60.0;
        assert!((served - 120.0).abs() < 3.0, "{served}");
        let expected = response_time_quantile(0.95, 60.0, 4, 20.0);
        let mut p95: Vec<f64> = windows.iter().map(|w| w.latency.unwrap().p95).collect();
        p95.sort_by(f64::total_cmp);
        let median = p95[p95.len() / 2];
        assert!(
            (median - expected).abs() < 0.03,
            "simulated {median}, formula {expected}"
        );
        let utilization = windows.iter().map(|w| w.utilization).sum::<f64>() / 60.0;
        assert!((utilization - 0.75).abs() < 0.03, "{utilization}");
    }

    #[test]
    fn overload_queues_then_refuses() {
        let windows = run(200.0, 2, 30);
        let last = windows.last().unwrap();
        assert!(
            last.served_rps < 200.0 && last.served_rps > 150.0,
            "{last:?}"
        );
        assert!(last.latency.unwrap().p95 > 5.0, "a full queue: {last:?}");
        assert!(last.error_rps > 0.0, "503s past the queue bound: {last:?}");
    }

    #[test]
    fn new_replicas_serve_after_the_startup_delay() {
        let mut s = Service::new(demo(), 10.0, 1, 1);
        s.advance(10.0, &|_| 50.0);
        s.observe();
        s.scale_to(3, 10.0, 25.0);
        assert_eq!(
            (s.existing(), s.ready_at(34.0), s.ready_at(35.0)),
            (3, 1, 3)
        );
        s.advance(20.0, &|_| 50.0);
        let w = s.observe();
        assert_eq!((w.ready, w.existing), (1, 3));
        s.scale_to(1, 20.0, 25.0);
        assert_eq!(s.existing(), 1);
        // 10 s at 1 replica, then 10 s at 3.
        assert!((s.replica_seconds() - 40.0).abs() < 1e-9);
    }

    #[test]
    fn every_policy_sees_the_same_arrivals() {
        let offered = |step: f64| {
            let mut s = Service::new(demo(), 10.0, 2, 42);
            let mut t = 0.0;
            while t < 100.0 {
                t += step;
                s.advance(t, &|t| if t < 50.0 { 40.0 } else { 90.0 });
            }
            s.served_latency().len()
        };
        assert_eq!(offered(10.0), offered(5.0));
    }

    #[test]
    fn no_load_no_latency() {
        let w = run(0.0, 1, 2).pop().unwrap();
        assert_eq!((w.served_rps, w.latency, w.utilization), (0.0, None, 0.0));
    }
}
