//! trainer: parse the configuration, start logging, train, print the evaluation tables.

use trainer::TrainerConfig;

fn main() -> anyhow::Result<()> {
    let config: TrainerConfig = service_runtime::config::parse_or_exit();
    service_runtime::telemetry::init(&config.log);
    if config.report_only {
        trainer::rewrite_readme(&config.out)?;
        println!("{} rewritten", config.out.join("README.md").display());
        return Ok(());
    }
    let report = trainer::run(&config)?;
    for baseline in &report.baselines {
        println!(
            "{}\n{}",
            baseline.pattern,
            trainer::report_table(&report, &baseline.pattern)
        );
    }
    println!(
        "artifacts, models/evaluation.json and models/README.md written to {}",
        config.out.display()
    );
    Ok(())
}
