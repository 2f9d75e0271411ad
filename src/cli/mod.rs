//! The subcommands of `crossdenoise`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod phantoms;
mod progress;

#[derive(Debug, Parser)]
#[command(
    name = "crossdenoise",
    version,
    about = "Cross-contrast (PD / PDFS) MRI denoising: data, training, export, denoising"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a synthetic knee phantom data set: paired PD / PDFS folders, the noise-free
    /// images beside them, and a preview picture.
    Phantoms(phantoms::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Phantoms(args) => phantoms::run(args),
    }
}
