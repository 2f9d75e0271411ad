//! The training loop: forward -> losses -> backward -> Adam, validation every epoch, and
//! everything a run leaves behind (docs/DESIGN.md, "Outputs of a training run"), for
//! every [`Task`] alike.
//!
//! Reproducibility is by construction: weights are initialised from the seeded device,
//! batches and training noise are functions of `(seed, step)` (and the epoch), and
//! `metrics.jsonl` holds no wall-clock values, so the same config on the same CPU backend
//! writes the same file — interrupted and resumed or not.

use std::fs;
use std::path::PathBuf;

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::average::Average;
use super::checkpoint::Weights;
use super::collective::{average_gradients, broadcast_parameters, parameters};
use super::divergence::LossWatch;
use super::run_dir::{RunClock, RunWriter};
use super::task::{EpochSums, MetricLine, Position, RunState, StepLoss, Stepped, Task};
use super::{
    Observer, RunSummary, TrainError, TrainOptions, World, catch_allocation_failure, checkpoint,
    io, learning_rate, prepare_run_dir, resume, threads,
};
use crate::config::Config;
use crate::data::Data;
use crate::device::Resolved;
use crate::model::Precision;

/// Builds a task from its config and data, refusing what it cannot train (before the run
/// folder is touched).
/// `Precision` is `trainer.precision` resolved for the run's backend.
pub type MakeTask<T> = fn(&Config, Data, &World, Precision) -> Result<T, TrainError>;

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
    let (mut run, mut model) = Run::open(config, opts, make)?;
    let device = &run.resolved;
    observer.device(&device.description, run.precision, device.reason.as_deref());
    observer.start(run.total_steps, run.state.step);
    clock.steps_from(run.state.step);
    let mut last = None;
    let mut interrupted = false;
    while run.state.epoch < config.trainer.epochs {
        let (next, stop, last_step) = match run.steps(model, opts, observer)? {
            Steps::EpochDone { model, stop, last } => (model, stop, last),
            Steps::Interrupted => {
                interrupted = true;
                break;
            }
            Steps::BlewUp(error) => {
                model = run.roll_back(error, observer)?;
                continue;
            }
        };
        model = next;
        let (next, figures) = run.end_epoch(model, &last_step, observer)?;
        model = next;
        last = figures.or(last);
        if stop && run.state.epoch < config.trainer.epochs {
            interrupted = true;
            break;
        }
    }
    let summary = RunSummary::new(
        config,
        &run.dir,
        (&run.resolved, run.precision),
        &clock,
        &run.state,
        interrupted,
        &opts.world,
        run.task.finals(last),
    );
    if run.out.is_lead() {
        summary.write(&run.dir)?;
    }
    Ok(summary)
}

/// How the steps of an epoch ended.
enum Steps<M, L> {
    /// The epoch's last step is done (`stop`: a process was asked to stop after it), with
    /// its losses.
    EpochDone { model: M, stop: bool, last: L },
    /// Stopped within the epoch, with a checkpoint.
    Interrupted,
    /// A step blew up (its loss far above the last steps' level, or not finite); the model
    /// it gave is dropped.
    BlewUp(TrainError),
}

/// A run in progress: its task, where it stands, its optimiser and what it writes into.
struct Run<'a, T: Task> {
    config: &'a Config,
    world: &'a World,
    task: T,
    dir: PathBuf,
    resolved: Resolved,
    /// `trainer.precision` as resolved for the backend.
    precision: Precision,
    /// The last steps' losses, to tell a step that blew up.
    watch: LossWatch,
    device: Device,
    optim: ModuleOptimizer,
    /// The running average of the weights, where the config keeps one.
    average: Option<Average>,
    state: RunState<T::Sums>,
    out: RunWriter,
    per_epoch: u64,
    total_steps: u64,
}

