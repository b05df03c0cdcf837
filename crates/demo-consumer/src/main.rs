//! demo-consumer: parse the configuration, start logging, consume until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_runtime::service::main::<demo_consumer::Application>().await
}
