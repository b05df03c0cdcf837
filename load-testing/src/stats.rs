//! Counting what happened: requests sent, answers by class, errors, arrivals dropped because the
//! client itself was saturated, and latency histograms (whole run and the last progress tick).

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Mutex;
use std::time::Duration;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 1xx-3xx.
    Ok,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// No answer within the timeout.
    Timeout,
    /// Connection refused, reset, DNS: no HTTP answer.
    Transport,
}

#[derive(Debug, Clone, Default)]
struct Counts {
    sent: u64,
    ok: u64,
    client_errors: u64,
    server_errors: u64,
    timeouts: u64,
    transport: u64,
    dropped: u64,
}

struct Inner {
    counts: Counts,
    /// Latency of every answer, in microseconds.
    total: Histogram<u64>,
    /// Latency since the last [`Stats::take_recent`].
    recent: Histogram<u64>,
    /// Counts at the last [`Stats::take_recent`].
    recent_base: Counts,
}

/// Shared counters of one run.
pub struct Stats {
    inner: Mutex<Inner>,
}

/// Latency bounds tracked: 1 us to 10 minutes, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// A snapshot of counts and latency percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub sent: u64,
    pub ok: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub timeouts: u64,
    pub transport_errors: u64,
    pub dropped: u64,
    pub answered: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Snapshot {
    /// Requests that did not get a successful answer.
    pub fn errors(&self) -> u64 {
        self.client_errors + self.server_errors + self.timeouts + self.transport_errors
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                counts: Counts::default(),
                total: histogram(),
                recent: histogram(),
                recent_base: Counts::default(),
            }),
        }
    }
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn sent(&self) {
        self.lock().counts.sent += 1;
    }

    /// An arrival the client could not send because too many requests were in flight.
    pub fn dropped(&self) {
        self.lock().counts.dropped += 1;
    }

    pub fn record(&self, outcome: Outcome, latency: Duration) {
        let mut inner = self.lock();
        let c = &mut inner.counts;
        match outcome {
            Outcome::Ok => c.ok += 1,
            Outcome::ClientError => c.client_errors += 1,
            Outcome::ServerError => c.server_errors += 1,
            Outcome::Timeout => c.timeouts += 1,
            Outcome::Transport => c.transport += 1,
        }
        if matches!(
            outcome,
            Outcome::Ok | Outcome::ClientError | Outcome::ServerError
        ) {
            let us = (latency.as_micros() as u64).clamp(1, 600_000_000);
            let _ = inner.total.record(us);
            let _ = inner.recent.record(us);
        }
    }

    /// The whole run so far.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        snapshot(&inner.counts, &Counts::default(), &inner.total)
    }

    /// Since the previous call; starts a new interval.
    pub fn take_recent(&self) -> Snapshot {
        let mut inner = self.lock();
        let s = snapshot(&inner.counts, &inner.recent_base, &inner.recent);
        inner.recent_base = inner.counts.clone();
        inner.recent.reset();
        s
    }
}

fn snapshot(now: &Counts, base: &Counts, h: &Histogram<u64>) -> Snapshot {
    let ms = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    Snapshot {
        sent: now.sent - base.sent,
        ok: now.ok - base.ok,
        client_errors: now.client_errors - base.client_errors,
        server_errors: now.server_errors - base.server_errors,
        timeouts: now.timeouts - base.timeouts,
        transport_errors: now.transport - base.transport,
        dropped: now.dropped - base.dropped,
        answered: h.len(),
        p50_ms: ms(0.50),
        p90_ms: ms(0.90),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        max_ms: if h.is_empty() {
            0.0
        } else {
            h.max() as f64 / 1000.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let stats = Stats::default();
        for ms in 1..=100 {
            stats.sent();
            stats.record(Outcome::Ok, Duration::from_millis(ms));
        }
        stats.record(Outcome::ServerError, Duration::from_millis(500));
        stats.record(Outcome::Timeout, Duration::from_secs(10));
        stats.dropped();
        let s = stats.snapshot();
        assert_eq!(
            (s.sent, s.ok, s.server_errors, s.timeouts, s.dropped),
            (100, 100, 1, 1, 1)
        );
        assert_eq!(s.errors(), 2);
        assert!((s.p50_ms - 51.0).abs() < 1.0, "{}", s.p50_ms);
        assert!((s.max_ms - 500.0).abs() < 1.0);
        let recent = stats.take_recent();
        assert_eq!(recent.sent, 100);
        stats.sent();
        assert_eq!(stats.take_recent().sent, 1, "recent counts restart");
    }
}