impl<'a, T: Task> Run<'a, T> {
    /// Everything before the first step: the backend, the data and the task (checked before
    /// the run folder is touched: a missing feature or data folder leaves no run behind),
    /// the folder, the network and Adam, from the checkpoint when resuming.
    fn open(
        config: &'a Config,
        opts: &'a TrainOptions,
        make: MakeTask<T>,
    ) -> Result<(Self, T::Model), TrainError> {
        let t = &config.trainer;
        let world = &opts.world;
        let dir = opts.out.join(&config.name);
        let hash = config.hash();
        // Find the checkpoint before touching the folder: a mistaken --resume changes nothing.
        let resume_from = if opts.resume {
            Some(checkpoint::find(&dir)?)
        } else {
            None
        };
        let resolved = t.backend.resolve(t.device_index)?;
        let precision = t.precision.resolve(resolved.backend)?;
        let device = resolved.device.clone().autodiff();
        device.seed(config.seed);
        let task = make(config, Data::load(config)?, world, precision)?;
        if world.is_lead() {
            prepare_run_dir(&dir, config, opts)?;
            // A resumed run starts afresh from its last checkpoint: an old failure no longer
            // holds.
            let _ = fs::remove_file(dir.join("error.txt"));
        }
        let mut model = task.init(&device);
        let mut optim = adam(config);
        let mut averaged = None;
        let mut state = RunState {
            epoch: 0,
            step: 0,
            metrics_len: 0,
            config_hash: hash.clone(),
            lr_scale: 1.0,
            rollbacks: 0,
            task: task.sums(),
        };
        let resumed = resume_from.is_some();
        if let Some(ckpt) = resume_from {
            state = checkpoint::load_state::<RunState<T::Sums>>(&ckpt)?;
            let found = (state.config_hash.as_str(), state.metrics_len);
            (model, optim) = resume(&dir, config, &ckpt, found, model, optim, world)?;
            averaged = checkpoint_average(config, &ckpt, &model, state.step)?;
            state.config_hash = hash;
            state.task = task.resumed(state.task);
        }
        let out = RunWriter::open(&dir, world)?;
        // A checkpoint before the first step: a run that blows up in its first epoch has one
        // to go back to.
        let model = if resumed {
            model
        } else {
            out.checkpoint(model, None, &optim, &state)?
        };
        let model = broadcast_parameters(world, model);
        let per_epoch = task.steps_per_epoch();
        let total_steps = per_epoch * t.epochs as u64;
        let average = t
            .average_weights
            .map(|fraction| Average::new(fraction, total_steps, averaged));
        let run = Run {
            config,
            world,
            dir,
            device,
            optim,
            average,
            state,
            out,
            per_epoch,
            total_steps,
            resolved,
            precision,
            watch: LossWatch::new(t.divergence_factor),
            task,
        };
        Ok((run, model))
    }

    /// The steps left of the epoch in progress.
    fn steps(
        &mut self,
        mut model: T::Model,
        opts: &TrainOptions,
        observer: &mut dyn Observer,
    ) -> Result<Steps<T::Model, T::Loss>, TrainError> {
        let state = &mut self.state;
        let epoch_end = (state.epoch as u64 + 1) * self.per_epoch;
        let mut stop = false;
        let mut last_step = None;
        while state.step < epoch_end {
            let at = Position {
                epoch: state.epoch,
                step: state.step,
                in_epoch: state.step - state.epoch as u64 * self.per_epoch,
            };
            let lr = learning_rate(self.config, state.step, self.total_steps) * state.lr_scale;
            let current = model;
            stop = opts.stop_requested(state.step + 1);
            let (task, world, optim) = (&self.task, self.world, &mut self.optim);
            let stepped = catch_allocation_failure(|| {
                let Stepped {
                    total,
                    values,
                    items,
                } = task.step(&current, at, world, &self.device);
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
                    if let Some(level) = self.watch.blew_up(values.total()) {
                        return Ok(Steps::BlewUp(TrainError::BlewUp {
                            epoch: state.epoch,
                            step: state.step,
                            value: values.total(),
                            level,
                            factor: self.config.trainer.divergence_factor,
                        }));
                    }
                    model = next;
                    if let Some(average) = &mut self.average {
                        average.update(&model, state.step + 1);
                    }
                    values
                }
                failed => {
                    let failure = failed.map(|(values, _)| values.total());
                    let at = (state.epoch, state.step);
                    return match step_failure(failure, at, task, &self.resolved) {
                        e @ TrainError::Diverged { .. } => Ok(Steps::BlewUp(e)),
                        e => Err(self.out.failure(e)),
                    };
                }
            };
            state.step += 1;
            state.task.add(&values);
            last_step = Some(values);
            self.out.line(&MetricLine::<T::Loss, T::Validation>::Step {
                epoch: state.epoch,
                step: state.step,
                lr,
                loss: values,
            })?;
            observer.step(state.epoch, state.step, &task.shown(&values));
            if stop && state.step < epoch_end {
                state.metrics_len = self.out.metrics_len()?;
                let averaged = averaged(self.average.as_ref(), &self.out, &model);
                self.out.checkpoint(model, averaged, &self.optim, state)?;
                return Ok(Steps::Interrupted);
            }
        }
        Ok(Steps::EpochDone {
            model,
            stop,
            last: last_step.unwrap_or_default(),
        })
    }

