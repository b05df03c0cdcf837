//! Settings of one demo-service replica.

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use service_runtime::config::Validate;
use service_runtime::telemetry::LogArgs;
use std::net::SocketAddr;

/// How long each request holds its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceTimeDistribution {
    /// Exponentially distributed around the mean (an M/M/c queue per replica).
    Exponential,
    /// Always the mean (an M/D/c queue per replica).
    Constant,
}

/// Slots of a replica by default: the demo target the models' dataset was collected on.
pub const DEFAULT_CONCURRENCY: u32 = 4;
/// Mean service time by default, milliseconds.
pub const DEFAULT_SERVICE_TIME_MS: f64 = 50.0;

/// A stand-in for a Sock Shop service: every request takes one of CONCURRENCY slots for about
/// SERVICE_TIME_MS; requests beyond that wait in a queue of at most MAX_QUEUE and are refused
/// with 503 past it. Capacity per replica is CONCURRENCY / SERVICE_TIME_MS requests per
/// millisecond, so latency rises steeply as the load nears it, and adding replicas helps.
#[derive(Debug, Clone, Parser)]
#[command(name = "demo-service", version)]
pub struct DemoConfig {
    /// Address to listen on (the service's routes, /metrics and /healthz).
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,

    /// Value of the `service` label on request_duration_seconds.
    #[arg(long, env = "SERVICE_NAME", default_value = "demo")]
    pub service_name: String,

    /// Requests one replica serves at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// Mean service time of a request, in milliseconds.
    #[arg(long, env = "SERVICE_TIME_MS", default_value_t = DEFAULT_SERVICE_TIME_MS)]
    pub service_time_ms: f64,

    /// Distribution of the service time.
    #[arg(
        long,
        env = "SERVICE_TIME_DISTRIBUTION",
        value_enum,
        default_value = "exponential"
    )]
    pub service_time_distribution: ServiceTimeDistribution,

    /// Requests that may wait for a slot; more are refused with 503.
    #[arg(long, env = "MAX_QUEUE", default_value_t = 512)]
    pub max_queue: u32,

    /// Share of served requests answered with 500, to exercise error ratios.
    #[arg(long, env = "ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,

    /// Also record each GET /metrics (Prometheus' scrape) in request_duration_seconds with
    /// route="metrics", as Sock Shop's catalogue, payment and user do: a scrape target that
    /// counts its own scrapes, for testing that they are not taken for traffic.
    #[arg(long, env = "RECORD_SCRAPES", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub record_scrapes: bool,

    /// Serve the fault switch, `POST /fault?slowdown_ms=M&error_ratio=E&metrics_down=B&for_sec=S`
    /// (for S seconds each request also waits M ms for a slowed dependency, holding its slot, E
    /// of the requests fail with 500, and with B true `/metrics` answers 503, a scrape loss) and
    /// `DELETE /fault`: for testing that the autoscaler does not scale into a failing dependency
    /// nor remove replicas it cannot see. Off by default: anyone who reaches the port could slow
    /// the service.
    #[arg(long, env = "FAULT_SWITCH", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub fault_switch: bool,

    #[command(flatten)]
    pub log: LogArgs,
}

impl Validate for DemoConfig {
    fn validate(&self) -> Result<(), String> {
        if !(self.service_time_ms.is_finite() && self.service_time_ms > 0.0) {
            return Err(format!(
                "SERVICE_TIME_MS (--service-time-ms): {} is not a positive number of milliseconds",
                self.service_time_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "ERROR_RATE (--error-rate): {} is not a share between 0 and 1",
                self.error_rate
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err("SERVICE_NAME (--service-name) is empty".into());
        }
        Ok(())
    }
}

impl DemoConfig {
    /// The default settings, whatever the environment says: the demo target as the models'
    /// dataset ran it (the trace replay simulates that one, not the shell's CONCURRENCY).
    pub fn defaults() -> Result<Self, clap::Error> {
        let matches = Self::command()
            .mut_args(|arg| arg.env(None::<&'static str>))
            .try_get_matches_from(["demo-service"])?;
        Self::from_arg_matches(&matches)
    }

    /// A replica on an ephemeral loopback port, for tests and the local stack.
    pub fn local(service_name: &str, concurrency: u32, service_time_ms: f64) -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            service_name: service_name.to_owned(),
            concurrency,
            service_time_ms,
            service_time_distribution: ServiceTimeDistribution::Exponential,
            max_queue: 512,
            error_rate: 0.0,
            record_scrapes: false,
            fault_switch: false,
            log: LogArgs {
                log_format: service_runtime::telemetry::LogFormat::Human,
                log_level: "info".into(),
            },
        }
    }

    /// Requests per second one replica can serve.
    pub fn capacity_rps(&self) -> f64 {
        f64::from(self.concurrency) * 1000.0 / self.service_time_ms
    }
}
