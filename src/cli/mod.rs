//! The subcommands of `crossdenoise`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod denoise;
mod diagnose;
mod experiments;
mod export;
mod fastmri;
mod noise_map;
mod phantoms;
mod processes;
mod progress;
mod quick_test;
mod report;
mod train;

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
    /// Reconstruct fastMRI's knee files (k-space in HDF5) into PD and PDFS slice folders,
    /// with a preview picture.
    Fastmri(fastmri::Args),
    /// Estimate each image's noise sd pixel by pixel (scans whose noise varies with a
    /// parallel-imaging g-factor map), writing it as .npy and .png.
    NoiseMap(noise_map::Args),
    /// Train from a config file: the guided or single-contrast denoisers, or the study's
    /// dual-domain model.
    Train(train::Args),
    /// Train a config briefly and judge it by the study's three checkpoints (cross loss
    /// falling, content loss converging, recon loss falling); exits non-zero on a failure.
    QuickTest(quick_test::Args),
    /// Run the study's experiment suites (cross-domain strategies, loss ablations),
    /// resuming partly done suites, and write their summaries and reports.
    Experiments(experiments::Args),
    /// Apply the study's diagnosis table to a run, with the evidence and the remedy.
    Diagnose(diagnose::DiagnoseArgs),
    /// Check a config for known traps before training: the study's, and a denoiser's
    /// training crop too small for its network.
    Check(diagnose::CheckArgs),
    /// Export a trained run as an ONNX model (parity-checked against Burn): one contrast's
    /// denoiser, or the study's no_skip cross path (contrast synthesis).
    Export(export::Args),
    /// Denoise image files (.npy, PNG, DICOM series) with an exported ONNX model, each
    /// paired with its partner contrast's slice for a guided model.
    Denoise(denoise::Args),
    /// Benchmarks that take too long for criterion (a training step).
    Bench(bench::Args),
    /// One HTML page: held-out results of both contrasts' denoisers against clean (and
    /// BM3D), leakage, daemon agreement, latency, training curves and samples.
    Report(report::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Phantoms(args) => phantoms::run(args),
        Command::Fastmri(args) => fastmri::run(args),
        Command::NoiseMap(args) => noise_map::run(args),
        Command::Train(args) => train::run(args),
        Command::QuickTest(args) => quick_test::run(args),
        Command::Experiments(args) => experiments::run(args),
        Command::Diagnose(args) => diagnose::diagnose(args),
        Command::Check(args) => diagnose::check(args),
        Command::Export(args) => export::run(args),
        Command::Denoise(args) => denoise::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Report(args) => report::run(args),
    }
}
