//! `crossdenoise noise-map`: each image's noise sd, pixel by pixel, and what its air says
//! of the coils that made it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;
use crossdenoise_image::air;
use crossdenoise_image::io::{self, GrayImage};
use crossdenoise_image::noise_map::{
    NoiseMapSettings, PhaseEncoding, Stated, estimate_noise_map, estimate_pair_noise_maps,
    estimate_series_noise_maps,
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
    /// Which way the phase encoding runs in the images: `left-right`, `up-down` or
    /// `unknown` (square tiles). Parallel imaging folds along it, so the map changes
    /// fastest across it. A DICOM file's own In-plane Phase Encoding Direction takes its
    /// place.
    #[arg(long, value_parser = parse_phase_encoding, default_value = "unknown")]
    phase_encoding: PhaseEncoding,
    /// With the phase encoding known: how many times longer than wide a tile is along the
    /// readout (its area kept; 1: square).
    #[arg(long, default_value_t = NoiseMapSettings::default().elongation)]
    elongation: usize,
    /// Parallel imaging's acceleration along the phase encoding (1: none or not known).
    /// With --phase-encoding, the map is read between the fold lines k N / R where it jumps
    /// there (SENSE's g-factor can); only for images of the whole unfolded field of view.
    /// DICOM files that state theirs (Parallel Reduction Factor In-plane) set it aside.
    #[arg(long, default_value_t = NoiseMapSettings::default().acceleration)]
    acceleration: u32,
    /// --acceleration holds whatever DICOM files state (for images that crop the phase
    /// oversampling after unfolding).
    #[arg(long)]
    ignore_stated_acceleration: bool,
    /// Smoothing across tiles, in tiles (0: none).
    #[arg(long, default_value_t = NoiseMapSettings::default().smoothing)]
    smoothing: f32,
    /// Fewest usable blocks a tile's own estimate needs.
    #[arg(long, default_value_t = NoiseMapSettings::default().min_blocks)]
    min_blocks: usize,
    /// The partner contrast's folder: each input's partner is the file of its name there
    /// (as `crossdenoise denoise --guide` pairs them). The map reads as air only what is air
    /// in both (fat-suppressed tissue reads as air, and as a higher sigma, alone), and in
    /// tissue takes the partner's estimate where it is lower, scaled to the input's level,
    /// when the two maps have one shape in their air (as `denoise --noise map` serves).
    #[arg(long, value_name = "DIR")]
    guide: Option<PathBuf>,
    /// The inputs are the slices of one series (one acquisition: same size, coils,
    /// acceleration and receiver): every tile's estimate pools all of their blocks at that
    /// place, since they share one g-factor map. Refused when their sizes differ; a slice
    /// whose own map is too far off the pool's is set apart, with a warning naming it
    /// (pooled with the others set apart where they agree, mapped alone otherwise).
    #[arg(long)]
    series: bool,
}

/// `--phase-encoding`'s value, parsed once at the edge (`denoise` takes it too).
pub(super) fn parse_phase_encoding(s: &str) -> Result<PhaseEncoding, String> {
    PhaseEncoding::parse(s).map_err(|e| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = NoiseMapSettings {
        tile: args.tile,
        phase_encoding: args.phase_encoding,
        elongation: args.elongation,
        min_blocks: args.min_blocks,
        smoothing: args.smoothing,
        coils: args.coils,
        acceleration: args.acceleration,
    };
    settings.validate().context("invalid noise map settings")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut images = Vec::with_capacity(args.inputs.len());
    let mut partners = Vec::new();
    let mut stated = Vec::with_capacity(args.inputs.len());
    let counted = |s: Stated| s.acceleration_counting(!args.ignore_stated_acceleration);
    for input in &args.inputs {
        let (image, own) = io::read_slice_stated(input)?;
        stated.push(vec![counted(own)]);
        if let Some(dir) = &args.guide {
            let name = input
                .file_name()
                .with_context(|| format!("{} has no file name", input.display()))?;
            let path = dir.join(name);
            let (partner, theirs) = io::read_slice_stated(&path)
                .with_context(|| format!("the guide of {}", input.display()))?;
            stated
                .last_mut()
                .expect("pushed above")
                .push(counted(theirs));
            anyhow::ensure!(
                partner.dim() == image.dim(),
                "{} is {:?} but its guide {} is {:?}",
                input.display(),
                image.dim(),
                path.display(),
                partner.dim()
            );
            partners.push(partner);
        }
        images.push(image);
    }
    let maps = maps(&images, &partners, &stated, &args, &settings)?;
    for ((input, image), map) in args.inputs.iter().zip(&images).zip(maps) {
        let stem = input
            .file_stem()
            .with_context(|| format!("{} has no file name", input.display()))?;
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

/// Each image's map: alone or beside its partner (which checks it, `estimate_pair_noise_maps`),
/// slice by slice or pooled over the series, as what the images (and partners) state of
/// their acquisition sets it (`stated`, one list per image: a DICOM file's phase encoding and
/// acceleration) where they state it.
fn maps(
    images: &[ndarray::Array2<f32>],
    partners: &[ndarray::Array2<f32>],
    stated: &[Vec<Stated>],
    args: &Args,
    settings: &NoiseMapSettings,
) -> anyhow::Result<Vec<ndarray::Array2<f32>>> {
    let views: Vec<_> = images.iter().map(|i| i.view()).collect();
    let partner_views: Vec<_> = partners.iter().map(|p| p.view()).collect();
    let with_partner = !partner_views.is_empty();
    if args.series {
        let all: Vec<_> = stated.iter().flatten().copied().collect();
        let settings = &settings.as_stated(Stated::by_all(&all));
        let (pooled, theirs) = if with_partner {
            estimate_pair_noise_maps(&views, &partner_views, settings)
                .map(|(own, theirs)| (own, Some(theirs)))
        } else {
            estimate_series_noise_maps(&views, None, settings).map(|own| (own, None))
        }
        .context("the inputs as one series")?;
        if let Some(reason) = pooled.apart_reason() {
            eprintln!("warning: the inputs as one series: {reason}");
        }
        // A guide set apart keeps its map to itself (`estimate_pair_noise_maps`): said, as
        // `denoise` says it.
        if let Some(reason) = theirs.and_then(|t| t.apart_reason()) {
            eprintln!("warning: their guides as one series: {reason}");
        }
        return Ok(pooled.maps);
    }
    views
        .iter()
        .enumerate()
        .map(|(k, image)| {
            let settings = &settings.as_stated(Stated::by_all(&stated[k]));
            Ok(if with_partner {
                estimate_pair_noise_maps(&[*image], &[partner_views[k]], settings)?
                    .0
                    .maps
                    .remove(0)
            } else {
                estimate_noise_map(*image, settings)?
            })
        })
        .collect()
}
