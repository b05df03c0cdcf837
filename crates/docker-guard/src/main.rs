//! docker-guard: parse the configuration, start logging, guard the engine until SIGTERM.

use docker_guard::{Application, GuardConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: GuardConfig = fleet::config::parse_or_exit();
    fleet::telemetry::init(&config.log);
    tracing::info!(?config, "docker-guard starting");
    let shutdown = fleet::shutdown::on_signal();
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => fleet::config::exit_cannot_start("docker-guard", &e),
    };
    tracing::info!(proxy = %app.addr(), ops = %app.ops_addr(), "guarding the Docker engine");
    app.run(shutdown).await
}
