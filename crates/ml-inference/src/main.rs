//! ml-inference: parse the configuration, start logging, load the model, vote until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_runtime::service::main::<ml_inference::Application>().await
}
