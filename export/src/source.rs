//! Finding and loading the trained model an export reads: a run folder or a checkpoint.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use crossdenoise_train::Config;
use crossdenoise_train::denoiser::validation::DenoiserValidation;
use crossdenoise_train::model::{DenoiserPair, DualDomain};
use crossdenoise_train::run::checkpoint::{self, StateHeader, Weights};
use crossdenoise_train::{denoiser, study};

use crate::error::ExportError;

/// What a run trained.
pub enum Network {
    /// The study's dual-domain network (its no_skip cross path is exported).
    DualDomain(Box<DualDomain>),
    /// A guided or single-contrast denoiser per contrast.
    Denoisers(Box<DenoiserPair>),
}

/// A run's config and its latest checkpoint's weights, on the CPU.
pub struct TrainedModel {
    pub run: PathBuf,
    pub checkpoint: PathBuf,
    pub config: Config,
    pub network: Network,
    pub epochs_done: usize,
    /// Which of the checkpoint's weights were read.
    pub weights: Weights,
    /// The noise the model was trained for, in coils (1: Rician).
    pub noise_coils: u32,
    /// A denoiser run's last validation before this checkpoint, where it scored the weights
    /// read (none for the study's network, before the first epoch ended, or for the last
    /// step's weights of a run whose validation read their average).
    pub validation: Option<DenoiserValidation>,
    pub device: Device,
}

impl TrainedModel {
    /// `source` is a run folder (`runs/<name>`, holding `config.json` and `checkpoint/`) or
    /// a checkpoint folder inside one; `weights` which of its weights (none: the running
    /// average where the run kept one, else the last step's).
    pub fn load(source: &Path, weights: Option<Weights>) -> Result<Self, ExportError> {
        if !source.is_dir() {
            return Err(ExportError::NotARun {
                path: source.into(),
                reason: "no such folder".into(),
            });
        }
        let (run, ckpt) =
            if source.join("state.json").is_file() && source.join("model.bpk").exists() {
                let run = source.parent().unwrap_or(Path::new(".")).to_path_buf();
                (run, source.to_path_buf())
            } else {
                let ckpt = checkpoint::find(source).map_err(|_| ExportError::NotARun {
                    path: source.into(),
                    reason: "no checkpoint/ with state.json; give a run folder that `crossdenoise \
                         train` wrote, or its checkpoint folder"
                        .into(),
                })?;
                (source.to_path_buf(), ckpt)
            };
        let config_path = run.join("config.json");
        if !config_path.is_file() {
            return Err(ExportError::NotARun {
                path: run,
                reason: "no config.json beside the checkpoint".into(),
            });
        }
        let config = Config::load(&config_path).map_err(|e| ExportError::Config {
            path: config_path.clone(),
            reason: e.to_string(),
        })?;
        let state: StateHeader =
            checkpoint::load_state(&ckpt).map_err(|e| ExportError::Mismatch {
                path: ckpt.clone(),
                reason: e.to_string(),
            })?;
        if state.config_hash != config.hash() {
            return Err(ExportError::Mismatch {
                path: ckpt,
                reason: format!(
                    "it was trained with config {} but {} hashes to {}",
                    state.config_hash,
                    config_path.display(),
                    config.hash()
                ),
            });
        }
        let kept = Weights::best_of(&ckpt);
        let weights = weights.unwrap_or(kept);
        if weights == Weights::Average && kept == Weights::Last {
            return Err(ExportError::Unsupported(format!(
                "{}: the run kept no average of its weights (trainer.average_weights); \
                 export its last step's with --weights last",
                ckpt.display()
            )));
        }
        let device = Device::flex();
        let mismatch = |e: checkpoint::CheckpointError| ExportError::Mismatch {
            path: ckpt.clone(),
            reason: e.to_string(),
        };
        let network = if config.model.kind.is_denoiser() {
            let init = denoiser::training::model_config(&config).init_pair(&device);
            Network::Denoisers(Box::new(
                checkpoint::load_weights(&ckpt, init, weights).map_err(mismatch)?,
            ))
        } else {
            let init = study::model_config(&config).init(&device);
            Network::DualDomain(Box::new(
                checkpoint::load_weights(&ckpt, init, weights).map_err(mismatch)?,
            ))
        };
        // Validation scored the average where the run kept one: it says nothing of the last
        // step's weights then.
        let validated = weights == kept;
        let validation = if config.model.kind.is_denoiser() && validated {
            last_validation(&run, state.metrics_len)
        } else {
            None
        };
        Ok(TrainedModel {
            validation,
            run,
            checkpoint: ckpt,
            network,
            epochs_done: state.epoch,
            weights,
            noise_coils: state.noise_coils.unwrap_or(config.data.noise_coils()),
            config,
            device,
        })
    }
}

/// The last epoch's validation in the run's `metrics.jsonl`, read up to `metrics_len` bytes
/// (what the checkpoint had seen) where the checkpoint says. A missing or unreadable file
/// only leaves the export without the figure: the weights are what it exports.
fn last_validation(run: &Path, metrics_len: Option<u64>) -> Option<DenoiserValidation> {
    let mut text = std::fs::read(run.join("metrics.jsonl")).ok()?;
    if let Some(len) = metrics_len {
        text.truncate(usize::try_from(len).unwrap_or(usize::MAX));
    }
    denoiser::training::last_validation(&String::from_utf8_lossy(&text))
}
