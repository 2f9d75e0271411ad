//! The training loop: forward -> losses -> backward -> Adam, validation every epoch, and
//! everything a run leaves behind (docs/DESIGN.md, "Outputs of a training run").
//!
//! Reproducibility is by construction: weights are initialised from the seeded device,
//! batches and training noise are functions of `(seed, epoch)` and `(seed, step)`, and
//! `metrics.jsonl` holds no wall-clock values, so the same config on the same CPU backend
//! writes the same file — interrupted and resumed or not.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use crossdenoise_runtime::metrics::{self, Quality};
use crossdenoise_runtime::picture::Grid;
use ndarray::Array2;
use serde::Serialize;

use crate::checkpoint::{self, CheckpointError, TrainState};
use crate::config::{Config, LrSchedule};
use crate::data::{self, Data, DataError, PairSet};
use crate::device::BackendError;
use crate::loss::{self, LossValues};
use crate::model::{DualDomain, DualDomainConfig, ForwardPlan, Precision, PrecisionError};
pub use crate::records::{LossSums, MetricLine, PathScore, RunSummary, Validation};

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
    #[error("{0}")]
    Picture(#[from] crossdenoise_runtime::Error),
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
    if config.model.kind.is_denoiser() {
        return crate::denoiser::train(config, opts, observer);
    }
    let started = Instant::now();
    let t = &config.trainer;
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
    // The backend and the data are checked before the folder is touched: a missing feature
    // or data folder leaves no run behind.
    prepare_run_dir(&run, config, opts)?;
    // A resumed run starts afresh from its last checkpoint: an old failure no longer holds.
    let _ = fs::remove_file(run.join("error.txt"));

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
    let metrics_path = run.join("metrics.jsonl");
    if let Some(ckpt) = resume_from {
        state = checkpoint::load_state::<TrainState>(&ckpt)?;
        let resumed = resume(
            &run,
            config,
            &ckpt,
            (&state.config_hash, state.metrics_len),
            model,
            optim,
        )?;
        (model, optim) = resumed;
        state.config_hash = hash.clone();
    }
    let mut metrics = open_metrics(&metrics_path)?;

    let plan = ForwardPlan {
        precision: t.precision,
        ..loss::plan(&t.loss_weights, t.cross_domain_strategy, t.mixed_skip_alpha)
    };
    observer.device(&resolved.description, resolved.reason.as_deref());
    observer.start(total_steps, state.step);
    let steps_at_start = state.step;
    let step_clock = Instant::now();
    let mut last_train = None;
    let mut last_val = None;
    let mut interrupted = false;

    'epochs: while state.epoch < t.epochs {
        let order = data::epoch_order(config.seed, state.epoch, data.train.len());
        let mut template = None;
        while state.batch < batches {
            let idx = &order
                [state.batch * t.batch_size..((state.batch + 1) * t.batch_size).min(order.len())];
            let a: Vec<&Array2<f32>> = idx.iter().map(|&i| &data.train.a[i]).collect();
            let b: Vec<&Array2<f32>> = idx.iter().map(|&i| &data.train.b[i]).collect();
            let noisy_a = data::noisy(&a, &t.noise, config.seed, state.step, 0);
            let noisy_b = data::noisy(&b, &t.noise, config.seed, state.step, 1);
            let x_a = data::stack(&noisy_a.iter().collect::<Vec<_>>(), &device);
            let x_b = data::stack(&noisy_b.iter().collect::<Vec<_>>(), &device);
            let target_a = data::stack(&a, &device);
            let target_b = data::stack(&b, &device);

            let lr = learning_rate(config, state.step, total_steps);
            let current = model;
            let stepped = catch_allocation_failure(|| {
                let out = current.forward(x_a, x_b, &plan);
                let losses = loss::compute(&out, target_a, target_b, &t.loss_weights);
                let values = losses.values();
                if !values.total.is_finite() {
                    return (values, None);
                }
                let grads = GradientsParams::from_grads(losses.total.backward(), &current);
                (values, Some(optim.step(lr, current, grads)))
            });
            let values = match stepped {
                Ok((values, Some(next))) => {
                    model = next;
                    values
                }
                Ok((values, None)) => {
                    return Err(record_failure(
                        &run,
                        TrainError::Diverged {
                            epoch: state.epoch,
                            step: state.step,
                            value: values.total,
                        },
                    ));
                }
                Err(detail) => {
                    return Err(record_failure(
                        &run,
                        TrainError::OutOfMemory {
                            epoch: state.epoch,
                            step: state.step,
                            batch_size: t.batch_size,
                            image_size: config.data.image_size,
                            device: resolved.description.clone(),
                            detail,
                        },
                    ));
                }
            };

            state.step += 1;
            state.batch += 1;
            state.epoch_sums.add(&values);
            template = Some(values);
            write_line(
                &mut metrics,
                &metrics_path,
                &MetricLine::Step {
                    epoch: state.epoch,
                    step: state.step,
                    lr,
                    loss: values,
                },
            )?;
            observer.step(state.epoch, state.step, &values);

            if opts.stop_requested(state.step) && state.batch < batches {
                state.metrics_len = metrics.metadata().map_err(io(&metrics_path))?.len();
                checkpoint::save(&run, &model, &optim, &state)?;
                interrupted = true;
                break 'epochs;
            }
        }

        // End of epoch: mean losses, validation, samples, checkpoint.
        let template = template.unwrap_or_default();
        let train_mean = state.epoch_sums.mean(&template);
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
        write_line(
            &mut metrics,
            &metrics_path,
            &MetricLine::Epoch {
                epoch: state.epoch,
                step: state.step,
                train: train_mean,
                val: Box::new(val.clone()),
            },
        )?;
        observer.epoch(state.epoch, &train_mean, &val);
        write_curves(&run, &metrics_path, &config.data.domains)?;
        last_train = Some(train_mean);
        last_val = Some(val);

        state.epoch += 1;
        state.batch = 0;
        state.epoch_sums = LossSums::default();
        state.metrics_len = metrics.metadata().map_err(io(&metrics_path))?.len();
        checkpoint::save(&run, &model, &optim, &state)?;

        if opts.stop_requested(state.step) && state.epoch < t.epochs {
            interrupted = true;
            break;
        }
    }

    let steps_run = state.step - steps_at_start;
    let summary = RunSummary {
        name: config.name.clone(),
        run_dir: run.clone(),
        backend: resolved.backend.name().into(),
        device: resolved.description.clone(),
        precision: t.precision,
        config_hash: hash,
        epochs_done: state.epoch,
        steps: state.step,
        interrupted,
        seconds: started.elapsed().as_secs_f64(),
        seconds_per_step: if steps_run > 0 {
            step_clock.elapsed().as_secs_f64() / steps_run as f64
        } else {
            0.0
        },
        peak_rss_mb: peak_rss_mb(),
        final_train: last_train,
        final_val: last_val,
    };
    let path = run.join("summary.json");
    fs::write(
        &path,
        serde_json::to_string_pretty(&summary).expect("summary serialises") + "\n",
    )
    .map_err(io(&path))?;
    Ok(summary)
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

