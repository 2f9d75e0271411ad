//! The original study's experiment workflow: success criteria and quick-test checkpoints,
//! the diagnosis table and config warnings, the two experiment suites, and their reports.

pub mod criteria;
pub mod diagnosis;
pub mod html;
pub mod run_report;
pub mod suite;

pub use suite::{RunReport, Suite, SuiteError, write_run_report};
