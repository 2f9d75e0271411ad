//! The original study's success criteria and quick-test checkpoints, as measured quantities
//! with their thresholds, computed from a run's `metrics.jsonl`.
//!
//! A loss's "first" and "last" values are the means of a window of steps at each end (a
//! tenth of the run, 1 to 10 steps): single batch-2 steps swing too much to compare.

use std::fmt;

use serde::Serialize;

use crate::config::Config;
use crate::study::loss::LossValues;
use crate::study::records::{MetricLine, Validation};

/// The cross loss must fall by at least this fraction of its first value.
pub const CROSS_DROP: f64 = 0.5;
/// The seed's target for the content loss at the end of training (`~0.01`).
pub const CONTENT_SEED: f64 = 0.01;
/// What "small" means for the final content loss here: five times the seed's figure.
pub const CONTENT_SMALL: f64 = 0.05;
/// An output keeping less than this fraction of the clean image's gradient energy is blurry.
pub const SHARPNESS_MIN: f64 = 0.7;
/// A step whose total loss exceeds this multiple of the median of the steps before it is a
/// spike.
pub const SPIKE_FACTOR: f64 = 5.0;
/// How many earlier steps the spike test's running median looks at (and needs).
pub const SPIKE_WINDOW: usize = 20;
/// The quick test's "falling": the last window at least this much below the first.
pub const QUICK_DROP: f64 = 0.1;

/// The four losses by name, in the order reports show them.
pub const LOSSES: [&str; 4] = ["content", "recon", "cross", "edge"];

/// One loss of a `LossValues` by name (`None` when it was not computed: weight 0).
pub fn pick(loss: &LossValues, name: &str) -> Option<f32> {
    match name {
        "total" => Some(loss.total),
        "content" => loss.content,
        "recon" => loss.recon,
        "cross" => loss.cross,
        "edge" => loss.edge,
        _ => None,
    }
}

/// Where a loss started and ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trend {
    pub first: f64,
    pub last: f64,
}

impl Trend {
    /// The change from first to last in percent of the first (negative: it fell).
    pub fn change_pct(&self) -> f64 {
        if self.first > 0.0 {
            100.0 * (self.last - self.first) / self.first
        } else {
            0.0
        }
    }

    /// The fraction of its first value the loss lost (negative when it rose).
    pub fn drop(&self) -> f64 {
        if self.first > 0.0 {
            1.0 - self.last / self.first
        } else {
            0.0
        }
    }
}

/// What the criteria need from a run, read once from its metric lines.
#[derive(Debug, Clone, Default)]
pub struct RunMetrics {
    /// Per-step losses in order.
    pub steps: Vec<LossValues>,
    /// The last epoch's validation, if an epoch finished.
    pub val: Option<Validation>,
    pub epochs: usize,
    /// Per finished epoch (from 1), the PD <- PDFS cross path's PSNR against clean
    /// (phantom data only).
    pub cross_psnr: Vec<(usize, f64)>,
}

impl RunMetrics {
    pub fn from_lines(lines: &[MetricLine]) -> Self {
        let mut m = RunMetrics::default();
        for line in lines {
            match line {
                MetricLine::Step { loss, .. } => m.steps.push(*loss),
                MetricLine::Epoch { epoch, val, .. } => {
                    if let Some(p) = val.cross_a.psnr_clean {
                        m.cross_psnr.push((epoch + 1, p));
                    }
                    m.val = Some((**val).clone());
                    m.epochs = epoch + 1;
                }
            }
        }
        m
    }

    /// A loss's step values (empty when it was never computed).
    pub fn series(&self, name: &str) -> Vec<f64> {
        self.steps
            .iter()
            .filter_map(|l| pick(l, name).map(f64::from))
            .collect()
    }

    /// First and last window means of a loss, `None` if it was never computed.
    pub fn trend(&self, name: &str) -> Option<Trend> {
        let v = self.series(name);
        if v.is_empty() {
            return None;
        }
        let w = (v.len() / 10).clamp(1, 10);
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        Some(Trend {
            first: mean(&v[..w]),
            last: mean(&v[v.len() - w..]),
        })
    }

    /// The first non-finite step loss, as (step number from 1, loss name).
    pub fn non_finite(&self) -> Option<(usize, &'static str)> {
        self.steps.iter().enumerate().find_map(|(i, l)| {
            ["total", "content", "recon", "cross", "edge"]
                .into_iter()
                .find(|n| pick(l, n).is_some_and(|v| !v.is_finite()))
                .map(|n| (i + 1, n))
        })
    }

