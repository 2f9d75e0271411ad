//! `crossdenoise denoise`: an exported model over image files, through ONNX Runtime.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use crossdenoise_image::io;
use crossdenoise_image::noise_map::{NoiseMapSettings, NoiseModel, PhaseEncoding};
use crossdenoise_image::{AssumedMetadata, ModelKind, Normalization};
use crossdenoise_runtime::denoise_files::InputFile;
use crossdenoise_runtime::denoise_files::{self, FileJob};
use crossdenoise_runtime::{Denoiser, DenoiserOptions, OnnxRuntime, ProviderSettings};

use super::progress;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The exported model (`crossdenoise export`).
    #[arg(long)]
    model: PathBuf,
    /// Files (.npy, 16- or 8-bit .png, DICOM) or folders of them (e.g. a DICOM series).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// The partner contrast of the inputs, for a guided model (a file or folder; repeat
    /// the option for more): each input is paired with the guide of the same file name
    /// (.npy, .png) or at the same place (DICOM: frame of reference, orientation, position
    /// within half a slice). One value per occurrence, so the inputs may follow it.
    #[arg(long, value_name = "GUIDE")]
    guide: Vec<PathBuf>,
    /// Output folder; results keep their input's name and format, a folder's results go
    /// into a subfolder of the same name.
    #[arg(long)]
    out: PathBuf,
    /// Execution providers to try, in order.
    #[arg(long, default_value = "cpu", value_name = "LIST")]
    ep: String,
    /// Fail instead of falling back when a listed provider cannot be used.
    #[arg(long)]
    strict_ep: bool,
    /// Also write input | denoised | difference pictures to OUT/preview/.
    #[arg(long)]
    preview: bool,
    /// Largest plane run through the model at once; larger slices run in overlapping
    /// tiles, which bounds memory (raise it on a GPU with memory to spare).
    #[arg(long, default_value_t = DenoiserOptions::default().tile_pixels, value_name = "PIXELS")]
    tile_pixels: usize,
    /// For a model with the posterior step: serve only its prediction with the Rician bias
    /// removed, without weighing each pixel's own value back in (to compare the two).
    #[arg(long)]
    no_posterior: bool,
    /// Average the model over the eight orientations of each slice (quarter turns and
    /// mirrors, the guide turned with it) before the posterior step: a better estimate at
    /// eight times the inference time (docs/denoising.md).
    #[arg(long)]
    average_orientations: bool,
    /// How each slice's noise is found: `slice` (one sigma for the slice, Rician: a
    /// single-coil or sensitivity-combined scan without acceleration) or `map` (a sigma per
    /// pixel, `crossdenoise noise-map`: parallel imaging, root-sum-of-squares). With a map,
    /// a single-coil model that reads its noise level is run once per level the map spans
    /// (levels 1.5 times apart, at most 6), each pixel taking the runs at its own level.
    #[arg(long, value_enum, default_value_t = NoiseSource::Slice)]
    noise: NoiseSource,
    /// With --noise map: the magnitude's degrees of freedom in coils (the channel count of
    /// a root-sum-of-squares scan, whose noncentral chi bias is then removed; 1 for Rician).
    #[arg(long, default_value_t = 1)]
    coils: u32,
    /// With --noise map: `series` estimates one noise map from all the slices of each input
    /// folder (a series' slices share their coils' g-factor map, and pooled the map is
    /// several times more precise; a folder whose slices differ in size or noise level is
    /// estimated slice by slice, with a warning), `slice` each slice alone.
    #[arg(long, value_enum, default_value_t = NoisePool::Series)]
    noise_pool: NoisePool,
    /// With --noise map: which way the phase encoding runs in the images (`left-right`,
    /// `up-down`, as DICOM's In-plane Phase Encoding Direction `ROW` / `COL`; `unknown`:
    /// square tiles). Parallel imaging folds along it, so the map changes fastest across it,
    /// and its tiles are made narrower that way (`crossdenoise noise-map --elongation`).
    /// A DICOM file's own In-plane Phase Encoding Direction takes its place; a series whose
    /// files (or guides) disagree is mapped on square tiles.
    #[arg(long, value_parser = super::noise_map::parse_phase_encoding, default_value = "unknown")]
    phase_encoding: PhaseEncoding,
    /// With --noise map and --phase-encoding: parallel imaging's acceleration (1: none or
    /// not known); the map is read between the fold lines k N / R where it jumps there
    /// (`crossdenoise noise-map --acceleration`). DICOM files that state theirs (Parallel
    /// Reduction Factor In-plane) set it aside, with a note.
    #[arg(long, default_value_t = NoiseMapSettings::default().acceleration)]
    acceleration: u32,
    /// --acceleration holds whatever DICOM files state (for images that crop the phase
    /// oversampling after unfolding, whose fold lines a stated factor misplaces).
    #[arg(long)]
    ignore_stated_acceleration: bool,
    /// With --noise map: take each input's noise map from DIR instead of estimating it,
    /// `DIR/<the input's file stem>.npy`: the noise sd of every pixel in the input's units
    /// (its size, positive), e.g. a noise scan's sigma times the reconstruction's g-factor
    /// map (docs/scanner-noise.md).
    #[arg(long, value_name = "DIR")]
    noise_map: Option<PathBuf>,
    /// With --noise-map, for a guided model: the guides' maps, `DIR/<the guide's file
    /// stem>.npy` (the guide is divided by its own map too).
    #[arg(long, value_name = "DIR", requires = "noise_map")]
    guide_noise_map: Option<PathBuf>,
    /// With --noise-map: how far off the supplied maps may be (relative rms), integrated
    /// out of the noncentral chi inversion as an estimated map's error is.
    #[arg(long, default_value_t = 0.005, value_name = "FRACTION")]
    noise_map_error: f32,
    /// How much of the denoised image is written, 0 to 1; the rest is the acquired image
    /// (as the vendors' low / medium / high settings).
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    strength: f32,
    /// A derived DICOM series is numbered this far above its source's SeriesNumber.
    #[arg(long, default_value_t = denoise_files::SERIES_NUMBER_OFFSET, value_name = "N")]
    series_number_offset: i64,
    /// CPU provider: intra-op threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// CUDA / TensorRT device.
    #[arg(long, default_value_t = 0)]
    device: i32,
    /// TensorRT: build fp32 engines instead of fp16.
    #[arg(long)]
    trt_fp32: bool,
    /// TensorRT: folder that keeps built engines between runs.
    #[arg(long, value_name = "DIR")]
    trt_cache: Option<PathBuf>,
    /// TensorRT: builder workspace in MiB.
    #[arg(long, default_value_t = 2048, value_name = "MIB")]
    trt_workspace_mb: usize,
    /// For a model without crossdenoise metadata only: its normalisation percentile.
    #[arg(long, requires_all = ["clamp_max", "size_multiple"])]
    percentile: Option<f32>,
    /// For a model without crossdenoise metadata only: its normalisation clamp.
    #[arg(long, requires_all = ["percentile", "size_multiple"])]
    clamp_max: Option<f32>,
    /// For a model without crossdenoise metadata only: the size H and W must be a multiple of.
    #[arg(long, requires_all = ["percentile", "clamp_max"])]
    size_multiple: Option<usize>,
}

