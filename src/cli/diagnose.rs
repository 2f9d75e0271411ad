//! `crossdenoise diagnose <run>` and `crossdenoise check <config>`: the study's diagnosis
//! table after training, and its config traps before.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use crossdenoise_train::Config;
use crossdenoise_train::config::DataSource;
use crossdenoise_train::data::fastmri;
use crossdenoise_train::study::experiment::suite;

use super::train::{print_checks, print_warnings, resolve_config};

#[derive(Debug, clap::Args)]
pub struct DiagnoseArgs {
    /// A run folder (holding config.json and metrics.jsonl).
    pub run: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Config file to check.
    pub config: PathBuf,
    /// Exit non-zero when any warning is found.
    #[arg(long)]
    pub strict: bool,
    /// Override any config key, as `train --set` does (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn diagnose(args: DiagnoseArgs) -> anyhow::Result<ExitCode> {
    let config_path = args.run.join("config.json");
    if !config_path.exists() {
        anyhow::bail!(
            "{}: not a run folder (no config.json; runs are under runs/<name>)",
            args.run.display()
        );
    }
    let config = Config::load(&config_path)?;
    super::train::dual_domain_only(&config, "diagnose")?;
    let (report, _) = suite::read_run(&args.run, &config)
        .with_context(|| format!("cannot read run {}", args.run.display()))?;
    println!(
        "run {}: {} epochs, {} steps, strategy {}",
        report.name, report.epochs, report.steps, report.strategy
    );
    if let Some(e) = &report.error {
        println!("stopped with: {}", e.trim());
    }
    println!("success criteria:");
    print_checks(&report.criteria);
    if report.diagnosis.is_empty() {
        println!("diagnosis: no row of the table matches");
    }
    for d in &report.diagnosis {
        println!("diagnosis: {}", d.symptom);
        println!("  likely cause: {}", d.cause);
        println!("  evidence:     {}", d.evidence);
        println!("  remedy:       {}", d.remedy);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let config = resolve_config(&args.config, None, None, &args.set)?;
    if config.data.source == DataSource::Fastmri {
        // What a run would read, from the files themselves: a wrong layout fails here.
        print!("{}", fastmri::Plan::new(&config)?.describe());
    }
    let n = print_warnings(&config, &args.config);
    if n == 0 {
        println!("{}: valid, none of the known traps", args.config.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: valid, {n} warning(s)", args.config.display());
    Ok(if args.strict {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
