//! The study's curves: each loss of the dual-domain network per step, and validation PSNR
//! per epoch.

use std::path::Path;

use super::loss::LossValues;
use super::records::{MetricLine, PathScore};
use crate::run::curves::{Curve, Panel};

/// The panels of one run's `metrics.jsonl`: each enabled loss per step, and validation PSNR
/// per epoch for the cross paths next to the acquired images' own PSNR (both against clean
/// on phantom data, else against the target).
// Long: one panel per loss and per validation curve, in the order they are drawn.
pub fn run_panels(lines: &[MetricLine], domains: &[String; 2]) -> Vec<Panel> {
    let steps: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            MetricLine::Step { step, loss, .. } => Some((*step as f64, *loss)),
            _ => None,
        })
        .collect();
    let mut panels = Vec::new();
    type Pick = fn(&LossValues) -> Option<f32>;
    let losses: [(&str, Pick); 5] = [
        ("total", |l| Some(l.total)),
        ("content", |l| l.content),
        ("recon", |l| l.recon),
        ("cross", |l| l.cross),
        ("edge", |l| l.edge),
    ];
    for (name, pick) in losses {
        let points: Vec<(f64, f64)> = steps
            .iter()
            .filter_map(|(s, l)| pick(l).map(|v| (*s, f64::from(v))))
            .collect();
        if !points.is_empty() {
            panels.push(Panel {
                title: format!("{name} loss"),
                x_label: "step".into(),
                y_label: "L1".into(),
                log_y: true,
                curves: vec![Curve {
                    label: String::new(),
                    points,
                }],
            });
        }
    }
    let epochs: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            MetricLine::Epoch { epoch, val, .. } => Some((*epoch as f64 + 1.0, (**val).clone())),
            _ => None,
        })
        .collect();
    if !epochs.is_empty() {
        let clean = epochs[0].1.baseline_a.is_some();
        let score = |s: &PathScore| {
            if clean {
                s.psnr_clean.unwrap_or(s.psnr)
            } else {
                s.psnr
            }
        };
        let [a, b] = domains;
        let mut curves = vec![
            Curve {
                label: format!("cross {a}<-{b}"),
                points: epochs
                    .iter()
                    .map(|(e, v)| (*e, score(&v.cross_a)))
                    .collect(),
            },
            Curve {
                label: format!("cross {b}<-{a}"),
                points: epochs
                    .iter()
                    .map(|(e, v)| (*e, score(&v.cross_b)))
                    .collect(),
            },
        ];
        if clean {
            for (label, pick) in [
                (
                    format!("acquired {a}"),
                    epochs
                        .iter()
                        .filter_map(|(e, v)| v.baseline_a.map(|s| (*e, score(&s))))
                        .collect::<Vec<_>>(),
                ),
                (
                    format!("acquired {b}"),
                    epochs
                        .iter()
                        .filter_map(|(e, v)| v.baseline_b.map(|s| (*e, score(&s))))
                        .collect(),
                ),
            ] {
                curves.push(Curve {
                    label,
                    points: pick,
                });
            }
        }
        panels.push(Panel {
            title: if clean {
                "validation PSNR vs clean".into()
            } else {
                "validation PSNR vs target".into()
            },
            x_label: "epoch".into(),
            y_label: "dB".into(),
            log_y: false,
            curves,
        });
    }
    panels
}

/// Reads a run's metrics.jsonl (lines of other kinds are skipped).
pub fn read_metrics(path: &Path) -> std::io::Result<Vec<MetricLine>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}