    /// The end of an epoch: its mean losses, validation, samples and curves (rank 0, which
    /// writes for the run), and a checkpoint. Returns the model and, on rank 0, the epoch's
    /// figures.
    #[allow(clippy::type_complexity)]
    fn end_epoch(
        &mut self,
        model: T::Model,
        last_step: &T::Loss,
        observer: &mut dyn Observer,
    ) -> Result<(T::Model, Option<(T::Loss, T::Validation)>), TrainError> {
        let (t, state, task) = (&self.config.trainer, &mut self.state, &self.task);
        let train_mean = state.task.mean(last_step);
        let mut figures = None;
        let averaged = averaged(self.average.as_ref(), &self.out, &model);
        if self.out.is_lead() {
            // What export gives: the average where the run keeps one.
            let valid = averaged.as_ref().unwrap_or(&model).valid();
            let base = &self.resolved.device;
            let val = task.validate(&valid, base)?;
            if t.sample_every > 0 && (state.epoch + 1).is_multiple_of(t.sample_every)
                || state.epoch + 1 == t.epochs
            {
                let dir = self.dir.join("samples");
                fs::create_dir_all(&dir).map_err(io(&dir))?;
                task.sample_grid(&valid, base)?
                    .save(&dir.join(format!("epoch_{:03}.png", state.epoch + 1)))?;
            }
            self.out
                .line(&MetricLine::<T::Loss, T::Validation>::Epoch {
                    epoch: state.epoch,
                    step: state.step,
                    train: train_mean,
                    val: Box::new(val.clone()),
                })?;
            observer.epoch(
                state.epoch,
                &task.epoch_line(state.epoch, &train_mean, &val),
            );
            task.write_curves(&self.dir, self.out.metrics_path())?;
            figures = Some((train_mean, val));
        }
        state.epoch += 1;
        state.task.reset();
        state.metrics_len = self.out.metrics_len()?;
        let model = self.out.checkpoint(model, averaged, &self.optim, state)?;
        Ok((model, figures))
    }

    /// After a blow-up: back to the last checkpoint (its weights, Adam's moments, its
    /// average, its place in the run and in metrics.jsonl) and on at half the learning
    /// rate; the error itself once `trainer.blow_up_retries` are spent. Every rank sees the
    /// same losses (they are averaged over the processes), so all of them roll back together.
    fn roll_back(
        &mut self,
        blew_up: TrainError,
        observer: &mut dyn Observer,
    ) -> Result<T::Model, TrainError> {
        let retries = self.config.trainer.blow_up_retries;
        if self.state.rollbacks >= retries {
            return Err(self.out.failure(blew_up));
        }
        let ckpt = checkpoint::find(&self.dir)?;
        let mut state = checkpoint::load_state::<RunState<T::Sums>>(&ckpt)?;
        // The run's own hash, not the checkpoint's: one written before `--epochs` was
        // raised is still this run's.
        let found = (self.state.config_hash.as_str(), state.metrics_len);
        let template = self.task.init(&self.device);
        let (model, optim) = resume(
            &self.dir,
            self.config,
            &ckpt,
            found,
            template,
            adam(self.config),
            self.world,
        )?;
        self.optim = optim;
        let averaged = checkpoint_average(self.config, &ckpt, &model, state.step)?;
        if let Some(fraction) = self.config.trainer.average_weights {
            self.average = Some(Average::new(fraction, self.total_steps, averaged));
        }
        state.rollbacks = self.state.rollbacks + 1;
        state.lr_scale = self.state.lr_scale * 0.5;
        state.config_hash = self.state.config_hash.clone();
        state.task = self.task.resumed(state.task);
        observer.warn(&format!(
            "{blew_up}; back to the checkpoint at step {} to train on at {} times the \
             learning rate (rollback {} of trainer.blow_up_retries = {retries})",
            state.step, state.lr_scale, state.rollbacks
        ));
        self.state = state;
        self.watch = LossWatch::new(self.config.trainer.divergence_factor);
        Ok(broadcast_parameters(self.world, model))
    }
}

/// Adam as the config sets it, without moments.
fn adam(config: &Config) -> ModuleOptimizer {
    let t = &config.trainer;
    let mut adam = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_beta_2(t.adam_beta2 as f32);
    if let Some(c) = t.grad_clip_norm {
        adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(c)));
    }
    adam.init()
}

/// A checkpoint's running average of the weights with the step it was taken at, where the
/// config keeps one and the checkpoint has it.
fn checkpoint_average<M: Module>(
    config: &Config,
    ckpt: &std::path::Path,
    model: &M,
    step: u64,
) -> Result<Option<(Vec<f32>, u64)>, TrainError> {
    if config.trainer.average_weights.is_none() || Weights::best_of(ckpt) != Weights::Average {
        return Ok(None);
    }
    let average = checkpoint::load_weights(ckpt, model.clone(), Weights::Average)?;
    Ok(Some((parameters(&average), step)))
}

/// `model` with the averaged weights, on rank 0 (which validates and writes the
/// checkpoint), where the run keeps an `average` and it has begun.
fn averaged<M: Module>(average: Option<&Average>, out: &RunWriter, model: &M) -> Option<M> {
    average.filter(|_| out.is_lead())?.model(model.clone())
}

/// Why a step gave no next model: its loss was not finite (`Ok(loss)`), or an allocation
/// failed (`Err(what the allocator said)`), at `(epoch, step)` of `task` on `device`.
fn step_failure<T: Task>(
    failure: Result<f32, String>,
    (epoch, step): (usize, u64),
    task: &T,
    device: &Resolved,
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
