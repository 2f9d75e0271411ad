//! `crossdenoise phantoms`: the embedded synthetic data set, written to disk.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use crossdenoise_image::coils::{CoilArray, Combination};
use crossdenoise_image::io::Format;
use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use crossdenoise_image::phantom_set;

use super::progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (gets pd/, pdfs/, clean/pd/, clean/pdfs/, phantoms.json, preview.png).
    #[arg(long)]
    out: PathBuf,
    /// Number of PD / PDFS pairs.
    #[arg(long, default_value_t = 16)]
    pairs: usize,
    /// Matrix size (square), a multiple of 16.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Seed: the same seed always gives the same slices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Signal-to-noise ratio of the PD acquisition (noise sigma = 1 / snr, brightest tissue
    /// ~1). Default: 20 up to 256 x 256, lower for finer matrices (320: 12.8).
    #[arg(long)]
    snr: Option<f32>,
    /// Signal-to-noise ratio of the PDFS acquisition. Default: --snr when that is given,
    /// else 12 up to 256 x 256 and lower for finer matrices (320: 7.7).
    #[arg(long)]
    snr_pdfs: Option<f32>,
    /// Receive channels: 1 (the default) is one uniform coil with Rician noise; 8 to 16 is
    /// a knee coil (its shading, correlated channel noise, noncentral chi after
    /// root-sum-of-squares).
    #[arg(long, default_value_t = 1)]
    coils: u32,
    /// Noise correlation between neighbouring channels (0 to 0.45).
    #[arg(long, default_value_t = 0.15)]
    coil_correlation: f32,
    /// Parallel-imaging acceleration (1 to 4, at most --coils): the noise grows by
    /// sqrt(R) times the g-factor map.
    #[arg(long, default_value_t = 1)]
    acceleration: u32,
    /// How the channels are combined: rss (noncentral chi) or sensitivity (Rician).
    #[arg(long, default_value = "rss", value_parser = parse_combination)]
    combine: Combination,
    /// File format: npy (float32) or png (16-bit, intensity x 40000).
    #[arg(long, default_value = "npy", value_parser = parse_format)]
    format: Format,
    /// Replace the images of an earlier set in --out.
    #[arg(long)]
    force: bool,
}

fn parse_combination(s: &str) -> Result<Combination, String> {
    Combination::parse(s).map_err(|e| e.to_string())
}

fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "npy" => Ok(Format::Npy),
        "png" => Ok(Format::Png),
        other => Err(format!("unknown format {other:?} (expected npy or png)")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.pairs > 0, "--pairs must be at least 1");
    let (pd, pdfs) = PhantomConfig::realistic_snr(args.size);
    let snr_pd = args.snr.unwrap_or(pd);
    let snr_pdfs = args
        .snr_pdfs
        .unwrap_or(if args.snr.is_some() { snr_pd } else { pdfs });
    let config = PhantomConfig {
        size: args.size,
        snr_pd,
        snr_pdfs,
    };
    let coils = CoilArray {
        coils: args.coils,
        correlation: if args.coils == 1 {
            0.0
        } else {
            args.coil_correlation
        },
        acceleration: args.acceleration,
        combination: args.combine,
    };
    let generator = PhantomGenerator::new(config, args.seed)
        .and_then(|g| g.with_coils(coils))
        .context("invalid phantom settings")?;
    phantom_set::prepare_output(&args.out, args.force)?;
    let bar = progress::bar(args.pairs as u64, "phantoms");
    let manifest = phantom_set::write_set(
        &args.out,
        &generator,
        args.seed,
        args.pairs,
        args.format,
        |n| bar.set_position(n as u64),
    )?;
    bar.finish_and_clear();
    println!(
        "wrote {} PD/PDFS pairs of {}x{} (sigma PD {:.4}, PDFS {:.4}) to {}",
        manifest.pairs,
        manifest.size,
        manifest.size,
        manifest.sigma_pd,
        manifest.sigma_pdfs,
        args.out.display()
    );
    if let Some(noise) = manifest.noise.as_ref().filter(|n| n.channels > 1) {
        println!(
            "noise: {} with {} degrees of freedom ({} channels, acceleration {}, g-factor up to {:.2}); true maps in {}",
            noise.distribution,
            2 * noise.dof_coils,
            noise.channels,
            noise.acceleration,
            noise.g_factor_max,
            args.out.join(&noise.maps).display()
        );
    }
    println!("preview: {}", args.out.join("preview.png").display());
    Ok(ExitCode::SUCCESS)
}
