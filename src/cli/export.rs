//! `crossdenoise export`: a trained run's no_skip path as a parity-checked ONNX model.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use crossdenoise_export::{ExportOptions, Weights, export, graph};
use crossdenoise_train::denoiser::validation::DirectionValidation;
use crossdenoise_train::model::Domain;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A training run folder (runs/<name>) or one of its checkpoint folders.
    source: PathBuf,
    /// The ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    /// The contrast the model denoises (a or b): a guided or single-contrast run has one
    /// denoiser per contrast. For the study's dual-domain run, the domain whose decoder
    /// writes the cross path's output.
    #[arg(long, default_value = "a", value_parser = parse_domain)]
    to: Domain,
    /// Dual-domain runs only: the domain whose encoder reads the cross path's input
    /// (default b). The cross path synthesises one contrast from the other.
    #[arg(long, value_parser = parse_domain)]
    from: Option<Domain>,
    /// Write without comparing ONNX Runtime against Burn (not recommended).
    #[arg(long)]
    skip_parity: bool,
    /// Float16 weights and compute with float32 input / output (checked against Burn with
    /// a tolerance of its own).
    #[arg(long)]
    fp16: bool,
    /// Also write a Triton Inference Server model repository into this folder.
    #[arg(long, value_name = "DIR")]
    triton_repo: Option<PathBuf>,
    /// Which weights: `average` (the running average a run with `trainer.average_weights`
    /// keeps) or `last` (the last step's). Default: the average where the run kept one.
    #[arg(long, value_parser = parse_weights)]
    weights: Option<Weights>,
}

fn parse_domain(s: &str) -> Result<Domain, String> {
    s.parse()
}

fn parse_weights(s: &str) -> Result<Weights, String> {
    match s {
        "average" => Ok(Weights::Average),
        "last" => Ok(Weights::Last),
        other => Err(format!("{other:?}: expected average or last")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.skip_parity {
        eprintln!("warning: --skip-parity: the model is written without checking it against Burn");
    }
    let report = export(&ExportOptions {
        source: args.source,
        out: args.out,
        from: args.from,
        to: args.to,
        skip_parity: args.skip_parity,
        fp16: args.fp16,
        triton_repo: args.triton_repo,
        weights: args.weights,
    })?;
    let m = &report.metadata;
    println!(
        "wrote {} ({}{}{}; {} nodes, {} parameters, {:.1} KiB; IR {}, opset {})",
        report.out.display(),
        m.path_label(),
        if report.fp16 { ", fp16" } else { "" },
        match report.weights {
            Weights::Average => ", averaged weights",
            Weights::Last => "",
        },
        report.nodes,
        report.parameters,
        report.bytes as f64 / 1024.0,
        graph::IR_VERSION,
        graph::OPSET
    );
    println!("nodes per op type:");
    for (op, n) in &report.op_counts {
        println!("  {op:<22} {n}");
    }
    match &report.parity {
        Some(p) => {
            println!(
                "parity with Burn{}: max abs error {:.2e} (tolerance {:.0e})",
                if report.fp16 { " (fp16 model)" } else { "" },
                p.max_abs_error(),
                report.tolerance
            );
            print!("{p}");
        }
        None => println!("parity with Burn: not checked (--skip-parity)"),
    }
    if let Some(v) = &report.validation {
        print_validation(v);
    }
    if let Some(dir) = &report.triton {
        println!("Triton model repository entry: {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The exported denoiser's last validation, and a warning when it scored below the acquired
/// image: such a model makes every slice worse and is written only so it can be inspected.
fn print_validation(v: &DirectionValidation) {
    if let (Some(d), Some(q)) = (&v.denoised, &v.acquired) {
        println!(
            "validation at the run's last epoch: {:.2} dB / SSIM {:.3} against clean, the \
             acquired image {:.2} dB / SSIM {:.3}",
            d.psnr, d.ssim, q.psnr, q.ssim
        );
    }
    if let Some((denoised, acquired)) = v.below_acquired() {
        eprintln!(
            "{}",
            below_acquired_warning("this model", denoised, acquired)
        );
    }
}

/// What `train` and `export` say of a denoiser that scores below its own input.
pub fn below_acquired_warning(what: &str, denoised: f64, acquired: f64) -> String {
    format!(
        "warning: {what} scores below the acquired image on the validation slices \
         ({denoised:.2} dB against {acquired:.2} dB): it would make every slice worse. Its \
         training failed (it diverged, see the loss in metrics.jsonl, or trained too few \
         steps); lower trainer.lr or set trainer.grad_clip_norm, and train it again before \
         serving it"
    )
}
