//! The open-loop engine: requests are issued on a schedule computed from the pattern, whatever
//! the latency. A slow service gets more requests in flight, not fewer arrivals; that is what
//! real users do, and what a closed-loop generator (Locust's default) hides.
//!
//! Arrivals are Poisson (exponential gaps at the current rate) or evenly spaced. The schedule is
//! absolute, so a late timer does not lower the rate: overdue arrivals are sent at once. When
//! the client itself hits `max_in_flight`, arrivals are dropped and counted, never delayed.

use crate::pattern::Pattern;
use crate::scenario::Scenario;
use crate::stats::{Outcome, Stats};
use crate::targets::Targets;
use clap::ValueEnum;
use rand_distr::{Distribution, Exp1};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arrivals {
    /// Exponential gaps: independent users.
    Poisson,
    /// Even gaps: a metronome.
    Uniform,
}

/// One run's shape and limits.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub pattern: Pattern,
    pub duration: Duration,
    pub arrivals: Arrivals,
    /// Requests in flight beyond which arrivals are dropped.
    pub max_in_flight: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Virtual users (cookie jars) for journeys.
    pub users: usize,
}

/// While the pattern asks for no load, look again this often.
const IDLE_RECHECK: Duration = Duration::from_millis(100);

/// The arrival times of a run, whatever is sent at each (an HTTP request, a Kafka message):
/// absolute from the start, at the pattern's rate at each moment.
pub struct Schedule<'a> {
    spec: &'a RunSpec,
    /// When the run started.
    start: Instant,
    /// The next arrival, from the start.
    next: Duration,
}

impl<'a> Schedule<'a> {
    /// A schedule starting now.
    pub fn start(spec: &'a RunSpec) -> Self {
        Self {
            spec,
            start: Instant::now(),
            next: Duration::ZERO,
        }
    }

    /// Waits until the next arrival is due (the last may fall just past the end: it is drawn
    /// while the run lasts); `false` once the run's duration is over or `shutdown` is
    /// cancelled.
    pub async fn next_arrival(&mut self, shutdown: &CancellationToken) -> bool {
        let spec = self.spec;
        while self.next < spec.duration {
            let rate = spec.pattern.rate_at(self.next, spec.duration);
            if rate <= 0.0 {
                self.next += IDLE_RECHECK;
                continue;
            }
            let gap = match spec.arrivals {
                Arrivals::Poisson => {
                    let e: f64 = Exp1.sample(&mut rand::rng());
                    e / rate
                }
                Arrivals::Uniform => 1.0 / rate,
            };
            self.next += Duration::from_secs_f64(gap);
            return tokio::select! {
                _ = shutdown.cancelled() => false,
                _ = tokio::time::sleep_until(self.start + self.next) => true,
            };
        }
        false
    }
}

/// Runs `spec` until its duration has passed or `shutdown` is cancelled, then waits (up to the
/// request timeout) for requests in flight.
pub async fn run(
    spec: &RunSpec,
    scenario: &Scenario,
    targets: Arc<Targets>,
    stats: Arc<Stats>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let clients = (0..spec.users.max(1))
        .map(|_| {
            reqwest::Client::builder()
                .timeout(spec.timeout)
                .cookie_store(matches!(scenario, Scenario::SockShop))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let clients = Arc::new(clients);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let refresher = {
        let targets = targets.clone();
        let stop = shutdown.child_token();
        let guard = stop.clone().drop_guard();
        (
            tokio::spawn(async move { targets.keep_fresh(stop).await }),
            guard,
        )
    };

    let mut schedule = Schedule::start(spec);
    let mut n: u64 = 0;
    while schedule.next_arrival(shutdown).await {
        if in_flight.load(Ordering::Relaxed) >= spec.max_in_flight {
            stats.dropped();
            continue;
        }
        let Some(endpoint) = targets.pick() else {
            stats.sent();
            stats.record(Outcome::Transport, Duration::ZERO);
            continue;
        };
        let request = scenario.request(n, spec.users);
        n += 1;
        let client = clients[request.user % clients.len()].clone();
        let (stats, in_flight) = (stats.clone(), in_flight.clone());
        in_flight.fetch_add(1, Ordering::Relaxed);
        stats.sent();
        tokio::spawn(async move {
            let url = format!("http://{}{}", endpoint.addr, request.path);
            let mut builder = client.request(request.method, url);
            if let Some(host) = endpoint.host {
                builder = builder.header(reqwest::header::HOST, host);
            }
            if let Some(json) = &request.json {
                builder = builder.json(json);
            }
            if let Some((user, password)) = request.basic_auth {
                builder = builder.basic_auth(user, Some(password));
            }
            let sent_at = Instant::now();
            let outcome = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    // Read the body so the connection can be reused.
                    let _ = response.bytes().await;
                    if status.is_server_error() {
                        Outcome::ServerError
                    } else if status.is_client_error() {
                        Outcome::ClientError
                    } else {
                        Outcome::Ok
                    }
                }
                Err(e) if e.is_timeout() => Outcome::Timeout,
                Err(_) => Outcome::Transport,
            };
            stats.record(outcome, sent_at.elapsed());
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let drain_until = Instant::now() + spec.timeout;
    while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(refresher.1);
    let _ = refresher.0.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use demo_service::{Application, DemoConfig};

    /// Against a replica that is much too slow, the arrivals still come at the asked rate.
    #[tokio::test]
    async fn slow_service_does_not_slow_the_load() {
        // One slot of 200 ms: capacity 5 rps; we send 50 rps.
        let mut config = DemoConfig::local("slow", 1, 200.0);
        config.max_queue = 10_000;
        let app = Application::build(&config).await.unwrap();
        let url = format!("http://{}/", app.local_addr());
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(shutdown.clone()));

        let spec = RunSpec {
            pattern: Pattern::Constant { rps: 50.0 },
            duration: Duration::from_secs(2),
            arrivals: Arrivals::Uniform,
            max_in_flight: 10_000,
            timeout: Duration::from_millis(500),
            users: 1,
        };
        let targets = Arc::new(Targets::new(&[url], &[]).await.unwrap());
        let stats = Arc::new(Stats::default());
        let started = std::time::Instant::now();
        run(
            &spec,
            &Scenario::Url { path: "/".into() },
            targets,
            stats.clone(),
            &shutdown,
        )
        .await
        .unwrap();
        let s = stats.snapshot();
        assert!(
            (95..=101).contains(&s.sent),
            "sent {} in 2 s at 50 rps",
            s.sent
        );
        assert!(s.timeouts > 50, "most requests wait behind the slot: {s:?}");
        assert!(started.elapsed() < Duration::from_secs(4));
        shutdown.cancel();
    }
}
