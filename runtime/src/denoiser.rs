//! Denoising slices with an exported model in ONNX Runtime.
//!
//! A [`Denoiser`] is opened once and kept: opening creates the session, picks the execution
//! provider and runs a warm-up inference (TensorRT builds its engine, CUDA allocates its
//! arena), so the first scanner image does not pay for any of that. Each call then
//! normalises and reflect-pads the slices (and, for a guided model, their partner slices)
//! straight into reused input buffers, runs the session, crops the output back to the
//! input's size, removes the Rician bias where the model asks for it (or, for a model that
//! states a prior, returns the posterior mean of each pixel given its own observation:
//! `crossdenoise_image::posterior`), and rescales to the input's units.
//!
//! The model's kind decides what a call may give it: a guided model needs each slice's
//! partner contrast, a single-contrast one refuses a guide, and the cross path (contrast
//! synthesis) is served only by the callers that label its output as synthesised.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array4, ArrayView2, ArrayView4};
use ort::session::Session;

use crate::even_noise::{EvenNoise, noise_mismatch};
use crate::execution_provider::{Fallback, ProviderKind, open_session};
use crate::input::fill;
use crate::local_levels::LocalLevels;
use crate::noise_levels::{guide_tissue, noise_levels};
use crate::onnx_runtime::OnnxRuntime;
use crate::options::DenoiserOptions;
use crate::orientations::averaged;
use crate::series_noise::{Arrival, SeriesMaps, SeriesNoise};
use crate::session_io::{
    Batch, InputNames, batch_dim, check_against_metadata, check_io, guide_given, one_guide_each,
    read_props, run_session,
};
use crate::tiles::Tiles;
use crate::{Error, Result};
use crossdenoise_image::Error as ImageError;
use crossdenoise_image::Padding;
use crossdenoise_image::growing_series::GrowingSeries;
use crossdenoise_image::magnitude_bias::BiasCorrection;
use crossdenoise_image::model_metadata::{ModelKind, ModelMetadata};
use crossdenoise_image::noise_map::{NoiseMapSettings, NoiseModel, SetAside, Stated};
use crossdenoise_image::posterior;

/// An open model, ready to denoise.
pub struct Denoiser {
    session: Session,
    path: PathBuf,
    metadata: ModelMetadata,
    has_metadata: bool,
    provider: ProviderKind,
    fallbacks: Vec<Fallback>,
    /// The names of the model's inputs.
    names: InputNames,
    /// The model inputs, `[N, 1, H, W]` row-major, reused across calls.
    input: Vec<f32>,
    guide: Vec<f32>,
    /// Scratch for the percentile selection, reused across slices.
    scratch: Vec<f32>,
    correction: BiasCorrection,
    noise: NoiseModel,
    /// What the images served next state, over `noise` ([`Denoiser::set_stated`]).
    stated: Stated,
    /// `DenoiserOptions::stated_acceleration`.
    stated_acceleration: bool,
    /// The maps of the series last prepared ([`Denoiser::prepare_series`]).
    series: SeriesMaps,
    tile_pixels: usize,
    posterior: bool,
    average_orientations: bool,
    strength: f32,
}

