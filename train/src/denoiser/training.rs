//! The denoisers' training loop: random crops of both contrasts, both directions per step,
//! Adam on the sum of their losses, validation, a sample grid, curves and a checkpoint at
//! the end of every epoch (`trainer.steps_per_epoch` steps).

use std::fs;
use std::path::Path;

use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use crossdenoise_image::magnitude_bias::{BiasCorrection, rician_mean};
use crossdenoise_image::noise;
use serde::{Deserialize, Serialize};

use super::validation::{self, DenoiserValidation};
use super::{crops, loss, prior};
use crate::checkpoint;
use crate::config::{Config, ModelKind, Target};
use crate::curves::{self, Curve, Panel};
use crate::data::{self, Data, PairSet};
use crate::loss::LossValues;
use crate::model::GuidedDenoiserConfig;
use crate::model::PriorOutput;
use crate::training::collective::{average_gradients, broadcast_parameters};
use crate::training::{
    Observer, RunClock, RunSummary, RunWriter, TrainError, TrainOptions, catch_allocation_failure,
    io, learning_rate, prepare_run_dir, resume, step_failure,
};

/// The losses of a step, or an epoch's means: each direction's prediction loss, the
/// prior's loss of both directions (networks with a posterior step), and their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DenoiserLoss {
    pub total: f32,
    pub to_a: f32,
    pub to_b: f32,
    #[serde(default)]
    pub prior: f32,
}

/// One line of a denoiser run's metrics.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DenoiserLine {
    Step {
        epoch: usize,
        step: u64,
        lr: f64,
        loss: DenoiserLoss,
    },
    Epoch {
        epoch: usize,
        step: u64,
        train: DenoiserLoss,
        val: Box<DenoiserValidation>,
    },
}

/// Where a denoiser run stands (its checkpoint's `state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiserState {
    /// The epoch in progress; `epochs` when the run is complete.
    pub epoch: usize,
    /// Optimiser steps done so far.
    pub step: u64,
    /// Length of metrics.jsonl at this checkpoint (later lines are dropped on resume).
    pub metrics_len: u64,
    /// Sums of the epoch in progress: steps, total, to_a, to_b.
    pub sums: [f64; 4],
    /// Sum of the epoch's prior losses.
    #[serde(default)]
    pub prior_sum: f64,
    pub config_hash: String,
    /// The training data's noise distribution in coils (1: Rician), which fastMRI's files
    /// state themselves: the exported model's metadata takes it from here.
    #[serde(default = "one_coil")]
    pub noise_coils: u32,
}

impl DenoiserLoss {
    fn from_array([total, to_a, to_b, prior]: [f32; 4]) -> Self {
        DenoiserLoss {
            total,
            to_a,
            to_b,
            prior,
        }
    }
}

impl DenoiserState {
    fn add(&mut self, l: &DenoiserLoss) {
        self.sums[0] += 1.0;
        self.sums[1] += f64::from(l.total);
        self.sums[2] += f64::from(l.to_a);
        self.sums[3] += f64::from(l.to_b);
        self.prior_sum += f64::from(l.prior);
    }

    fn mean(&self) -> DenoiserLoss {
        let n = self.sums[0].max(1.0);
        DenoiserLoss {
            total: (self.sums[1] / n) as f32,
            to_a: (self.sums[2] / n) as f32,
            to_b: (self.sums[3] / n) as f32,
            prior: (self.prior_sum / n) as f32,
        }
    }
}

fn one_coil() -> u32 {
    1
}

/// The network pair a denoiser config describes.
pub fn model_config(config: &Config) -> GuidedDenoiserConfig {
    GuidedDenoiserConfig::new(
        config.model.base_channels,
        config.model.depth,
        config.model.kind == ModelKind::Guided,
    )
    .with_prior(config.model.posterior)
}

/// Each slice's noise level, `[a, b]`, as the runtime will estimate it when serving.
pub fn slice_sigmas(set: &PairSet) -> Vec<[f32; 2]> {
    set.a
        .iter()
        .zip(&set.b)
        .map(|(a, b)| {
            [
                noise::estimate_sigma(a.view()),
                noise::estimate_sigma(b.view()),
            ]
        })
        .collect()
}

