//! authoritative-scaler: parse the configuration, start logging, decide until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_runtime::service::main::<authoritative_scaler::Application>().await
}
