//! The study's dual-domain network as a [`Task`] of the training loop: whole slices in
//! epoch order, the training noise added to them, the four losses of docs/DESIGN.md.

use burn::prelude::*;
use crossdenoise_image::picture::Grid;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::loss::{self, LossValues};
use super::records::{LossSums, Validation};
use super::validation::{sample_grid, validate};
use crate::config::Config;
use crate::data::{self, Data};
use crate::model::{DualDomain, DualDomainConfig, ForwardPlan, Precision};
use crate::run::curves;
use crate::run::{
    self, EpochSums, Observer, Position, RunSummary, StepLoss, Stepped, Task, TrainError,
    TrainOptions, World, io,
};

/// What a study run's summary.json ends with: the last epoch's mean losses and validation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StudyFinals {
    #[serde(default)]
    pub final_train: Option<LossValues>,
    #[serde(default)]
    pub final_val: Option<Validation>,
}

/// A study run's summary.
pub type StudySummary = RunSummary<StudyFinals>;

/// The study's part of a checkpoint's state: the next batch of the epoch and the epoch's
/// running sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySums {
    pub batch: usize,
    pub epoch_sums: LossSums,
}

impl EpochSums<LossValues> for StudySums {
    fn add(&mut self, loss: &LossValues) {
        self.batch += 1;
        self.epoch_sums.add(loss);
    }

    fn mean(&self, last: &LossValues) -> LossValues {
        self.epoch_sums.mean(last)
    }

    fn reset(&mut self) {
        self.batch = 0;
        self.epoch_sums = LossSums::default();
    }
}

impl StepLoss for LossValues {
    fn to_vec(&self) -> Vec<f32> {
        self.to_array().to_vec()
    }

    fn with_values(self, values: &[f32]) -> Self {
        let mut array = [0.0; 5];
        array.copy_from_slice(values);
        self.with_array(array)
    }

    fn total(&self) -> f32 {
        self.total
    }
}

/// The dual-domain network of `config`, trained on `data`.
pub struct DualDomainTask {
    config: Config,
    data: Data,
    plan: ForwardPlan,
}

/// Trains the study's dual-domain network of `config` and returns the run's summary.
pub fn train(
    config: &Config,
    opts: &TrainOptions,
    observer: &mut dyn Observer,
) -> Result<StudySummary, TrainError> {
    run::train(config, opts, observer, DualDomainTask::new)
}

impl DualDomainTask {
    fn new(
        config: &Config,
        data: Data,
        world: &World,
        precision: Precision,
    ) -> Result<Self, TrainError> {
        let t = &config.trainer;
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
        let plan = ForwardPlan {
            precision,
            ..loss::plan(&t.loss_weights, t.cross_domain_strategy, t.mixed_skip_alpha)
        };
        Ok(DualDomainTask {
            config: config.clone(),
            data,
            plan,
        })
    }
}

impl Task for DualDomainTask {
    type Model = DualDomain;
    type Loss = LossValues;
    type Sums = StudySums;
    type Validation = Validation;
    type Finals = StudyFinals;

    fn init(&self, device: &Device) -> DualDomain {
        crate::model::init::seeded(model_config(&self.config).init(device), self.config.seed)
    }

    fn sums(&self) -> StudySums {
        StudySums {
            batch: 0,
            epoch_sums: LossSums::default(),
        }
    }

    fn steps_per_epoch(&self) -> u64 {
        self.data
            .train
            .len()
            .div_ceil(self.config.trainer.batch_size) as u64
    }

    fn batch_shape(&self) -> (usize, usize) {
        (self.config.trainer.batch_size, self.config.data.image_size)
    }

