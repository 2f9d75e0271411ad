//! `crossdenoise train`: one training run from a config file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use crossdenoise_train::Config;
use crossdenoise_train::denoiser::validation::DenoiserValidation;
use crossdenoise_train::device::Backend;
use crossdenoise_train::job::{self, Finals};
use crossdenoise_train::model::{Precision, PrecisionSetting};
use crossdenoise_train::run::{self, Observer, RunSummary, TrainOptions};
use crossdenoise_train::study::experiment::{self, criteria::Check, diagnosis};
use crossdenoise_train::study::{PathScore, Validation};
use indicatif::ProgressBar;

use super::export::below_acquired_warning;
use super::processes::Processes;
use super::progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file (JSON; see configs/).
    pub config: PathBuf,
    /// Override trainer.epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override trainer.backend (flex, auto, ndarray, wgpu, cuda, libtorch, libtorch-cuda).
    #[arg(long)]
    pub backend: Option<Backend>,
    /// Override trainer.device_index: which GPU a GPU backend trains on.
    #[arg(long, value_name = "INDEX")]
    pub device: Option<usize>,
    /// Override trainer.precision: auto (bf16 where the backend and hardware have it), f32,
    /// or bf16 (mixed precision; libtorch backends).
    #[arg(long)]
    pub precision: Option<PrecisionSetting>,
    /// Parent folder of run folders.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Continue the run from its checkpoint.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Replace an existing run of the same name.
    #[arg(long)]
    pub force: bool,
    /// Override any config key, e.g. --set trainer.lr=1e-4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Loads the config and applies the command line's overrides.
pub fn resolve_config(
    path: &std::path::Path,
    epochs: Option<usize>,
    backend: Option<Backend>,
    set: &[String],
) -> anyhow::Result<Config> {
    let mut overrides = set.to_vec();
    if let Some(e) = epochs {
        overrides.push(format!("trainer.epochs={e}"));
    }
    if let Some(b) = backend {
        overrides.push(format!("trainer.backend=\"{b}\""));
    }
    Ok(Config::load(path)?.with_overrides(&overrides, path)?)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut set = args.set.clone();
    if let Some(i) = args.device {
        set.push(format!("trainer.device_index={i}"));
    }
    if let Some(p) = args.precision {
        set.push(format!("trainer.precision=\"{p}\""));
    }
    let config = resolve_config(&args.config, args.epochs, args.backend, &set)?;
    print_warnings(&config, &args.config);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // A second Ctrl-C while the checkpoint is written is ignored: the write is atomic anyway.
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    // mpirun ends its processes on Ctrl-C, but forwards SIGUSR1 to each: the way to stop a
    // run of several processes with a checkpoint (docs/training.md).
    #[cfg(unix)]
    {
        let usr1 = stop.clone();
        // SAFETY: the action only stores to an atomic, which is async-signal-safe.
        unsafe {
            signal_hook_registry::register(libc::SIGUSR1, move || {
                usr1.store(true, Ordering::SeqCst)
            })
        }
        .context("cannot install the SIGUSR1 handler")?;
    }
    let processes = Processes::join()?;
    let opts = TrainOptions {
        out: args.out,
        resume: args.resume,
        force: args.force,
        stop: Some(stop),
        stop_after_steps: None,
        world: processes.world.clone(),
    };
    if !processes.world.is_lead() {
        // Rank 0 reports and writes for the run; the others only train.
        let trained = job::train(&config, &opts, &mut run::Quiet);
        let code = |s: RunSummary<Finals>| match s.interrupted {
            true => ExitCode::from(130),
            false => ExitCode::SUCCESS,
        };
        return trained.map(code).map_err(|e| processes.fail(e));
    }
    let mut bar = Bar::default();
    let trained = job::train(&config, &opts, &mut bar);
    if let Some(b) = bar.bar.take() {
        b.finish_and_clear();
    }
    let summary = trained.map_err(|e| processes.fail(e))?;
    let run = summary.run_dir.display();
    if summary.interrupted {
        println!(
            "interrupted after step {}; checkpoint saved. Continue with: crossdenoise train {} --resume",
            summary.steps,
            args.config.display()
        );
        return Ok(ExitCode::from(130));
    }
    print_trained(&summary, &config);
    let study = match &summary.finals {
        Finals::Denoiser(finals) => {
            if let Some(last) = &finals.denoiser {
                warn_below_acquired(&last.val, &config.data.domains);
            }
            println!(
                "run: {run} (metrics.jsonl, samples/, curves.png, checkpoint/, summary.json); \
                 export each contrast's denoiser with: crossdenoise export {run} --to a (or b) \
                 --out model.onnx"
            );
            return Ok(ExitCode::SUCCESS);
        }
        Finals::Study(study) => study,
    };
    if let Some(v) = &study.final_val {
        print_validation(v, &config.data.domains);
    }
    let (report, _) = experiment::write_run_report(&summary.run_dir, &config)?;
    print_checks(&report.criteria);
    println!("run: {run} (report.html, metrics.jsonl, samples/, checkpoint/, summary.json)");
    Ok(ExitCode::SUCCESS)
}