    /// The worst spike: (step from 1, its total loss, the running median before it), if any
    /// step's total exceeds `SPIKE_FACTOR` times the median of the `SPIKE_WINDOW` before it.
    pub fn worst_spike(&self) -> Option<(usize, f64, f64)> {
        let totals = self.series("total");
        let mut worst: Option<(usize, f64, f64)> = None;
        for i in SPIKE_WINDOW..totals.len() {
            let mut window: Vec<f64> = totals[i - SPIKE_WINDOW..i].to_vec();
            window.sort_by(f64::total_cmp);
            let median = window[SPIKE_WINDOW / 2];
            let ratio = totals[i] / median;
            if ratio > SPIKE_FACTOR && worst.is_none_or(|(_, v, m)| ratio > v / m) {
                worst = Some((i + 1, totals[i], median));
            }
        }
        worst
    }
}

/// How a check came out. `NotMeasured` when the run lacks what it needs (no clean image, a
/// loss switched off): it is shown, and counts as neither pass nor fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    NotMeasured,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::NotMeasured => "n/a",
        })
    }
}

/// One criterion or checkpoint: what was measured against what threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Short machine name (CSV column): `cross_drop`, `content_small`, ...
    pub id: &'static str,
    /// What it asks, in the study's words.
    pub title: &'static str,
    pub outcome: Outcome,
    /// The numbers behind the outcome.
    pub measured: String,
    /// The threshold it was held to.
    pub threshold: String,
}

impl Check {
    fn new(
        id: &'static str,
        title: &'static str,
        pass: bool,
        measured: String,
        threshold: String,
    ) -> Self {
        Check {
            id,
            title,
            outcome: if pass { Outcome::Pass } else { Outcome::Fail },
            measured,
            threshold,
        }
    }

    fn not_measured(id: &'static str, title: &'static str, why: &str, threshold: String) -> Self {
        Check {
            id,
            title,
            outcome: Outcome::NotMeasured,
            measured: why.into(),
            threshold,
        }
    }

    fn disabled(id: &'static str, title: &'static str, loss: &str, threshold: String) -> Self {
        Check {
            id,
            title,
            outcome: Outcome::Fail,
            measured: format!("{loss} loss is switched off (weight 0)"),
            threshold,
        }
    }
}

fn trend_text(t: &Trend) -> String {
    format!("{:.4} -> {:.4} ({:+.1}%)", t.first, t.last, t.change_pct())
}

/// The seed's three quick-test checkpoints: cross loss falling, content loss converging to a
/// small value, recon loss falling. A switched-off loss fails its checkpoint: the study's
/// point is that these losses are needed.
pub fn quick_checkpoints(m: &RunMetrics) -> Vec<Check> {
    let drop = format!(">= {:.0}% below its first value", 100.0 * QUICK_DROP);
    let mut out = Vec::new();
    let title = "cross loss starts to fall";
    out.push(match m.trend("cross") {
        Some(t) => Check::new(
            "cross_falls",
            title,
            t.drop() >= QUICK_DROP,
            trend_text(&t),
            drop.clone(),
        ),
        None => Check::disabled("cross_falls", title, "cross", drop.clone()),
    });
    let title = "content loss converges to a small value";
    let small = format!("last <= {CONTENT_SMALL} (the study saw ~{CONTENT_SEED}) and falling");
    out.push(match m.trend("content") {
        Some(t) => Check::new(
            "content_converges",
            title,
            t.last <= CONTENT_SMALL && t.drop() > 0.0,
            trend_text(&t),
            small,
        ),
        None => Check::disabled("content_converges", title, "content", small),
    });
    let title = "recon loss falls steadily";
    out.push(match m.trend("recon") {
        Some(t) => Check::new(
            "recon_falls",
            title,
            t.drop() >= QUICK_DROP,
            trend_text(&t),
            drop,
        ),
        None => Check::disabled("recon_falls", title, "recon", drop),
    });
    out
}

