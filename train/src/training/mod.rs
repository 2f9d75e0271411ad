//! The training loop: forward -> losses -> backward -> Adam, validation every epoch, and
//! everything a run leaves behind (docs/DESIGN.md, "Outputs of a training run").
//!
//! Reproducibility is by construction: weights are initialised from the seeded device,
//! batches and training noise are functions of `(seed, epoch)` and `(seed, step)`, and
//! `metrics.jsonl` holds no wall-clock values, so the same config on the same CPU backend
//! writes the same file — interrupted and resumed or not.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use ndarray::Array2;

use crate::checkpoint::{self, CheckpointError, TrainState};
use crate::config::Config;
use crate::data::{self, Data, DataError};
use crate::device::BackendError;
use crate::loss::{self, LossValues};
use crate::model::{DualDomainConfig, ForwardPlan, PrecisionError};
pub use crate::records::{LossSums, MetricLine, PathScore, RunSummary, Validation};

pub mod collective;
mod memory;
#[cfg(feature = "mpi")]
pub mod mpi;
mod run_dir;
mod schedule;
mod threads;
mod validation;

pub use collective::World;
pub use memory::{catch_allocation_failure, peak_rss_mb};
pub(crate) use run_dir::{RunClock, RunWriter, prepare_run_dir, resume};
pub use schedule::learning_rate;
pub use validation::{sample_grid, validate};

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
    Curves(#[from] crate::curves::CurveError),
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
    /// The device the run trains on, and why when `auto` chose it.
    fn device(&mut self, _description: &str, _reason: Option<&str>) {}
    fn start(&mut self, _total_steps: u64, _done_steps: u64) {}
    fn step(&mut self, _epoch: usize, _step: u64, _loss: &LossValues) {}
    fn epoch(&mut self, _epoch: usize, _train: &LossValues, _val: &Validation) {}
    /// A line for the log (a denoiser run's epoch summary).
    fn note(&mut self, _line: &str) {}
}

