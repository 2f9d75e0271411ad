//! `crossdenoise report`: one HTML page about the trained, exported and served denoisers.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::report::{self, ReportInputs};
use anyhow::Context as _;
use clap::Args as ClapArgs;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The training run folder (runs/<name>).
    #[arg(long)]
    run: PathBuf,
    /// The exported PD denoiser.
    #[arg(long)]
    pd_model: PathBuf,
    /// The exported PDFS denoiser.
    #[arg(long)]
    pdfs_model: PathBuf,
    /// A held-out phantom set (`crossdenoise phantoms`).
    #[arg(long)]
    phantoms: PathBuf,
    /// `crossdenoise denoise` results of the set's pd/ and pdfs/ folders (DIR/pd, DIR/pdfs).
    #[arg(long)]
    denoised: PathBuf,
    /// Reference scores of the same set (`scripts/quality_reference.py`'s quality.json):
    /// BM3D, NLM and the cross path.
    #[arg(long)]
    reference: Option<PathBuf>,
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
        models: [args.pd_model, args.pdfs_model],
        phantoms: args.phantoms,
        denoised: args.denoised,
        returned: args.returned,
        reference: args.reference,
    };
    let r = report::write(&inputs, &args.out)?;
    for c in &r.contrasts {
        println!(
            "{}; {:.1} ms / slice ({})",
            report::ReportSummary::headline(c),
            c.latency_p50_ms,
            c.provider
        );
    }
    println!("report: {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
