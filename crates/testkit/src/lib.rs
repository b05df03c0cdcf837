//! Test support: the real parts, started per test.
//!
//! [`Broker`] is a `tansu` broker (Kafka-API compatible) with in-memory storage on a free port;
//! [`Prometheus`] is Debian's Prometheus scraping targets listed in file-based service discovery,
//! so a test can add and remove replicas; [`Dns`] is Debian's dnsmasq answering names with
//! addresses the test changes, as Docker's DNS answers a service's name with its replicas. All
//! are child processes killed when dropped. A missing binary fails the test with the command that
//! installs it. [`docker`] gives tests a locally built image, Compose projects and a Swarm on the
//! real Docker engine.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

mod broker;
mod dns;
pub mod docker;
mod prometheus;

pub use broker::Broker;
pub use dns::Dns;
pub use prometheus::Prometheus;

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free TCP port on 127.0.0.1")
}

/// Finds an executable: `$ENV_VAR`, then `~/.cargo/bin/<name>`, then `PATH`, then `/usr/sbin`
/// (Debian's daemons, outside a user's `PATH`); panics if none.
pub fn find_binary(name: &str, env_var: &str) -> PathBuf {
    try_find_binary(name, env_var).unwrap_or_else(|e| panic!("{e}"))
}

/// Finds an executable like [`find_binary`], or says where it looked.
pub fn try_find_binary(name: &str, env_var: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(path));
    }
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin").join(name));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(name)));
    }
    candidates.push(PathBuf::from("/usr/sbin").join(name));
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!("`{name}` not found ({env_var}, ~/.cargo/bin, PATH, /usr/sbin): run scripts/install-deps.sh")
    })
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_until(timeout, check).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `check` every 100 ms until it returns `Some`; `None` after `timeout`.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sum of the samples in a Prometheus text exposition whose line starts with `series` (a
/// metric name, or a name and the opening brace) and contains every one of `labels`.
pub fn metric_sum(text: &str, series: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(series) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Reads `url` (a `/metrics` endpoint) until it answers and the sum of `series` with `labels`
/// reaches `want`, and returns the last exposition read; after `timeout`, the last answer
/// whatever it says (or why there was none), for the caller's assertions to show. Counters fed
/// from several partitions reach their total at a moment of their own, not when one message
/// after them has been handled.
pub async fn metrics_when(
    url: &str,
    series: &str,
    labels: &[&str],
    want: f64,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = match reqwest::get(url).await {
            Ok(response) => response.text().await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("{url} does not answer: {e}")),
        };
        match text {
            Ok(text) if metric_sum(&text, series, labels) >= want => return text,
            Ok(text) | Err(text) if Instant::now() >= deadline => return text,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A name unique in this machine's run, for topics and consumer groups.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}
