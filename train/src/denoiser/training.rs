//! The denoisers as a [`Task`] of the training loop: random crops of both contrasts, both
//! directions per step, each on its own network, the sum of their losses descended
//! (`trainer.steps_per_epoch` steps an epoch).

use std::fs;
use std::path::Path;

use burn::prelude::*;
use crossdenoise_image::magnitude_bias::{BiasCorrection, magnitude_mean};
use crossdenoise_image::picture::Grid;
use serde::{Deserialize, Serialize};

use super::validation::{self, DenoiserValidation};
use super::{crops, loss, prior};
use crate::config::{Config, ModelKind, Target};
use crate::data::{self, Data, SliceNoise};
use crate::model::{DenoiserPair, GuidedDenoiserConfig, Precision, PriorOutput};
use crate::run::curves::{self, Curve, Panel, smooth};
use crate::run::{
    self, EpochSums, MetricLine, Observer, Position, RunState, RunSummary, StepLoss, Stepped, Task,
    TrainError, TrainOptions, World, io,
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
pub type DenoiserLine = MetricLine<DenoiserLoss, DenoiserValidation>;

/// Where a denoiser run stands (its checkpoint's `state.json`).
pub type DenoiserState = RunState<DenoiserSums>;

/// A denoiser run's part of its checkpoint's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiserSums {
    /// Sums of the epoch in progress: steps, total, to_a, to_b.
    pub sums: [f64; 4],
    /// Sum of the epoch's prior losses.
    #[serde(default)]
    pub prior_sum: f64,
    /// The training data's noise distribution in coils (1: Rician), which fastMRI's files
    /// state themselves: the exported model's metadata takes it from here.
    #[serde(default = "one_coil")]
    pub noise_coils: u32,
}

/// What a denoiser run's summary.json ends with: the last epoch's total loss (the
/// `final_train` every run's summary has) and both directions' figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DenoiserFinals {
    #[serde(default)]
    pub final_train: Option<TotalLoss>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denoiser: Option<DenoiserLast>,
}

/// A loss total alone.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TotalLoss {
    pub total: f32,
}

/// The last epoch's mean losses and validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DenoiserLast {
    pub train: DenoiserLoss,
    pub val: DenoiserValidation,
}

/// A denoiser run's summary.
pub type DenoiserSummary = RunSummary<DenoiserFinals>;

impl StepLoss for DenoiserLoss {
    fn to_vec(&self) -> Vec<f32> {
        vec![self.total, self.to_a, self.to_b, self.prior]
    }

    fn with_values(self, values: &[f32]) -> Self {
        DenoiserLoss {
            total: values[0],
            to_a: values[1],
            to_b: values[2],
            prior: values[3],
        }
    }

    fn total(&self) -> f32 {
        self.total
    }
}

impl EpochSums<DenoiserLoss> for DenoiserSums {
    fn add(&mut self, l: &DenoiserLoss) {
        self.sums[0] += 1.0;
        self.sums[1] += f64::from(l.total);
        self.sums[2] += f64::from(l.to_a);
        self.sums[3] += f64::from(l.to_b);
        self.prior_sum += f64::from(l.prior);
    }

    fn mean(&self, _last: &DenoiserLoss) -> DenoiserLoss {
        let n = self.sums[0].max(1.0);
        DenoiserLoss {
            total: (self.sums[1] / n) as f32,
            to_a: (self.sums[2] / n) as f32,
            to_b: (self.sums[3] / n) as f32,
            prior: (self.prior_sum / n) as f32,
        }
    }

