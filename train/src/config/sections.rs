//! The config's sections (`data`, `model`, `trainer`) and their defaults: what each key
//! means and what it is when left out.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crossdenoise_image::coils::{CoilArray, Combination};

use crate::device::Backend;
use crate::model::PrecisionSetting;
use crate::model::strategy::CrossDomainStrategy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// The embedded knee phantoms (with clean images for scoring).
    Synthetic,
    /// Paired folders `<path>/<domain a>/*`, `<path>/<domain b>/*`.
    Folder,
    /// fastMRI's knee files (`<path>/*.h5`, raw k-space): CORPD_FBK volumes are domain a,
    /// CORPDFS_FBK domain b (docs/training.md).
    Fastmri,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    #[serde(default = "defaults::source")]
    pub source: DataSource,
    /// Training size (square) for synthetic data; folder images must have this size.
    #[serde(default = "defaults::image_size")]
    pub image_size: usize,
    /// Synthetic data: the phantom pairs made for training. fastMRI data: at most this many
    /// slices per contrast, taken evenly across the volumes.
    #[serde(default = "defaults::train_pairs")]
    pub train_pairs: usize,
    /// Synthetic data: the pairs made for validation; folder data: the pairs held out;
    /// fastMRI data: at most this many slices per contrast held out.
    #[serde(default = "defaults::val_pairs")]
    pub val_pairs: usize,
    /// Names of domain a and b (PD and PDFS); also the sub-folder names of folder data.
    #[serde(default = "defaults::domains")]
    pub domains: [String; 2],
    /// Folder and fastMRI data: the training set root. Relative paths are relative to the
    /// config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Folder and fastMRI data: a separate validation root; without it the last `val_pairs`
    /// pairs of `path` are held out (fastMRI: whole volumes, the last in name order).
    #[serde(default)]
    pub val_path: Option<PathBuf>,
    /// Synthetic data: acquisition SNR of each contrast (noise sigma = 1 / snr).
    #[serde(default = "defaults::snr")]
    pub snr_a: f32,
    #[serde(default = "defaults::snr")]
    pub snr_b: f32,
    /// Synthetic data: instead of `snr_a` / `snr_b`, each slice at its own SNR drawn
    /// log-uniformly from `[low, high]`, so that one model learns every noise level it will
    /// be served (a scanner's noise changes with the protocol, the matrix and the coil).
    #[serde(default)]
    pub snr_range_a: Option<[f32; 2]>,
    #[serde(default)]
    pub snr_range_b: Option<[f32; 2]>,
    /// Synthetic data: the receive coil array the phantoms are scanned with
    /// (docs/scanner-noise.md); absent, one coil with Rician noise.
    #[serde(default)]
    pub coils: Option<CoilsConfig>,
}

/// `data.coils`: a multi-channel knee coil for the phantoms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoilsConfig {
    /// Receive channels.
    pub count: u32,
    /// Noise correlation between neighbouring channels.
    #[serde(default = "defaults::coil_correlation")]
    pub correlation: f32,
    /// Parallel-imaging acceleration (1: none).
    #[serde(default = "defaults::acceleration")]
    pub acceleration: u32,
    #[serde(default)]
    pub combination: CombinationConfig,
}

/// `data.coils.combination`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CombinationConfig {
    /// Root-sum-of-squares: noncentral chi.
    #[default]
    Rss,
    /// Sensitivity-weighted: Rician.
    Sensitivity,
}

impl CoilsConfig {
    pub fn array(&self) -> CoilArray {
        CoilArray {
            coils: self.count,
            correlation: self.correlation,
            acceleration: self.acceleration,
            combination: match self.combination {
                CombinationConfig::Rss => Combination::RootSumOfSquares,
                CombinationConfig::Sensitivity => Combination::SensitivityWeighted,
            },
        }
    }
}

impl DataSource {
    /// The name the config gives it.
    pub fn key(self) -> &'static str {
        match self {
            DataSource::Synthetic => "synthetic",
            DataSource::Folder => "folder",
            DataSource::Fastmri => "fastmri",
        }
    }
}

