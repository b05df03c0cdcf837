//! pipeline-bench: parse the configuration, start logging (progress on stderr), measure, print
//! the report on stdout. A signal stops the run and its child processes.

use pipeline_bench::BenchConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: BenchConfig = service_runtime::config::parse_or_exit();
    service_runtime::telemetry::init(&config.log);
    let shutdown = service_runtime::shutdown::on_signal();
    // Dropping the run on a signal kills the broker and the services (kill_on_drop).
    let report = tokio::select! {
        report = pipeline_bench::run(config) => report?,
        _ = shutdown.cancelled() => anyhow::bail!("interrupted"),
    };
    println!("{}", report.render());
    Ok(())
}
