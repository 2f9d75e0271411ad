//! Writing a phantom data set to disk in the paired-folder layout the trainer reads, with
//! the noise-free images beside it and a preview picture.
//!
//! ```text
//! <out>/pd/0000.npy   <out>/pdfs/0000.npy          acquired (noisy) pairs
//! <out>/clean/pd/...  <out>/clean/pdfs/...         noise-free, for evaluation only
//! <out>/clean/masks/edema/0000.png                 where each finding lies (8-bit, 0 / 255),
//! <out>/clean/masks/fatty_lesion/0000.png          for evaluation only
//! <out>/clean/noise/pd/0000.npy ...                the true noise sd per pixel, likewise
//! <out>/phantoms.json                              how the set was made
//! <out>/preview.png                                noisy and clean, PD and PDFS
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::coils::CoilArray;
use crate::io::{self, Format, GrayImage};
use crate::noise_map::PhaseEncoding;
use crate::normalize::Normalization;
use crate::phantom::{Finding, PhantomGenerator, PhantomPair};
use crate::picture::Grid;
use crate::{Error, Result};

/// 16-bit PNG phantoms store `intensity * PNG_SCALE` (intensity 1.0 -> 40000, leaving
/// head-room for bias and noise up to ~1.6).
pub const PNG_SCALE: f32 = 40000.0;

/// How many pairs the preview shows.
const PREVIEW_ROWS: usize = 4;

/// The record of how a phantom set was made, written as `phantoms.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhantomManifest {
    pub seed: u64,
    pub pairs: usize,
    pub size: usize,
    pub snr_pd: f32,
    pub snr_pdfs: f32,
    pub sigma_pd: f32,
    pub sigma_pdfs: f32,
    /// "npy" (float32) or "png" (16-bit, intensities times `png_scale`).
    pub format: String,
    pub png_scale: Option<f32>,
    /// The contrast-specific findings and where their masks are (sets written before
    /// findings existed have none).
    #[serde(default)]
    pub findings: Vec<FindingRecord>,
    /// The acquisition noise's distribution and where its true maps are (sets written
    /// before coil arrays existed have none: one coil, Rician, sigma everywhere).
    #[serde(default)]
    pub noise: Option<NoiseRecord>,
}

/// How a phantom set's noise was made, as `phantoms.json` names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseRecord {
    /// `rician` or `noncentral_chi`.
    pub distribution: String,
    /// The distribution's degrees of freedom in coils (2 x this many): 1 for Rician.
    pub dof_coils: u32,
    /// The receive channels, their neighbours' noise correlation, the parallel-imaging
    /// acceleration and the combination (`rss` or `sensitivity`).
    pub channels: u32,
    pub correlation: f32,
    pub acceleration: u32,
    pub combination: String,
    /// The largest g-factor of the array (1 without acceleration).
    pub g_factor_max: f32,
    /// Which way the phase encoding runs ([`crate::coils::PHASE_ENCODING`]): what a
    /// noise map's tiles are narrowed across (`denoise --phase-encoding`). Sets written
    /// before it was recorded read as `unknown`.
    #[serde(default)]
    pub phase_encoding: PhaseEncoding,
    /// The true noise sd maps, relative to the set's folder: `<maps>/pd/`, `<maps>/pdfs/`,
    /// one image per pair in the set's format.
    pub maps: String,
}

impl NoiseRecord {
    fn new(array: CoilArray, g_factor_max: f32) -> Self {
        let dof = array.distribution_coils();
        NoiseRecord {
            distribution: if dof == 1 { "rician" } else { "noncentral_chi" }.into(),
            dof_coils: dof,
            channels: array.coils,
            correlation: array.correlation,
            acceleration: array.acceleration,
            combination: array.combination.name().into(),
            g_factor_max,
            phase_encoding: crate::coils::PHASE_ENCODING,
            maps: noise_folder().to_string_lossy().into_owned(),
        }
    }
}

/// One finding of a phantom set, as `phantoms.json` names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingRecord {
    /// `edema` or `fatty_lesion`.
    pub name: String,
    /// The contrast that shows it (`pd` or `pdfs`); the other shows it only faintly.
    pub visible_in: String,
    /// Its masks, relative to the set's folder: one 8-bit PNG per pair, 255 inside.
    pub masks: String,
    /// How many of the pairs carry it.
    pub slices: usize,
}

/// The folder of a finding's masks, relative to the set.
pub fn mask_folder(finding: Finding) -> PathBuf {
    Path::new("clean").join("masks").join(finding.name())
}

/// The folder of the true noise maps, relative to the set.
pub fn noise_folder() -> PathBuf {
    Path::new("clean").join("noise")
}

/// The folders of a written set.
pub fn subfolders(out: &Path) -> [PathBuf; 4] {
    [
        out.join("pd"),
        out.join("pdfs"),
        out.join("clean").join("pd"),
        out.join("clean").join("pdfs"),
    ]
}

/// Every folder a set writes images into.
fn image_folders(out: &Path) -> Vec<PathBuf> {
    let mut dirs = subfolders(out).to_vec();
    dirs.extend(Finding::ALL.map(|f| out.join(mask_folder(f))));
    dirs.extend(["pd", "pdfs"].map(|c| out.join(noise_folder()).join(c)));
    dirs
}

