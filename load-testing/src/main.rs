//! load-testing: parse the command line, start logging, run the subcommand.

use load_testing::cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = service_runtime::config::parse_or_exit();
    service_runtime::telemetry::init(&cli.log);
    let shutdown = service_runtime::shutdown::on_signal();
    match cli.command {
        Command::Run(load) => {
            let (summary, took) = load_testing::run_load(&load, &shutdown).await?;
            if load.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!(
                    "{}",
                    load_testing::progress::summary_of(&load, &summary, took)
                );
            }
        }
        Command::Experiment(experiment) => {
            load_testing::experiment::run(&experiment, &shutdown).await?
        }
    }
    Ok(())
}