pub fn print_validation(v: &Validation, domains: &[String; 2]) {
    let [a, b] = domains;
    let row = |name: String, s: &PathScore| {
        let clean = match (s.psnr_clean, s.ssim_clean) {
            (Some(p), Some(q)) => format!("{p:7.2} dB {q:.4}"),
            _ => "        -".into(),
        };
        println!("  {name:<16} {:7.2} dB {:.4}   {clean}", s.psnr, s.ssim);
    };
    println!("  {:<16} {:>17}   {:>17}", "path", "vs target", "vs clean");
    row(format!("recon {a}"), &v.recon_a);
    row(format!("recon {b}"), &v.recon_b);
    row(format!("cross {a}<-{b}"), &v.cross_a);
    row(format!("cross {b}<-{a}"), &v.cross_b);
    if let Some(s) = &v.baseline_a {
        row(format!("acquired {a}"), s);
    }
    if let Some(s) = &v.baseline_b {
        row(format!("acquired {b}"), s);
    }
}

/// The finished run's line: epochs, steps, pace, memory, device, precision, the processes
/// it trained on, and the rollbacks it made after blow-ups.
fn print_trained<F>(summary: &RunSummary<F>, config: &Config) {
    let processes = match summary.processes {
        1 => String::new(),
        n => format!(
            " x {n} processes ({} of each step's {} per process)",
            summary.batch_per_process, config.trainer.batch_size
        ),
    };
    println!(
        "trained {} epochs ({} steps, {:.2} s/step, peak {:.0} MB) on {}{processes} in {}",
        summary.epochs_done,
        summary.steps,
        summary.seconds_per_step,
        summary.peak_rss_mb.unwrap_or(0.0),
        summary.device,
        summary.precision
    );
    if summary.rollbacks > 0 {
        println!(
            "warning: it blew up and went back to a checkpoint {} time(s); it ended at {} times \
             the configured learning rate (lower trainer.lr to avoid the lost steps)",
            summary.rollbacks, summary.lr_scale
        );
    }
}

/// Progress bar over all steps, showing the live losses.
#[derive(Default)]
pub struct Bar {
    pub bar: Option<ProgressBar>,
}

impl Observer for Bar {
    fn device(&mut self, description: &str, precision: Precision, reason: Option<&str>) {
        match reason {
            Some(why) => {
                println!("training on {description} in {precision}: auto chose it because {why}")
            }
            None => println!("training on {description} in {precision}"),
        }
    }
    fn start(&mut self, total: u64, done: u64) {
        let b = progress::bar(total, "train");
        b.set_position(done);
        self.bar = Some(b);
    }

    fn step(&mut self, epoch: usize, step: u64, losses: &[(String, f32)]) {
        if let Some(b) = &self.bar {
            b.set_position(step);
            let shown: Vec<String> = losses.iter().map(|(n, v)| format!("{n} {v:.4}")).collect();
            b.set_message(format!("epoch {} {}", epoch + 1, shown.join(" ")));
        }
    }

    fn epoch(&mut self, _epoch: usize, line: &str) {
        // Without a terminal the bar is hidden; the epoch lines still belong in the log.
        match &self.bar {
            Some(b) if !b.is_hidden() => b.println(line),
            _ => println!("{line}"),
        }
    }

    fn warn(&mut self, line: &str) {
        match &self.bar {
            Some(b) if !b.is_hidden() => b.suspend(|| eprintln!("warning: {line}")),
            _ => eprintln!("warning: {line}"),
        }
    }
}

/// The study's config traps, as warnings before training starts.
pub fn print_warnings(config: &Config, file: &std::path::Path) -> usize {
    let mut warnings = diagnosis::lint(config);
    if let Some(w) = machine_memory().and_then(|m| diagnosis::memory_warning(config, m)) {
        warnings.push(w);
    }
    for w in &warnings {
        eprintln!("warning: {}: {}: {}", file.display(), w.key, w.message);
    }
    warnings.len()
}

/// The machine's memory in bytes (Linux `/proc/meminfo`); `None` elsewhere.
fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Criteria or checkpoints as aligned PASS / FAIL lines with their numbers.
pub fn print_checks(checks: &[Check]) {
    let width = checks.iter().map(|c| c.title.len()).max().unwrap_or(0);
    for c in checks {
        println!(
            "  {:<4} {:<width$}  {}  [{}]",
            c.outcome.to_string(),
            c.title,
            c.measured,
            c.threshold
        );
    }
}

/// The study's tools (quick test, diagnosis) read a dual-domain run's losses and criteria;
/// a denoiser run has others, so `command` refuses it.
pub fn dual_domain_only(config: &crossdenoise_train::Config, command: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.model.kind.is_denoiser(),
        "{command} applies the original study's checkpoints to a dual-domain run; '{}' is a {} \
         run (its figures are in its metrics.jsonl, curves.png and samples/)",
        config.name,
        config.model.kind
    );
    Ok(())
}

/// A warning for each contrast whose denoiser ends below its acquired image.
fn warn_below_acquired(val: &DenoiserValidation, domains: &[String; 2]) {
    for (name, dir) in domains.iter().zip([&val.a, &val.b]) {
        if let Some((denoised, acquired)) = dir.below_acquired() {
            let what = format!("the {name} denoiser");
            eprintln!("{}", below_acquired_warning(&what, denoised, acquired));
        }
    }
}