/// An observer that reports nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Trains `config` (the dual-domain network, or a guided / single denoiser pair) and
/// returns the run's summary.
pub fn train(
    config: &Config,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<RunSummary, TrainError> {
    if config.trainer.devices.len() > 1 {
        if opts.world.size() > 1 {
            return Err(TrainError::DevicesAndProcesses {
                devices: config.trainer.devices.len(),
                processes: opts.world.size(),
            });
        }
        return threads::train_on_devices(config, opts, observer, train);
    }
    if config.model.kind.is_denoiser() {
        return crate::denoiser::train(config, opts, observer);
    }
    let mut clock = RunClock::start();
    let t = &config.trainer;
    let world = &opts.world;
    let run = opts.out.join(&config.name);
    let hash = config.hash();
    // Find the checkpoint before touching the folder: a mistaken --resume changes nothing.
    let resume_from = if opts.resume {
        Some(checkpoint::find(&run)?)
    } else {
        None
    };

    let resolved = t.backend.resolve(t.device_index)?;
    t.precision.check(resolved.backend)?;
    let base_device = resolved.device.clone();
    let device = base_device.clone().autodiff();
    device.seed(config.seed);
    let data = Data::load(config)?;
    // Every step's batch is split over the processes; the smallest is an epoch's last.
    let last_batch = (data.train.len() - 1) % t.batch_size + 1;
    if last_batch.min(t.batch_size) < world.size() {
        return Err(TrainError::BatchBelowProcesses {
            what: if last_batch < t.batch_size {
                "an epoch's last batch (the training images modulo trainer.batch_size)"
            } else {
                "trainer.batch_size"
            },
            batch: last_batch,
            processes: world.size(),
        });
    }
    // The backend and the data are checked before the folder is touched: a missing feature
    // or data folder leaves no run behind.
    if world.is_lead() {
        prepare_run_dir(&run, config, opts)?;
        // A resumed run starts afresh from its last checkpoint: an old failure no longer
        // holds.
        let _ = fs::remove_file(run.join("error.txt"));
    }

    let mut model = crate::model::init::seeded(model_config(config).init(&device), config.seed);
    let mut adam = AdamConfig::new().with_epsilon(1e-8);
    if let Some(c) = t.grad_clip_norm {
        adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(c)));
    }
    let mut optim: ModuleOptimizer = adam.init();

    let batches = data.train.len().div_ceil(t.batch_size);
    let total_steps = (batches * t.epochs) as u64;
    let mut state = TrainState {
        epoch: 0,
        batch: 0,
        step: 0,
        metrics_len: 0,
        epoch_sums: LossSums::default(),
        config_hash: hash.clone(),
    };
    if let Some(ckpt) = resume_from {
        state = checkpoint::load_state::<TrainState>(&ckpt)?;
        let resumed = resume(
            &run,
            config,
            &ckpt,
            (&state.config_hash, state.metrics_len),
            model,
            optim,
            world,
        )?;
        (model, optim) = resumed;
        state.config_hash = hash.clone();
    }
    let mut out = RunWriter::open(&run, world)?;
    model = collective::broadcast_parameters(world, model);

    let plan = ForwardPlan {
        precision: t.precision,
        ..loss::plan(&t.loss_weights, t.cross_domain_strategy, t.mixed_skip_alpha)
    };
    observer.device(&resolved.description, resolved.reason.as_deref());
    observer.start(total_steps, state.step);
    clock.steps_from(state.step);
    let mut last_train = None;
    let mut last_val = None;
    let mut interrupted = false;
    // Whether any process was asked to stop after the last step.
    let mut stop = false;

    'epochs: while state.epoch < t.epochs {
        let order = data::epoch_order(config.seed, state.epoch, data.train.len());
        let mut template = None;
        while state.batch < batches {
            let idx = &order
                [state.batch * t.batch_size..((state.batch + 1) * t.batch_size).min(order.len())];
            let a: Vec<&Array2<f32>> = idx.iter().map(|&i| &data.train.a[i]).collect();
            let b: Vec<&Array2<f32>> = idx.iter().map(|&i| &data.train.b[i]).collect();
            // The whole batch's noise is drawn, so that each process's share of it is the
            // noise a single process would have drawn for those images.
            let part = world.share(idx.len());
            let noisy_a = data::noisy(&a, &t.noise, config.seed, state.step, 0);
            let noisy_b = data::noisy(&b, &t.noise, config.seed, state.step, 1);
            let x_a = data::stack(&noisy_a[part.clone()].iter().collect::<Vec<_>>(), &device);
            let x_b = data::stack(&noisy_b[part.clone()].iter().collect::<Vec<_>>(), &device);
            let target_a = data::stack(&a[part.clone()], &device);
            let target_b = data::stack(&b[part.clone()], &device);

            let lr = learning_rate(config, state.step, total_steps);
            let current = model;
            stop = opts.stop_requested(state.step + 1);
            let stepped = catch_allocation_failure(|| {
                let out = current.forward(x_a, x_b, &plan);
                let losses = loss::compute(&out, target_a, target_b, &t.loss_weights);
                let local = losses.values();
                let grads = GradientsParams::from_grads(losses.total.backward(), &current);
                let mut values = local.to_array();
                let shared = (part.len(), &mut values[..]);
                let grads =
                    collective::average_gradients(world, &current, grads, shared, &mut stop);
                let values = local.with_array(values);
                if !values.total.is_finite() {
                    return (values, None);
                }
                (values, Some(optim.step(lr, current, grads)))
            });
            let values = match stepped {
                Ok((values, Some(next))) => {
                    model = next;
                    values
                }
                failed => {
                    let failure = failed.map(|(values, _)| values.total);
                    let at = (state.epoch, state.step);
                    let batch = (t.batch_size, config.data.image_size);
                    let e = step_failure(failure, at, batch, &resolved.description);
                    return Err(out.failure(e));
                }
            };

            state.step += 1;
            state.batch += 1;
            state.epoch_sums.add(&values);
            template = Some(values);
            out.line(&MetricLine::Step {
                epoch: state.epoch,
                step: state.step,
                lr,
                loss: values,
            })?;
            observer.step(state.epoch, state.step, &values);

            if stop && state.batch < batches {
                state.metrics_len = out.metrics_len()?;
                out.checkpoint(model, &optim, &state)?;
                interrupted = true;
                break 'epochs;
            }
        }

        // End of epoch: mean losses, validation, samples, checkpoint.
        let template = template.unwrap_or_default();
        let train_mean = state.epoch_sums.mean(&template);
        // Rank 0 validates and writes for the run.
        if out.is_lead() {
            let valid = model.valid();
            let val = validate(&valid, &data.val, &plan, t.batch_size, &base_device)?;
            if t.sample_every > 0 && (state.epoch + 1).is_multiple_of(t.sample_every)
                || state.epoch + 1 == t.epochs
            {
                let dir = run.join("samples");
                fs::create_dir_all(&dir).map_err(io(&dir))?;
                sample_grid(&valid, &data.val, &plan, config, &base_device)?
                    .save(&dir.join(format!("epoch_{:03}.png", state.epoch + 1)))?;
            }
            out.line(&MetricLine::Epoch {
                epoch: state.epoch,
                step: state.step,
                train: train_mean,
                val: Box::new(val.clone()),
            })?;
            observer.epoch(state.epoch, &train_mean, &val);
            write_curves(&run, out.metrics_path(), &config.data.domains)?;
            last_train = Some(train_mean);
            last_val = Some(val);
        }

        state.epoch += 1;
        state.batch = 0;
        state.epoch_sums = LossSums::default();
        state.metrics_len = out.metrics_len()?;
        model = out.checkpoint(model, &optim, &state)?;

        if stop && state.epoch < t.epochs {
            interrupted = true;
            break;
        }
    }

    let mut summary = RunSummary::new(
        config,
        &run,
        &resolved,
        &clock,
        (state.epoch, state.step),
        interrupted,
        world,
    );
    summary.final_train = last_train;
    summary.final_val = last_val;
    if out.is_lead() {
        summary.write(&run, None)?;
    }
    Ok(summary)
}

