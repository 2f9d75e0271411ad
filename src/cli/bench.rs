//! `crossdenoise bench`: timings too long for criterion (a CPU training step takes seconds).

use std::process::ExitCode;

use crossdenoise_train::device::Backend;
use crossdenoise_train::model::Precision;
use crossdenoise_train::study::bench::{self, BenchModel, StepBenchConfig};

use super::processes::Processes;
use super::progress;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// One training step: the dual-domain model (all four losses, backward, Adam), or the
    /// guided denoisers (both directions, backward, Adam).
    TrainStep {
        /// dual-domain or guided.
        #[arg(long, default_value = "dual-domain")]
        model: BenchModel,
        #[arg(long, default_value = "flex")]
        backend: Backend,
        #[arg(long, default_value_t = 0)]
        device_index: usize,
        #[arg(long, default_value_t = 16)]
        channels: usize,
        #[arg(long, default_value_t = 4)]
        depth: usize,
        #[arg(long, default_value_t = 128)]
        size: usize,
        #[arg(long, default_value_t = 4)]
        batch: usize,
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// What the convolutions compute in: f32, or bf16 (libtorch backends).
        #[arg(long, default_value = "f32")]
        precision: Precision,
        /// Leave out the edge loss (as the C32 PyTorch reference figure does).
        #[arg(long)]
        no_edge: bool,
        /// Print the result as one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// The exchange of one step's gradients between data-parallel processes (host copies
    /// and the sum over the processes), with real gradients of the network; run it under
    /// `mpirun -np N` with a build with the `mpi` feature.
    GradientExchange {
        /// dual-domain or guided.
        #[arg(long, default_value = "guided")]
        model: BenchModel,
        #[arg(long, default_value_t = 16)]
        channels: usize,
        #[arg(long, default_value_t = 3)]
        depth: usize,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Print the result as one JSON line.
        #[arg(long)]
        json: bool,
    },
}

// Long: a dispatch over the subcommands, each printing its own result line.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        What::TrainStep {
            model,
            backend,
            device_index,
            channels,
            depth,
            size,
            batch,
            warmup,
            steps,
            precision,
            no_edge,
            json,
        } => {
            anyhow::ensure!(steps > 0, "--steps must be at least 1");
            let cfg = StepBenchConfig {
                model,
                backend,
                device_index,
                base_channels: channels,
                depth,
                size,
                batch,
                warmup,
                steps,
                edge: !no_edge,
                precision,
            };
            let bar = progress::bar((warmup + steps) as u64, "train steps");
            let r = bench::train_step(&cfg, |n| bar.set_position(n as u64))?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "train step {:?} {} {} C{} d{} {}x{} batch {}: median {:.3} s (min {:.3}, max {:.3}) over {} steps, peak RSS {:.0} MB",
                    r.model,
                    r.backend,
                    r.precision,
                    r.base_channels,
                    r.depth,
                    r.size,
                    r.size,
                    r.batch,
                    r.median_s,
                    r.min_s,
                    r.max_s,
                    r.steps,
                    r.peak_rss_mb.unwrap_or(0.0)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        What::GradientExchange {
            model,
            channels,
            depth,
            warmup,
            steps,
            json,
        } => {
            anyhow::ensure!(steps > 0, "--steps must be at least 1");
            let processes = Processes::join()?;
            let world = &processes.world;
            let cfg = StepBenchConfig {
                model,
                backend: Backend::Flex,
                device_index: 0,
                base_channels: channels,
                depth,
                size: 32,
                batch: 1,
                warmup,
                steps,
                edge: true,
                precision: Precision::F32,
            };
            let r = bench::gradient_exchange(&cfg, world, |_| {}).map_err(|e| processes.fail(e))?;
            if !world.is_lead() {
                return Ok(ExitCode::SUCCESS);
            }
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "gradient exchange {:?} C{} d{}, {} processes: {} values ({:.1} MB) in {:.2} ms median (min {:.2}, max {:.2}) over {} steps; the sum alone {:.2} ms",
                    r.model,
                    r.base_channels,
                    r.depth,
                    r.processes,
                    r.parameters,
                    r.bytes as f64 / 1e6,
                    r.median_s * 1e3,
                    r.min_s * 1e3,
                    r.max_s * 1e3,
                    r.steps,
                    r.transport_median_s * 1e3
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
