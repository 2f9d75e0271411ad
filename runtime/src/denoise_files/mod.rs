//! Denoising image files on disk: which files, where their results go, and writing each
//! result in its input's format.
//!
//! Inputs are never written to: the output folder may not be an input folder, each result
//! is written to a temporary name and renamed into place, and two inputs that would land
//! on the same output name are refused before anything is denoised.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2, Zip};

use crate::{Denoiser, Error, Result, SeriesNoise};
use crossdenoise_image::Error as ImageError;
use crossdenoise_image::air::{self, AirMismatch};
use crossdenoise_image::dicom::{self, DicomSlice};
use crossdenoise_image::io::{self, Format, GrayImage};
use crossdenoise_image::lineage::Lineage;
use crossdenoise_image::noise_map::Stated;
use crossdenoise_image::picture::Grid;

mod inputs;

pub use inputs::{
    InputFile, MatchedGuides, check_output_dir, collect_inputs, match_guides, pair_guides,
};

/// What denoising one file produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub output: PathBuf,
    pub preview: Option<PathBuf>,
    /// Height and width of the slice.
    pub dim: (usize, usize),
    /// What the slice's air says against how it was served (`crossdenoise_image::air`), the
    /// first time the job meets that disagreement.
    pub notice: Option<String>,
}

/// Per-run state: the new series UID of every input DICOM series, so the slices of one input
/// series form one derived series.
#[derive(Debug)]
pub struct FileJob {
    series: HashMap<String, String>,
    /// Added to a DICOM source's SeriesNumber for its derived series.
    series_number_offset: i64,
    /// The air's disagreements already told, so that a series tells each once.
    told: HashSet<&'static str>,
}

/// The derived series' SeriesNumber is the source's plus this, unless told otherwise.
pub const SERIES_NUMBER_OFFSET: i64 = 1000;

impl Default for FileJob {
    fn default() -> Self {
        FileJob {
            series: HashMap::new(),
            series_number_offset: SERIES_NUMBER_OFFSET,
            told: HashSet::new(),
        }
    }
}

/// The pixels of `file` as [`FileJob::denoise_file`] reads them: what a prepared or
/// supplied noise map is found by.
pub fn read_image(file: &InputFile) -> Result<Array2<f32>> {
    Ok(match file.format {
        Format::Dicom => DicomSlice::read(&file.path)?.image,
        _ => io::read_slice(&file.path)?,
    })
}

impl FileJob {
    pub fn new() -> Self {
        Self::default()
    }

    /// A job whose DICOM inputs of the series in `series` (input series UID -> derived
    /// series UID) join those derived series: late slices of a series already denoised.
    pub fn with_series(series: HashMap<String, String>) -> Self {
        FileJob {
            series,
            ..Self::default()
        }
    }

    /// The same job, numbering derived DICOM series `offset` above their sources.
    pub fn series_number_offset(mut self, offset: i64) -> Self {
        self.series_number_offset = offset;
        self
    }

    /// Input series UID -> the derived series UID its slices were written into.
    pub fn into_series(self) -> HashMap<String, String> {
        self.series
    }

