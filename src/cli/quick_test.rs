//! `crossdenoise quick-test`: a short training run judged by the study's three checkpoints.

use std::path::PathBuf;
use std::process::ExitCode;

use crossdenoise_train::device::Backend;
use crossdenoise_train::run::TrainOptions;
use crossdenoise_train::study;
use crossdenoise_train::study::experiment::{self, criteria};

use super::train::{Bar, print_checks, print_validation, print_warnings, resolve_config};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file (JSON; see configs/).
    pub config: PathBuf,
    /// Epochs to train (the study's quick test used 2).
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Override trainer.backend.
    #[arg(long)]
    pub backend: Option<Backend>,
    /// Parent folder of the quick-test runs (each run replaces the previous one).
    #[arg(long, default_value = "runs/quick-test")]
    pub out: PathBuf,
    /// Override any config key, e.g. --set trainer.lr=1e-4 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = resolve_config(&args.config, Some(args.epochs), args.backend, &args.set)?;
    super::train::dual_domain_only(&config, "quick-test")?;
    print_warnings(&config, &args.config);
    println!(
        "quick test of {} ({} epochs, {} strategy)",
        args.config.display(),
        args.epochs,
        config.trainer.cross_domain_strategy.name()
    );
    let opts = TrainOptions {
        out: args.out,
        force: true,
        ..Default::default()
    };
    let mut bar = Bar::default();
    let summary = study::train(&config, &opts, &mut bar)?;
    if let Some(b) = bar.bar.take() {
        b.finish_and_clear();
    }
    if let Some(v) = &summary.finals.final_val {
        print_validation(v, &config.data.domains);
    }
    let (report, metrics) = experiment::write_run_report(&summary.run_dir, &config)?;
    let checks = criteria::quick_checkpoints(&metrics);
    println!("checkpoints:");
    print_checks(&checks);
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.outcome == criteria::Outcome::Fail)
        .map(|c| c.title)
        .collect();
    for d in &report.diagnosis {
        println!(
            "diagnosis: {} ({}): {} [{}]",
            d.symptom, d.cause, d.remedy, d.evidence
        );
    }
    println!("run: {}", summary.run_dir.join("report.html").display());
    if failed.is_empty() {
        println!("quick test PASSED");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("quick test FAILED: {}", failed.join("; "));
        Ok(ExitCode::FAILURE)
    }
}
