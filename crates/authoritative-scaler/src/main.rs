//! authoritative-scaler: parse the configuration, start logging, decide until SIGTERM.

use authoritative_scaler::{Application, ScalerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: ScalerConfig = fleet::config::parse_or_exit();
    fleet::telemetry::init(&config.log);
    tracing::info!(?config, "authoritative-scaler starting");
    let shutdown = fleet::shutdown::on_signal();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => fleet::config::exit_cannot_start("authoritative-scaler", &e),
    };
    tracing::info!(ops = %app.ops_addr(), "serving /metrics and /healthz");
    app.run(shutdown).await
}
