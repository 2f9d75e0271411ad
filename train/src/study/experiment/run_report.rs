//! What a suite's summary and a run's page say about one run, read from its folder by
//! `suite::read_run` and drawn by `html`.

use serde::Serialize;

use super::criteria::{Check, Outcome};
use super::diagnosis::Finding;
use crate::study::records::Validation;

/// Everything the summary says about one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub name: String,
    pub strategy: String,
    pub weights: [f32; 4],
    pub epochs: usize,
    pub steps: usize,
    pub seconds: Option<f64>,
    /// Last-window mean of each loss (content, recon, cross, edge); `None` if switched off.
    pub final_losses: [Option<f64>; 4],
    pub cross_drop: Option<f64>,
    pub validation: Option<Validation>,
    pub criteria: Vec<Check>,
    pub diagnosis: Vec<Finding>,
    pub error: Option<String>,
}

impl RunReport {
    pub fn passed(&self) -> usize {
        self.criteria
            .iter()
            .filter(|c| c.outcome == Outcome::Pass)
            .count()
    }

    pub fn failed(&self) -> Vec<&Check> {
        self.criteria
            .iter()
            .filter(|c| c.outcome == Outcome::Fail)
            .collect()
    }
}