/// Continues a run from its checkpoint `ckpt`, whose state records the config hash and the
/// length of metrics.jsonl it was taken at (`found`): refuses another config than the run's
/// own (save `trainer.epochs` raised, which is then recorded as the run's config), loads
/// the weights and the optimiser, and drops the metric lines written after the checkpoint.
pub(crate) fn resume<M: Module>(
    run: &Path,
    config: &Config,
    ckpt: &Path,
    (found_hash, metrics_len): (&str, u64),
    model: M,
    optim: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer), TrainError> {
    let hash = config.hash();
    if found_hash != hash {
        if !extends_epochs(run, config, found_hash) {
            return Err(TrainError::ConfigChanged {
                run: run.into(),
                found: found_hash.into(),
                expected: hash,
            });
        }
        // The same run, asked to go on for more epochs: it continues under the new config
        // (the learning-rate schedule stretches to the new length from here).
        let path = run.join("config.json");
        fs::write(
            &path,
            serde_json::to_string_pretty(config).expect("config serialises") + "\n",
        )
        .map_err(io(&path))?;
    }
    let model = checkpoint::load_model(ckpt, model)?;
    let optim = checkpoint::load_optimizer(ckpt, optim)?;
    let metrics = run.join("metrics.jsonl");
    let f = OpenOptions::new()
        .write(true)
        .open(&metrics)
        .map_err(io(&metrics))?;
    f.set_len(metrics_len).map_err(io(&metrics))?;
    Ok((model, optim))
}