/// The seed's success criteria for a finished run.
// Long: the criteria table, one entry per row in the study's order.
pub fn success_criteria(m: &RunMetrics, config: &Config) -> Vec<Check> {
    let [da, db] = &config.data.domains;
    let mut out = Vec::new();

    let title = "cross loss falls >= 50% from its first value";
    let threshold = format!(">= {:.0}% drop", 100.0 * CROSS_DROP);
    out.push(match m.trend("cross") {
        Some(t) => Check::new(
            "cross_drop",
            title,
            t.drop() >= CROSS_DROP,
            trend_text(&t),
            threshold,
        ),
        None => Check::disabled("cross_drop", title, "cross", threshold),
    });

    let title = "cross output better than its input (PSNR vs clean above the acquired image's)";
    let threshold = "cross PSNR > acquired PSNR, both directions".to_string();
    out.push(match &m.val {
        Some(v) => match (
            v.cross_a.psnr_clean,
            v.baseline_a.as_ref(),
            v.cross_b.psnr_clean,
            v.baseline_b.as_ref(),
        ) {
            (Some(ca), Some(ba), Some(cb), Some(bb)) => Check::new(
                "cross_beats_input",
                title,
                ca > ba.psnr && cb > bb.psnr,
                format!(
                    "{da}<-{db} {ca:.2} dB vs {:.2} dB; {db}<-{da} {cb:.2} dB vs {:.2} dB",
                    ba.psnr, bb.psnr
                ),
                threshold,
            ),
            _ => Check::not_measured(
                "cross_beats_input",
                title,
                "no clean images (phantom data only)",
                threshold,
            ),
        },
        None => Check::not_measured("cross_beats_input", title, "no finished epoch", threshold),
    });

    let title = "cross output sharp, not noisy (edges of the clean image, no added texture)";
    let threshold = format!(
        "{SHARPNESS_MIN} <= gradient energy / clean's <= the acquired image's, both directions"
    );
    let sharp = m.val.as_ref().and_then(|v| {
        Some((
            v.cross_a.sharpness?,
            v.baseline_a.as_ref()?.sharpness?,
            v.cross_b.sharpness?,
            v.baseline_b.as_ref()?.sharpness?,
        ))
    });
    out.push(match sharp {
        Some((sa, ba, sb, bb)) => Check::new(
            "cross_sharp",
            title,
            (SHARPNESS_MIN..=ba).contains(&sa) && (SHARPNESS_MIN..=bb).contains(&sb),
            format!("{da}<-{db} {sa:.2} (acquired {ba:.2}), {db}<-{da} {sb:.2} (acquired {bb:.2})"),
            threshold,
        ),
        None => Check::not_measured(
            "cross_sharp",
            title,
            "no clean images or no finished epoch",
            threshold,
        ),
    });

    let title = "training stable (no NaN / Inf, no loss spike)";
    let threshold = format!(
        "finite; no step total > {SPIKE_FACTOR}x the median of the {SPIKE_WINDOW} before it"
    );
    out.push(if let Some((step, name)) = m.non_finite() {
        Check::new(
            "stable",
            title,
            false,
            format!("{name} loss not finite at step {step}"),
            threshold,
        )
    } else if let Some((step, v, median)) = m.worst_spike() {
        Check::new(
            "stable",
            title,
            false,
            format!(
                "step {step}: total {v:.4} = {:.1}x median {median:.4}",
                v / median
            ),
            threshold,
        )
    } else {
        Check::new(
            "stable",
            title,
            !m.steps.is_empty(),
            format!("{} steps, all finite, no spike", m.steps.len()),
            threshold,
        )
    });

    let title = "every enabled loss falls";
    let threshold = "last window below the first, each enabled loss".to_string();
    let trends: Vec<(&str, Trend)> = LOSSES
        .iter()
        .filter_map(|n| m.trend(n).map(|t| (*n, t)))
        .collect();
    let rising: Vec<String> = trends
        .iter()
        .filter(|(_, t)| t.drop() <= 0.0)
        .map(|(n, t)| format!("{n} {}", trend_text(t)))
        .collect();
    out.push(Check::new(
        "all_fall",
        title,
        !trends.is_empty() && rising.is_empty(),
        if rising.is_empty() {
            trends
                .iter()
                .map(|(n, t)| format!("{n} {:+.0}%", t.change_pct()))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            format!("not falling: {}", rising.join("; "))
        },
        threshold,
    ));

    let title = "content loss ends small";
    let threshold = format!("<= {CONTENT_SMALL} (the study saw ~{CONTENT_SEED})");
    out.push(match m.trend("content") {
        Some(t) => Check::new(
            "content_small",
            title,
            t.last <= CONTENT_SMALL,
            format!("{:.4}", t.last),
            threshold,
        ),
        None => Check::disabled("content_small", title, "content", threshold),
    });
    out
}

