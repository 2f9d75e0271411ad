//! What the one training loop asks of whatever it trains ([`Task`]), and the records it
//! writes for every task alike: the lines of `metrics.jsonl` and the checkpoint's state.

use burn::module::Module;
use burn::prelude::*;
use crossdenoise_image::picture::Grid;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{TrainError, World};

/// A step's loss values (or an epoch's means), as `metrics.jsonl` writes them.
pub trait StepLoss: Copy + Default + Serialize + DeserializeOwned {
    /// Every value, for summing over the processes training together.
    fn to_vec(&self) -> Vec<f32>;
    /// These values replaced by `values` (what [`StepLoss::to_vec`] gave, averaged).
    fn with_values(self, values: &[f32]) -> Self;
    /// The loss the step descends.
    fn total(&self) -> f32;
}

/// What a checkpoint carries of the epoch in progress beside the loop's own position: the
/// running sums of its losses, and whatever else the task records there.
pub trait EpochSums<L>: Clone + Serialize + DeserializeOwned {
    /// Adds a finished step's values.
    fn add(&mut self, loss: &L);
    /// The epoch's means so far; `last` is its last step's values (which losses it has).
    fn mean(&self, last: &L) -> L;
    /// Starts the next epoch.
    fn reset(&mut self);
}

/// One line of `metrics.jsonl`: a step's losses, or an epoch's means and validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MetricLine<L, V> {
    Step {
        epoch: usize,
        step: u64,
        lr: f64,
        loss: L,
    },
    Epoch {
        epoch: usize,
        step: u64,
        train: L,
        val: Box<V>,
    },
}

/// Where a run stands: its checkpoint's `state.json`, enough to continue it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState<X> {
    /// The epoch in progress (0-based); `epochs` when the run is complete.
    pub epoch: usize,
    /// Optimiser steps done so far.
    pub step: u64,
    /// Length of metrics.jsonl when this checkpoint was taken: lines after it were written by
    /// a run that did not reach its next checkpoint and are dropped on resume.
    pub metrics_len: u64,
    pub config_hash: String,
    /// What the schedule's learning rate is multiplied by: halved at each rollback after a
    /// blow-up (`trainer.blow_up_retries`), 1 in a run that had none.
    #[serde(default = "unit_scale", skip_serializing_if = "is_unit_scale")]
    pub lr_scale: f64,
    /// The rollbacks the run has made.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rollbacks: u32,
    /// The task's part: its sums of the epoch in progress, and what else it records.
    #[serde(flatten)]
    pub task: X,
}

/// The learning rate's factor in a run that never rolled back.
pub(super) fn unit_scale() -> f64 {
    1.0
}

fn is_unit_scale(scale: &f64) -> bool {
    *scale == 1.0
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where in the run a step is.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    pub epoch: usize,
    /// Optimiser steps done before this one.
    pub step: u64,
    /// Steps of this epoch done before this one.
    pub in_epoch: u64,
}

/// A step's forward pass: the loss to descend, its values, and how many of the step's
/// crops or images this process took (the weight of its values in the average).
pub struct Stepped<L> {
    pub total: Tensor<1>,
    pub values: L,
    pub items: usize,
}

/// What the training loop trains: a network, its batches and losses, its validation, and
/// what its run folder shows. The loop owns everything else (set-up, resume, Adam,
/// failures, processes, checkpoints, the summary).
pub trait Task: Sized {
    type Model: Module;
    type Loss: StepLoss;
    /// The task's part of the checkpoint's state.
    type Sums: EpochSums<Self::Loss>;
    type Validation: Clone + Serialize;
    /// The task's last figures in summary.json.
    type Finals: Default + Serialize + DeserializeOwned + Send;

    /// The network, its weights drawn from the seeded `device`.
    fn init(&self, device: &Device) -> Self::Model;
    /// The state of an epoch that has not started.
    fn sums(&self) -> Self::Sums;
    /// The state read from a checkpoint, brought up to this run (what the data says now).
    fn resumed(&self, sums: Self::Sums) -> Self::Sums {
        sums
    }
    fn steps_per_epoch(&self) -> u64;
    /// The batch's size and the size of its images, for the out-of-memory advice.
    fn batch_shape(&self) -> (usize, usize);
    /// The forward pass and losses of one step, on this process's share of the batch.
    fn step(
        &self,
        model: &Self::Model,
        at: Position,
        world: &World,
        device: &Device,
    ) -> Stepped<Self::Loss>;
    /// The values a progress bar shows for a step, by name, the total first.
    fn shown(&self, loss: &Self::Loss) -> Vec<(String, f32)>;
    fn validate(
        &self,
        model: &Self::Model,
        device: &Device,
    ) -> Result<Self::Validation, TrainError>;
    /// The picture of validation slices saved as `samples/epoch_NNN.png`.
    fn sample_grid(&self, model: &Self::Model, device: &Device) -> Result<Grid, TrainError>;
    /// The epoch's line for the log.
    fn epoch_line(&self, epoch: usize, train: &Self::Loss, val: &Self::Validation) -> String;
    /// Redraws `curves.png` in `run` from the lines of `metrics`.
    fn write_curves(
        &self,
        run: &std::path::Path,
        metrics: &std::path::Path,
    ) -> Result<(), TrainError>;
    /// The last epoch's figures, as summary.json records them.
    fn finals(&self, last: Option<(Self::Loss, Self::Validation)>) -> Self::Finals;
}
