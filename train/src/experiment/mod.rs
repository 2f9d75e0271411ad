//! The original study's experiment workflow: success criteria and quick-test checkpoints,
//! the diagnosis table and config warnings, the two experiment suites, and their reports.

pub mod criteria;
pub mod diagnosis;
pub mod html;
pub mod run_report;
pub mod suite;

use std::fs;
use std::path::Path;

use crate::config::Config;
use criteria::RunMetrics;
pub use suite::{RunReport, Suite, SuiteError};

/// Reads a run folder and writes its `report.html`; returns what the page shows and the
/// metrics it was computed from.
pub fn write_run_report(
    run: &Path,
    config: &Config,
) -> Result<(RunReport, RunMetrics), SuiteError> {
    let (report, metrics) = suite::read_run(run, config)?;
    let path = run.join("report.html");
    fs::write(&path, html::run_page(run, &report)?).map_err(|source| SuiteError::Io {
        path: path.clone(),
        source,
    })?;
    Ok((report, metrics))
}
