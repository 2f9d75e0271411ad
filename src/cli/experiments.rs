//! `crossdenoise experiments`: the study's experiment suites, resumable, summarised.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use crossdenoise_train::run::Observer;
use crossdenoise_train::study::experiment::suite::{self, Plan, Suite, SuiteOptions};

use super::train::Bar;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("suite").required(true).args(["cross_domain", "loss_ablation", "all"])))]
pub struct Args {
    /// The five cross-domain skip strategies.
    #[arg(long)]
    pub cross_domain: bool,
    /// The seven loss ablations.
    #[arg(long)]
    pub loss_ablation: bool,
    /// Both suites.
    #[arg(long)]
    pub all: bool,
    /// Override trainer.epochs in every run.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Override any config key in every run, e.g. --set data.train_pairs=32 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Folder holding the suites' configs.
    #[arg(long, default_value = "configs")]
    pub configs: PathBuf,
    /// Runs folder; each suite goes to <out>/<suite>.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Retrain runs that are already finished.
    #[arg(long)]
    pub force: bool,
    /// Only rewrite the summaries from the runs on disk.
    #[arg(long)]
    pub summary_only: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let suites: Vec<Suite> = if args.all {
        Suite::ALL.to_vec()
    } else {
        let mut s = Vec::new();
        if args.cross_domain {
            s.push(Suite::CrossDomain);
        }
        if args.loss_ablation {
            s.push(Suite::LossAblation);
        }
        s
    };
    let mut overrides = args.set.clone();
    if let Some(e) = args.epochs {
        overrides.push(format!("trainer.epochs={e}"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the Ctrl-C handler")?;
    let opts = SuiteOptions {
        configs: args.configs.clone(),
        out: args.out.clone(),
        overrides,
        force: args.force,
        stop: Some(stop),
    };
    for s in suites {
        let dir = opts.out.join(s.name());
        let runs = suite::plan(&dir, s.configs(), &opts)?;
        if !args.summary_only {
            let todo = runs.iter().filter(|r| r.plan != Plan::Done).count();
            println!(
                "suite {} ({}): {} runs, {} to train",
                s.name(),
                dir.display(),
                runs.len(),
                todo
            );
            let n = runs.len();
            let mut observer = |i: usize, run: &suite::SuiteRun| -> Box<dyn Observer> {
                println!(
                    "[{}/{n}] {} ({})",
                    i + 1,
                    run.config.name,
                    match run.plan {
                        Plan::Resume => "resuming from its checkpoint",
                        _ => "training",
                    }
                );
                Box::new(Bar::default())
            };
            let complete = suite::run(&dir, &runs, &opts, &mut observer)?;
            if !complete {
                println!(
                    "suite {} interrupted; the run keeps its checkpoint. Run the same command \
                     again to resume (finished runs are kept).",
                    s.name()
                );
                return Ok(ExitCode::from(130));
            }
        }
        let title = format!("Experiment suite: {}", s.name());
        let (reports, missing) = suite::summarise(&dir, &title, &runs)?;
        println!("suite {}:", s.name());
        for r in &reports {
            let failed: Vec<&str> = r.failed().iter().map(|c| c.id).collect();
            println!(
                "  {:<24} {}/{} criteria{}{}",
                r.name,
                r.passed(),
                r.criteria.len(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!("; failed: {}", failed.join(", "))
                },
                r.diagnosis
                    .first()
                    .map(|d| format!("; diagnosis: {}", d.symptom))
                    .unwrap_or_default()
            );
        }
        for m in &missing {
            println!("  {m:<24} not run yet");
        }
        println!(
            "  summary: {0}/summary.md, summary.csv, report.html, curves_*.png",
            dir.display()
        );
    }
    // Failing criteria are the experiments' findings, not an error of the command.
    Ok(ExitCode::SUCCESS)
}
