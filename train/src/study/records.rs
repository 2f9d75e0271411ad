//! What a study run writes down: the lines of its `metrics.jsonl`, the validation scores in
//! them and the running loss sums its checkpoint carries, apart from the task that fills
//! them, so that the curves and the suites read them without importing it (docs/DESIGN.md,
//! "Outputs of a training run").

use serde::{Deserialize, Serialize};

use super::loss::LossValues;

/// Running sums of the losses of an epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossSums {
    pub count: u64,
    pub total: f64,
    pub content: f64,
    pub recon: f64,
    pub cross: f64,
    pub edge: f64,
}

impl LossSums {
    pub(crate) fn add(&mut self, v: &LossValues) {
        self.count += 1;
        self.total += f64::from(v.total);
        self.content += f64::from(v.content.unwrap_or(0.0));
        self.recon += f64::from(v.recon.unwrap_or(0.0));
        self.cross += f64::from(v.cross.unwrap_or(0.0));
        self.edge += f64::from(v.edge.unwrap_or(0.0));
    }

    pub(crate) fn mean(&self, template: &LossValues) -> LossValues {
        let n = self.count.max(1) as f64;
        let m = |s: f64, present: Option<f32>| present.map(|_| (s / n) as f32);
        LossValues {
            total: (self.total / n) as f32,
            content: m(self.content, template.content),
            recon: m(self.recon, template.recon),
            cross: m(self.cross, template.cross),
            edge: m(self.edge, template.edge),
        }
    }
}

/// PSNR / SSIM of one output path, against the dataset target and (phantoms) the clean image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PathScore {
    pub psnr: f64,
    pub ssim: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub psnr_clean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ssim_clean: Option<f64>,
    /// Gradient energy over the clean image's (phantoms): below 1 is smoother than the
    /// anatomy, above 1 carries noise.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sharpness: Option<f64>,
}

/// Validation of one epoch: every path, and the acquired targets' own quality against clean
/// (the baseline a denoised path must beat).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub recon_a: PathScore,
    pub recon_b: PathScore,
    pub cross_a: PathScore,
    pub cross_b: PathScore,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub baseline_a: Option<PathScore>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub baseline_b: Option<PathScore>,
}

/// One line of a study run's metrics.jsonl.
pub type MetricLine = crate::run::MetricLine<LossValues, Validation>;
