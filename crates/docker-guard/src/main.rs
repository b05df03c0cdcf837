//! docker-guard: parse the configuration, start logging, guard the engine until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_runtime::service::main::<docker_guard::Application>().await
}
