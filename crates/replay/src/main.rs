use replay::cli::{Command, ReplayConfig};

fn main() {
    let config: ReplayConfig = fleet::config::parse_or_exit();
    let result = match &config.command {
        Command::Run(args) => replay::run_command(args),
        Command::Evaluate(args) => replay::evaluate_command(args),
        Command::Calibrate(args) => replay::calibrate_command(args),
        Command::Export(args) => replay::export_command(args),
        Command::History(args) => replay::history_command(args),
    };
    match result {
        Ok(out) => println!("{out}"),
        Err(e) => fleet::config::exit_cannot_start("replay", &e),
    }
}
