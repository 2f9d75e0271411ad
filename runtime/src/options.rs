//! How a [`crate::Denoiser`] is opened: its execution providers, the metadata assumed for a
//! model without its own, and how it serves (warm-up, tiles, posterior, noise model).

use crossdenoise_image::model_metadata::AssumedMetadata;
use crossdenoise_image::noise_map::{NoiseModel, PhaseEncoding};

use crate::execution_provider::ProviderSettings;

/// How to open a model.
#[derive(Debug, Clone)]
pub struct DenoiserOptions {
    pub providers: ProviderSettings,
    /// Used only for a model that carries no metadata of its own; such a model is refused
    /// without it, because guessing the normalisation gives plausible-looking wrong images.
    pub assume: Option<AssumedMetadata>,
    /// Shape `[N, H, W]` of the warm-up inference (rounded up to the size multiple); `None`
    /// skips it. TensorRT builds an engine per input shape, so a deployment warms up with
    /// the scanner's matrix size.
    pub warmup: Option<[usize; 3]>,
    /// Largest plane (padded height x width) run through the model at once. A larger slice
    /// runs in overlapping tiles of about this many pixels, so inference memory is bounded
    /// by this, not by the slice (a 1024 x 1024 guided slice whole takes ~5 GB on the CPU).
    pub tile_pixels: usize,
    /// For a model that states a prior: serve the posterior mean (the default), or only its
    /// prediction with the Rician bias removed (to see what the posterior step adds).
    pub posterior: bool,
    /// How each slice's noise is known: one sigma (Rician), or a map per pixel for a given
    /// number of coils (parallel imaging, root-sum-of-squares: the noncentral chi correction
    /// and posterior). `None` (the default): as the model records its training data, a map
    /// of its coils for a model trained on a coil array, one sigma per slice otherwise, which
    /// is what a deployment that matched its model to its scanner wants (the daemon, the
    /// DICOM node). A model is refused under a noise model of other coils than its own.
    pub noise: Option<NoiseModel>,
    /// With `noise` left to the model: which way the phase encoding runs in the slices
    /// served (a site's protocol), so that a map's tiles are narrowed across the folds
    /// (`NoiseMapSettings::phase_encoding`).
    pub phase_encoding: PhaseEncoding,
    /// With `noise` left to the model: parallel imaging's acceleration in the slices served
    /// (1: none or not known), so that a map that jumps at its fold lines is read between
    /// them (`NoiseMapSettings::acceleration`).
    pub acceleration: u32,
    /// Whether an acceleration the images state ([`crate::Denoiser::set_stated`]) sets the
    /// configured one aside. Off for a site whose images crop the phase oversampling after
    /// unfolding, where the fold lines are not at the whole fractions of the field of view
    /// a stated factor puts them.
    pub stated_acceleration: bool,
    /// Average the model's outputs over the eight orientations of each slice (and its
    /// guide) before the posterior step: a better estimate at eight times the inference.
    pub average_orientations: bool,
}

impl Default for DenoiserOptions {
    fn default() -> Self {
        DenoiserOptions {
            providers: ProviderSettings::default(),
            assume: None,
            warmup: Some([1, 64, 64]),
            tile_pixels: 512 * 512,
            posterior: true,
            noise: None,
            phase_encoding: PhaseEncoding::Unknown,
            acceleration: 1,
            stated_acceleration: true,
            average_orientations: false,
        }
    }
}
