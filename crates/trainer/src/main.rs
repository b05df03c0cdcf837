//! trainer: parse the configuration, start logging, train, print the evaluation table.

use trainer::TrainerConfig;

fn main() -> anyhow::Result<()> {
    let config: TrainerConfig = fleet::config::parse_or_exit();
    fleet::telemetry::init(&config.log);
    let report = trainer::run(&config)?;
    println!("{}", trainer::report_table(&report));
    println!(
        "artifacts, models/evaluation.json and models/README.md written to {}",
        config.out.display()
    );
    Ok(())
}