/// metrics.jsonl, opened to append.
pub(crate) fn open_metrics(path: &Path) -> Result<File, TrainError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))
}

/// Whether `config` is the run's own config with only `trainer.epochs` raised (to at least
/// the epochs already done): a deliberate "train N more epochs" rather than a changed run.
fn extends_epochs(run: &Path, config: &Config, checkpoint_hash: &str) -> bool {
    let Ok(old) = Config::load(&run.join("config.json")) else {
        return false;
    };
    let mut same = config.clone();
    same.trainer.epochs = old.trainer.epochs;
    old.hash() == checkpoint_hash
        && same.hash() == checkpoint_hash
        && config.trainer.epochs > old.trainer.epochs
}

pub(crate) fn prepare_run_dir(
    run: &Path,
    config: &Config,
    opts: &TrainOptions,
) -> Result<(), TrainError> {
    if run.exists() && !opts.resume {
        let empty = fs::read_dir(run).is_ok_and(|mut d| d.next().is_none());
        if !empty {
            if !holds_a_run(run) {
                return Err(TrainError::NotARun { run: run.into() });
            }
            // A run stopped before its first checkpoint has nothing to resume: it starts
            // again without --force.
            let resumable = crate::checkpoint::find(run).is_ok();
            if resumable && !opts.force {
                return Err(TrainError::RunExists { run: run.into() });
            }
            fs::remove_dir_all(run).map_err(io(run))?;
        }
    }
    fs::create_dir_all(run).map_err(io(run))?;
    let path = run.join("config.json");
    if !opts.resume {
        fs::write(
            &path,
            serde_json::to_string_pretty(config).expect("config serialises") + "\n",
        )
        .map_err(io(&path))?;
    }
    Ok(())
}

/// Whether `dir` is a run folder this project wrote: the only kind `--force` may delete.
/// A symlink is never one (removing it would follow it elsewhere).
fn holds_a_run(dir: &Path) -> bool {
    let is_dir = fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    is_dir && (dir.join("config.json").is_file() || dir.join("metrics.jsonl").is_file())
}

pub(crate) fn write_line<T: Serialize>(
    f: &mut File,
    path: &Path,
    line: &T,
) -> Result<(), TrainError> {
    let text = serde_json::to_string(line).expect("metric serialises");
    writeln!(f, "{text}").map_err(io(path))
}

/// The learning rate of `step`: linear warm-up, then constant or cosine decay to 0.
/// Keeps a run's failure in its folder (error.txt) for `diagnose` and the suite summary;
/// returns it, or the reason it could not be written.
pub(crate) fn record_failure(run: &Path, err: TrainError) -> TrainError {
    let path = run.join("error.txt");
    match fs::write(&path, format!("{err}\n")) {
        Ok(()) => err,
        Err(source) => TrainError::Io { path, source },
    }
}

/// Runs `f`, turning a backend's failed allocation into `Err(what the allocator said)`.
/// LibTorch reports one (a batch too big for the GPU, or for the machine) by panicking out
/// of the op; the training loop makes it an error that says what to change. Other panics
/// go on unwinding.
pub fn catch_allocation_failure<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let payload = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => return Ok(v),
        Err(payload) => payload,
    };
    let text = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
    match text {
        Some(text) if is_allocation_failure(&text) => Err(first_line(&text)),
        _ => std::panic::resume_unwind(payload),
    }
}

/// LibTorch's CUDA ("CUDA out of memory") and CPU ("can't allocate memory") allocators.
fn is_allocation_failure(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("out of memory") || t.contains("can't allocate memory")
}

/// The line of a (possibly long, C++-backtrace-carrying) message that names the failure.
fn first_line(text: &str) -> String {
    let lines = || text.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find(|l| is_allocation_failure(l))
        .or_else(|| lines().next())
        .unwrap_or("")
        .chars()
        .take(300)
        .collect()
}

