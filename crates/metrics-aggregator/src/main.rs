//! metrics-aggregator: parse the configuration, start logging, run until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_runtime::service::main::<metrics_aggregator::Application>().await
}
