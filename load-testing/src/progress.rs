//! Progress while a run goes, and the summary at its end.
//!
//! On a terminal: a progress bar with the current target rate, the rate actually sent, errors and
//! p95 over the last second. Elsewhere (CI, `docker compose logs`): one plain line every 10 s.

use crate::pattern::Pattern;
use crate::stats::{Snapshot, Stats};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Reports until `stop` is cancelled.
pub async fn report(
    stats: Arc<Stats>,
    pattern: Pattern,
    duration: Duration,
    stop: CancellationToken,
) {
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let tick = if terminal {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    };
    let bar = terminal.then(|| {
        let bar = ProgressBar::new(duration.as_secs().max(1));
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let mut interval = tokio::time::interval(tick);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        let elapsed = started.elapsed();
        let target = pattern.rate_at(elapsed, duration);
        let line = line(&stats.take_recent(), target, tick);
        match &bar {
            Some(bar) => {
                bar.set_position(elapsed.as_secs().min(duration.as_secs()));
                bar.set_message(line);
            }
            None => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("t={:>5}s {line}", elapsed.as_secs());
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn line(recent: &Snapshot, target: f64, tick: Duration) -> String {
    let secs = tick.as_secs_f64();
    let error_pct = if recent.sent > 0 {
        100.0 * recent.errors() as f64 / recent.sent as f64
    } else {
        0.0
    };
    format!(
        "target {target:.0}/s sent {:.0}/s errors {error_pct:.1}% p95 {:.0} ms dropped {}",
        recent.sent as f64 / secs,
        recent.p95_ms,
        recent.dropped
    )
}

/// The end-of-run summary, for humans.
pub fn summary(s: &Snapshot, duration: Duration) -> String {
    let secs = duration.as_secs_f64().max(1e-9);
    format!(
        "sent {} ({:.1}/s) | ok {} | errors {} (4xx {}, 5xx {}, timeouts {}, transport {}) | dropped {}\n\
         latency ms: p50 {:.1} | p90 {:.1} | p95 {:.1} | p99 {:.1} | max {:.1}",
        s.sent,
        s.sent as f64 / secs,
        s.ok,
        s.errors(),
        s.client_errors,
        s.server_errors,
        s.timeouts,
        s.transport_errors,
        s.dropped,
        s.p50_ms,
        s.p90_ms,
        s.p95_ms,
        s.p99_ms,
        s.max_ms
    )
}

/// The end-of-run summary of a Kafka run (`--kafka-topic`), for humans: messages acknowledged
/// by the broker, those that failed, and the time to the acknowledgement.
pub fn kafka_summary(s: &Snapshot, duration: Duration) -> String {
    let secs = duration.as_secs_f64().max(1e-9);
    format!(
        "messages produced {} ({:.1}/s) | failed {} (timeouts {}, other {}) | dropped {}\n\
         acknowledgement ms: p50 {:.1} | p90 {:.1} | p95 {:.1} | p99 {:.1} | max {:.1}",
        s.ok,
        s.ok as f64 / secs,
        s.errors(),
        s.timeouts,
        s.errors() - s.timeouts,
        s.dropped,
        s.p50_ms,
        s.p90_ms,
        s.p95_ms,
        s.p99_ms,
        s.max_ms
    )
}

/// The summary of a run of `load`: requests, or messages with `--kafka-topic`.
pub fn summary_of(load: &crate::cli::LoadArgs, s: &Snapshot, duration: Duration) -> String {
    if load.kafka_topic.is_some() {
        kafka_summary(s, duration)
    } else {
        summary(s, duration)
    }
}