    fn step(
        &self,
        model: &DualDomain,
        at: Position,
        world: &World,
        device: &Device,
    ) -> Stepped<LossValues> {
        let (config, t, train) = (&self.config, &self.config.trainer, &self.data.train);
        let order = data::epoch_order(config.seed, at.epoch, train.len());
        let from = at.in_epoch as usize * t.batch_size;
        let idx = &order[from..(from + t.batch_size).min(order.len())];
        let a: Vec<&Array2<f32>> = idx.iter().map(|&i| &train.a[i]).collect();
        let b: Vec<&Array2<f32>> = idx.iter().map(|&i| &train.b[i]).collect();
        // The whole batch's noise is drawn, so that each process's share of it is the
        // noise a single process would have drawn for those images.
        let part = world.share(idx.len());
        let noisy_a = data::noisy(&a, &t.noise, config.seed, at.step, 0);
        let noisy_b = data::noisy(&b, &t.noise, config.seed, at.step, 1);
        let x_a = data::stack(&noisy_a[part.clone()].iter().collect::<Vec<_>>(), device);
        let x_b = data::stack(&noisy_b[part.clone()].iter().collect::<Vec<_>>(), device);
        let target_a = data::stack(&a[part.clone()], device);
        let target_b = data::stack(&b[part.clone()], device);
        let out = model.forward(x_a, x_b, &self.plan);
        let losses = loss::compute(&out, target_a, target_b, &t.loss_weights);
        Stepped {
            values: losses.values(),
            total: losses.total,
            items: part.len(),
        }
    }

    fn shown(&self, l: &LossValues) -> Vec<(String, f32)> {
        let named = [
            ("content", l.content),
            ("recon", l.recon),
            ("cross", l.cross),
            ("edge", l.edge),
        ];
        std::iter::once(("total".to_string(), l.total))
            .chain(
                named
                    .iter()
                    .filter_map(|(n, v)| v.map(|v| (n.to_string(), v))),
            )
            .collect()
    }

    fn validate(&self, model: &DualDomain, device: &Device) -> Result<Validation, TrainError> {
        let batch = self.config.trainer.batch_size;
        validate(model, &self.data.val, &self.plan, batch, device)
    }

    fn sample_grid(&self, model: &DualDomain, device: &Device) -> Result<Grid, TrainError> {
        sample_grid(model, &self.data.val, &self.plan, &self.config, device)
    }

    fn epoch_line(&self, epoch: usize, train: &LossValues, val: &Validation) -> String {
        let losses = self
            .shown(train)
            .iter()
            .map(|(name, v)| format!("{name} {v:.4}"))
            .collect::<Vec<_>>()
            .join(" ");
        let clean = val
            .cross_a
            .psnr_clean
            .map(|p| format!(", vs clean {p:.2} dB"))
            .unwrap_or_default();
        format!(
            "epoch {:>3}: {losses} | val cross a<-b {:.2} dB{clean}",
            epoch + 1,
            val.cross_a.psnr
        )
    }

    fn write_curves(
        &self,
        run: &std::path::Path,
        metrics: &std::path::Path,
    ) -> Result<(), TrainError> {
        let lines = super::curves::read_metrics(metrics).map_err(io(metrics))?;
        let panels = super::curves::run_panels(&lines, &self.config.data.domains);
        curves::draw(&run.join("curves.png"), &panels, 3)?;
        Ok(())
    }

    fn finals(&self, last: Option<(LossValues, Validation)>) -> StudyFinals {
        let (final_train, final_val) = last.unzip();
        StudyFinals {
            final_train,
            final_val,
        }
    }
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

    /// A checkpoint written before the one loop (the study's own `TrainState`) still loads.
    #[test]
    fn an_earlier_checkpoint_state_still_loads() {
        let old = r#"{"epoch": 2, "batch": 3, "step": 27, "metrics_len": 4096,
            "epoch_sums": {"count": 3, "total": 1.5, "content": 0.5, "recon": 0.25,
                           "cross": 0.75, "edge": 0.0},
            "config_hash": "abc"}"#;
        let state: crate::run::RunState<StudySums> = serde_json::from_str(old).unwrap();
        assert_eq!((state.epoch, state.step, state.metrics_len), (2, 27, 4096));
        assert_eq!((state.task.batch, state.task.epoch_sums.count), (3, 3));
        assert_eq!(state.config_hash, "abc");
        let again: serde_json::Value = serde_json::to_value(&state).unwrap();
        let old: serde_json::Value = serde_json::from_str(old).unwrap();
        assert_eq!(again, old, "written back in the same form");
    }

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
        assert!(crate::study::experiment::diagnosis::is_out_of_memory(&e));
    }
}
