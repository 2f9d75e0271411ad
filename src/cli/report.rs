//! `crossdenoise report`: one HTML page about a trained, exported and served model.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use crossdenoise_train::report::{self, ReportInputs};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The training run folder (runs/<name>).
    #[arg(long)]
    run: PathBuf,
    /// The exported model.
    #[arg(long)]
    model: PathBuf,
    /// A held-out phantom set (`crossdenoise phantoms`).
    #[arg(long)]
    phantoms: PathBuf,
    /// `crossdenoise denoise` results of the set's pdfs/ folder.
    #[arg(long)]
    denoised: PathBuf,
    /// The daemon's answers for the same slices (`crossdenoise-host send --out`).
    #[arg(long)]
    returned: Option<PathBuf>,
    /// The HTML file to write (a heldout.png is written beside it).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    let inputs = ReportInputs {
        run: args.run,
        model: args.model,
        phantoms: args.phantoms,
        denoised: args.denoised,
        returned: args.returned,
    };
    let r = report::write(&inputs, &args.out)?;
    println!(
        "held-out PSNR against clean: acquired PD {:.2} dB, denoised {:.2} dB ({:+.2} dB); \
         latency {:.1} ms / slice ({})",
        r.mean_acquired.psnr,
        r.mean_denoised.psnr,
        r.mean_denoised.psnr - r.mean_acquired.psnr,
        r.latency_p50_ms,
        r.provider
    );
    println!("report: {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
