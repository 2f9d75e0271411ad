//! The machinery every training run shares, whatever it trains: the one training loop
//! ([`train`], generic over a [`Task`]), the run folder and its checkpoints, the
//! learning-rate schedule, the curves, memory, and the processes or devices training
//! together (docs/DESIGN.md, "Outputs of a training run").
//!
//! It knows nothing of the networks: the product's denoisers and the study's dual-domain
//! network each implement [`Task`] and call [`train`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::data::DataError;
use crate::device::BackendError;
use crate::model::{Precision, PrecisionError};

mod average;
pub mod checkpoint;
pub mod collective;
pub mod curves;
mod divergence;
mod memory;
#[cfg(feature = "mpi")]
pub mod mpi;
mod run_dir;
mod schedule;
mod summary;
mod task;
mod threads;
mod train_loop;

pub use checkpoint::CheckpointError;
pub use collective::World;
pub use memory::{catch_allocation_failure, peak_rss_mb};
pub(crate) use run_dir::{prepare_run_dir, resume};
pub use schedule::learning_rate;
pub use summary::RunSummary;
pub use task::{EpochSums, MetricLine, Position, RunState, StepLoss, Stepped, Task};
pub use train_loop::train;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Precision(#[from] PrecisionError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{run}: a run of this name exists; continue it with --resume, or replace it with --force"
    )]
    RunExists { run: PathBuf },
    #[error(
        "{run}: exists and is not a run folder (no config.json or metrics.jsonl); --force only replaces runs, so choose another name or --out, or move the folder yourself"
    )]
    NotARun { run: PathBuf },
    #[error(
        "{run}: the checkpoint was made by a different config (hash {found}, this config {expected}); resume needs the config that started the run (only trainer.epochs may be raised, to train on)"
    )]
    ConfigChanged {
        run: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "loss became {value} at epoch {epoch}, step {step}: training diverged. Lower trainer.lr (e.g. 1e-4, the usual remedy) or set trainer.grad_clip_norm"
    )]
    Diverged { epoch: usize, step: u64, value: f32 },
    #[error(
        "loss {value} at epoch {epoch}, step {step}: more than trainer.divergence_factor ({factor}) times the last steps' level ({level}) above it: training diverged. Lower trainer.lr or set trainer.grad_clip_norm (or raise trainer.divergence_factor if the run's losses really jump so)"
    )]
    BlewUp {
        epoch: usize,
        step: u64,
        value: f32,
        level: f32,
        factor: f32,
    },
    #[error(
        "out of memory at epoch {epoch}, step {step}, with trainer.batch_size {batch_size} of \
         {image_size}x{image_size} images on {device}: lower trainer.batch_size (the usual \
         remedy is 2) or data.image_size, or train on a device with more memory ({detail})"
    )]
    OutOfMemory {
        epoch: usize,
        step: u64,
        batch_size: usize,
        image_size: usize,
        device: String,
        detail: String,
    },
    #[error(
        "{what} is {batch}, fewer than the {processes} processes training together: each needs at least one item of every step's batch; make it {processes} or more, or start fewer processes"
    )]
    BatchBelowProcesses {
        what: &'static str,
        batch: usize,
        processes: usize,
    },
    #[error(
        "trainer.devices names {devices} devices, and this is one of {processes} MPI processes: train on one device per process (each process's --device) or on several devices in one process, not both"
    )]
    DevicesAndProcesses { devices: usize, processes: usize },
    #[error("{0}")]
    Picture(#[from] crossdenoise_image::Error),
    #[error(transparent)]
    Curves(#[from] curves::CurveError),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.into(),
        source,
    }
}

/// How to run a training job (beyond its config).
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Parent folder of run folders; the run goes to `<out>/<config.name>`.
    pub out: PathBuf,
    /// Continue the run in `<out>/<name>` from its checkpoint.
    pub resume: bool,
    /// Replace an existing run folder.
    pub force: bool,
    /// Set from outside (Ctrl-C) to stop after the current step with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
    /// Stop (with a checkpoint) once this many steps are done: an interruption on purpose.
    pub stop_after_steps: Option<u64>,
    /// The processes training together (one unless started by an MPI launcher).
    pub world: World,
}

impl TrainOptions {
    /// Whether the run should stop (with a checkpoint) now that `step` steps are done.
    pub(crate) fn stop_requested(&self, step: u64) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
            || self.stop_after_steps.is_some_and(|n| step >= n)
    }
}

/// Progress reported to whoever runs the loop (the CLI draws a progress bar from it).
pub trait Observer {
    /// The device the run trains on and its precision (as resolved), and why when `auto`
    /// chose the device.
    fn device(&mut self, _description: &str, _precision: Precision, _reason: Option<&str>) {}
    fn start(&mut self, _total_steps: u64, _done_steps: u64) {}
    /// A step done: its loss values by name, as the task shows them (the total first).
    fn step(&mut self, _epoch: usize, _step: u64, _losses: &[(String, f32)]) {}
    /// An epoch done: its line for the log, as the task writes it.
    fn epoch(&mut self, _epoch: usize, _line: &str) {}
    /// Something the run recovered from that its user should know of (a rollback after a
    /// blow-up).
    fn warn(&mut self, _line: &str) {}
}

/// An observer that reports nothing.
pub struct Quiet;
impl Observer for Quiet {}
