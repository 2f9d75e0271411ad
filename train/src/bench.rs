//! Timing one training step (2 encoders, 4 decoder passes, the four losses, backward and
//! Adam) on a backend: the figure BENCHMARKS.md compares across backends and with PyTorch.
//!
//! A step takes seconds on a CPU, too long for criterion's sampling, so this is a plain
//! loop with warm-up and median; peak memory is the process's, so run one configuration per
//! process.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use serde::Serialize;

use crate::config::LossWeights;
use crate::device::{Backend, BackendError};
use crate::loss;
use crate::model::{DualDomainConfig, ForwardPlan, Precision, PrecisionError, init};
use crate::strategy::CrossDomainStrategy;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Precision(#[from] PrecisionError),
}

#[derive(Debug, Clone, Copy)]
pub struct StepBenchConfig {
    pub backend: Backend,
    pub device_index: usize,
    pub base_channels: usize,
    pub depth: usize,
    pub size: usize,
    pub batch: usize,
    pub warmup: usize,
    pub steps: usize,
    pub edge: bool,
    pub precision: Precision,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepBench {
    pub backend: String,
    pub precision: Precision,
    pub base_channels: usize,
    pub depth: usize,
    pub size: usize,
    pub batch: usize,
    pub steps: usize,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub peak_rss_mb: Option<f64>,
}

/// Runs `warmup + steps` training steps on random data and times the last `steps`.
pub fn train_step(
    cfg: &StepBenchConfig,
    mut on_step: impl FnMut(usize),
) -> Result<StepBench, BenchError> {
    let resolved = cfg.backend.resolve(cfg.device_index)?;
    cfg.precision.check(resolved.backend)?;
    let device = resolved.device.autodiff();
    let mut model = init::seeded(
        DualDomainConfig::new(cfg.base_channels, cfg.depth).init(&device),
        0,
    );
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let weights = LossWeights {
        edge: if cfg.edge { 0.05 } else { 0.0 },
        ..LossWeights::default()
    };
    let plan = ForwardPlan {
        precision: cfg.precision,
        ..loss::plan(&weights, CrossDomainStrategy::NoSkip, 0.5)
    };
    let shape = [cfg.batch, 1, cfg.size, cfg.size];
    let uniform = burn::tensor::Distribution::Uniform(0.0, 1.0);
    let mut times = Vec::with_capacity(cfg.steps);
    for i in 0..cfg.warmup + cfg.steps {
        let (xa, xb) = (
            Tensor::<4>::random(shape, uniform, &device),
            Tensor::<4>::random(shape, uniform, &device),
        );
        let t0 = Instant::now();
        let out = model.forward(xa.clone(), xb.clone(), &plan);
        let losses = loss::compute(&out, xa, xb, &weights);
        let grads = GradientsParams::from_grads(losses.total.backward(), &model);
        model = optim.step(1e-3, model, grads);
        // Reading a value waits for the device (asynchronous GPU backends).
        let _ = losses.values();
        if i >= cfg.warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
        on_step(i + 1);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(StepBench {
        backend: resolved.description,
        precision: cfg.precision,
        base_channels: cfg.base_channels,
        depth: cfg.depth,
        size: cfg.size,
        batch: cfg.batch,
        steps: cfg.steps,
        median_s: sorted[sorted.len() / 2],
        min_s: sorted[0],
        max_s: sorted[sorted.len() - 1],
        peak_rss_mb: crate::training::peak_rss_mb(),
    })
}
