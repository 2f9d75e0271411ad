//! The training loop: forward -> losses -> backward -> Adam, validation every epoch, and
//! everything a run leaves behind (docs/DESIGN.md, "Outputs of a training run"), for
//! every [`Task`] alike.
//!
//! Reproducibility is by construction: weights are initialised from the seeded device,
//! batches and training noise are functions of `(seed, step)` (and the epoch), and
//! `metrics.jsonl` holds no wall-clock values, so the same config on the same CPU backend
//! writes the same file — interrupted and resumed or not.

use std::fs;

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};

use super::collective::{average_gradients, broadcast_parameters};
use super::run_dir::{RunClock, RunWriter};
use super::task::{EpochSums, MetricLine, Position, RunState, StepLoss, Stepped, Task};
use super::{
    Observer, RunSummary, TrainError, TrainOptions, World, catch_allocation_failure, checkpoint,
    io, learning_rate, prepare_run_dir, resume, threads,
};
use crate::config::Config;
use crate::data::Data;

/// Builds a task from its config and data, refusing what it cannot train (before the run
/// folder is touched).
pub type MakeTask<T> = fn(&Config, Data, &World) -> Result<T, TrainError>;

/// Trains the task `make` builds from `config` and returns the run's summary.
pub fn train<T: Task>(
    config: &Config,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
    make: MakeTask<T>,
) -> Result<RunSummary<T::Finals>, TrainError> {
    if config.trainer.devices.len() > 1 {
        if opts.world.size() > 1 {
            return Err(TrainError::DevicesAndProcesses {
                devices: config.trainer.devices.len(),
                processes: opts.world.size(),
            });
        }
        return threads::train_on_devices(config, opts, observer, |c, o, obs| {
            train(c, o, obs, make)
        });
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
    let task = make(config, Data::load(config)?, world)?;
    // The backend, the data and the task's own checks come before the folder is touched: a
    // missing feature or data folder leaves no run behind.
    if world.is_lead() {
        prepare_run_dir(&run, config, opts)?;
        // A resumed run starts afresh from its last checkpoint: an old failure no longer
        // holds.
        let _ = fs::remove_file(run.join("error.txt"));
    }

    let mut model = task.init(&device);
    let mut adam = AdamConfig::new().with_epsilon(1e-8);
    if let Some(c) = t.grad_clip_norm {
        adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(c)));
    }
    let mut optim: ModuleOptimizer = adam.init();
    let mut state = RunState {
        epoch: 0,
        step: 0,
        metrics_len: 0,
        config_hash: hash.clone(),
        task: task.sums(),
    };
    if let Some(ckpt) = resume_from {
        state = checkpoint::load_state::<RunState<T::Sums>>(&ckpt)?;
        let found = (state.config_hash.as_str(), state.metrics_len);
        (model, optim) = resume(&run, config, &ckpt, found, model, optim, world)?;
        state.config_hash = hash.clone();
        state.task = task.resumed(state.task);
    }
    let mut out = RunWriter::open(&run, world)?;
    model = broadcast_parameters(world, model);

    let per_epoch = task.steps_per_epoch();
    let total_steps = per_epoch * t.epochs as u64;
    observer.device(&resolved.description, resolved.reason.as_deref());
    observer.start(total_steps, state.step);
    clock.steps_from(state.step);
    let mut last: Option<(T::Loss, T::Validation)> = None;
    let mut interrupted = false;
    // Whether any process was asked to stop after the last step.
    let mut stop = false;

    'epochs: while state.epoch < t.epochs {
        let epoch_end = (state.epoch as u64 + 1) * per_epoch;
        let mut last_step = None;
        while state.step < epoch_end {
            let at = Position {
                epoch: state.epoch,
                step: state.step,
                in_epoch: state.step - state.epoch as u64 * per_epoch,
            };
            let lr = learning_rate(config, state.step, total_steps);
            let current = model;
            stop = opts.stop_requested(state.step + 1);
            let stepped = catch_allocation_failure(|| {
                let Stepped {
                    total,
                    values,
                    items,
                } = task.step(&current, at, world, &device);
                let grads = GradientsParams::from_grads(total.backward(), &current);
                let mut shared = values.to_vec();
                let grads =
                    average_gradients(world, &current, grads, (items, &mut shared), &mut stop);
                let values = values.with_values(&shared);
                if !values.total().is_finite() {
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
                    let failure = failed.map(|(values, _)| values.total());
                    let e = step_failure(failure, (state.epoch, state.step), &task, &resolved);
                    return Err(out.failure(e));
                }
            };
            state.step += 1;
            state.task.add(&values);
            last_step = Some(values);
            out.line(&MetricLine::<T::Loss, T::Validation>::Step {
                epoch: state.epoch,
                step: state.step,
                lr,
                loss: values,
            })?;
            observer.step(state.epoch, state.step, &task.shown(&values));
            if stop && state.step < epoch_end {
                state.metrics_len = out.metrics_len()?;
                out.checkpoint(model, &optim, &state)?;
                interrupted = true;
                break 'epochs;
            }
        }

        // End of epoch: mean losses, validation, samples, curves, checkpoint.
        let train_mean = state.task.mean(&last_step.unwrap_or_default());
        // Rank 0 validates and writes for the run.
        if out.is_lead() {
            let valid = model.valid();
            let val = task.validate(&valid, &base_device)?;
            if t.sample_every > 0 && (state.epoch + 1).is_multiple_of(t.sample_every)
                || state.epoch + 1 == t.epochs
            {
                let dir = run.join("samples");
                fs::create_dir_all(&dir).map_err(io(&dir))?;
                task.sample_grid(&valid, &base_device)?
                    .save(&dir.join(format!("epoch_{:03}.png", state.epoch + 1)))?;
            }
            out.line(&MetricLine::<T::Loss, T::Validation>::Epoch {
                epoch: state.epoch,
                step: state.step,
                train: train_mean,
                val: Box::new(val.clone()),
            })?;
            observer.epoch(
                state.epoch,
                &task.epoch_line(state.epoch, &train_mean, &val),
            );
            task.write_curves(&run, out.metrics_path())?;
            last = Some((train_mean, val));
        }
        state.epoch += 1;
        state.task.reset();
        state.metrics_len = out.metrics_len()?;
        model = out.checkpoint(model, &optim, &state)?;
        if stop && state.epoch < t.epochs {
            interrupted = true;
            break;
        }
    }

    let summary = RunSummary::new(
        config,
        &run,
        &resolved,
        &clock,
        (state.epoch, state.step),
        interrupted,
        world,
        task.finals(last),
    );
    if out.is_lead() {
        summary.write(&run)?;
    }
    Ok(summary)
}

/// Why a step gave no next model: its loss was not finite (`Ok(loss)`), or an allocation
/// failed (`Err(what the allocator said)`), at `(epoch, step)` of `task` on `device`.
fn step_failure<T: Task>(
    failure: Result<f32, String>,
    (epoch, step): (usize, u64),
    task: &T,
    device: &crate::device::Resolved,
) -> TrainError {
    let (batch_size, image_size) = task.batch_shape();
    match failure {
        Ok(value) => TrainError::Diverged { epoch, step, value },
        Err(detail) => TrainError::OutOfMemory {
            epoch,
            step,
            batch_size,
            image_size,
            device: device.description.clone(),
            detail,
        },
    }
}
