//! The training configuration: the original trainer's JSON keys, read strictly.
//!
//! A typo in a config silently falling back to a default costs a night of training, so an
//! unknown key is an error naming the file and the key's path, and every value is range
//! checked before anything starts. A config may `extends` another (a path relative to it):
//! the base is read first and this file's keys override it, object by object, so an
//! experiment config states only what it changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crossdenoise_image::coils::{CoilArray, Combination};

use crate::device::Backend;
use crate::model::Precision;
use crate::strategy::CrossDomainStrategy;

/// Why a config could not be used; always names the file, and the key where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid JSON: {reason}")]
    Json { file: PathBuf, reason: String },
    #[error("{file}: {key}: {reason}")]
    Key {
        file: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{file}: `extends` chain loops back to {again}")]
    ExtendsLoop { file: PathBuf, again: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run name; the run folder is `<out>/<name>`.
    pub name: String,
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub trainer: TrainerConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// The embedded knee phantoms (with clean images for scoring).
    Synthetic,
    /// Paired folders `<path>/<domain a>/*`, `<path>/<domain b>/*`.
    Folder,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    #[serde(default = "defaults::source")]
    pub source: DataSource,
    /// Training size (square) for synthetic data; folder images must have this size.
    #[serde(default = "defaults::image_size")]
    pub image_size: usize,
    #[serde(default = "defaults::train_pairs")]
    pub train_pairs: usize,
    #[serde(default = "defaults::val_pairs")]
    pub val_pairs: usize,
    /// Names of domain a and b (PD and PDFS); also the sub-folder names of folder data.
    #[serde(default = "defaults::domains")]
    pub domains: [String; 2],
    /// Folder data: the training set root. Relative paths are relative to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Folder data: a separate validation root; without it the last `val_pairs` pairs of
    /// `path` are held out.
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
    /// Clip the global gradient L2 norm to this value (none: no clipping).
    #[serde(default)]
    pub grad_clip_norm: Option<f32>,
    #[serde(default)]
    pub backend: Backend,
    /// GPU index for GPU backends.
    #[serde(default)]
    pub device_index: usize,
    /// Several devices of this machine training together, one thread each, e.g. `[0, 1, 2,
    /// 3]` (docs/training.md, "Training on a cluster"); empty: `device_index` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<usize>,
    /// What the convolutions compute in: f32, or bf16 (mixed precision, libtorch backends).
    #[serde(default)]
    pub precision: Precision,
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

mod defaults {
    use super::DataSource;
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

impl Config {
    /// Reads, merges (`extends`), parses strictly and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let value = load_merged(path, &mut Vec::new())?;
        let mut config = Self::from_value(value, path)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        config.validate(path)?;
        Ok(config)
    }

    /// Parses a JSON value strictly; `file` is only used in error messages.
    pub fn from_value(value: Value, file: &Path) -> Result<Self, ConfigError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Key {
                file: file.into(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                reason: explain(&e.into_inner().to_string()),
            }
        })
    }

    /// Applies `key.path=value` overrides (the CLI's `--set`), then re-validates.
    pub fn with_overrides(self, overrides: &[String], file: &Path) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Ok(self);
        }
        let mut value = serde_json::to_value(&self).expect("config serialises");
        for o in overrides {
            let Some((key, raw)) = o.split_once('=') else {
                return Err(ConfigError::Key {
                    file: file.into(),
                    key: o.clone(),
                    reason: "override must look like key.path=value".into(),
                });
            };
            // A value that is not JSON (e.g. `no_skip`) is taken as a string.
            let new: Value =
                serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()));
            let mut slot = &mut value;
            for part in key.split('.') {
                slot = slot
                    .as_object_mut()
                    .map(|m| m.entry(part.to_string()).or_insert(Value::Null))
                    .ok_or_else(|| ConfigError::Key {
                        file: file.into(),
                        key: key.into(),
                        reason: format!("`{part}` is inside a value that is not an object"),
                    })?;
            }
            *slot = new;
        }
        let config = Self::from_value(value, file)?;
        config.validate(file)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, dir: &Path) {
        for p in [&mut self.data.path, &mut self.data.val_path]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Range checks, each naming its key.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, reason: String| {
            Err(ConfigError::Key {
                file: file.into(),
                key: key.into(),
                reason,
            })
        };
        let (d, m, t) = (&self.data, &self.model, &self.trainer);
        if let Some(reason) = run_name_problem(&self.name) {
            return err("name", format!("{:?} {reason}", self.name));
        }
        if !(1..=7).contains(&m.depth) {
            return err("model.depth", format!("{} is not in 1..=7", m.depth));
        }
        if m.base_channels == 0 || m.base_channels > 256 {
            return err(
                "model.base_channels",
                format!("{} is not in 1..=256", m.base_channels),
            );
        }
        if m.posterior && m.kind == ModelKind::DualDomain {
            return err(
                "model.posterior",
                "only the guided and single denoisers have a posterior step (model.kind)".into(),
            );
        }
        let multiple = 1usize << m.depth;
        if d.image_size == 0
            || !d.image_size.is_multiple_of(multiple)
            || !d.image_size.is_multiple_of(16)
        {
            return err(
                "data.image_size",
                format!(
                    "{} must be a positive multiple of 2^depth = {multiple} and of 16",
                    d.image_size
                ),
            );
        }
        if d.train_pairs == 0 {
            return err("data.train_pairs", "must be at least 1".into());
        }
        if d.val_pairs == 0 {
            return err("data.val_pairs", "must be at least 1".into());
        }
        if d.domains[0].is_empty() || d.domains[1].is_empty() || d.domains[0] == d.domains[1] {
            return err(
                "data.domains",
                format!("{:?} must be two different names", d.domains),
            );
        }
        if d.source == DataSource::Folder && d.path.is_none() {
            return err("data.path", "folder data needs a path".into());
        }
        for (key, snr) in [("data.snr_a", d.snr_a), ("data.snr_b", d.snr_b)] {
            if !(snr > 0.0 && snr.is_finite()) {
                return err(key, format!("{snr} is not a positive number"));
            }
        }
        for (key, range) in [
            ("data.snr_range_a", d.snr_range_a),
            ("data.snr_range_b", d.snr_range_b),
        ] {
            if let Some([low, high]) = range
                && !(low > 0.0 && low.is_finite() && high.is_finite() && high >= low)
            {
                return err(
                    key,
                    format!("[{low}, {high}] is not a range of positive SNRs, low to high"),
                );
            }
        }
        if let Some(coils) = &d.coils {
            if d.source == DataSource::Folder {
                return err(
                    "data.coils",
                    "sets the phantoms' coil array; folder data brings its own noise".into(),
                );
            }
            if let Err(e) = coils.array().validate() {
                return err("data.coils", e.to_string());
            }
            if m.posterior && d.noise_coils() > 1 {
                return err(
                    "model.posterior",
                    format!(
                        "the posterior step's likelihood is Rician (one coil); data.coils makes                          {} coils combined by root-sum-of-squares (noncentral chi): set                          model.posterior to false",
                        coils.count
                    ),
                );
            }
        }
        if t.epochs == 0 {
            return err("trainer.epochs", "must be at least 1".into());
        }
        if t.batch_size == 0 {
            return err("trainer.batch_size", "must be at least 1".into());
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return err("trainer.lr", format!("{} is not > 0", t.lr));
        }
        if let Some(c) = t.grad_clip_norm
            && !(c > 0.0 && c.is_finite())
        {
            return err("trainer.grad_clip_norm", format!("{c} is not > 0"));
        }
        let w = &t.loss_weights;
        for (key, v) in [
            ("trainer.loss_weights.content", w.content),
            ("trainer.loss_weights.recon", w.recon),
            ("trainer.loss_weights.cross", w.cross),
            ("trainer.loss_weights.edge", w.edge),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return err(key, format!("{v} is not >= 0"));
            }
        }
        if w.content == 0.0 && w.recon == 0.0 && w.cross == 0.0 && w.edge == 0.0 {
            return err(
                "trainer.loss_weights",
                "all weights are 0: nothing to train".into(),
            );
        }
        for (key, v) in [
            ("trainer.noise.sigma_a", t.noise.sigma_a),
            ("trainer.noise.sigma_b", t.noise.sigma_b),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return err(key, format!("{v} is not >= 0"));
            }
        }
        if m.kind.is_denoiser() {
            if t.crop_size == 0
                || !t.crop_size.is_multiple_of(multiple)
                || t.crop_size > d.image_size
            {
                return err(
                    "trainer.crop_size",
                    format!(
                        "{} must be a positive multiple of 2^depth = {multiple} and at most data.image_size ({})",
                        t.crop_size, d.image_size
                    ),
                );
            }
            if t.steps_per_epoch == 0 {
                return err("trainer.steps_per_epoch", "must be at least 1".into());
            }
            if t.target == Target::Clean && d.source != DataSource::Synthetic {
                return err(
                    "trainer.target",
                    "\"clean\" needs clean images, which only synthetic data has".into(),
                );
            }
        }
        if !(0.0..=1.0).contains(&t.mixed_skip_alpha) {
            return err(
                "trainer.mixed_skip_alpha",
                format!("{} is not in [0, 1]", t.mixed_skip_alpha),
            );
        }
        Ok(())
    }

    /// A stable hash of the resolved config (FNV-1a of its canonical JSON), recorded in
    /// checkpoints and exported models so a model can be traced to what trained it. The
    /// backend, GPU index and precision are left out: they change where and how the run
    /// computes, not what, so a run trained on a GPU in bf16 resumes on a CPU in f32 and a
    /// finished suite run is not redone there.
    pub fn hash(&self) -> String {
        let mut value = serde_json::to_value(self).expect("config serialises");
        if let Some(trainer) = value.get_mut("trainer").and_then(|t| t.as_object_mut()) {
            trainer.remove("backend");
            trainer.remove("device_index");
            trainer.remove("devices");
            trainer.remove("precision");
        }
        let text = serde_json::to_string(&value).expect("json");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// Rewrites serde's messages into the words of a config file ("key" rather than "field").
fn explain(msg: &str) -> String {
    // serde lists the choices as "one of `a`, `b` or `c`"; a config reader wants "a, b, c".
    let split = |rest: &str| {
        let (got, expected) = rest.split_once("`, expected ").unwrap_or((rest, ""));
        let expected = expected
            .trim_start_matches("one of ")
            .replace('`', "")
            .replace(" or ", ", ");
        (got.to_string(), expected)
    };
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (_, expected) = split(rest);
        return format!("unknown key (expected {expected})");
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (got, expected) = split(rest);
        return format!("unknown value {got:?} (expected {expected})");
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        return format!("missing key `{}", rest);
    }
    msg.to_string()
}