impl DataConfig {
    /// The degrees of freedom of the training magnitudes' noise, in coils (1: Rician).
    pub fn noise_coils(&self) -> u32 {
        self.coils.map_or(1, |c| c.array().distribution_coils())
    }
}

/// Which network a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// The study's dual-domain network: two encoders sharing a latent space, one decoder
    /// per contrast; its cross path synthesises one contrast from the other.
    #[default]
    DualDomain,
    /// The product's denoiser: each contrast denoised from its own noisy image (blind-spot
    /// self-supervised) with the other contrast of the slice as a guide; both directions.
    Guided,
    /// The same denoiser without a guide, for series that have no partner; both contrasts.
    Single,
}

impl ModelKind {
    /// Whether this is one of the self-supervised denoisers (guided or single).
    pub fn is_denoiser(self) -> bool {
        matches!(self, ModelKind::Guided | ModelKind::Single)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::DualDomain => "dual_domain",
            ModelKind::Guided => "guided",
            ModelKind::Single => "single",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// dual_domain (default: the study's network), guided or single.
    #[serde(default)]
    pub kind: ModelKind,
    #[serde(default = "defaults::base_channels")]
    pub base_channels: usize,
    #[serde(default = "defaults::depth")]
    pub depth: usize,
    #[serde(default)]
    pub shared_encoder: bool,
    /// guided / single: the network also states how sure it is of each pixel (a prior of
    /// the clean amplitude), and the runtime serves the posterior mean given the pixel's own
    /// value (docs/denoising.md).
    #[serde(default)]
    pub posterior: bool,
    /// guided / single: the network also reads each slice's noise level (and its guide's),
    /// so that one model serves every SNR knowing how much to smooth (docs/denoising.md).
    #[serde(default)]
    pub noise_input: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    #[serde(default = "defaults::epochs")]
    pub epochs: usize,
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    #[serde(default = "defaults::lr")]
    pub lr: f64,
    /// Linear warm-up over this many steps (0: none).
    #[serde(default)]
    pub warmup_steps: usize,
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Adam's second-moment decay. 0.99 lets each parameter's step size follow its
    /// gradients' size within about 100 steps instead of 1000, so that a sudden rise of
    /// the gradients does not turn into steps of several times the learning rate: at 5e-3
    /// the default 0.999 let `configs/guided.json` blow up once in three runs (QUALITY.md).
    #[serde(
        default = "defaults::adam_beta2",
        skip_serializing_if = "defaults::is_default_adam_beta2"
    )]
    pub adam_beta2: f64,
    /// Clip the global gradient L2 norm to this value (none: no clipping).
    #[serde(default)]
    pub grad_clip_norm: Option<f32>,
    /// Keep the mean of the weights after each of the run's last steps, this fraction of
    /// them (0.1: the last tenth), beside the trained ones, and validate and export it:
    /// the weights of the last steps scatter about the minimum the mean sits nearer to.
    /// None: the last step's weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_weights: Option<f64>,
    #[serde(default)]
    pub backend: Backend,
    /// GPU index for GPU backends.
    #[serde(default)]
    pub device_index: usize,
    /// Several devices of this machine training together, one thread each, e.g. `[0, 1, 2,
    /// 3]` (docs/training.md, "Training on a cluster"); empty: `device_index` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<usize>,
    /// What the convolutions compute in: f32, bf16 (mixed precision, libtorch backends), or
    /// auto (bf16 where the backend and hardware have it, else f32).
    #[serde(default)]
    pub precision: PrecisionSetting,
    #[serde(default)]
    pub loss_weights: LossWeights,
    #[serde(default)]
    pub noise: NoiseConfig,
    #[serde(default)]
    pub cross_domain_strategy: CrossDomainStrategy,
    #[serde(default = "defaults::alpha")]
    pub mixed_skip_alpha: f32,
    #[serde(default)]
    pub identity_mapping: bool,
    /// Write a sample grid every this many epochs (0: never).
    #[serde(default = "defaults::sample_every")]
    pub sample_every: usize,
    /// Guided / single denoisers: the side of the random square crops a step trains on.
    #[serde(default = "defaults::crop_size")]
    pub crop_size: usize,
    /// Guided / single denoisers: optimiser steps per epoch (an epoch ends with validation
    /// and a checkpoint).
    #[serde(default = "defaults::steps_per_epoch")]
    pub steps_per_epoch: usize,
    /// Guided / single denoisers: what the prediction learns to match.
    #[serde(default)]
    pub target: Target,
    /// A step whose loss is above the level of the run's last steps (their median) by more
    /// than this many times that level (the median's size plus the losses' median absolute
    /// deviation) is a blow-up (see `blow_up_retries`), rather than a step the run trains on
    /// from to the end of its budget: a blow-up that stays finite. Not part of the config
    /// hash.
    #[serde(default = "defaults::divergence_factor")]
    pub divergence_factor: f32,
    /// How many times a run that blew up (or whose loss stopped being finite) goes back to
    /// its last checkpoint and trains on at half the learning rate before it stops with the
    /// error: a blow-up then costs the steps since the last epoch, not the run. 0 stops at
    /// the first. Not part of the config hash.
    #[serde(default = "defaults::blow_up_retries")]
    pub blow_up_retries: u32,
}

