//! replay: the trace replay's command line (`run`, `evaluate`, `calibrate`, `export`, `history`,
//! `consumers`);
//! what each does is in `replay::cli`. A bad setting, or a run that fails, exits with 2 and one
//! line saying what.

use replay::cli::{Command, ReplayConfig};

fn main() {
    let config: ReplayConfig = service_runtime::config::parse_or_exit();
    let result = match &config.command {
        Command::Run(args) => replay::run_command(args),
        Command::Evaluate(args) => replay::evaluate_command(args),
        Command::Calibrate(args) => replay::calibrate_command(args),
        Command::Export(args) => replay::export_command(args),
        Command::History(args) => replay::history_command(args),
        Command::Consumers(args) => replay::consumers_command(args),
        Command::Faults(args) => replay::faults_command(args),
    };
    match result {
        Ok(out) => println!("{out}"),
        Err(e) => service_runtime::config::exit_failed("replay", &e),
    }
}
