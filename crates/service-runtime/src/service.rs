//! The skeleton every long-running service of the fleet starts by: parse and check the settings
//! (exit 2 with one line if they cannot work), start logging, log the settings in force, watch
//! for SIGTERM and SIGINT, build (exit 2 with one line if that fails: a port taken, a lock or a
//! model file unreadable), say where `/metrics` and `/healthz` are served, and run until a
//! signal or until a supervised task fails ([`crate::supervise`]).
//!
//! A service implements [`Service`] and its `main` is one line: `service_runtime::service::main::<Application>()`.

use crate::config::{Validate, exit_cannot_start, parse_or_exit};
use crate::telemetry::LogArgs;
use clap::Parser;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;

/// A service that the skeleton can start.
pub trait Service: Sized {
    /// The binary's name, as log lines and start-up errors say it.
    const NAME: &'static str;
    /// Its settings, parsed once at start.
    type Config: Parser + Validate + Debug;

    /// The logging options among the settings.
    fn log_args(config: &Self::Config) -> &LogArgs;

    /// Binds its listeners and prepares everything that can fail before it runs.
    fn build(config: Self::Config) -> impl Future<Output = anyhow::Result<Self>>;

    /// Where `/metrics` and `/healthz` are served.
    fn ops_addr(&self) -> SocketAddr;

    /// Logs what it is ready to do, once built; by default where its ops endpoints are.
    fn announce(&self) {
        tracing::info!(ops = %self.ops_addr(), "serving /metrics and /healthz");
    }

    /// Runs until `shutdown` is cancelled or one of its tasks fails.
    fn run(self, shutdown: CancellationToken) -> impl Future<Output = anyhow::Result<()>>;
}

/// The whole of a service's `main`.
pub async fn main<S: Service>() -> anyhow::Result<()> {
    let config: S::Config = parse_or_exit();
    crate::telemetry::init(S::log_args(&config));
    tracing::info!(?config, "{} starting", S::NAME);
    let shutdown = crate::shutdown::on_signal();
    let app = match S::build(config).await {
        Ok(app) => app,
        Err(e) => exit_cannot_start(S::NAME, &e),
    };
    app.announce();
    app.run(shutdown).await
}