/// Prepares `out` for a new set. Old images would silently join the new set as extra
/// pairs, so a folder that already holds some is refused unless `overwrite` clears it.
pub fn prepare_output(out: &Path, overwrite: bool) -> Result<()> {
    for dir in image_folders(out) {
        if dir.is_dir() {
            let has_files = fs::read_dir(&dir)
                .map_err(|e| Error::io(&dir, e))?
                .any(|e| e.map(|e| e.path().is_file()).unwrap_or(false));
            if has_files && !overwrite {
                return Err(Error::Folder {
                    path: dir,
                    reason:
                        "already holds files from an earlier set (pass --force to replace them)"
                            .into(),
                });
            }
            if has_files {
                fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    Ok(())
}

/// Writes pairs `0..pairs` of `generator` under `out` (prepared by [`prepare_output`]),
/// calling `progress` after each pair. Returns the manifest it wrote.
pub fn write_set(
    out: &Path,
    generator: &PhantomGenerator,
    seed: u64,
    pairs: usize,
    format: Format,
    mut progress: impl FnMut(usize),
) -> Result<PhantomManifest> {
    let cfg = *generator.config();
    let mut preview = Vec::new();
    let mut carrying = [0usize; 2];
    for i in 0..pairs {
        let pair = generator.pair(i as u64);
        let name = format!("{i:04}.{}", format.extension());
        let [pd, pdfs, clean_pd, clean_pdfs] = subfolders(out);
        write_image(&pd.join(&name), pair.pd.view(), format)?;
        write_image(&pdfs.join(&name), pair.pdfs.view(), format)?;
        write_image(&clean_pd.join(&name), pair.clean_pd.view(), format)?;
        write_image(&clean_pdfs.join(&name), pair.clean_pdfs.view(), format)?;
        let noise = out.join(noise_folder());
        write_image(&noise.join("pd").join(&name), pair.noise_pd.view(), format)?;
        write_image(
            &noise.join("pdfs").join(&name),
            pair.noise_pdfs.view(),
            format,
        )?;
        for ((finding, mask), count) in Finding::ALL.iter().zip(&pair.findings).zip(&mut carrying) {
            let path = out.join(mask_folder(*finding)).join(format!("{i:04}.png"));
            io::write_png(&path, &GrayImage::U8(mask.mapv(|m| m * 255)))?;
            *count += usize::from(mask.iter().any(|&m| m > 0));
        }
        if preview.len() < PREVIEW_ROWS {
            preview.push(pair);
        }
        progress(i + 1);
    }
    if !preview.is_empty() {
        preview_grid(&preview)?.save(&out.join("preview.png"))?;
    }
    let manifest = PhantomManifest {
        seed,
        pairs,
        size: cfg.size,
        snr_pd: cfg.snr_pd,
        snr_pdfs: cfg.snr_pdfs,
        sigma_pd: cfg.sigma_pd(),
        sigma_pdfs: cfg.sigma_pdfs(),
        format: format.extension().into(),
        png_scale: (format == Format::Png).then_some(PNG_SCALE),
        findings: Finding::ALL
            .iter()
            .zip(carrying)
            .map(|(f, slices)| FindingRecord {
                name: f.name().into(),
                visible_in: f.visible_in().into(),
                masks: mask_folder(*f).to_string_lossy().into_owned(),
                slices,
            })
            .collect(),
        noise: Some(NoiseRecord::new(
            generator.coils(),
            generator.g_factor_max(),
        )),
    };
    let path = out.join("phantoms.json");
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
    Ok(manifest)
}

fn write_image(path: &Path, image: ArrayView2<f32>, format: Format) -> Result<()> {
    match format {
        Format::Npy => io::write_npy(path, image),
        Format::Png => io::write_png(
            path,
            &GrayImage::U16(image.mapv(|v| (v * PNG_SCALE).round().clamp(0.0, 65535.0) as u16)),
        ),
        Format::Dicom => io::write_slice(path, image),
    }
}

/// Noisy and clean, PD and PDFS, one pair per row. Each contrast is windowed by its clean
/// image's normalisation scale, so noisy and clean tiles are shown alike.
pub fn preview_grid(pairs: &[PhantomPair]) -> Result<Grid> {
    let first = pairs.first().ok_or(Error::Invalid {
        what: "preview",
        reason: "no pairs".into(),
    })?;
    let tile = first.pd.dim();
    // The noise map is worth a column only where it varies.
    let varying = pairs.iter().any(|p| {
        let first = p.noise_pd[[0, 0]];
        p.noise_pd.iter().any(|&v| (v - first).abs() > 1e-3 * first)
    });
    let titles = [
        "PD",
        "PDFS",
        "PD clean",
        "PDFS clean",
        "PD noise sd (min-max)",
    ];
    let columns = if varying { 5 } else { 4 };
    let mut grid = Grid::new(pairs.len(), columns, tile, &titles[..columns])?;
    let norm = Normalization::default();
    let window = |img: &Array2<f32>| norm.fit(img.view()).map(|s| s.0 * 1.15);
    for (r, p) in pairs.iter().enumerate() {
        let (w_pd, w_pdfs) = (window(&p.clean_pd)?, window(&p.clean_pdfs)?);
        grid.set(r, 0, p.pd.view(), w_pd)?;
        grid.set(r, 1, p.pdfs.view(), w_pdfs)?;
        grid.set(r, 2, p.clean_pd.view(), w_pd)?;
        grid.set(r, 3, p.clean_pdfs.view(), w_pdfs)?;
        if varying {
            // Stretched from its smallest to its largest value: a g-factor map varies by
            // tens of percent, invisible on a scale from 0.
            let (lo, hi) = p
                .noise_pd
                .iter()
                .fold((f32::MAX, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
            let stretched = p.noise_pd.mapv(|v| v - lo);
            grid.set(r, 4, stretched.view(), (hi - lo).max(f32::EPSILON))?;
        }
    }
    Ok(grid)
}