impl std::fmt::Debug for Denoiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Denoiser")
            .field("path", &self.path)
            .field("provider", &self.provider)
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl Denoiser {
    // Long: the model's checks in the order a session is built (metadata, inputs,
    // outputs, providers, warm-up), each error naming the model.
    pub fn open(runtime: &OnnxRuntime, path: &Path, options: &DenoiserOptions) -> Result<Self> {
        options.providers.validate()?;
        if let Some(NoiseModel::Map(settings)) = &options.noise {
            settings.validate()?;
        }
        if !path.is_file() {
            return Err(Error::Model {
                path: path.into(),
                reason: "no such file".into(),
            });
        }
        let (session, provider, fallbacks) = open_session(runtime, path, &options.providers)?;
        let model_err = |reason: String| Error::Model {
            path: path.into(),
            reason,
        };
        let names = check_io(&session).map_err(model_err)?;

        let props = read_props(&session).map_err(|e| model_err(e.to_string()))?;
        let found = ModelMetadata::from_props(&props).map_err(|e| model_err(e.to_string()))?;
        let has_metadata = found.is_some();
        let metadata = match (found, options.assume) {
            (Some(m), _) => m,
            (None, Some(a)) => {
                a.normalization.validate()?;
                if a.size_multiple == 0 {
                    return Err(Error::Image(ImageError::Invalid {
                        what: "size multiple",
                        reason: "must be at least 1".into(),
                    }));
                }
                ModelMetadata::assumed(a)
            }
            (None, None) => {
                return Err(model_err(
                    "carries no crossdenoise metadata (normalisation, size multiple); it was not \
                     written by `crossdenoise export`. State them to use it anyway \
                     (--percentile, --clamp-max, --size-multiple)"
                        .into(),
                ));
            }
        };
        check_against_metadata(&session, &names, &metadata, has_metadata).map_err(model_err)?;
        let noise = options.noise.unwrap_or(match metadata.noise_coils {
            1 => NoiseModel::Slice,
            coils => NoiseModel::Map(NoiseMapSettings {
                coils,
                phase_encoding: options.phase_encoding,
                acceleration: options.acceleration,
                ..NoiseMapSettings::default()
            }),
        });
        let served_coils = noise.coils();
        if has_metadata
            && metadata.kind != ModelKind::Synthesis
            && metadata.noise_coils != served_coils
        {
            return Err(model_err(noise_mismatch(
                metadata.noise_coils,
                served_coils,
            )));
        }

        let mut denoiser = Denoiser {
            session,
            path: path.into(),
            metadata,
            has_metadata,
            provider,
            fallbacks,
            names,
            input: Vec::new(),
            guide: Vec::new(),
            scratch: Vec::new(),
            correction: BiasCorrection::for_coils(noise.coils()),
            noise,
            stated: Stated::NOTHING,
            stated_acceleration: options.stated_acceleration,
            series: SeriesMaps::default(),
            tile_pixels: options.tile_pixels.max(1),
            posterior: options.posterior,
            average_orientations: options.average_orientations,
            strength: 1.0,
        };
        if let Some([n, h, w]) = options.warmup {
            let m = denoiser.metadata.size_multiple;
            let (h, w) = (h.max(1).div_ceil(m) * m, w.max(1).div_ceil(m) * m);
            let zeros = Array2::<f32>::zeros((h, w));
            let views = vec![zeros.view(); n.max(1)];
            let guides = denoiser.needs_guide().then_some(&views[..]);
            denoiser.run(&views, guides).map_err(|e| {
                model_err(format!(
                    "warm-up inference on [{n}, 1, {h}, {w}] failed: {e}"
                ))
            })?;
        }
        Ok(denoiser)
    }

    /// The provider the session ended on (the first of the list that could be used).
    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    /// The providers that were asked for but skipped, with the reason; callers show these
    /// as warnings.
    pub fn fallbacks(&self) -> &[Fallback] {
        &self.fallbacks
    }

    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// False when the model had no metadata and the caller's assumption is in use.
    pub fn has_metadata(&self) -> bool {
        self.has_metadata
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the model reads a guide (the partner contrast) beside each slice.
    pub fn needs_guide(&self) -> bool {
        self.names.guide.is_some()
    }

    /// The magnitude's degrees of freedom, in coils, that slices are served as: 1 (Rician)
    /// with one sigma per slice, else the noise map's.
    pub fn served_coils(&self) -> u32 {
        self.noise.coils()
    }

    /// How many noise levels the model reads per slice (its own and its guide's): 0 for a
    /// model without a noise input.
    pub fn noise_levels(&self) -> usize {
        self.names.noise.as_ref().map_or(0, |(_, k)| *k)
    }

    /// Runs the model as it is on already normalised and padded `[N, 1, H, W]` inputs (the
    /// guide for a guided model, the noise levels `[N, K]` for a model that reads them): no
    /// preprocessing, no cropping, no bias correction, no posterior. For parity checks and
    /// benchmarks of the graph itself; a model that states a prior returns its three
    /// outputs as three channels, `[N, 3, H, W]`.
    pub fn infer_raw(
        &mut self,
        input: ArrayView4<f32>,
        guide: Option<ArrayView4<f32>>,
        noise: Option<ArrayView2<f32>>,
    ) -> Result<Array4<f32>> {
        self.check_guide(guide.is_some())?;
        let want = (input.dim().0, self.noise_levels());
        match &noise {
            Some(levels) if levels.dim() == want => {}
            None if want.1 == 0 => {}
            _ => {
                return Err(Error::Image(ImageError::Shape {
                    what: "noise levels",
                    expected: format!("{want:?} (0 columns: the model reads none)"),
                    got: format!("{:?}", noise.map(|n| n.dim())),
                }));
            }
        }
        let noise = noise.map(|n| n.as_standard_layout().into_owned());
        let (n, c, h, w) = input.dim();
        if let Some(g) = &guide
            && g.dim() != input.dim()
        {
            return Err(Error::Image(ImageError::Shape {
                what: "guide",
                expected: format!("the input's shape {:?}", input.dim()),
                got: format!("{:?}", g.dim()),
            }));
        }
        let contiguous = input.as_standard_layout();
        let guide = guide.map(|g| g.as_standard_layout().into_owned());
        let batch = Batch {
            input: contiguous.as_slice().expect("standard layout"),
            guide: guide
                .as_ref()
                .map(|g| g.as_slice().expect("standard layout")),
            noise: noise
                .as_ref()
                .map(|n| n.as_slice().expect("standard layout")),
            shape: [n, c, h, w],
        };
        let outputs = run_session(
            &mut self.session,
            &self.path,
            &self.names,
            batch,
            self.metadata.outputs(),
        )?;
        // The outputs side by side along the channels: [N, outputs, H, W].
        let plane = c * h * w;
        let mut data = Vec::with_capacity(outputs.len() * n * plane);
        for i in 0..n {
            for o in &outputs {
                data.extend_from_slice(&o[i * plane..(i + 1) * plane]);
            }
        }
        Ok(Array4::from_shape_vec((n, c * outputs.len(), h, w), data).expect("checked shape"))
    }

    /// Denoises one slice of any size; the result has the input's size and units.
    pub fn denoise(&mut self, image: ArrayView2<f32>) -> Result<Array2<f32>> {
        let mut out = self.denoise_batch(&[image])?;
        Ok(out.pop().expect("one output per input"))
    }

    /// Estimates the noise maps of a series at once from all its slices (and their guides,
    /// for a guided model), for the calls that then denoise them: a series' slices share
    /// their g-factor map (`series_noise`). Says whether they were pooled. The series
    /// before is forgotten ([`Denoiser::forget_series`]).
    pub fn prepare_series(
        &mut self,
        images: &[ArrayView2<f32>],
        guides: Option<&[ArrayView2<f32>]>,
    ) -> Result<SeriesNoise> {
        self.check_guide(guides.is_some())?;
        self.series
            .prepare(&self.noise.as_stated(self.stated), images, guides)
    }

    /// Takes `maps` (and `guide_maps`, one per guide, for a guided model) as the noise maps
    /// of `images` (with `guides`) instead of estimating them: measured ones (a noise scan
    /// and a g-factor map), each off by `error` relatively. Only under a noise map model;
    /// kept beside what is already prepared, until [`Denoiser::forget_series`].
    pub fn supply_maps(
        &mut self,
        images: &[ArrayView2<f32>],
        guides: Option<&[ArrayView2<f32>]>,
        maps: Vec<Array2<f32>>,
        guide_maps: Option<Vec<Array2<f32>>>,
        error: f32,
    ) -> Result<()> {
        self.check_guide(guides.is_some())?;
        if self.noise == NoiseModel::Slice {
            return Err(Error::Image(ImageError::Invalid {
                what: "noise map",
                reason: "supplied maps need a noise map model (one sigma per slice is served)"
                    .into(),
            }));
        }
        self.series.supply(images, guides, maps, guide_maps, error)
    }

    /// A series whose slices arrive one at a time, pooled up to `capacity` slices, for
    /// [`Denoiser::prepare_arrived`], read as its images state (`set_stated` before: the
    /// series keeps it); `None` when slices are served with one sigma each (nothing to pool).
    pub fn growing_series(&self, capacity: usize) -> Result<Option<GrowingSeries>> {
        match self.noise.as_stated(self.stated) {
            NoiseModel::Slice => Ok(None),
            NoiseModel::Map(settings) => Ok(Some(GrowingSeries::new(settings, capacity)?)),
        }
    }

    /// Adds `images` (with their guides, for a guided model) to `series` and prepares
    /// their noise maps, each pooled with the slices of its series before it, for the calls
    /// that then denoise them. Unlike [`Denoiser::prepare_series`] it keeps what was
    /// prepared before, so one batch can serve the slices of several series; call
    /// [`Denoiser::forget_series`] between batches.
    pub fn prepare_arrived(
        &mut self,
        series: &mut GrowingSeries,
        images: &[ArrayView2<f32>],
        guides: Option<&[ArrayView2<f32>]>,
    ) -> Result<Vec<Arrival>> {
        self.check_guide(guides.is_some())?;
        self.series.add_arrived(series, images, guides)
    }

    /// Frees the maps of the series last prepared: a long series of large slices holds
    /// tens of megabytes of them until the next.
    pub fn forget_series(&mut self) {
        self.series = SeriesMaps::default();
    }

    /// Denoises slices of one size in a single inference (a model without a guide).
    pub fn denoise_batch(&mut self, images: &[ArrayView2<f32>]) -> Result<Vec<Array2<f32>>> {
        self.check_guide(false)?;
        let out = self.run(images, None)?;
        crate::guard::finish(images, None, out, self.strength)
    }

    /// Denoises slices of one size with their partner contrast's slices as guides (a guided
    /// model): `guides[i]` is the other contrast of `images[i]`, the same size.
    pub fn denoise_guided_batch(
        &mut self,
        images: &[ArrayView2<f32>],
        guides: &[ArrayView2<f32>],
    ) -> Result<Vec<Array2<f32>>> {
        self.check_guide(true)?;
        one_guide_each(images.len(), guides.len())?;
        let out = self.run(images, Some(guides))?;
        crate::guard::finish(images, Some(guides), out, self.strength)
    }

    /// How much of the denoised image is served from now on, 0 to 1 (1 when opened): the
    /// rest is the acquired image, as the vendors' low / medium / high settings keep some
    /// of the acquisition's texture.
    pub fn set_strength(&mut self, strength: f32) -> Result<()> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(Error::Image(ImageError::Invalid {
                what: "strength",
                reason: format!("{strength} is not between 0 and 1"),
            }));
        }
        self.strength = strength;
        Ok(())
    }

    /// Says what the images served from now on state of their acquisition (a DICOM file's
    /// phase encoding and acceleration, an MRD header's acceleration): a noise map follows
    /// it over the configuration (the acceleration where `stated_acceleration` is on), for
    /// a series prepared and a slice estimated alone alike.
    pub fn set_stated(&mut self, stated: Stated) {
        self.stated = stated.acceleration_counting(self.stated_acceleration);
    }

    /// Where what the images served now state sets a noise map's configuration aside (an
    /// unknown direction, no acceleration, where they disagree): what a user should be told.
    pub fn stated_set_aside(&self) -> SetAside {
        match self.noise {
            NoiseModel::Map(settings) => settings.set_aside_by(self.stated),
            NoiseModel::Slice => SetAside::default(),
        }
    }

    /// An error unless the call gives a guide exactly when the model reads one.
    fn check_guide(&self, given: bool) -> Result<()> {
        guide_given(&self.path, &self.metadata, self.needs_guide(), given)
    }

    // Long: normalise, pad, infer (tiled or whole, orientations), posterior, unpad and
    // restore share the slice's scale and padding.
    fn run(
        &mut self,
        images: &[ArrayView2<f32>],
        guides: Option<&[ArrayView2<f32>]>,
    ) -> Result<Vec<Array2<f32>>> {
        let Some((h, w)) = batch_dim(images, guides)? else {
            return Ok(Vec::new());
        };
        let n = images.len();
        let norm = self.metadata.normalization;
        let padding = Padding::to_multiple(h, w, self.metadata.size_multiple)?;
        let (ph, pw) = padding.padded_dim(h, w);
        let plane = ph * pw;

        // With a noise map, a one-coil model that reads its noise level is run at the map's
        // levels (`local_levels`); a coil-array model, trained on divided slices, and one
        // without a noise input meet the slice and guide divided by their maps, one level
        // across the slice. The posterior step reads the map.
        let k = self.noise_levels();
        let divide = k == 0 || self.metadata.noise_coils > 1;
        let even = match self.noise {
            NoiseModel::Slice => None,
            NoiseModel::Map(_) => Some(EvenNoise::new(
                &self.noise.as_stated(self.stated),
                self.correction.coils(),
                images,
                guides,
                &self.series,
                divide,
            )?),
        };
        let flat_views = even.as_ref().map(EvenNoise::views);
        let (images, guides) = match &flat_views {
            Some((i, g)) => (i.as_slice(), g.as_deref()),
            None => (images, guides),
        };
        let scales = fill(
            &mut self.input,
            images,
            &norm,
            &padding,
            (ph, pw),
            &mut self.scratch,
            "slice",
        )?;
        let mut guide_scales = Vec::new();
        if let Some(guides) = guides {
            let norm = self
                .metadata
                .guide
                .as_ref()
                .map_or(norm, |g| g.normalization);
            guide_scales = fill(
                &mut self.guide,
                guides,
                &norm,
                &padding,
                (ph, pw),
                &mut self.scratch,
                "guide",
            )?;
        }
        let guide = guides.map(|_| self.guide.as_slice());
        // The noise levels the model reads, `[N, K]`: each slice's (and guide's) sigma in
        // the network's units, as training estimated them.
        // Run at the map's levels instead, for a model that takes them.
        let local = (even.as_ref().filter(|_| !divide))
            .map(|e| LocalLevels::for_call(e, &scales, (k > 1).then_some(&guide_scales[..])));
        let levels = (k > 0 && local.is_none())
            .then(|| noise_levels(&self.input, guide, &padding, (ph, pw), n));
        let count = self.metadata.outputs();
        // One inference of a batch (or a tile) and its guide, averaged over the orientations
        // when asked: the same for a whole plane and for each tile of a large one.
        let (session, path, names) = (&mut self.session, &self.path, &self.names);
        let average = self.average_orientations;
        let mut infer = |input: &[f32], guide: Option<&[f32]>, noise: Option<&[f32]>, shape| {
            averaged(input, guide, shape, average, |input, guide, shape| {
                let batch = Batch {
                    input,
                    guide,
                    noise,
                    shape,
                };
                run_session(session, path, names, batch, count)
            })
        };
        let (input, tile_pixels, multiple) =
            (&self.input, self.tile_pixels, self.metadata.size_multiple);
        let mut compute = |levels: Option<&[f32]>| -> Result<Vec<Vec<f32>>> {
            if plane <= tile_pixels {
                return infer(input, guide, levels, [n, 1, ph, pw]);
            }
            let tiles = Tiles::new((ph, pw), tile_pixels, multiple);
            let mut out = vec![vec![0.0; n * plane]; count];
            for i in 0..n {
                let at = i * plane..(i + 1) * plane;
                let planes: Vec<&mut [f32]> = out.iter_mut().map(|o| &mut o[at.clone()]).collect();
                let noise = levels.map(|l| &l[i * k..(i + 1) * k]);
                tiles.run(
                    planes,
                    |(ty, tx), tile_in, tile_guide| {
                        infer(tile_in, tile_guide, noise, [1, 1, ty, tx])
                    },
                    &input[at.clone()],
                    guide.map(|g| &g[at.clone()]),
                )?;
            }
            Ok(out)
        };
        let data = match &local {
            None => compute(levels.as_deref())?,
            Some(local) => local.run(&padding, compute)?,
        };
        let correct = self.metadata.rician_correction;
        let mut outputs = Vec::with_capacity(scales.len());
        for (i, ((chunk, input), scale)) in data[0]
            .chunks(plane)
            .zip(self.input.chunks(plane))
            .zip(scales)
            .enumerate()
        {
            fn view(c: &[f32], dim: (usize, usize)) -> ArrayView2<'_, f32> {
                ArrayView2::from_shape(dim, c).expect("chunk is one plane")
            }
            let crop = |c| padding.crop(view(c, (ph, pw)));
            let mut out = crop(chunk).to_owned();
            let at = i * plane..(i + 1) * plane;
            let prior =
                (self.metadata.posterior && self.posterior).then(|| posterior::PriorPlanes {
                    spread: crop(&data[1][at.clone()]),
                    shift: crop(&data[2][at.clone()]),
                });
            if correct || prior.is_some() {
                out = match &even {
                    None => {
                        // One sigma for the slice: the level the model read, when it reads
                        // one (estimated from this very crop), so it is not estimated twice.
                        let sigma = match &levels {
                            Some(l) => Array2::from_elem(out.dim(), l[i * k]),
                            None => self.noise.sigma(crop(input))?,
                        };
                        // The guide's tissue joins the slice's own in the body's outline,
                        // inside which no pixel is taken for air (floor_aware::inside_body).
                        let level = levels.as_ref().filter(|_| k > 1).map(|l| l[i * k + 1]);
                        let coils = self.correction.coils();
                        let partner = guide
                            .map(|g| guide_tissue(crop(&g[at.clone()]), level, &self.noise, coils))
                            .transpose()?;
                        let partner = partner.as_ref().map(|p| p.view());
                        let (c, sigma) = (&self.correction, sigma.view());
                        posterior::serve(c, crop(input), out, prior, sigma, partner, 0.0)
                    }
                    Some(e) => e.serve(i, &self.correction, crop(input), out, prior, scale.0),
                };
            }
            out.mapv_inplace(|v| v * scale.0);
            // Checked here, after the scale is applied, so that an output which overflows
            // only in the input's own units (a float slice near f32::MAX) is refused too:
            // the CLI and the daemon never write an inf or a NaN.
            let bad = out.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Err(Error::Inference {
                    path: self.path.clone(),
                    reason: format!(
                        "the output of slice {i} has {bad} non-finite values in the input's \
                         units (scale {})",
                        scale.0
                    ),
                });
            }
            outputs.push(out);
        }
        Ok(outputs)
    }
}