/// Reads a JSON file and the chain of files it `extends`, merged base-first.
fn load_merged(path: &Path, seen: &mut Vec<PathBuf>) -> Result<Value, ConfigError> {
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if seen.contains(&canonical) {
        return Err(ConfigError::ExtendsLoop {
            file: seen[0].clone(),
            again: canonical,
        });
    }
    seen.push(canonical);
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.into(),
        source,
    })?;
    let mut value: Value = strict_json(&text).map_err(|e| ConfigError::Json {
        file: path.into(),
        reason: e.to_string(),
    })?;
    let Some(obj) = value.as_object_mut() else {
        return Err(ConfigError::Key {
            file: path.into(),
            key: "(top level)".into(),
            reason: "expected a JSON object".into(),
        });
    };
    match obj.remove("extends") {
        None => Ok(value),
        Some(Value::String(base)) => {
            let base_path = path.parent().unwrap_or(Path::new(".")).join(base);
            // A base that cannot be read is this file's `extends` at fault.
            let mut merged = load_merged(&base_path, seen).map_err(|e| match e {
                ConfigError::Read { file, source } => ConfigError::Key {
                    file: path.into(),
                    key: "extends".into(),
                    reason: format!("{}: {source}", file.display()),
                },
                other => other,
            })?;
            merge(&mut merged, value);
            Ok(merged)
        }
        Some(other) => Err(ConfigError::Key {
            file: path.into(),
            key: "extends".into(),
            reason: format!("expected a file path string, got {other}"),
        }),
    }
}