    fn reset(&mut self) {
        self.sums = [0.0; 4];
        self.prior_sum = 0.0;
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
    .with_noise_input(config.model.noise_input)
}

/// The clean crops' expected magnitudes at their slices' noise `sigmas` for magnitudes of
/// `coils` coils: the noise-free value of what the acquired target's loss is least at
/// (`trainer.target = "clean"`).
fn clean_target(
    clean: &[ndarray::Array2<f32>],
    sigmas: &[f32],
    coils: u32,
    device: &Device,
) -> Tensor<4> {
    let expected: Vec<ndarray::Array2<f32>> = clean
        .iter()
        .zip(sigmas)
        .map(|(c, &sigma)| {
            let sigma = f64::from(sigma.max(loss::MIN_SIGMA));
            c.mapv(|a| (sigma * magnitude_mean(f64::from(a.max(0.0)) / sigma, coils)) as f32)
        })
        .collect();
    data::stack(&expected.iter().collect::<Vec<_>>(), device)
}

/// A guided or single-contrast denoiser pair of `config`, trained on `data`.
pub struct DenoiserTask {
    config: Config,
    data: Data,
    /// The magnitudes' bias as the data's noise makes it: Rician, or noncentral chi for
    /// phantoms of a root-sum-of-squares coil array.
    correction: BiasCorrection,
    train_noise: Vec<SliceNoise>,
    val_noise: Vec<SliceNoise>,
    /// `trainer.precision` as the run resolved it.
    precision: Precision,
}

/// Trains a guided or single-contrast denoiser pair and returns the run's summary.
pub fn train(
    config: &Config,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<DenoiserSummary, TrainError> {
    run::train(config, opts, observer, DenoiserTask::new)
}

impl DenoiserTask {
    fn new(
        config: &Config,
        data: Data,
        world: &World,
        precision: Precision,
    ) -> Result<Self, TrainError> {
        let batch = config.trainer.batch_size;
        if batch < world.size() {
            return Err(TrainError::BatchBelowProcesses {
                what: "trainer.batch_size",
                batch,
                processes: world.size(),
            });
        }
        Ok(DenoiserTask {
            correction: BiasCorrection::for_coils(data.noise_coils),
            train_noise: data.train.noise(),
            val_noise: data.val.noise(),
            precision,
            config: config.clone(),
            data,
        })
    }

    fn guided(&self) -> bool {
        self.config.model.kind == ModelKind::Guided
    }
}

impl Task for DenoiserTask {
    type Model = DenoiserPair;
    type Loss = DenoiserLoss;
    type Sums = DenoiserSums;
    type Validation = DenoiserValidation;
    type Finals = DenoiserFinals;

    fn init(&self, device: &Device) -> DenoiserPair {
        let pair = model_config(&self.config).init_pair(device);
        crate::model::init::seeded(pair, self.config.seed).with_prior_start()
    }

    fn sums(&self) -> DenoiserSums {
        DenoiserSums {
            sums: [0.0; 4],
            prior_sum: 0.0,
            noise_coils: self.data.noise_coils,
        }
    }

    fn resumed(&self, sums: DenoiserSums) -> DenoiserSums {
        DenoiserSums {
            noise_coils: self.data.noise_coils,
            ..sums
        }
    }

    fn steps_per_epoch(&self) -> u64 {
        self.config.trainer.steps_per_epoch as u64
    }

    fn batch_shape(&self) -> (usize, usize) {
        (
            self.config.trainer.batch_size,
            self.config.trainer.crop_size,
        )
    }

    fn step(
        &self,
        model: &DenoiserPair,
        at: Position,
        world: &World,
        device: &Device,
    ) -> Stepped<DenoiserLoss> {
        let (config, t) = (&self.config, &self.config.trainer);
        let share = world.share(t.batch_size);
        let b = crops::batch(
            &self.data.train,
            &self.train_noise,
            config.seed,
            at.step,
            (t.batch_size, share.clone()),
            t.crop_size,
            t.target == Target::Clean,
        );
        let x_a = data::stack(&b.a.iter().collect::<Vec<_>>(), device);
        let x_b = data::stack(&b.b.iter().collect::<Vec<_>>(), device);
        let sigma = |s: &[f32]| {
            Tensor::<4>::from_data(TensorData::new(s.to_vec(), [s.len(), 1, 1, 1]), device)
        };
        let (s_a, s_b) = (sigma(&b.sigma_a), sigma(&b.sigma_b));
        let (y_a, y_b) = match t.target {
            Target::Acquired => (x_a.clone(), x_b.clone()),
            Target::Clean => (
                clean_target(&b.clean_a, &b.sigma_a, self.correction.coils(), device),
                clean_target(&b.clean_b, &b.sigma_b, self.correction.coils(), device),
            ),
        };
        let (p, guided) = (self.precision, self.guided());
        let n_a = model.to_a.noise_tensor(&b.level_a, &b.level_b, device);
        let n_b = model.to_b.noise_tensor(&b.level_b, &b.level_a, device);
        let (out_a, head_a) =
            model
                .to_a
                .forward_prior(x_a.clone(), guided.then(|| x_b.clone()), n_a, p);
        let (out_b, head_b) =
            model
                .to_b
                .forward_prior(x_b.clone(), guided.then(|| x_a.clone()), n_b, p);
        // The prior's loss needs the predictions as served (bias removed) and the spreads
        // stated now on the host, for the grid of each pixel's posterior.
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
                let t = prior::targets(&self.correction, &expected, now, crops, sigmas, device);
                prior::loss(head.spread, head.shift, t)
            })
        };
        let pa = prior_loss(&out_a, head_a, &b.a, &b.sigma_a);
        let pb = prior_loss(&out_b, head_b, &b.b, &b.sigma_b);
        let la = loss::loss(out_a, y_a, s_a);
        let lb = loss::loss(out_b, y_b, s_b);
        let mut total = la.clone() + lb.clone();
        let mut prior_value = 0.0;
        for p in [pa, pb].into_iter().flatten() {
            prior_value += p.clone().into_scalar::<f32>();
            total = total + p;
        }
        Stepped {
            values: DenoiserLoss {
                total: total.clone().into_scalar::<f32>(),
                to_a: la.into_scalar::<f32>(),
                to_b: lb.into_scalar::<f32>(),
                prior: prior_value,
            },
            total,
            items: share.len(),
        }
    }

    fn shown(&self, l: &DenoiserLoss) -> Vec<(String, f32)> {
        let [a, b] = &self.config.data.domains;
        let mut shown = vec![
            ("total".to_string(), l.total),
            (a.clone(), l.to_a),
            (b.clone(), l.to_b),
        ];
        if self.config.model.posterior {
            shown.push(("prior".into(), l.prior));
        }
        shown
    }

    fn validate(
        &self,
        model: &DenoiserPair,
        device: &Device,
    ) -> Result<DenoiserValidation, TrainError> {
        let (set, noise) = (&self.data.val, &self.val_noise);
        validation::validate(model, set, &self.correction, noise, 2, device)
    }

    fn sample_grid(&self, model: &DenoiserPair, device: &Device) -> Result<Grid, TrainError> {
        let domains = &self.config.data.domains;
        let (set, noise) = (&self.data.val, &self.val_noise);
        validation::sample_grid(model, set, &self.correction, noise, domains, device)
    }

    fn epoch_line(&self, epoch: usize, train: &DenoiserLoss, val: &DenoiserValidation) -> String {
        epoch_line(epoch, train, val, &self.config.data.domains)
    }

    fn write_curves(&self, run: &Path, metrics: &Path) -> Result<(), TrainError> {
        write_curves(run, metrics, &self.config.data.domains)
    }

    fn finals(&self, last: Option<(DenoiserLoss, DenoiserValidation)>) -> DenoiserFinals {
        DenoiserFinals {
            final_train: last.as_ref().map(|(l, _)| TotalLoss { total: l.total }),
            denoiser: last.map(|(train, val)| DenoiserLast { train, val }),
        }
    }
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
            if let Some(w) = dir.prior_width {
                line.push_str(&format!(", prior {w:.2}x its error"));
            }
        } else {
            line.push_str(&format!(" | {name} val loss {:.4}", dir.loss));
        }
    }
    line
}

