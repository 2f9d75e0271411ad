//! Timing one training step on a backend: the figure BENCHMARKS.md compares across backends
//! and with PyTorch. Two networks: the study's dual-domain model (2 encoders, 4 decoder
//! passes, the four losses, backward and Adam; `scripts/torch_train_step.py`) and the
//! product's guided denoisers (both directions, each a blind U-Net over four quarter turns
//! with its guide encoder, the squared error, backward and Adam;
//! `scripts/torch_train_step.py --model guided`).
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
use crate::model::strategy::CrossDomainStrategy;
use crate::model::{
    DualDomain, DualDomainConfig, ForwardPlan, GuidedDenoiserConfig, Precision, PrecisionError,
    init,
};
use crate::study::loss;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Precision(#[from] PrecisionError),
}

/// Which network's step is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BenchModel {
    /// The study's dual-domain model.
    DualDomain,
    /// The product's guided denoisers, both directions.
    Guided,
}

impl std::str::FromStr for BenchModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dual-domain" | "dual_domain" => Ok(BenchModel::DualDomain),
            "guided" => Ok(BenchModel::Guided),
            other => Err(format!("'{other}' is not a model (dual-domain or guided)")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct StepBenchConfig {
    pub model: BenchModel,
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
    pub model: BenchModel,
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
    let times = match cfg.model {
        BenchModel::DualDomain => dual_domain_steps(cfg, &device, &mut on_step),
        BenchModel::Guided => guided_steps(cfg, &device, &mut on_step),
    };
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(StepBench {
        model: cfg.model,
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
        peak_rss_mb: crate::run::peak_rss_mb(),
    })
}

/// The step of the denoisers' training loop (`denoiser::training`) on random crops: both
/// directions, each guided by the other contrast.
fn guided_steps(
    cfg: &StepBenchConfig,
    device: &Device,
    on_step: &mut impl FnMut(usize),
) -> Vec<f64> {
    let mut model = init::seeded(
        GuidedDenoiserConfig::new(cfg.base_channels, cfg.depth, true).init_pair(device),
        0,
    );
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let shape = [cfg.batch, 1, cfg.size, cfg.size];
    let uniform = burn::tensor::Distribution::Uniform(0.0, 1.0);
    let sigma = Tensor::<4>::full([cfg.batch, 1, 1, 1], 0.1, device);
    let mut times = Vec::with_capacity(cfg.steps);
    for i in 0..cfg.warmup + cfg.steps {
        let (xa, xb) = (
            Tensor::<4>::random(shape, uniform, device),
            Tensor::<4>::random(shape, uniform, device),
        );
        let t0 = Instant::now();
        let p = cfg.precision;
        let out_a = model.to_a.forward(xa.clone(), Some(xb.clone()), None, p);
        let out_b = model.to_b.forward(xb.clone(), Some(xa.clone()), None, p);
        let total = crate::denoiser::loss::loss(out_a, xa, sigma.clone())
            + crate::denoiser::loss::loss(out_b, xb, sigma.clone());
        let grads = GradientsParams::from_grads(total.backward(), &model);
        model = optim.step(1e-3, model, grads);
        // Reading a value waits for the device (asynchronous GPU backends).
        let _ = total.into_scalar::<f32>();
        if i >= cfg.warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
        on_step(i + 1);
    }
    times
}

fn dual_domain_steps(
    cfg: &StepBenchConfig,
    device: &Device,
    on_step: &mut impl FnMut(usize),
) -> Vec<f64> {
    let device = device.clone();
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
    times
}

/// What exchanging one step's gradients between data-parallel processes costs
/// (`crossdenoise bench gradient-exchange`, under `mpirun`).
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeBench {
    pub model: BenchModel,
    pub base_channels: usize,
    pub depth: usize,
    pub processes: usize,
    /// Trainable values summed each step, and their bytes (f32).
    pub parameters: usize,
    pub bytes: usize,
    pub steps: usize,
    /// The whole exchange of `training::collective::average_gradients`: the gradients
    /// copied to the host, summed over the processes, copied back.
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    /// The sum over the processes alone, of a buffer of the same length.
    pub transport_median_s: f64,
}

/// Times the gradient exchange of `cfg`'s network (its channels and depth; the batch and
/// size only shape the small step whose real gradients are exchanged) among `world`.
pub fn gradient_exchange(
    cfg: &StepBenchConfig,
    world: &crate::run::World,
    mut on_step: impl FnMut(usize),
) -> Result<ExchangeBench, BenchError> {
    let resolved = cfg.backend.resolve(cfg.device_index)?;
    let device = resolved.device.autodiff();
    let shape = [cfg.batch, 1, cfg.size, cfg.size];
    let uniform = burn::tensor::Distribution::Uniform(0.0, 1.0);
    let input = || Tensor::<4>::random(shape, uniform, &device);
    let (parameters, times) = match cfg.model {
        BenchModel::Guided => {
            let model = init::seeded(
                GuidedDenoiserConfig::new(cfg.base_channels, cfg.depth, true).init_pair(&device),
                0,
            );
            let sigma = Tensor::<4>::full([cfg.batch, 1, 1, 1], 0.1, &device);
            let grads = |m: &crate::model::DenoiserPair| {
                let (xa, xb) = (input(), input());
                let p = Precision::F32;
                let out_a = m.to_a.forward(xa.clone(), Some(xb.clone()), None, p);
                let out_b = m.to_b.forward(xb.clone(), Some(xa.clone()), None, p);
                let total = crate::denoiser::loss::loss(out_a, xa, sigma.clone())
                    + crate::denoiser::loss::loss(out_b, xb, sigma.clone());
                GradientsParams::from_grads(total.backward(), m)
            };
            time_exchange(&model, grads, world, cfg, &mut on_step)
        }
        BenchModel::DualDomain => {
            let model = init::seeded(
                DualDomainConfig::new(cfg.base_channels, cfg.depth).init(&device),
                0,
            );
            let weights = LossWeights::default();
            let plan = loss::plan(&weights, CrossDomainStrategy::NoSkip, 0.5);
            let grads = |m: &DualDomain| {
                let (xa, xb) = (input(), input());
                let out = m.forward(xa.clone(), xb.clone(), &plan);
                let losses = loss::compute(&out, xa, xb, &weights);
                GradientsParams::from_grads(losses.total.backward(), m)
            };
            time_exchange(&model, grads, world, cfg, &mut on_step)
        }
    };
    let mut transport = Vec::with_capacity(cfg.steps);
    let mut buffer = vec![1.0f32; parameters];
    for _ in 0..cfg.warmup + cfg.steps {
        world.barrier();
        let t0 = Instant::now();
        world.sum(&mut buffer);
        transport.push(t0.elapsed().as_secs_f64());
    }
    let transport = median(&mut transport[cfg.warmup..].to_vec());
    let mut sorted = times;
    sorted.sort_by(f64::total_cmp);
    Ok(ExchangeBench {
        model: cfg.model,
        base_channels: cfg.base_channels,
        depth: cfg.depth,
        processes: world.size(),
        parameters,
        bytes: parameters * 4,
        steps: cfg.steps,
        median_s: sorted[sorted.len() / 2],
        min_s: sorted[0],
        max_s: sorted[sorted.len() - 1],
        transport_median_s: transport,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `warmup + steps` exchanges of real gradients of `model` (from `grads`), timed after the
/// warm-up; returns the trainable values exchanged and the times.
fn time_exchange<M: burn::module::Module>(
    model: &M,
    mut grads: impl FnMut(&M) -> GradientsParams,
    world: &crate::run::World,
    cfg: &StepBenchConfig,
    on_step: &mut impl FnMut(usize),
) -> (usize, Vec<f64>) {
    use crate::run::collective::average_gradients;
    let mut times = Vec::with_capacity(cfg.steps);
    let mut parameters = 0;
    for i in 0..cfg.warmup + cfg.steps {
        let g = grads(model);
        let mut losses = [0.0f32; 1];
        let mut stop = false;
        // Every process starts the exchange together, so the time is the exchange's own,
        // not the wait for a slower process's backward.
        world.barrier();
        let t0 = Instant::now();
        let g = average_gradients(world, model, g, (1, &mut losses), &mut stop);
        let elapsed = t0.elapsed().as_secs_f64();
        if i >= cfg.warmup {
            times.push(elapsed);
        }
        if i == 0 {
            parameters = count_values(&g, model);
        }
        on_step(i + 1);
    }
    (parameters, times)
}

/// The values of the gradients `grads` holds for `model`'s parameters.
fn count_values<M: burn::module::Module>(grads: &GradientsParams, model: &M) -> usize {
    struct Count<'a> {
        grads: &'a GradientsParams,
        n: usize,
    }
    impl burn::module::ModuleVisitor for Count<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.n += g.shape().num_elements();
            }
        }
    }
    let mut count = Count { grads, n: 0 };
    model.visit(&mut count);
    count.n
}
