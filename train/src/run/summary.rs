//! `summary.json`: what a finished (or interrupted) run reports, whatever it trained.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::collective::World;
use super::memory::peak_rss_mb;
use super::run_dir::RunClock;
use super::task::RunState;
use super::{TrainError, io};
use crate::config::Config;
use crate::device::Resolved;
use crate::model::Precision;

/// What a finished (or interrupted) run reports, also written as summary.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary<F> {
    pub name: String,
    pub run_dir: PathBuf,
    pub backend: String,
    pub device: String,
    /// What the convolutions computed in (summaries written before the option: f32).
    #[serde(default)]
    pub precision: Precision,
    pub config_hash: String,
    pub epochs_done: usize,
    pub steps: u64,
    pub interrupted: bool,
    pub seconds: f64,
    pub seconds_per_step: f64,
    /// How many processes trained together (data-parallel ranks; summaries written before
    /// data-parallel training: 1), and the crops or images each took per step (rank 0's).
    #[serde(default = "one")]
    pub processes: usize,
    #[serde(default)]
    pub batch_per_process: usize,
    /// Rank 0's peak memory.
    pub peak_rss_mb: Option<f64>,
    /// How many times the run went back to a checkpoint after a blow-up, and the factor its
    /// learning rate ended at (halved at each).
    #[serde(default)]
    pub rollbacks: u32,
    #[serde(default = "super::task::unit_scale")]
    pub lr_scale: f64,
    /// The task's last figures (the study's `final_train` and `final_val`, a denoiser
    /// run's per-contrast figures).
    #[serde(flatten)]
    pub finals: F,
}

fn one() -> usize {
    1
}

impl<F: Serialize> RunSummary<F> {
    /// What the loop reports of a run of `config` in `run` on `device` (computing in
    /// `precision`, as resolved for it) that ended at `state` (its epochs and steps, and
    /// the rollbacks it made), with the task's last figures.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new<X>(
        config: &Config,
        run: &Path,
        (device, precision): (&Resolved, Precision),
        clock: &RunClock,
        state: &RunState<X>,
        interrupted: bool,
        world: &World,
        finals: F,
    ) -> Self {
        let steps_run = state.step.saturating_sub(clock.first_step);
        RunSummary {
            name: config.name.clone(),
            run_dir: run.into(),
            backend: device.backend.name().into(),
            device: device.description.clone(),
            precision,
            config_hash: config.hash(),
            epochs_done: state.epoch,
            steps: state.step,
            interrupted,
            seconds: clock.started.elapsed().as_secs_f64(),
            seconds_per_step: if steps_run > 0 {
                clock.stepping.elapsed().as_secs_f64() / steps_run as f64
            } else {
                0.0
            },
            processes: world.size(),
            batch_per_process: world.share(config.trainer.batch_size).len(),
            peak_rss_mb: peak_rss_mb(),
            rollbacks: state.rollbacks,
            lr_scale: state.lr_scale,
            finals,
        }
    }

    /// Writes summary.json into `run`.
    pub(crate) fn write(&self, run: &Path) -> Result<(), TrainError> {
        let path = run.join("summary.json");
        fs::write(
            &path,
            serde_json::to_string_pretty(self).expect("summary serialises") + "\n",
        )
        .map_err(io(&path))
    }
}

impl<F> RunSummary<F> {
    /// The same summary with its last figures mapped by `f`.
    pub fn with_finals<G>(self, f: impl FnOnce(F) -> G) -> RunSummary<G> {
        RunSummary {
            name: self.name,
            run_dir: self.run_dir,
            backend: self.backend,
            device: self.device,
            precision: self.precision,
            config_hash: self.config_hash,
            epochs_done: self.epochs_done,
            steps: self.steps,
            interrupted: self.interrupted,
            seconds: self.seconds,
            seconds_per_step: self.seconds_per_step,
            processes: self.processes,
            batch_per_process: self.batch_per_process,
            peak_rss_mb: self.peak_rss_mb,
            rollbacks: self.rollbacks,
            lr_scale: self.lr_scale,
            finals: f(self.finals),
        }
    }
}