/// The target of a denoiser's prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The noisy acquired image itself: self-supervised, what the product trains on.
    #[default]
    Acquired,
    /// The expected magnitude of the clean phantom (its Rician mean at the slice's noise),
    /// what the acquired target's loss is least at: the same network and budget without the
    /// noise of the target, the ceiling the self-supervised run is measured against.
    /// Synthetic data only.
    Clean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    #[default]
    Constant,
    /// Cosine decay from `lr` to 0 over the run (after the warm-up).
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossWeights {
    #[serde(default)]
    pub content: f32,
    #[serde(default)]
    pub recon: f32,
    #[serde(default)]
    pub cross: f32,
    #[serde(default)]
    pub edge: f32,
}

impl Default for LossWeights {
    /// The seed's recommended weights.
    fn default() -> Self {
        LossWeights {
            content: 1.0,
            recon: 0.5,
            cross: 1.0,
            edge: 0.05,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseKind {
    #[default]
    Gaussian,
    Rician,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseConfig {
    #[serde(default)]
    pub kind: NoiseKind,
    #[serde(default = "defaults::sigma")]
    pub sigma_a: f32,
    #[serde(default = "defaults::sigma")]
    pub sigma_b: f32,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            kind: NoiseKind::Gaussian,
            sigma_a: defaults::sigma(),
            sigma_b: defaults::sigma(),
        }
    }
}

pub(super) mod defaults {
    use crate::config::sections::DataSource;
    pub fn seed() -> u64 {
        42
    }
    pub fn coil_correlation() -> f32 {
        0.15
    }
    pub fn acceleration() -> u32 {
        1
    }
    pub fn source() -> DataSource {
        DataSource::Synthetic
    }
    pub fn image_size() -> usize {
        128
    }
    pub fn train_pairs() -> usize {
        512
    }
    pub fn val_pairs() -> usize {
        64
    }
    pub fn domains() -> [String; 2] {
        ["pd".into(), "pdfs".into()]
    }
    pub fn snr() -> f32 {
        20.0
    }
    pub fn base_channels() -> usize {
        32
    }
    pub fn depth() -> usize {
        4
    }
    pub fn epochs() -> usize {
        10
    }
    pub fn batch_size() -> usize {
        4
    }
    pub fn lr() -> f64 {
        1e-3
    }
    pub fn sigma() -> f32 {
        0.01
    }
    pub fn alpha() -> f32 {
        0.5
    }
    pub fn sample_every() -> usize {
        1
    }
    pub fn crop_size() -> usize {
        64
    }
    pub fn steps_per_epoch() -> usize {
        100
    }
    pub fn divergence_factor() -> f32 {
        1000.0
    }
    pub fn blow_up_retries() -> u32 {
        2
    }
    pub fn adam_beta2() -> f64 {
        0.999
    }
    /// The default is left out of the config's JSON, so that the hashes of configs written
    /// before the key existed are unchanged.
    pub fn is_default_adam_beta2(b: &f64) -> bool {
        *b == adam_beta2()
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults deserialise")
    }
}
impl Default for ModelConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults deserialise")
    }
}
impl Default for TrainerConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults deserialise")
    }
}