/// The validation of the last epoch in a run's `metrics.jsonl` text (none before the first
/// epoch ended): what the weights an export reads scored on the validation slices.
pub fn last_validation(metrics: &str) -> Option<DenoiserValidation> {
    metrics
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<DenoiserLine>(l).ok())
        .find_map(|line| match line {
            DenoiserLine::Epoch { val, .. } => Some(*val),
            _ => None,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A denoiser checkpoint written before the one loop still loads, and one from before
    /// the prior and the coil count takes their defaults.
    #[test]
    fn an_earlier_checkpoint_state_still_loads() {
        let old = r#"{"epoch": 1, "step": 150, "metrics_len": 999, "sums": [50.0, 40.0, 20.0, 20.0],
            "prior_sum": 2.5, "config_hash": "h", "noise_coils": 8}"#;
        let state: DenoiserState = serde_json::from_str(old).unwrap();
        assert_eq!((state.epoch, state.step, state.metrics_len), (1, 150, 999));
        assert_eq!((state.task.prior_sum, state.task.noise_coils), (2.5, 8));
        let again = serde_json::to_value(&state).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(old).unwrap()
        );
        let oldest = r#"{"epoch": 0, "step": 3, "metrics_len": 10, "sums": [3.0, 1.0, 0.5, 0.5],
            "config_hash": "h"}"#;
        let state: DenoiserState = serde_json::from_str(oldest).unwrap();
        assert_eq!((state.task.prior_sum, state.task.noise_coils), (0.0, 1));
        assert_eq!(state.task.mean(&DenoiserLoss::default()).total, 1.0 / 3.0);
    }

    /// The last epoch's validation is found behind later step lines, and a text cut where a
    /// checkpoint was taken gives the epoch before it; a worse-than-acquired score is told.
    #[test]
    fn the_last_validation_is_read_and_judged_against_the_acquired_image() {
        let score = |psnr| validation::Score {
            psnr,
            ..Default::default()
        };
        let direction = |denoised, acquired| validation::DirectionValidation {
            denoised: Some(score(denoised)),
            acquired: Some(score(acquired)),
            ..Default::default()
        };
        let epoch = |step, a: f64| {
            let line = DenoiserLine::Epoch {
                epoch: 0,
                step,
                train: DenoiserLoss::default(),
                val: Box::new(DenoiserValidation {
                    a: direction(a, 22.0),
                    b: direction(30.0, 20.0),
                }),
            };
            serde_json::to_string(&line).unwrap() + "\n"
        };
        let step = serde_json::to_string(&DenoiserLine::Step {
            epoch: 1,
            step: 3,
            lr: 1e-3,
            loss: DenoiserLoss::default(),
        })
        .unwrap()
            + "\n";
        let first = epoch(2, 31.0);
        let text = format!("{first}{}{step}", epoch(4, 12.5));
        let last = last_validation(&text).unwrap();
        assert_eq!(last.a.below_acquired(), Some((12.5, 22.0)));
        assert_eq!(last.b.below_acquired(), None);
        let at_checkpoint = last_validation(&text[..first.len()]).unwrap();
        assert_eq!(at_checkpoint.a.below_acquired(), None);
        assert!(last_validation(&step).is_none());
        // Without a clean image there is nothing to judge.
        let unscored = validation::DirectionValidation::default();
        assert_eq!(unscored.below_acquired(), None);
    }
}
