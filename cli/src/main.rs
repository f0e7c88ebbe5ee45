use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sluice_cli::Cli::parse();
    match sluice_cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            for line in e.details() {
                eprintln!("{line}");
            }
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
