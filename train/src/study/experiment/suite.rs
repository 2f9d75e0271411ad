//! The experiment suites of the original study: runs a list of configs into
//! `<out>/<suite>/<name>`, resumes a suite whose runs are partly done, and writes the
//! suite's summary (Markdown, CSV, overlaid curves, an HTML page).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use super::criteria::{self, RunMetrics};
use super::diagnosis::{self, RunOutcome};
pub use super::run_report::RunReport;
use crate::config::{Config, ConfigError};
use crate::run::checkpoint;
use crate::run::curves::{self, Curve, Panel};
use crate::run::{Observer, TrainError, TrainOptions};
use crate::study::training::{self, StudySummary};
use crate::study::{Validation, curves as study_curves};

/// The study's two suites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// The five cross-domain skip strategies.
    CrossDomain,
    /// The seven loss-weight ablations.
    LossAblation,
}

impl Suite {
    pub const ALL: [Suite; 2] = [Suite::CrossDomain, Suite::LossAblation];

    /// The suite's folder under the runs folder.
    pub fn name(self) -> &'static str {
        match self {
            Suite::CrossDomain => "cross_domain",
            Suite::LossAblation => "loss_ablation",
        }
    }

    /// Its configs (file stems under `configs/`), in the order the summary lists them.
    pub fn configs(self) -> &'static [&'static str] {
        match self {
            Suite::CrossDomain => &[
                "cross_no_skip",
                "cross_target_skip",
                "cross_baseline",
                "cross_zero_skip",
                "cross_mixed_skip",
            ],
            Suite::LossAblation => &[
                "ablation_all_losses",
                "ablation_no_content",
                "ablation_no_recon",
                "ablation_no_cross",
                "ablation_only_cross",
                "ablation_content_recon",
                "ablation_strong_edge",
            ],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("run {name}: {source}")]
    Train {
        name: String,
        #[source]
        source: Box<TrainError>,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Summary { path: PathBuf, reason: String },
    #[error(transparent)]
    Curves(#[from] curves::CurveError),
    #[error(transparent)]
    Page(#[from] super::html::PageError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SuiteError + '_ {
    move |source| SuiteError::Io {
        path: path.into(),
        source,
    }
}

/// What to do with one run of a suite, decided from its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    /// Finished under this very config: kept as it is.
    Done,
    /// Has a checkpoint: continue from it.
    Resume,
    /// Nothing usable: train from scratch (a partial folder without checkpoint is replaced).
    Fresh,
}

/// How to run a suite.
#[derive(Debug, Clone, Default)]
pub struct SuiteOptions {
    /// The folder holding the suite's configs.
    pub configs: PathBuf,
    /// The runs folder; the suite goes to `<out>/<suite name>`.
    pub out: PathBuf,
    /// `key=value` overrides applied to every config (`--epochs` becomes one).
    pub overrides: Vec<String>,
    /// Retrain finished runs too.
    pub force: bool,
    /// Set from outside (Ctrl-C): the current run stops with a checkpoint, the suite stops.
    pub stop: Option<Arc<AtomicBool>>,
}

/// One run of a suite, before training.
#[derive(Debug, Clone)]
pub struct SuiteRun {
    pub config: Config,
    pub file: PathBuf,
    pub plan: Plan,
}

/// Loads every config of `names` (with the overrides) and decides each run's plan.
pub fn plan(
    suite_dir: &Path,
    names: &[&str],
    opts: &SuiteOptions,
) -> Result<Vec<SuiteRun>, SuiteError> {
    names
        .iter()
        .map(|name| {
            let file = opts.configs.join(format!("{name}.json"));
            let config = Config::load(&file)?.with_overrides(&opts.overrides, &file)?;
            let plan = if opts.force {
                Plan::Fresh
            } else {
                run_plan(&suite_dir.join(&config.name), &config)
            };
            Ok(SuiteRun { config, file, plan })
        })
        .collect()
}

/// Done when the folder's summary says it finished every epoch of this exact config;
/// Resume when a checkpoint is there; else Fresh.
pub fn run_plan(run: &Path, config: &Config) -> Plan {
    let finished = fs::read(run.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<StudySummary>(&b).ok())
        .is_some_and(|s| {
            !s.interrupted
                && s.epochs_done == config.trainer.epochs
                && s.config_hash == config.hash()
        });
    if finished {
        Plan::Done
    } else if checkpoint::find(run).is_ok() {
        Plan::Resume
    } else {
        Plan::Fresh
    }
}

/// Runs a suite's configs in order, skipping finished runs and resuming interrupted ones;
/// `observer` is asked for a progress observer per trained run. Returns whether the suite
/// completed (false: stopped from outside, the interrupted run keeps its checkpoint).
pub fn run(
    suite_dir: &Path,
    runs: &[SuiteRun],
    opts: &SuiteOptions,
    observer: &mut dyn FnMut(usize, &SuiteRun) -> Box<dyn Observer>,
) -> Result<bool, SuiteError> {
    fs::create_dir_all(suite_dir).map_err(io(suite_dir))?;
    for (i, run) in runs.iter().enumerate() {
        if run.plan == Plan::Done {
            continue;
        }
        let train_opts = TrainOptions {
            out: suite_dir.into(),
            resume: run.plan == Plan::Resume,
            force: run.plan == Plan::Fresh,
            stop: opts.stop.clone(),
            stop_after_steps: None,
            world: Default::default(),
        };
        let mut obs = observer(i, run);
        match training::train(&run.config, &train_opts, obs.as_mut()) {
            Ok(s) if s.interrupted => return Ok(false),
            Ok(_) => {}
            // A run that diverges is a result of the suite, not the end of it: its folder
            // keeps the error for the summary and `diagnose`.
            Err(TrainError::Diverged { .. } | TrainError::BlewUp { .. }) => {}
            Err(e) => {
                return Err(SuiteError::Train {
                    name: run.config.name.clone(),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(true)
}

/// Reads a run folder: its metrics, criteria, diagnosis, time and error.
pub fn read_run(run: &Path, config: &Config) -> Result<(RunReport, RunMetrics), SuiteError> {
    let metrics_path = run.join("metrics.jsonl");
    let lines = study_curves::read_metrics(&metrics_path).map_err(io(&metrics_path))?;
    let m = RunMetrics::from_lines(&lines);
    let error = fs::read_to_string(run.join("error.txt")).ok();
    let seconds = fs::read(run.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<StudySummary>(&b).ok())
        .map(|s| s.seconds);
    let outcome = RunOutcome {
        error: error.clone(),
    };
    let w = &config.trainer.loss_weights;
    let report = RunReport {
        name: config.name.clone(),
        strategy: config.trainer.cross_domain_strategy.name().to_string(),
        weights: [w.content, w.recon, w.cross, w.edge],
        epochs: m.epochs,
        steps: m.steps.len(),
        seconds,
        final_losses: criteria::LOSSES.map(|n| m.trend(n).map(|t| t.last)),
        cross_drop: m.trend("cross").map(|t| t.drop()),
        validation: m.val.clone(),
        criteria: criteria::success_criteria(&m, config),
        diagnosis: diagnosis::diagnose(&m, config, &outcome),
        error,
    };
    Ok((report, m))
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

/// The run table as CSV: one row per run, one column per figure and criterion.
pub fn summary_csv(reports: &[RunReport]) -> String {
    let ids: Vec<&str> = reports
        .first()
        .map(|r| r.criteria.iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let mut s = String::from(
        "name,strategy,w_content,w_recon,w_cross,w_edge,epochs,steps,seconds,\
         content,recon,cross,edge,cross_drop_pct,\
         psnr_cross_a,psnr_cross_b,psnr_recon_a,psnr_recon_b,psnr_acquired_a,psnr_acquired_b,\
         ssim_cross_a,ssim_cross_b,ssim_acquired_a,ssim_acquired_b,sharpness_cross_a,sharpness_cross_b",
    );
    for id in &ids {
        let _ = write!(s, ",{id}");
    }
    s.push_str(",passed,diagnosis\n");
    for r in reports {
        let v = r.validation.as_ref();
        let clean = |f: fn(&Validation) -> Option<f64>| opt(v.and_then(f), 3);
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{}",
            r.name,
            r.strategy,
            r.weights[0],
            r.weights[1],
            r.weights[2],
            r.weights[3],
            r.epochs,
            r.steps,
            opt(r.seconds, 1)
        );
        for l in r.final_losses {
            let _ = write!(s, ",{}", opt(l, 5));
        }
        let _ = write!(s, ",{}", opt(r.cross_drop.map(|d| 100.0 * d), 1));
        for f in [
            (|v: &Validation| v.cross_a.psnr_clean) as fn(&_) -> _,
            |v| v.cross_b.psnr_clean,
            |v| v.recon_a.psnr_clean,
            |v| v.recon_b.psnr_clean,
            |v| v.baseline_a.map(|b| b.psnr),
            |v| v.baseline_b.map(|b| b.psnr),
            |v| v.cross_a.ssim_clean,
            |v| v.cross_b.ssim_clean,
            |v| v.baseline_a.map(|b| b.ssim),
            |v| v.baseline_b.map(|b| b.ssim),
            |v| v.cross_a.sharpness,
            |v| v.cross_b.sharpness,
        ] {
            let _ = write!(s, ",{}", clean(f));
        }
        for c in &r.criteria {
            let _ = write!(s, ",{}", c.outcome);
        }
        let symptoms: Vec<&str> = r.diagnosis.iter().map(|d| d.symptom).collect();
        let _ = writeln!(
            s,
            ",{}/{},\"{}\"",
            r.passed(),
            r.criteria.len(),
            symptoms.join("; ")
        );
    }
    s
}

/// The suite summary in Markdown: the table, the criteria with thresholds, and per run what
/// failed with its numbers and the diagnosis.
pub fn summary_markdown(title: &str, reports: &[RunReport], domains: &[String; 2]) -> String {
    let [a, b] = domains;
    let mut s = format!("# {title}\n\n");
    let _ = writeln!(
        s,
        "Final losses are the mean of the last steps (a tenth of the run, at most 10); PSNR \
         and SSIM are against the clean phantom on the validation set, next to the acquired \
         (noisy) image's own, the baseline a denoised path must beat.\n"
    );
    let _ = writeln!(
        s,
        "| run | strategy | weights c/r/x/e | epochs | time | content | recon | cross | edge | \
         cross drop | PSNR {a}<-{b} | PSNR {b}<-{a} | acquired {a} / {b} | SSIM {a}<-{b} | \
         criteria |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(15));
    for r in reports {
        let v = r.validation.as_ref();
        let psnr = |x: Option<f64>| opt(x, 2);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {}/{} |",
            r.name,
            r.strategy,
            r.weights.map(|w| w.to_string()).join("/"),
            r.epochs,
            r.seconds
                .map(|t| format!("{t:.0} s"))
                .unwrap_or_else(|| "-".into()),
            opt(r.final_losses[0], 4),
            opt(r.final_losses[1], 4),
            opt(r.final_losses[2], 4),
            opt(r.final_losses[3], 4),
            r.cross_drop
                .map(|d| format!("{:.1}%", 100.0 * d))
                .unwrap_or_else(|| "-".into()),
            psnr(v.and_then(|v| v.cross_a.psnr_clean)),
            psnr(v.and_then(|v| v.cross_b.psnr_clean)),
            psnr(v.and_then(|v| v.baseline_a.map(|x| x.psnr))),
            psnr(v.and_then(|v| v.baseline_b.map(|x| x.psnr))),
            opt(v.and_then(|v| v.cross_a.ssim_clean), 4),
            r.passed(),
            r.criteria.len()
        );
    }
    if let Some(first) = reports.first() {
        let _ = writeln!(s, "\n## Success criteria\n");
        for (i, c) in first.criteria.iter().enumerate() {
            let _ = writeln!(s, "{}. {} — `{}`: {}", i + 1, c.title, c.id, c.threshold);
        }
    }
    let _ = writeln!(s, "\n## Per run\n");
    for r in reports {
        let _ = writeln!(s, "### {}\n", r.name);
        if let Some(e) = &r.error {
            let _ = writeln!(s, "Stopped with an error: {}\n", e.trim());
        }
        for c in &r.criteria {
            let _ = writeln!(s, "- {} {}: {}", c.outcome, c.title, c.measured);
        }
        if r.diagnosis.is_empty() {
            let _ = writeln!(s, "\nDiagnosis: no row of the table matches.\n");
        } else {
            let _ = writeln!(s, "\nDiagnosis:\n");
            for d in &r.diagnosis {
                let _ = writeln!(
                    s,
                    "- **{}** ({}): {} — evidence: {}",
                    d.symptom, d.cause, d.remedy, d.evidence
                );
            }
            s.push('\n');
        }
    }
    s
}

/// A moving average, so overlaid batch-2 step curves stay readable.
fn smooth(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let w = (points.len() / 50).max(1);
    points
        .windows(w)
        .map(|win| {
            let n = win.len() as f64;
            (
                win[win.len() - 1].0,
                win.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

/// A run's curves for the overlays: its name and its metrics.
pub struct RunCurves {
    pub name: String,
    pub metrics: RunMetrics,
}

/// One PNG per loss (`curves_<loss>.png`) overlaying every run, and one of the cross paths'
/// validation PSNR per epoch (`curves_psnr.png`). Returns the files written.
pub fn overlay_curves(suite_dir: &Path, runs: &[RunCurves]) -> Result<Vec<PathBuf>, SuiteError> {
    let mut written = Vec::new();
    for name in ["total", "content", "recon", "cross", "edge"] {
        let curves: Vec<Curve> = runs
            .iter()
            .filter_map(|r| {
                let points: Vec<(f64, f64)> = r
                    .metrics
                    .series(name)
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| ((i + 1) as f64, v))
                    .collect();
                (!points.is_empty()).then(|| Curve {
                    label: r.name.clone(),
                    points: smooth(&points),
                })
            })
            .collect();
        if curves.is_empty() {
            continue;
        }
        let path = suite_dir.join(format!("curves_{name}.png"));
        curves::draw(
            &path,
            &[Panel {
                title: format!("{name} loss (moving average)"),
                x_label: "step".into(),
                y_label: "L1".into(),
                log_y: true,
                curves,
            }],
            1,
        )?;
        written.push(path);
    }
    let curves: Vec<Curve> = runs
        .iter()
        .filter(|r| !r.metrics.cross_psnr.is_empty())
        .map(|r| Curve {
            label: r.name.clone(),
            points: r
                .metrics
                .cross_psnr
                .iter()
                .map(|&(e, v)| (e as f64, v))
                .collect(),
        })
        .collect();
    if !curves.is_empty() {
        let path = suite_dir.join("curves_psnr.png");
        curves::draw(
            &path,
            &[Panel {
                title: "cross path PSNR vs clean (validation)".into(),
                x_label: "epoch".into(),
                y_label: "dB".into(),
                log_y: false,
                curves,
            }],
            1,
        )?;
        written.push(path);
    }
    Ok(written)
}

/// Reads every run of a suite and writes `summary.md`, `summary.csv`, the overlaid curves
/// and `report.html`. Runs with no metrics yet are left out (and named in the result).
pub fn summarise(
    suite_dir: &Path,
    title: &str,
    runs: &[SuiteRun],
) -> Result<(Vec<RunReport>, Vec<String>), SuiteError> {
    let mut reports = Vec::new();
    let mut missing = Vec::new();
    let mut curves_in = Vec::new();
    for run in runs {
        let dir = suite_dir.join(&run.config.name);
        if !dir.join("metrics.jsonl").exists() {
            missing.push(run.config.name.clone());
            continue;
        }
        let (report, metrics) = write_run_report(&dir, &run.config)?;
        curves_in.push(RunCurves {
            name: run.config.name.clone(),
            metrics,
        });
        reports.push(report);
    }
    let domains = runs
        .first()
        .map(|r| r.config.data.domains.clone())
        .unwrap_or_else(|| ["pd".into(), "pdfs".into()]);
    let write = |name: &str, text: &str| {
        let path = suite_dir.join(name);
        fs::write(&path, text).map_err(io(&path))
    };
    write("summary.csv", &summary_csv(&reports))?;
    write("summary.md", &summary_markdown(title, &reports, &domains))?;
    let pictures = overlay_curves(suite_dir, &curves_in)?;
    write(
        "report.html",
        &super::html::suite_page(title, &reports, &pictures, suite_dir, &domains)?,
    )?;
    Ok((reports, missing))
}
/// Reads a run folder and writes its `report.html`; returns what the page shows and the
/// metrics it was computed from.
pub fn write_run_report(
    run: &Path,
    config: &Config,
) -> Result<(RunReport, RunMetrics), SuiteError> {
    let (report, metrics) = read_run(run, config)?;
    let path = run.join("report.html");
    fs::write(&path, super::html::run_page(run, &report)?).map_err(|source| SuiteError::Io {
        path: path.clone(),
        source,
    })?;
    Ok((report, metrics))
}