/// `--noise`: where each slice's noise level comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum NoiseSource {
    Slice,
    Map,
}

/// `--noise-pool`: what a noise map is estimated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum NoisePool {
    Series,
    Slice,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let files = denoise_files::collect_inputs(&args.inputs)?;
    denoise_files::check_output_dir(&args.out, &files)?;
    let guide_files = if args.guide.is_empty() {
        Vec::new()
    } else {
        denoise_files::collect_inputs(&args.guide).context("--guide")?
    };

    let options = options(&args)?;
    let runtime = OnnxRuntime::load()?;
    let started = Instant::now();
    let mut denoiser = Denoiser::open(&runtime, &args.model, &options)?;
    denoiser.set_strength(args.strength)?;
    announce(&args, &denoiser, &runtime, started, !guide_files.is_empty())?;
    let guides: Vec<Option<PathBuf>> = if guide_files.is_empty() {
        vec![None; files.len()]
    } else {
        denoise_files::pair_guides(&files, &guide_files)?
            .into_iter()
            .map(Some)
            .collect()
    };

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let preview_dir = args.preview.then(|| args.out.join("preview"));
    let bar = progress::bar(files.len() as u64, "denoising");
    let mut job = FileJob::new().series_number_offset(args.series_number_offset);
    let mut failures = Vec::new();
    let mut done = 0usize;
    let started = Instant::now();
    let supplied = SuppliedMaps::new(&args, &denoiser, &files, &guides)?;
    let pool = args.noise == NoiseSource::Map && args.noise_pool == NoisePool::Series;
    for group in series_groups(&files) {
        if let Some(supplied) = &supplied {
            denoiser.forget_series();
            supplied.supply(&mut denoiser, &files, &guides, &group)?;
        } else if pool && group.len() > 1 {
            prepare_series(&job, &mut denoiser, &files, &guides, &group, &bar);
        }
        for k in group {
            let (file, guide) = (&files[k], &guides[k]);
            match job.denoise_file(
                &mut denoiser,
                file,
                guide.as_deref(),
                &args.out,
                preview_dir.as_deref(),
            ) {
                Ok(outcome) => {
                    done += 1;
                    if let Some(notice) = outcome.notice {
                        bar.suspend(|| eprintln!("warning: {}: {notice}", file.path.display()));
                    }
                }
                Err(e) => {
                    bar.suspend(|| eprintln!("error: {e}"));
                    failures.push(file.path.clone());
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{done} of {} files denoised into {} ({:.1} ms per file){}",
        files.len(),
        args.out.display(),
        if done > 0 {
            secs * 1e3 / done as f64
        } else {
            0.0
        },
        preview_dir
            .as_ref()
            .map(|p| format!("; previews in {}", p.display()))
            .unwrap_or_default()
    );
    if !failures.is_empty() {
        bail!(
            "{} file(s) could not be denoised (their inputs are untouched): {}",
            failures.len(),
            failures
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The denoiser's options from the command line: providers, assumed metadata, noise model.
fn options(args: &Args) -> anyhow::Result<DenoiserOptions> {
    let mut providers = ProviderSettings {
        order: ProviderSettings::parse_order(&args.ep).context("--ep")?,
        strict: args.strict_ep,
        ..ProviderSettings::default()
    };
    providers.cpu.threads = args.threads;
    providers.cuda.device_id = args.device;
    providers.tensorrt.device_id = args.device;
    providers.tensorrt.fp16 = !args.trt_fp32;
    providers.tensorrt.engine_cache = args.trt_cache.clone();
    providers.tensorrt.workspace_mb = args.trt_workspace_mb;
    let assume = match (args.percentile, args.clamp_max, args.size_multiple) {
        (Some(percentile), Some(clamp_max), Some(size_multiple)) => Some(AssumedMetadata {
            normalization: Normalization {
                percentile,
                clamp_max,
            },
            size_multiple,
        }),
        _ => None,
    };

    let noise = match args.noise {
        NoiseSource::Map => NoiseModel::Map(NoiseMapSettings {
            coils: args.coils,
            phase_encoding: args.phase_encoding,
            acceleration: args.acceleration,
            ..NoiseMapSettings::default()
        }),
        NoiseSource::Slice => {
            anyhow::ensure!(
                args.coils == 1,
                "--coils {} needs --noise map (one sigma per slice is Rician: one coil)",
                args.coils
            );
            anyhow::ensure!(
                args.acceleration == 1,
                "--acceleration {} needs --noise map (one sigma per slice has no folds)",
                args.acceleration
            );
            NoiseModel::Slice
        }
    };
    Ok(DenoiserOptions {
        noise: Some(noise),
        providers,
        assume,
        tile_pixels: args.tile_pixels,
        posterior: !args.no_posterior,
        average_orientations: args.average_orientations,
        stated_acceleration: !args.ignore_stated_acceleration,
        ..DenoiserOptions::default()
    })
}

/// Says on stderr what serves (warnings first), and refuses a guide given to an unguided
/// model or missing for a guided one.
fn announce(
    args: &Args,
    denoiser: &Denoiser,
    runtime: &OnnxRuntime,
    started: Instant,
    has_guide: bool,
) -> anyhow::Result<()> {
    for fallback in denoiser.fallbacks() {
        eprintln!("warning: {fallback}; falling back");
    }
    if !denoiser.has_metadata() {
        eprintln!(
            "warning: {} has no crossdenoise metadata; using the stated normalisation",
            args.model.display()
        );
    }
    eprintln!(
        "model {} ({}) on {} [{}], opened and warmed up in {:.2} s",
        args.model.display(),
        denoiser.metadata().path_label(),
        denoiser.provider(),
        runtime.library().display(),
        started.elapsed().as_secs_f64()
    );
    let meta = denoiser.metadata();
    match (denoiser.needs_guide(), !has_guide) {
        (true, true) => bail!(
            "{} is a {}: give the partner contrast's slices with --guide",
            args.model.display(),
            meta.path_label()
        ),
        (false, false) => bail!(
            "{} is a {}: it takes no --guide",
            args.model.display(),
            meta.path_label()
        ),
        _ => {}
    }
    if meta.kind == ModelKind::Synthesis {
        eprintln!(
            "warning: {} synthesises {} images from {} ones (contrast synthesis, not \
             denoising); its results are labelled \"synthesized {}\"",
            args.model.display(),
            meta.output_contrast(),
            if meta.from_name.is_empty() {
                &meta.from
            } else {
                &meta.from_name
            },
            meta.output_contrast()
        );
    }
    Ok(())
}

/// The inputs' indices by folder, in the order the folders first appear: the slices of one
/// folder are taken for one series.
fn series_groups(files: &[InputFile]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Option<&std::path::Path>, Vec<usize>)> = Vec::new();
    for (k, file) in files.iter().enumerate() {
        let folder = file.path.parent();
        match groups.iter_mut().find(|(f, _)| *f == folder) {
            Some((_, members)) => members.push(k),
            None => groups.push((folder, vec![k])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// Prepares the denoiser with the noise maps of the series `group`, pooled; says on stderr
/// when they cannot be (each slice is then estimated alone, and a file that cannot be read
/// fails when it is denoised).
fn prepare_series(
    job: &FileJob,
    denoiser: &mut Denoiser,
    files: &[InputFile],
    guides: &[Option<PathBuf>],
    group: &[usize],
    bar: &indicatif::ProgressBar,
) {
    let members: Vec<&InputFile> = group.iter().map(|&k| &files[k]).collect();
    let member_guides: Option<Vec<&std::path::Path>> =
        group.iter().map(|&k| guides[k].as_deref()).collect();
    let folder = members[0]
        .path
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let prepared = job.prepare_series(denoiser, &members, member_guides.as_deref());
    let aside = denoiser.stated_set_aside();
    if let Some((stated, given)) = aside.phase_encoding {
        let said = match stated {
            PhaseEncoding::Unknown => "disagree on their phase encoding: square tiles".into(),
            stated => format!("state their phase encoding, {}", stated.name()),
        };
        bar.suspend(|| {
            eprintln!(
                "note: the files of {folder} {said}, not --phase-encoding {}",
                given.name()
            )
        });
    }
    if let Some((stated, given)) = aside.acceleration {
        let said = match stated {
            1 => "disagree on their acceleration (or state none): the maps read whole".into(),
            stated => format!("state their acceleration, {stated}"),
        };
        bar.suspend(|| eprintln!("note: the files of {folder} {said}, not --acceleration {given}"));
    }
    let said = match prepared {
        Ok(done) => match done.warning() {
            Some(said) => said,
            None => return,
        },
        Err(e) => format!("estimated slice by slice: {e}"),
    };
    bar.suspend(|| eprintln!("warning: the noise maps of {folder} are {said}"));
}

/// `--noise-map` (and `--guide-noise-map`): where each input's and guide's measured noise
/// map is, checked before anything is denoised.
struct SuppliedMaps {
    maps: Vec<PathBuf>,
    guide_maps: Option<Vec<PathBuf>>,
    error: f32,
}

impl SuppliedMaps {
    /// `None` without `--noise-map`; refused when a map is missing, or the options do not
    /// fit the model (a noise map model, and the guides' maps for a guided one).
    fn new(
        args: &Args,
        denoiser: &Denoiser,
        files: &[InputFile],
        guides: &[Option<PathBuf>],
    ) -> anyhow::Result<Option<Self>> {
        let Some(dir) = &args.noise_map else {
            return Ok(None);
        };
        anyhow::ensure!(
            args.noise == NoiseSource::Map,
            "--noise-map needs --noise map (one sigma per slice is served otherwise)"
        );
        let in_dir = |dir: &Path, path: &Path| -> anyhow::Result<PathBuf> {
            let stem = path
                .file_stem()
                .with_context(|| format!("{} has no file name", path.display()))?;
            let map = dir.join(stem).with_extension("npy");
            anyhow::ensure!(
                map.is_file(),
                "no noise map {} for {}",
                map.display(),
                path.display()
            );
            Ok(map)
        };
        let maps = files
            .iter()
            .map(|f| in_dir(dir, &f.path))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("--noise-map")?;
        let guide_maps = match (&args.guide_noise_map, denoiser.needs_guide()) {
            (Some(dir), true) => Some(
                guides
                    .iter()
                    .map(|g| in_dir(dir, g.as_deref().context("an input without its guide")?))
                    .collect::<anyhow::Result<Vec<_>>>()
                    .context("--guide-noise-map")?,
            ),
            (None, true) => bail!(
                "{} divides each guide by its noise map too: give the guides' maps with \
                 --guide-noise-map",
                args.model.display()
            ),
            (Some(_), false) => bail!("--guide-noise-map: {} takes no guide", args.model.display()),
            (None, false) => None,
        };
        Ok(Some(SuppliedMaps {
            maps,
            guide_maps,
            error: args.noise_map_error,
        }))
    }

    /// Hands the denoiser the maps of the inputs `group` (and of their guides).
    fn supply(
        &self,
        denoiser: &mut Denoiser,
        files: &[InputFile],
        guides: &[Option<PathBuf>],
        group: &[usize],
    ) -> anyhow::Result<()> {
        let read_map = |path: &Path| {
            io::read_npy(path).with_context(|| format!("noise map {}", path.display()))
        };
        let images = group
            .iter()
            .map(|&k| denoise_files::read_image(&files[k]))
            .collect::<Result<Vec<_>, _>>()?;
        let maps = group
            .iter()
            .map(|&k| read_map(&self.maps[k]))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (guide_images, guide_maps) = match &self.guide_maps {
            Some(paths) => {
                let images = group
                    .iter()
                    .map(|&k| io::read_slice(guides[k].as_deref().expect("checked")))
                    .collect::<Result<Vec<_>, _>>()?;
                let maps = group
                    .iter()
                    .map(|&k| read_map(&paths[k]))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                (Some(images), Some(maps))
            }
            None => (None, None),
        };
        let views: Vec<_> = images.iter().map(|i| i.view()).collect();
        let guide_views: Option<Vec<_>> = guide_images
            .as_ref()
            .map(|g| g.iter().map(|i| i.view()).collect());
        let first = &files[group[0]].path;
        denoiser
            .supply_maps(&views, guide_views.as_deref(), maps, guide_maps, self.error)
            .with_context(|| format!("the noise maps of the series of {}", first.display()))
    }
}