/// Why a step gave no next model: its loss was not finite (`Ok(loss)`), or an allocation
/// failed (`Err(what the allocator said)`), at `(epoch, step)` with `(batch size, image
/// size)` on `device`.
pub(crate) fn step_failure(
    failure: Result<f32, String>,
    (epoch, step): (usize, u64),
    (batch_size, image_size): (usize, usize),
    device: &str,
) -> TrainError {
    match failure {
        Ok(value) => TrainError::Diverged { epoch, step, value },
        Err(detail) => TrainError::OutOfMemory {
            epoch,
            step,
            batch_size,
            image_size,
            device: device.into(),
            detail,
        },
    }
}

/// Redraws `curves.png` from the metrics written so far.
fn write_curves(run: &Path, metrics_path: &Path, domains: &[String; 2]) -> Result<(), TrainError> {
    let lines = crate::curves::read_metrics(metrics_path).map_err(io(metrics_path))?;
    let panels = crate::curves::run_panels(&lines, domains);
    crate::curves::draw(&run.join("curves.png"), &panels, 3)?;
    Ok(())
}

/// The network a config describes.
pub fn model_config(config: &Config) -> DualDomainConfig {
    DualDomainConfig::new(config.model.base_channels, config.model.depth)
        .with_shared_encoder(config.model.shared_encoder)
        .with_identity_mapping(config.trainer.identity_mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_says_what_to_change() {
        let e = TrainError::OutOfMemory {
            epoch: 0,
            step: 3,
            batch_size: 8,
            image_size: 320,
            device: "libtorch-cuda:0 (GPU)".into(),
            detail: "CUDA out of memory".into(),
        }
        .to_string();
        for part in [
            "out of memory",
            "trainer.batch_size 8",
            "320x320",
            "is 2",
            "libtorch-cuda:0",
        ] {
            assert!(e.contains(part), "{part:?} missing from: {e}");
        }
        assert!(crate::experiment::diagnosis::is_out_of_memory(&e));
    }
}
