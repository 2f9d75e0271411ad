//! `crossdenoise`: the workstation command line. Each subcommand lives in `cli/` and only
//! parses, resolves and calls the library crates; errors are printed once, with their
//! whole chain, and become the exit status.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
