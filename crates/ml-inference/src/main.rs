//! ml-inference: parse the configuration, start logging, load the model, vote until SIGTERM.

use ml_inference::{Application, InferenceConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: InferenceConfig = fleet::config::parse_or_exit();
    fleet::telemetry::init(&config.log);
    tracing::info!(?config, "ml-inference starting");
    let shutdown = fleet::shutdown::on_signal();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => fleet::config::exit_cannot_start("ml-inference", &e),
    };
    tracing::info!(ops = %app.ops_addr(), "serving /metrics and /healthz");
    app.run(shutdown).await
}
