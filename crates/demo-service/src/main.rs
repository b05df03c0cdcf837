//! demo-service: parse the configuration, start logging, serve until SIGTERM.

use demo_service::{Application, DemoConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config: DemoConfig = service_runtime::config::parse_or_exit();
    service_runtime::telemetry::init(&config.log);
    let shutdown = service_runtime::shutdown::on_signal();
    let app = Application::build(&config).await?;
    tracing::info!(
        addr = %app.local_addr(),
        service = %config.service_name,
        concurrency = config.concurrency,
        service_time_ms = config.service_time_ms,
        capacity_rps = config.capacity_rps(),
        record_scrapes = config.record_scrapes,
        "demo-service ready"
    );
    app.run(shutdown).await
}
