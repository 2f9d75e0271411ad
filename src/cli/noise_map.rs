//! `crossdenoise noise-map`: each image's noise sd, pixel by pixel, and what its air says
//! of the coils that made it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;
use crossdenoise_image::air;
use crossdenoise_image::io::{self, GrayImage};
use crossdenoise_image::noise_map::{
    NoiseMapSettings, estimate_noise_map, estimate_noise_map_beside,
};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Image files (.npy, 16- or 8-bit .png, DICOM).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder: `<name>.npy` (float32 sd in the image's units) and `<name>.png`
    /// (8-bit, 0 to the map's largest value) per input.
    #[arg(long)]
    out: PathBuf,
    /// The magnitude's degrees of freedom in coils: 1 for one coil or a sensitivity-weighted
    /// combination, the channel count for root-sum-of-squares.
    #[arg(long, default_value_t = NoiseMapSettings::default().coils)]
    coils: u32,
    /// Tile side in pixels (even): each tile's estimate rests on (tile / 2)^2 blocks.
    #[arg(long, default_value_t = NoiseMapSettings::default().tile)]
    tile: usize,
    /// Smoothing across tiles, in tiles (0: none).
    #[arg(long, default_value_t = NoiseMapSettings::default().smoothing)]
    smoothing: f32,
    /// Fewest usable blocks a tile's own estimate needs.
    #[arg(long, default_value_t = NoiseMapSettings::default().min_blocks)]
    min_blocks: usize,
    /// The partner contrast's folder: each input's partner is the file of its name there
    /// (as `crossdenoise denoise --guide` pairs them), and the map reads as air only what is
    /// air in both (fat-suppressed tissue reads as air, and as a higher sigma, alone).
    #[arg(long, value_name = "DIR")]
    guide: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = NoiseMapSettings {
        tile: args.tile,
        min_blocks: args.min_blocks,
        smoothing: args.smoothing,
        coils: args.coils,
    };
    settings.validate().context("invalid noise map settings")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for input in &args.inputs {
        let image = io::read_slice(input)?;
        let stem = input
            .file_stem()
            .with_context(|| format!("{} has no file name", input.display()))?;
        let map = match &args.guide {
            None => estimate_noise_map(image.view(), &settings)?,
            Some(dir) => {
                let name = input.file_name().unwrap_or(stem);
                let path = dir.join(name);
                let partner = io::read_slice(&path)
                    .with_context(|| format!("the guide of {}", input.display()))?;
                anyhow::ensure!(
                    partner.dim() == image.dim(),
                    "{} is {:?} but its guide {} is {:?}",
                    input.display(),
                    image.dim(),
                    path.display(),
                    partner.dim()
                );
                estimate_noise_map_beside(image.view(), partner.view(), &settings)?
            }
        };
        let npy = args.out.join(stem).with_extension("npy");
        io::write_npy(&npy, map.view())?;
        let top = map.iter().fold(f32::EPSILON, |a, &v| a.max(v));
        let picture = GrayImage::U8(map.mapv(|v| (v / top * 255.0).round() as u8));
        io::write_png(&args.out.join(stem).with_extension("png"), &picture)?;
        let (lo, hi) = map
            .iter()
            .fold((f32::MAX, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        let reading = air::read_air(image.view());
        let air = match reading {
            Some(r) => format!(
                "air reads {} coil(s) (mean^2 / mean square {:.3}), neighbours correlated {:.2}",
                r.coils, r.ratio, r.correlation
            ),
            None => "no air to read".to_string(),
        };
        println!(
            "{}: noise sd {lo:.4} to {hi:.4}; {air} -> {}",
            input.display(),
            npy.display()
        );
        if let Some(told) = reading.and_then(|r| r.mismatch(args.coils)) {
            eprintln!("warning: {}: {told}", input.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
