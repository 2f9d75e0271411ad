//! `crossdenoise fastmri`: fastMRI's knee files reconstructed into the project's slice
//! folders, so a volume can be looked at, denoised (`crossdenoise denoise`) and scored like
//! any other series.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args as ClapArgs;
use crossdenoise_image::Normalization;
use crossdenoise_image::fastmri::{self, Protocol, SliceFft, Volume};
use crossdenoise_image::io;
use crossdenoise_image::picture::Grid;

use super::progress;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// fastMRI `.h5` files, or folders of them.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder: `pd/` and `pdfs/` (by each file's `acquisition`), one float32 `.npy`
    /// per slice named `<file>_<slice>.npy`, and `preview.png` (each volume's middle slice).
    #[arg(long)]
    out: PathBuf,
    /// Replace slices written before.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut volumes = Vec::new();
    for input in &args.inputs {
        if input.is_dir() {
            volumes.extend(fastmri::open_folder(input)?);
        } else {
            volumes.push(Volume::open(input)?);
        }
    }
    let folder = |p: Protocol| args.out.join(p.name().to_lowercase());
    for p in Protocol::ALL {
        std::fs::create_dir_all(folder(p))
            .with_context(|| format!("cannot create {}", folder(p).display()))?;
    }
    let total: usize = volumes.iter().map(|v| v.slices).sum();
    let bar = progress::bar(total as u64, "reconstructing");
    let mut ffts: HashMap<(usize, usize), SliceFft> = HashMap::new();
    let mut middles = Vec::new();
    for v in &volumes {
        let stem = v
            .path
            .file_stem()
            .with_context(|| format!("{} has no file name", v.path.display()))?
            .to_string_lossy()
            .into_owned();
        let fft = ffts
            .entry(v.kspace_dim)
            .or_insert_with(|| SliceFft::new(v.kspace_dim));
        for k in 0..v.slices {
            let path = folder(v.protocol).join(format!("{stem}_{k:03}.npy"));
            anyhow::ensure!(
                args.force || !path.exists(),
                "{} exists (from an earlier run?): give --force to replace it",
                path.display()
            );
            let slice = v.slice(k, fft)?;
            io::write_npy(&path, slice.view())?;
            if k == v.slices / 2 {
                middles.push(slice);
            }
            bar.inc(1);
        }
        bar.suspend(|| {
            let (h, w) = v.recon_dim;
            println!(
                "{}: {} ({}), patient {}, {} slices, {} coil{}, {h} x {w} -> {}/",
                v.path.display(),
                v.protocol.name(),
                v.protocol.acquisition(),
                v.patient_id.as_deref().unwrap_or("-"),
                v.slices,
                v.coils,
                if v.coils == 1 { "" } else { "s" },
                folder(v.protocol).display()
            );
        });
    }
    bar.finish_and_clear();
    preview(&middles, &args.out.join("preview.png"))?;
    let coils: Vec<usize> = volumes.iter().map(|v| v.coils).collect();
    if let Some(&c) = coils.iter().max().filter(|&&c| c > 1) {
        println!(
            "root-sum-of-squares of {c} coils: noncentral chi noise; serve a model trained on \
             such data with `crossdenoise denoise --noise map --coils {c}`"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Each volume's middle slice, a row each in the order the files were named, windowed like
/// the phantoms' preview.
fn preview(middles: &[ndarray::Array2<f32>], path: &Path) -> anyhow::Result<()> {
    let tile = middles
        .iter()
        .map(|m| m.dim())
        .fold((1, 1), |(h, w), (a, b)| (h.max(a), w.max(b)));
    let mut grid = Grid::new(middles.len().max(1), 1, tile, &["middle"])?;
    let norm = Normalization::default();
    for (k, m) in middles.iter().enumerate() {
        let window = norm.fit(m.view()).map(|s| s.0 * 1.15)?;
        grid.set(k, 0, m.view(), window)?;
    }
    grid.save(path)?;
    Ok(())
}
