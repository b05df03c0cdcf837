//! metrics-aggregator: parse the configuration, start logging, run until SIGTERM.

use metrics_aggregator::{AggregatorConfig, Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: AggregatorConfig = fleet::config::parse_or_exit();
    fleet::telemetry::init(&config.log);
    tracing::info!(?config, "metrics-aggregator starting");
    let shutdown = fleet::shutdown::on_signal();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => fleet::config::exit_cannot_start("metrics-aggregator", &e),
    };
    tracing::info!(ops = %app.ops_addr(), "serving /metrics and /healthz");
    app.run(shutdown).await
}
