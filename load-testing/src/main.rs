//! loadgen: parse the command line, start logging, run the subcommand.

use loadgen::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = fleet::config::parse_or_exit();
    fleet::telemetry::init(&cli.log);
    let shutdown = fleet::shutdown::on_signal();
    match cli.command {
        Command::Run(load) => {
            let (summary, took) = loadgen::run_load(&load, &shutdown).await?;
            if load.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!("{}", loadgen::progress::summary(&summary, took));
            }
        }
        Command::Experiment(experiment) => loadgen::experiment::run(&experiment, &shutdown).await?,
    }
    Ok(())
}