    /// Prepares `denoiser` for a series of files (each with its guide, for a guided model):
    /// their noise maps estimated at once from all of them ([`Denoiser::prepare_series`]),
    /// for the [`FileJob::denoise_file`] calls that follow, as what the files state of their
    /// acquisition sets them ([`Stated::by_all`]). Each file is read
    /// as `denoise_file` reads it, and one that cannot be read fails here as it would there.
    pub fn prepare_series(
        &self,
        denoiser: &mut Denoiser,
        files: &[&InputFile],
        guides: Option<&[&Path]>,
    ) -> Result<SeriesNoise> {
        let mut images = Vec::with_capacity(files.len());
        let mut stated = Vec::new();
        for file in files {
            let (image, own) = io::read_slice_stated(&file.path)?;
            images.push(image);
            stated.push(own);
        }
        // What a guide states counts beside a DICOM input only, as `denoise_file` reads it.
        let guide_images = guides
            .map(|g| {
                g.iter()
                    .zip(files)
                    .map(|(path, f)| {
                        let (image, theirs) = io::read_slice_stated(path)?;
                        let dicom = f.format == Format::Dicom;
                        stated.push(if dicom { theirs } else { Stated::NOTHING });
                        Ok(image)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let views: Vec<_> = images.iter().map(|i| i.view()).collect();
        let guide_views: Option<Vec<_>> = guide_images
            .as_ref()
            .map(|g| g.iter().map(|i| i.view()).collect());
        denoiser.set_stated(Stated::by_all(&stated));
        denoiser.prepare_series(&views, guide_views.as_deref())
    }

    /// Denoises one file into `out_dir`, in the input's format, with an optional
    /// input | denoised | difference picture under `preview_dir`.
    /// `guide` is the partner contrast's file of the same slice, for a guided model.
    // Long: one file through read, guide, denoise, lineage and write, sharing the
    // parsed input's identity between the steps.
    pub fn denoise_file(
        &mut self,
        denoiser: &mut Denoiser,
        input: &InputFile,
        guide: Option<&Path>,
        out_dir: &Path,
        preview_dir: Option<&Path>,
    ) -> Result<Outcome> {
        let output = out_dir.join(&input.output);
        if let Some(parent) = output.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let file_err = |e: Error| match e {
            Error::Image(ImageError::Invalid {
                what: "slice",
                reason,
            }) => Error::Image(ImageError::Invalid {
                what: "input",
                reason: format!("{}: {}", input.path.display(), strip_slice_prefix(&reason)),
            }),
            Error::Inference { path, reason } => Error::Inference {
                path,
                reason: format!("{} ({})", reason, input.path.display()),
            },
            e => e,
        };
        // A DICOM guide is read once, for its pixels and its identity (lineage).
        let (guide_image, guide_ref, guide_stated) = match guide {
            Some(g) if input.format == Format::Dicom && dicom::is_dicom(g) => {
                let slice = DicomSlice::read(g)?;
                let reference = slice.reference();
                let stated = slice.stated();
                (Some(slice.image), Some(reference), stated)
            }
            Some(g) => (Some(io::read_slice(g)?), None, Stated::NOTHING),
            None => (None, None, Stated::NOTHING),
        };
        let label = output_label(denoiser.metadata());
        let derivation = format!(
            "crossdenoise {}: {}",
            env!("CARGO_PKG_VERSION"),
            denoiser.metadata().path_label()
        );
        // Each file says what it states of its acquisition (a DICOM file's own).
        let mut run = |image: &Array2<f32>, stated: Stated| {
            let each = match guide_image {
                Some(_) => vec![stated, guide_stated],
                None => vec![stated],
            };
            denoiser.set_stated(Stated::by_all(&each));
            let out = match &guide_image {
                Some(g) => denoiser.denoise_guided_batch(&[image.view()], &[g.view()]),
                None => denoiser.denoise_batch(&[image.view()]),
            };
            out.map(|mut v| v.pop().expect("one output per input"))
                .map_err(file_err)
        };
        let (image, denoised) = match input.format {
            Format::Npy => {
                let image = io::read_npy(&input.path)?;
                let denoised = run(&image, Stated::NOTHING)?;
                write_atomic(&output, |tmp| io::write_npy(tmp, denoised.view()))?;
                (image, denoised)
            }
            Format::Png => {
                let gray = io::read_png(&input.path)?;
                let image = gray.to_f32();
                let denoised = run(&image, Stated::NOTHING)?;
                let out = match gray {
                    GrayImage::U8(_) => {
                        GrayImage::U8(denoised.mapv(|v| v.round().clamp(0.0, 255.0) as u8))
                    }
                    GrayImage::U16(_) => {
                        GrayImage::U16(denoised.mapv(|v| v.round().clamp(0.0, 65535.0) as u16))
                    }
                };
                write_atomic(&output, |tmp| io::write_png(tmp, &out))?;
                (image, denoised)
            }
            Format::Dicom => {
                let slice = DicomSlice::read(&input.path)?;
                let denoised = run(&slice.image, slice.stated())?;
                let source_series = slice
                    .series_instance_uid()
                    .unwrap_or_else(|| input.path.display().to_string());
                let series = self
                    .series
                    .entry(source_series)
                    .or_insert_with(dicom::new_uid)
                    .clone();
                let mut lineage =
                    Lineage::new(&derivation, denoiser.metadata().config_hash.as_deref());
                lineage.guide = guide_ref.clone();
                lineage.series_number_offset = self.series_number_offset;
                let object = slice.derive(denoised.view(), &series, &label, &lineage)?;
                write_atomic(&output, |tmp| DicomSlice::write(&object, tmp))?;
                (slice.image, denoised)
            }
        };
        let notice = self.air_notice(denoiser.served_coils(), image.view());
        let preview = match preview_dir {
            Some(dir) => {
                let path = dir.join(&input.output).with_extension("png");
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                preview_picture(image.view(), denoised.view())?.save(&path)?;
                Some(path)
            }
            None => None,
        };
        Ok(Outcome {
            output,
            preview,
            dim: image.dim(),
            notice,
        })
    }

    /// What the air of `image` says against serving it as a magnitude of `coils` coils,
    /// unless this job has said it already.
    fn air_notice(&mut self, coils: u32, image: ArrayView2<f32>) -> Option<String> {
        let mismatch = air::read_air(image)?.mismatch(coils)?;
        let kind = match mismatch {
            AirMismatch::Coils { .. } => "coils",
            AirMismatch::Correlated { .. } => "correlated",
        };
        self.told.insert(kind).then(|| mismatch.to_string())
    }
}

/// What a derived series' description says of its images: `denoised` when the output is the
/// input's contrast, `synthesized <contrast>` for the cross path, whose output shows the
/// other contrast (never to be mistaken for a denoised acquisition).
pub fn output_label(meta: &crossdenoise_image::ModelMetadata) -> String {
    match meta.kind {
        crossdenoise_image::ModelKind::Synthesis => {
            format!("synthesized {}", meta.output_contrast())
        }
        _ => "denoised".into(),
    }
}

/// Input | denoised | difference, side by side, all in the input's window; the difference
/// is centred on mid-grey. (A cross-contrast model changes contrast as well as noise, so
/// the difference also shows the contrast change; a gain would saturate it.)
pub fn preview_picture(input: ArrayView2<f32>, denoised: ArrayView2<f32>) -> Result<Grid> {
    let mut values: Vec<f32> = input.iter().copied().filter(|v| v.is_finite()).collect();
    let max = if values.is_empty() {
        1.0
    } else {
        // The window the network's normalisation uses.
        let p = crossdenoise_image::Normalization::default().percentile;
        crossdenoise_image::normalize::percentile(&mut values, p).max(f32::MIN_POSITIVE)
    };
    let mut diff = Array2::zeros(input.dim());
    Zip::from(&mut diff)
        .and(input)
        .and(denoised)
        .for_each(|d, &a, &b| *d = 0.5 * max + (a - b));
    let (h, w) = input.dim();
    let zoom = if h.max(w) < 160 { 2 } else { 1 };
    let mut grid = Grid::zoomed(1, 3, (h, w), zoom, &["input", "denoised", "difference"])?;
    grid.set(0, 0, input, max)?;
    grid.set(0, 1, denoised, max)?;
    grid.set(0, 2, diff.view(), max)?;
    Ok(grid)
}

/// Writes through `write` to a temporary name beside `path`, then renames it into place, so
/// a crash or a full disk never leaves a half-written result under the final name.
fn write_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> crossdenoise_image::Result<()>,
) -> Result<()> {
    let name = path.file_name().expect("an output has a file name");
    let tmp = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    if let Err(e) = write(&tmp) {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn strip_slice_prefix(reason: &str) -> &str {
    reason.strip_prefix("slice 0: ").unwrap_or(reason)
}