/// Whether every measured check passed.
pub fn all_pass(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.outcome != Outcome::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::records::PathScore;

    fn test_config() -> Config {
        Config::from_value(
            serde_json::json!({"name": "t"}),
            std::path::Path::new("t.json"),
        )
        .unwrap()
    }

    fn step(total: f32, cross: Option<f32>, content: Option<f32>) -> LossValues {
        LossValues {
            total,
            content,
            recon: Some(total / 2.0),
            cross,
            edge: None,
        }
    }

    fn falling(n: usize) -> RunMetrics {
        RunMetrics {
            steps: (0..n)
                .map(|i| {
                    let f = 1.0 / (1.0 + i as f32 * 0.1);
                    step(2.0 * f, Some(f), Some(0.5 * f * f * f))
                })
                .collect(),
            epochs: 1,
            ..Default::default()
        }
    }

    #[test]
    fn trend_uses_windows_at_each_end() {
        let m = RunMetrics {
            steps: (0..100).map(|i| step(1.0, Some(i as f32), None)).collect(),
            ..Default::default()
        };
        let t = m.trend("cross").unwrap();
        assert_eq!(t.first, 4.5); // mean of 0..10
        assert_eq!(t.last, 94.5);
        assert!(t.drop() < 0.0);
        assert!(m.trend("content").is_none());
    }

    #[test]
    fn quick_test_passes_a_learning_run_and_fails_switched_off_losses() {
        let m = falling(200);
        let checks = quick_checkpoints(&m);
        assert!(all_pass(&checks), "{checks:#?}");

        let mut off = falling(200);
        for s in &mut off.steps {
            s.content = None;
        }
        let checks = quick_checkpoints(&off);
        assert_eq!(checks[1].outcome, Outcome::Fail);
        assert!(checks[1].measured.contains("switched off"));
        assert!(!all_pass(&checks));
    }

    #[test]
    fn a_flat_cross_loss_fails_its_checkpoint_with_numbers() {
        let mut m = falling(100);
        for s in &mut m.steps {
            s.cross = Some(0.8);
        }
        let c = &quick_checkpoints(&m)[0];
        assert_eq!(c.outcome, Outcome::Fail);
        assert_eq!(c.measured, "0.8000 -> 0.8000 (+0.0%)");
    }

    #[test]
    fn spikes_and_non_finite_losses_are_unstable() {
        let config = test_config();
        let mut m = falling(60);
        assert_eq!(
            success_criteria(&m, &config)[3].outcome,
            Outcome::Pass,
            "a smooth run is stable"
        );
        m.steps[40].total = 50.0;
        let spike = m.worst_spike().unwrap();
        assert_eq!(spike.0, 41);
        let c = &success_criteria(&m, &config)[3];
        assert_eq!(c.outcome, Outcome::Fail);
        assert!(c.measured.starts_with("step 41"), "{}", c.measured);
        m.steps[50].cross = Some(f32::NAN);
        assert_eq!(m.non_finite(), Some((51, "cross")));
    }

    #[test]
    fn cross_must_beat_the_acquired_image_against_clean() {
        let config = test_config();
        let score = |p: f64, sharp: f64| PathScore {
            psnr: p,
            ssim: 0.5,
            psnr_clean: Some(p),
            ssim_clean: Some(0.5),
            sharpness: Some(sharp),
        };
        let mut m = falling(50);
        m.val = Some(Validation {
            cross_a: score(25.0, 0.9),
            cross_b: score(24.0, 0.5),
            baseline_a: Some(score(20.0, 2.0)),
            baseline_b: Some(score(24.5, 2.0)),
            ..Default::default()
        });
        let checks = success_criteria(&m, &config);
        let beats = checks.iter().find(|c| c.id == "cross_beats_input").unwrap();
        assert_eq!(beats.outcome, Outcome::Fail, "b does not beat its input");
        let sharp = checks.iter().find(|c| c.id == "cross_sharp").unwrap();
        assert_eq!(sharp.outcome, Outcome::Fail);
        assert!(sharp.measured.contains("0.50"));

        m.val = None;
        let checks = success_criteria(&m, &config);
        assert_eq!(checks[1].outcome, Outcome::NotMeasured);
        assert!(all_pass(&checks), "not measured is not a failure");
    }
}
