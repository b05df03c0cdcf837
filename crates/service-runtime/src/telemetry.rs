//! Logging, set up in one place: human-readable by default, one JSON object per line on request.
//!
//! Logs go to stderr so that stdout carries only what a service prints on purpose (the scaler's
//! decision blocks); `docker compose logs` shows both.

use clap::{Args, ValueEnum};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event, for log pipelines.
    Json,
}

/// Logging options, flattened into every service's configuration.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax, for example `info` or `info,rdkafka=debug`.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match args.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Allows one log line per key (a bounded set: reasons, error kinds) every `every`, and counts
/// the lines it held back, so that a flood of the same error is one line every ten seconds
/// saying how many it stands for.
pub struct LogThrottle {
    every: Duration,
    last: HashMap<String, (Instant, u64)>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

impl LogThrottle {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: HashMap::new(),
        }
    }

    /// `Some(n)`: log this one, `n` lines of the key were held back since the last logged;
    /// `None`: hold it back.
    pub fn allow(&mut self, key: &str) -> Option<u64> {
        let now = Instant::now();
        match self.last.get_mut(key) {
            Some((at, held)) if now.duration_since(*at) < self.every => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                *at = now;
                Some(std::mem::take(held))
            }
            None => {
                self.last.insert(key.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[test]
    fn one_line_per_key_and_period_with_what_was_held_back() {
        let mut throttle = LogThrottle::new(Duration::from_secs(1));
        assert_eq!(throttle.allow("a"), Some(0));
        assert_eq!(throttle.allow("a"), None);
        assert_eq!(throttle.allow("a"), None);
        assert_eq!(throttle.allow("b"), Some(0), "each key on its own");
        std::thread::sleep(Duration::from_millis(1_100));
        assert_eq!(throttle.allow("a"), Some(2));
        assert_eq!(throttle.allow("a"), None);
    }
}