/// The clean crops' expected magnitudes at their slices' noise `sigmas`: the noise-free
/// value of what the acquired target's loss is least at (`trainer.target = "clean"`).
fn clean_target(clean: &[ndarray::Array2<f32>], sigmas: &[f32], device: &Device) -> Tensor<4> {
    let expected: Vec<ndarray::Array2<f32>> = clean
        .iter()
        .zip(sigmas)
        .map(|(c, &sigma)| {
            let sigma = f64::from(sigma.max(loss::MIN_SIGMA));
            c.mapv(|a| (sigma * rician_mean(f64::from(a.max(0.0)) / sigma)) as f32)
        })
        .collect();
    data::stack(&expected.iter().collect::<Vec<_>>(), device)
}

/// Trains a guided or single-contrast denoiser pair and returns the run's summary.
pub fn train(
    config: &Config,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<RunSummary, TrainError> {
    let mut clock = RunClock::start();
    let t = &config.trainer;
    let world = &opts.world;
    if t.batch_size < world.size() {
        return Err(TrainError::BatchBelowProcesses {
            what: "trainer.batch_size",
            batch: t.batch_size,
            processes: world.size(),
        });
    }
    let run = opts.out.join(&config.name);
    let hash = config.hash();
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
    if world.is_lead() {
        prepare_run_dir(&run, config, opts)?;
        let _ = fs::remove_file(run.join("error.txt"));
    }

    let mut model =
        crate::model::init::seeded(model_config(config).init_pair(&device), config.seed)
            .with_prior_start();
    let mut adam = AdamConfig::new().with_epsilon(1e-8);
    if let Some(c) = t.grad_clip_norm {
        adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(c)));
    }
    let mut optim: ModuleOptimizer = adam.init();
    let mut state = DenoiserState {
        epoch: 0,
        step: 0,
        metrics_len: 0,
        sums: [0.0; 4],
        prior_sum: 0.0,
        config_hash: hash.clone(),
        noise_coils: data.noise_coils,
    };
    if let Some(ckpt) = resume_from {
        state = checkpoint::load_state(&ckpt)?;
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
        state.noise_coils = data.noise_coils;
    }
    let mut out = RunWriter::open(&run, world)?;
    model = broadcast_parameters(world, model);

    // The magnitudes' bias as the data's noise makes it: Rician, or noncentral chi for
    // phantoms of a root-sum-of-squares coil array.
    let correction = BiasCorrection::for_coils(data.noise_coils);
    let train_sigmas = slice_sigmas(&data.train);
    let val_sigmas = slice_sigmas(&data.val);
    let guided = config.model.kind == ModelKind::Guided;
    let steps_per_epoch = t.steps_per_epoch as u64;
    let total_steps = steps_per_epoch * t.epochs as u64;
    observer.device(&resolved.description, resolved.reason.as_deref());
    observer.start(total_steps, state.step);
    clock.steps_from(state.step);
    let mut last: Option<(DenoiserLoss, DenoiserValidation)> = None;
    let mut interrupted = false;
    // Whether any process was asked to stop after the last step.
    let mut stop = false;

    'epochs: while state.epoch < t.epochs {
        while state.step < (state.epoch as u64 + 1) * steps_per_epoch {
            let share = world.share(t.batch_size);
            let b = crops::batch(
                &data.train,
                &train_sigmas,
                config.seed,
                state.step,
                (t.batch_size, share.clone()),
                t.crop_size,
                t.target == Target::Clean,
            );
            let x_a = data::stack(&b.a.iter().collect::<Vec<_>>(), &device);
            let x_b = data::stack(&b.b.iter().collect::<Vec<_>>(), &device);
            let sigma = |s: &[f32]| {
                Tensor::<4>::from_data(TensorData::new(s.to_vec(), [s.len(), 1, 1, 1]), &device)
            };
            let (s_a, s_b) = (sigma(&b.sigma_a), sigma(&b.sigma_b));
            let (y_a, y_b) = match t.target {
                Target::Acquired => (x_a.clone(), x_b.clone()),
                Target::Clean => (
                    clean_target(&b.clean_a, &b.sigma_a, &device),
                    clean_target(&b.clean_b, &b.sigma_b, &device),
                ),
            };
            let lr = learning_rate(config, state.step, total_steps);
            let current = model;
            stop = opts.stop_requested(state.step + 1);
            let stepped = catch_allocation_failure(|| {
                let p = t.precision;
                let (out_a, spread_a) =
                    current
                        .to_a
                        .forward_prior(x_a.clone(), guided.then(|| x_b.clone()), p);
                let (out_b, spread_b) =
                    current
                        .to_b
                        .forward_prior(x_b.clone(), guided.then(|| x_a.clone()), p);
                // The prior's loss needs the predictions as served (bias removed) and the
                // spreads stated now on the host, for the grid of each pixel's posterior.
                let prior_loss = |out: &Tensor<4>,
                                  head: Option<PriorOutput>,
                                  crops: &[ndarray::Array2<f32>],
                                  sigmas: &[f32]| {
                    head.map(|head| {
                        let expected = data::unstack(out.clone().detach());
                        let spread = data::unstack(head.spread.clone().detach());
                        let shift = data::unstack(head.shift.clone().detach());
                        let now = prior::HeadNow {
                            spread: &spread,
                            shift: &shift,
                        };
                        let t = prior::targets(&correction, &expected, now, crops, sigmas, &device);
                        prior::loss(head.spread, head.shift, t)
                    })
                };
                let pa = prior_loss(&out_a, spread_a, &b.a, &b.sigma_a);
                let pb = prior_loss(&out_b, spread_b, &b.b, &b.sigma_b);
                let la = loss::loss(out_a, y_a, s_a);
                let lb = loss::loss(out_b, y_b, s_b);
                let mut total = la.clone() + lb.clone();
                let mut prior_value = 0.0;
                for p in [pa, pb].into_iter().flatten() {
                    prior_value += p.clone().into_scalar::<f32>();
                    total = total + p;
                }
                let mut values = [
                    total.clone().into_scalar::<f32>(),
                    la.into_scalar::<f32>(),
                    lb.into_scalar::<f32>(),
                    prior_value,
                ];
                let grads = GradientsParams::from_grads(total.backward(), &current);
                let shared = (share.len(), &mut values[..]);
                let grads = average_gradients(world, &current, grads, shared, &mut stop);
                let values = DenoiserLoss::from_array(values);
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
                    let batch = (t.batch_size, t.crop_size);
                    let e = step_failure(failure, at, batch, &resolved.description);
                    return Err(out.failure(e));
                }
            };
            state.step += 1;
            state.add(&values);
            out.line(&DenoiserLine::Step {
                epoch: state.epoch,
                step: state.step,
                lr,
                loss: values,
            })?;
            observer.step(
                state.epoch,
                state.step,
                &LossValues {
                    total: values.total,
                    ..Default::default()
                },
            );
            let epoch_end = state.step == (state.epoch as u64 + 1) * steps_per_epoch;
            if stop && !epoch_end {
                state.metrics_len = out.metrics_len()?;
                out.checkpoint(model, &optim, &state)?;
                interrupted = true;
                break 'epochs;
            }
        }

        let train_mean = state.mean();
        // Rank 0 validates and writes for the run.
        if out.is_lead() {
            let valid = model.valid();
            let val =
                validation::validate(&valid, &data.val, &correction, &val_sigmas, 2, &base_device)?;
            if t.sample_every > 0 && (state.epoch + 1).is_multiple_of(t.sample_every)
                || state.epoch + 1 == t.epochs
            {
                let dir = run.join("samples");
                fs::create_dir_all(&dir).map_err(io(&dir))?;
                validation::sample_grid(
                    &valid,
                    &data.val,
                    &correction,
                    &val_sigmas,
                    &config.data.domains,
                    &base_device,
                )?
                .save(&dir.join(format!("epoch_{:03}.png", state.epoch + 1)))?;
            }
            out.line(&DenoiserLine::Epoch {
                epoch: state.epoch,
                step: state.step,
                train: train_mean,
                val: Box::new(val.clone()),
            })?;
            observer.note(&epoch_line(
                state.epoch,
                &train_mean,
                &val,
                &config.data.domains,
            ));
            write_curves(&run, out.metrics_path(), &config.data.domains)?;
            last = Some((train_mean, val));
        }
        state.epoch += 1;
        state.sums = [0.0; 4];
        state.prior_sum = 0.0;
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
    summary.final_train = last.as_ref().map(|(l, _)| LossValues {
        total: l.total,
        ..Default::default()
    });
    let extra = last.as_ref().map(|(train, val)| {
        (
            "denoiser",
            serde_json::json!({ "train": train, "val": val }),
        )
    });
    if out.is_lead() {
        summary.write(&run, extra)?;
    }
    Ok(summary)
}

