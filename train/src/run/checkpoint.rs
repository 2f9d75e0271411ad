//! Checkpoints written atomically: a crash or Ctrl-C mid-write never leaves a run without a
//! readable checkpoint.
//!
//! `checkpoint/` holds `model.bpk` (Burn's burnpack record), `optimizer.bpk` (Adam's moments,
//! keyed by the parameter ids the model record preserves), `state.json` (where in the run
//! it stopped) and, in a run that averages its weights, `average.bpk` (the average, which
//! export reads). A new checkpoint is written to `checkpoint.tmp/`, the old one moved to
//! `checkpoint.old/`, the new one renamed into place, then the old one removed; a reader
//! that finds no `checkpoint/` falls back to `checkpoint.old/`.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Record { path: PathBuf, reason: String },
    #[error("{path}: no checkpoint to resume from (train without --resume first)")]
    Missing { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.into(),
        source,
    }
}

pub fn dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}

/// What every run's `state.json` holds, whichever network it trains: enough to tell which
/// config made it and how far it got.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StateHeader {
    pub epoch: usize,
    pub step: u64,
    pub config_hash: String,
    /// A denoiser run's data noise in coils (absent: what the config's data says).
    #[serde(default)]
    pub noise_coils: Option<u32>,
    /// How much of `metrics.jsonl` the run had written at this checkpoint, in bytes: the
    /// lines after it belong to later steps (absent in checkpoints of older versions).
    #[serde(default)]
    pub metrics_len: Option<u64>,
}

/// Writes `model`, `optim`, the run's `state` and, where the run keeps one, its weights'
/// running `average` as the run's checkpoint.
pub fn save<M: Module, S: Serialize>(
    run: &Path,
    (model, average): (&M, Option<M>),
    optim: &ModuleOptimizer,
    state: &S,
) -> Result<(), CheckpointError> {
    let tmp = run.join("checkpoint.tmp");
    let old = run.join("checkpoint.old");
    let cur = dir(run);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let record_err = |path: PathBuf| {
        move |e: burn::store::RecordError| CheckpointError::Record {
            path,
            reason: e.to_string(),
        }
    };
    let model_path = tmp.join("model.bpk");
    model
        .clone()
        .save_file(&model_path)
        .map_err(record_err(model_path.clone()))?;
    if let Some(average) = average {
        let path = tmp.join(AVERAGE);
        average.save_file(&path).map_err(record_err(path.clone()))?;
    }
    let optim_path = tmp.join("optimizer.bpk");
    optim
        .save(&optim_path)
        .map_err(record_err(optim_path.clone()))?;
    let state_path = tmp.join("state.json");
    fs::write(
        &state_path,
        serde_json::to_string_pretty(state).expect("state serialises"),
    )
    .map_err(io(&state_path))?;
    if cur.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        fs::rename(&cur, &old).map_err(io(&cur))?;
    }
    fs::rename(&tmp, &cur).map_err(io(&tmp))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// The checkpoint folder to read: `checkpoint/`, or `checkpoint.old/` when a write was cut
/// between its two renames.
pub fn find(run: &Path) -> Result<PathBuf, CheckpointError> {
    let cur = dir(run);
    if cur.join("state.json").is_file() {
        return Ok(cur);
    }
    let old = run.join("checkpoint.old");
    if old.join("state.json").is_file() {
        return Ok(old);
    }
    Err(CheckpointError::Missing { path: cur })
}

/// Reads a checkpoint's `state.json` as `S` (the run's own state, or its [`StateHeader`]).
pub fn load_state<S: DeserializeOwned>(ckpt: &Path) -> Result<S, CheckpointError> {
    let path = ckpt.join("state.json");
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| CheckpointError::Record {
        path,
        reason: e.to_string(),
    })
}

/// The file of a checkpoint's running average of the weights (`trainer.average_weights`).
const AVERAGE: &str = "average.bpk";

/// Which of a checkpoint's weights to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// The last step's (`model.bpk`): what the optimiser continues from.
    Last,
    /// The running average (`average.bpk`), where the run keeps one.
    Average,
}

impl Weights {
    /// The weights a run's product is: the average where the checkpoint has one.
    pub fn best_of(ckpt: &Path) -> Self {
        if ckpt.join(AVERAGE).is_file() {
            Weights::Average
        } else {
            Weights::Last
        }
    }
}

/// Loads the last step's weights of a checkpoint folder into `model` (built from the run's
/// config).
pub fn load_model<M: Module>(ckpt: &Path, model: M) -> Result<M, CheckpointError> {
    load_weights(ckpt, model, Weights::Last)
}

/// Loads the `which` weights of a checkpoint folder into `model`.
pub fn load_weights<M: Module>(
    ckpt: &Path,
    model: M,
    which: Weights,
) -> Result<M, CheckpointError> {
    let path = ckpt.join(match which {
        Weights::Last => "model.bpk",
        Weights::Average => AVERAGE,
    });
    if !path.is_file() {
        return Err(CheckpointError::Missing { path });
    }
    model
        .try_load_file(&path)
        .map_err(|e| CheckpointError::Record {
            path,
            reason: e.to_string(),
        })
}

pub fn load_optimizer(
    ckpt: &Path,
    optim: ModuleOptimizer,
) -> Result<ModuleOptimizer, CheckpointError> {
    let path = ckpt.join("optimizer.bpk");
    optim.load(&path).map_err(|e| CheckpointError::Record {
        path,
        reason: e.to_string(),
    })
}