/// Parses JSON, refusing a key given twice in one object: serde_json would keep the last
/// silently, and a config whose `lr` is written twice should say so, not pick one.
fn strict_json(text: &str) -> Result<Value, serde_json::Error> {
    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Strict(Value);
    impl<'de> de::Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(StrictVisitor)
        }
    }
    struct StrictVisitor;
    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Strict;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
            Ok(Strict(Value::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
            Ok(Strict(Value::from(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
            Ok(Strict(Value::String(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Strict, E> {
            Ok(Strict(Value::String(v)))
        }
        fn visit_unit<E>(self) -> Result<Strict, E> {
            Ok(Strict(Value::Null))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
            let mut items = Vec::new();
            while let Some(Strict(v)) = seq.next_element()? {
                items.push(v);
            }
            Ok(Strict(Value::Array(items)))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
            let mut obj = serde_json::Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if obj.contains_key(&key) {
                    return Err(de::Error::custom(format!("key `{key}` is given twice")));
                }
                let Strict(v) = map.next_value()?;
                obj.insert(key, v);
            }
            Ok(Strict(Value::Object(obj)))
        }
    }
    serde_json::from_str::<Strict>(text).map(|s| s.0)
}

/// Overlays `top` on `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, top) => *slot = top,
    }
}

/// Why `name` cannot name a run folder, if it cannot. The run lives at `<out>/<name>` and
/// `--force` replaces that folder, so the name must be exactly one plain path component:
/// `..` would make it the parent of `--out`, `.` `--out` itself.
pub fn run_name_problem(name: &str) -> Option<&'static str> {
    use std::path::Component;
    if name.trim().is_empty() {
        return Some("must not be empty");
    }
    if name.contains(['/', '\\']) {
        return Some("must be a name without slashes");
    }
    if name.chars().any(char::is_control) {
        return Some("must not hold control characters");
    }
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) => None,
        _ => Some("must be one plain folder name (not \".\" or \"..\")"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn unknown_key_names_file_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "x.json",
            r#"{"name":"x","trainer":{"loss_weights":{"crosss":1.0}}}"#,
        );
        let msg = Config::load(&p).unwrap_err().to_string();
        assert!(msg.ends_with("x.json: trainer.loss_weights.crosss: unknown key (expected content, recon, cross, edge)"), "{msg}");
    }

    #[test]
    fn a_key_given_twice_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "c.json",
            r#"{"name":"x","trainer":{"lr":0.001,"epochs":2,"lr":0.1}}"#,
        );
        let msg = Config::load(&p).unwrap_err().to_string();
        assert!(
            msg.contains("c.json") && msg.contains("key `lr` is given twice"),
            "{msg}"
        );
        let p = write(
            dir.path(),
            "d.json",
            r#"{"name":"x","trainer":{"lr":0.001,"epochs":2}, "data": {"train_pairs": 3}}"#,
        );
        let c = Config::load(&p).unwrap();
        assert_eq!((c.trainer.epochs, c.data.train_pairs), (2, 3));
    }

    #[test]
    fn a_run_name_is_one_plain_folder_name() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["..", ".", "a/b", "a\\b", " ", "", "x\ny"] {
            let p = write(
                dir.path(),
                "c.json",
                &serde_json::json!({ "name": bad }).to_string(),
            );
            let msg = Config::load(&p).unwrap_err().to_string();
            assert!(msg.contains("c.json: name:"), "{bad:?}: {msg}");
        }
        for good in ["run", "guided_v2", "...x", "a.b"] {
            assert_eq!(run_name_problem(good), None, "{good}");
        }
        // `--set name=..` goes through the same check.
        let p = write(dir.path(), "c.json", r#"{"name":"x"}"#);
        let msg = Config::load(&p)
            .unwrap()
            .with_overrides(&["name=..".into()], &p)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("name:"), "{msg}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                r#"{"name":"x","trainer":{"noise":{"sigma_a":-0.1}}}"#,
                "trainer.noise.sigma_a: -0.1 is not >= 0",
            ),
            (
                r#"{"name":"x","data":{"image_size":72}}"#,
                "data.image_size: 72 must be a positive multiple",
            ),
            (
                r#"{"name":"x","trainer":{"lr":0}}"#,
                "trainer.lr: 0 is not > 0",
            ),
            (
                r#"{"name":"x","trainer":{"cross_domain_strategy":"skip_all"}}"#,
                "trainer.cross_domain_strategy: unknown value \"skip_all\"",
            ),
            (
                r#"{"name":"x","trainer":{"epochs":"ten"}}"#,
                "trainer.epochs: invalid type",
            ),
            (
                r#"{"name":"x","trainer":{"precision":"fp16"}}"#,
                "trainer.precision: unknown value \"fp16\"",
            ),
            (r#"{"trainer":{}}"#, "missing key `name`"),
            (
                r#"{"name":"x","data":{"source":"folder","path":"d"},"model":{"kind":"guided"},"trainer":{"target":"clean"}}"#,
                "trainer.target: \"clean\" needs clean images",
            ),
            (
                r#"{"name":"x","trainer":{"target":"noisy"}}"#,
                "trainer.target: unknown value \"noisy\"",
            ),
            (
                r#"{"name":"x","trainer":{"loss_weights":{"content":0,"recon":0,"cross":0,"edge":0}}}"#,
                "nothing to train",
            ),
            (
                r#"{"name":"x","data":{"coils":{"count":2,"acceleration":3}}}"#,
                "data.coils: acceleration: 3 needs at least as many coils",
            ),
            (
                r#"{"name":"x","data":{"source":"folder","path":"d","coils":{"count":8}}}"#,
                "data.coils: sets the phantoms' coil array",
            ),
            (
                r#"{"name":"x","model":{"kind":"guided","posterior":true},"data":{"coils":{"count":8}}}"#,
                "model.posterior: the posterior step's likelihood is Rician",
            ),
            (
                r#"{"name":"x","data":{"coils":{"count":8,"combination":"sos"}}}"#,
                "data.coils.combination: unknown value \"sos\"",
            ),
        ];
        for (text, want) in cases {
            let p = write(dir.path(), "c.json", text);
            let msg = Config::load(&p).unwrap_err().to_string();
            assert!(
                msg.contains("c.json") && msg.contains(want),
                "{msg}\nwanted {want}"
            );
        }
        let p = write(dir.path(), "bad.json", "{\"name\": ");
        assert!(
            Config::load(&p)
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn extends_merges_objects_and_overrides_apply() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "base.json",
            r#"{"name":"base","trainer":{"lr":0.002,"loss_weights":{"content":1,"recon":0.5,"cross":1,"edge":0.05}}}"#,
        );
        let p = write(
            dir.path(),
            "child.json",
            r#"{"extends":"base.json","name":"child","trainer":{"loss_weights":{"edge":0}}}"#,
        );
        let c = Config::load(&p).unwrap();
        assert_eq!(c.name, "child");
        assert_eq!(c.trainer.lr, 0.002);
        assert_eq!(
            c.trainer.loss_weights,
            LossWeights {
                content: 1.0,
                recon: 0.5,
                cross: 1.0,
                edge: 0.0
            }
        );

        let c = c
            .with_overrides(
                &[
                    "trainer.cross_domain_strategy=zero_skip".into(),
                    "trainer.epochs=3".into(),
                ],
                &p,
            )
            .unwrap();
        assert_eq!(
            c.trainer.cross_domain_strategy,
            CrossDomainStrategy::ZeroSkip
        );
        assert_eq!(c.trainer.epochs, 3);
        let err = c
            .with_overrides(&["trainer.epoch=3".into()], &p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("trainer.epoch: unknown key"), "{err}");

        let looped = write(
            dir.path(),
            "loop.json",
            r#"{"extends":"loop.json","name":"l"}"#,
        );
        assert!(
            Config::load(&looped)
                .unwrap_err()
                .to_string()
                .contains("loops")
        );
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a: Config = serde_json::from_str(r#"{"name":"a"}"#).unwrap();
        let mut b = a.clone();
        assert_eq!(a.hash(), b.hash());
        b.trainer.backend = crate::device::Backend::Wgpu;
        b.trainer.device_index = 1;
        b.trainer.precision = Precision::Bf16;
        assert_eq!(
            a.hash(),
            b.hash(),
            "where a run computes is not what it computes"
        );
        b.trainer.lr = 2e-3;
        assert_ne!(a.hash(), b.hash());
    }
}