/// The epoch's line for the log: losses, and on phantoms each contrast's PSNR against
/// clean next to the acquired image's.
pub fn epoch_line(
    epoch: usize,
    train: &DenoiserLoss,
    val: &DenoiserValidation,
    domains: &[String; 2],
) -> String {
    let mut line = format!(
        "epoch {:>3}: loss {:.4} ({} {:.4}, {} {:.4}",
        epoch + 1,
        train.total,
        domains[0],
        train.to_a,
        domains[1],
        train.to_b
    );
    if train.prior != 0.0 {
        line.push_str(&format!(", prior {:.4}", train.prior));
    }
    line.push(')');
    for (name, dir) in domains.iter().zip([&val.a, &val.b]) {
        if let (Some(d), Some(q)) = (&dir.denoised, &dir.acquired) {
            line.push_str(&format!(
                " | {name} {:.2} dB (acquired {:.2})",
                d.psnr, q.psnr
            ));
        } else {
            line.push_str(&format!(" | {name} val loss {:.4}", dir.loss));
        }
    }
    line
}

/// Redraws `curves.png`: training losses per direction, validation loss, and on phantoms
/// PSNR against clean with the acquired image's as a reference line.
fn write_curves(run: &Path, metrics_path: &Path, domains: &[String; 2]) -> Result<(), TrainError> {
    let text = fs::read_to_string(metrics_path).map_err(io(metrics_path))?;
    let lines: Vec<DenoiserLine> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let curve = |label: String, points: Vec<(f64, f64)>| Curve { label, points };
    let (mut train_a, mut train_b, mut val_a, mut val_b) = (vec![], vec![], vec![], vec![]);
    let mut psnr: [Vec<(f64, f64)>; 4] = Default::default();
    for line in &lines {
        match line {
            DenoiserLine::Step { step, loss, .. } => {
                train_a.push((*step as f64, f64::from(loss.to_a)));
                train_b.push((*step as f64, f64::from(loss.to_b)));
            }
            DenoiserLine::Epoch { step, val, .. } => {
                let x = *step as f64;
                val_a.push((x, val.a.loss));
                val_b.push((x, val.b.loss));
                for (k, dir) in [&val.a, &val.b].into_iter().enumerate() {
                    if let (Some(d), Some(q)) = (&dir.denoised, &dir.acquired) {
                        psnr[2 * k].push((x, d.psnr));
                        psnr[2 * k + 1].push((x, q.psnr));
                    }
                }
            }
        }
    }
    let [a, b] = domains;
    let mut panels = vec![
        Panel {
            title: "training loss (MSE / noise variance)".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            log_y: true,
            curves: vec![
                curve(a.clone(), smooth(&train_a)),
                curve(b.clone(), smooth(&train_b)),
            ],
        },
        Panel {
            title: "validation loss (whole slices)".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            log_y: false,
            curves: vec![curve(a.clone(), val_a), curve(b.clone(), val_b)],
        },
    ];
    if !psnr[0].is_empty() {
        let [da, qa, db, qb] = psnr;
        panels.push(Panel {
            title: "PSNR against clean".into(),
            x_label: "step".into(),
            y_label: "dB".into(),
            log_y: false,
            curves: vec![
                curve(format!("{a} denoised"), da),
                curve(format!("{a} acquired"), qa),
                curve(format!("{b} denoised"), db),
                curve(format!("{b} acquired"), qb),
            ],
        });
    }
    curves::draw(&run.join("curves.png"), &panels, 3)?;
    Ok(())
}

/// A running mean over 20 steps, so a curve of noisy per-step losses shows its trend.
fn smooth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    const WINDOW: usize = 20;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, _))| {
            let from = i.saturating_sub(WINDOW - 1);
            let ys = &points[from..=i];
            (x, ys.iter().map(|p| p.1).sum::<f64>() / ys.len() as f64)
        })
        .collect()
}