pub fn learning_rate(config: &Config, step: u64, total_steps: u64) -> f64 {
    let t = &config.trainer;
    let warm = t.warmup_steps as u64;
    if step < warm {
        return t.lr * (step + 1) as f64 / warm as f64;
    }
    match t.lr_schedule {
        LrSchedule::Constant => t.lr,
        LrSchedule::Cosine => {
            let span = total_steps.saturating_sub(warm).max(1) as f64;
            let progress = ((step - warm) as f64 / span).min(1.0);
            t.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

/// Runs every path on the validation set's acquired images (no added noise: what the model
/// will see in service) and scores them.
pub fn validate(
    model: &DualDomain,
    val: &PairSet,
    plan: &ForwardPlan,
    batch: usize,
    device: &Device,
) -> Result<Validation, TrainError> {
    // In f32 whatever the training precision: the exported model runs in f32.
    let full = ForwardPlan {
        recon: true,
        cross: true,
        precision: Precision::F32,
        ..*plan
    };
    // Per path: psnr, ssim, psnr vs clean, ssim vs clean, sharpness vs clean.
    let mut sums = [[0.0f64; 5]; 6];
    let mut n = 0usize;
    let has_clean = val.clean.is_some();
    for start in (0..val.len()).step_by(batch) {
        let idx: Vec<usize> = (start..(start + batch).min(val.len())).collect();
        let a: Vec<&Array2<f32>> = idx.iter().map(|&i| &val.a[i]).collect();
        let b: Vec<&Array2<f32>> = idx.iter().map(|&i| &val.b[i]).collect();
        let out = model.forward(data::stack(&a, device), data::stack(&b, device), &full);
        let paths = [
            data::unstack(out.recon_a.expect("recon run")),
            data::unstack(out.recon_b.expect("recon run")),
            data::unstack(out.cross_a.expect("cross run")),
            data::unstack(out.cross_b.expect("cross run")),
        ];
        for (k, &i) in idx.iter().enumerate() {
            let targets = [&val.a[i], &val.b[i], &val.a[i], &val.b[i]];
            for p in 0..4 {
                let q = Quality::measure(targets[p].view(), paths[p][k].view())?;
                sums[p][0] += q.psnr;
                sums[p][1] += q.ssim;
                if let Some((ca, cb)) = &val.clean {
                    let clean = if p % 2 == 0 { &ca[i] } else { &cb[i] };
                    let q = Quality::measure(clean.view(), paths[p][k].view())?;
                    sums[p][2] += q.psnr;
                    sums[p][3] += q.ssim;
                    sums[p][4] +=
                        metrics::sharpness(clean.view(), paths[p][k].view())?.unwrap_or(1.0);
                }
            }
            if let Some((ca, cb)) = &val.clean {
                for (slot, clean, target) in [(4, &ca[i], &val.a[i]), (5, &cb[i], &val.b[i])] {
                    let q = Quality::measure(clean.view(), target.view())?;
                    sums[slot][2] += q.psnr;
                    sums[slot][3] += q.ssim;
                    sums[slot][4] +=
                        metrics::sharpness(clean.view(), target.view())?.unwrap_or(1.0);
                }
            }
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    let score = |s: &[f64; 5]| PathScore {
        psnr: s[0] / n,
        ssim: s[1] / n,
        psnr_clean: has_clean.then(|| s[2] / n),
        ssim_clean: has_clean.then(|| s[3] / n),
        sharpness: has_clean.then(|| s[4] / n),
    };
    let baseline = |s: &[f64; 5]| PathScore {
        psnr: s[2] / n,
        ssim: s[3] / n,
        psnr_clean: Some(s[2] / n),
        ssim_clean: Some(s[3] / n),
        sharpness: Some(s[4] / n),
    };
    Ok(Validation {
        recon_a: score(&sums[0]),
        recon_b: score(&sums[1]),
        cross_a: score(&sums[2]),
        cross_b: score(&sums[3]),
        baseline_a: has_clean.then(|| baseline(&sums[4])),
        baseline_b: has_clean.then(|| baseline(&sums[5])),
    })
}

/// Up to four validation pairs: each direction's noisy input | cross output | target (| clean).
pub fn sample_grid(
    model: &DualDomain,
    val: &PairSet,
    plan: &ForwardPlan,
    config: &Config,
    device: &Device,
) -> Result<Grid, TrainError> {
    let rows = val.len().min(4);
    let idx: Vec<usize> = (0..rows).collect();
    let a: Vec<&Array2<f32>> = idx.iter().map(|&i| &val.a[i]).collect();
    let b: Vec<&Array2<f32>> = idx.iter().map(|&i| &val.b[i]).collect();
    let full = ForwardPlan {
        cross: true,
        precision: Precision::F32,
        ..*plan
    };
    let out = model.forward(data::stack(&a, device), data::stack(&b, device), &full);
    let cross_a = data::unstack(out.cross_a.expect("cross run"));
    let cross_b = data::unstack(out.cross_b.expect("cross run"));
    let [na, nb] = &config.data.domains;
    let (na, nb) = (na.to_uppercase(), nb.to_uppercase());
    let mut titles = vec![
        format!("{nb} in"),
        format!("{na}<-{nb}"),
        format!("{na} target"),
    ];
    if val.clean.is_some() {
        titles.push(format!("{na} clean"));
    }
    titles.extend([
        format!("{na} in"),
        format!("{nb}<-{na}"),
        format!("{nb} target"),
    ]);
    if val.clean.is_some() {
        titles.push(format!("{nb} clean"));
    }
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let zoom = (128 / val.dim().1).max(1);
    let mut grid = Grid::zoomed(rows, titles.len(), val.dim(), zoom, &titles)?;
    const WINDOW: f32 = 1.1;
    for (r, &i) in idx.iter().enumerate() {
        let mut tiles: Vec<&Array2<f32>> = vec![&val.b[i], &cross_a[r], &val.a[i]];
        if let Some((ca, _)) = &val.clean {
            tiles.push(&ca[i]);
        }
        tiles.extend([&val.a[i], &cross_b[r], &val.b[i]]);
        if let Some((_, cb)) = &val.clean {
            tiles.push(&cb[i]);
        }
        for (c, tile) in tiles.into_iter().enumerate() {
            grid.set(r, c, tile.view(), WINDOW)?;
        }
    }
    Ok(grid)
}

/// Peak resident memory of this process (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_replaces_only_a_run_folder() {
        let dir = tempfile::tempdir().unwrap();
        let config: Config = serde_json::from_str(r#"{"name":"run"}"#).unwrap();
        let force = TrainOptions {
            force: true,
            ..TrainOptions::default()
        };
        // Someone's folder that happens to carry the run's name survives --force.
        let theirs = dir.path().join("theirs");
        fs::create_dir_all(&theirs).unwrap();
        fs::write(theirs.join("notes.txt"), "keep").unwrap();
        let err = prepare_run_dir(&theirs, &config, &force).unwrap_err();
        assert!(matches!(err, TrainError::NotARun { .. }), "{err}");
        assert!(theirs.join("notes.txt").is_file());

        // A run that saved a checkpoint needs --force; one that never did starts again.
        let run = dir.path().join("run");
        prepare_run_dir(&run, &config, &TrainOptions::default()).unwrap();
        fs::write(run.join("metrics.jsonl"), "").unwrap();
        prepare_run_dir(&run, &config, &TrainOptions::default()).unwrap();
        assert!(run.join("config.json").is_file());
        fs::create_dir_all(run.join("checkpoint")).unwrap();
        fs::write(run.join("checkpoint/state.json"), "{}").unwrap();
        let err = prepare_run_dir(&run, &config, &TrainOptions::default()).unwrap_err();
        assert!(matches!(err, TrainError::RunExists { .. }), "{err}");
        prepare_run_dir(&run, &config, &force).unwrap();
        assert!(!run.join("checkpoint").exists());

        // An empty folder is taken as it is.
        let empty = dir.path().join("empty");
        fs::create_dir_all(&empty).unwrap();
        prepare_run_dir(&empty, &config, &TrainOptions::default()).unwrap();
    }

    #[test]
    fn a_failed_allocation_becomes_an_error_and_other_panics_do_not() {
        let err = catch_allocation_failure(|| -> () {
            panic!("Torch(\"\n CUDA out of memory. Tried to allocate 2.00 GiB\nException raised from malloc\")")
        })
        .unwrap_err();
        assert_eq!(err, "CUDA out of memory. Tried to allocate 2.00 GiB");
        assert_eq!(catch_allocation_failure(|| 7), Ok(7));
        let other =
            std::panic::catch_unwind(|| catch_allocation_failure(|| panic!("index out of bounds")));
        assert!(
            other.is_err(),
            "a panic that is not about memory keeps unwinding"
        );
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
        assert!(crate::experiment::diagnosis::is_out_of_memory(&e));
    }
}
