//! The original study's diagnosis table, applied to a run's measurements, and its warnings
//! about a config before training.
//!
//! Each finding carries the numbers that matched the row, so the remedy can be checked
//! against the evidence rather than taken on trust.

use serde::Serialize;

use super::criteria::{self, RunMetrics};
use crate::config::Config;
use crate::model::strategy::CrossDomainStrategy;

/// A cross loss falling less than this fraction is "flat".
pub const CROSS_FLAT: f64 = criteria::CROSS_DROP;
/// Every enabled loss ending above this fraction of its first value: nothing is learning.
pub const ALL_LARGE: f64 = 0.5;
/// Training noise this far above the study's sigma 0.01 is its "noise too large" trap.
pub const SIGMA_HIGH: f32 = 0.05;

/// One matching row of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The row's symptom.
    pub symptom: &'static str,
    /// The study's likely cause.
    pub cause: &'static str,
    /// The study's remedy, made concrete for this run's config.
    pub remedy: String,
    /// The measured numbers that matched.
    pub evidence: String,
}

/// What the run's folder says beyond its metrics: the error it stopped with, if any.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub error: Option<String>,
}

/// Applies the diagnosis table; rows in the study's order.
// Long: one rule per row of the table, in its order.
pub fn diagnose(m: &RunMetrics, config: &Config, outcome: &RunOutcome) -> Vec<Finding> {
    let t = &config.trainer;
    let mut out = Vec::new();

    if let Some(cross) = m.trend("cross")
        && cross.drop() < CROSS_FLAT
    {
        let remedy = match t.cross_domain_strategy {
            CrossDomainStrategy::UseSourceSkip => {
                "use_source_skip feeds the source domain's skips to the target decoder: \
                 set trainer.cross_domain_strategy to use_target_skip or no_skip"
                    .to_string()
            }
            CrossDomainStrategy::NoSkip => {
                "already no_skip: try use_target_skip, and check that content and recon \
                 losses are on (the cross path builds on both)"
                    .to_string()
            }
            s => format!("{s} is in use: try use_target_skip or no_skip"),
        };
        out.push(Finding {
            symptom: "cross loss does not fall",
            cause: "the skip strategy",
            remedy,
            evidence: format!(
                "cross {:.4} -> {:.4} ({:+.1}%), less than the {:.0}% drop required",
                cross.first,
                cross.last,
                cross.change_pct(),
                100.0 * CROSS_FLAT
            ),
        });
    }

    let trends: Vec<(&str, criteria::Trend)> = criteria::LOSSES
        .iter()
        .filter_map(|n| m.trend(n).map(|t| (*n, t)))
        .collect();
    if !trends.is_empty() && trends.iter().all(|(_, t)| t.last > ALL_LARGE * t.first) {
        out.push(Finding {
            symptom: "every loss stays large",
            cause: "the data",
            remedy: "check data loading and normalisation (paired names, per-slice 99.5th \
                     percentile scaling; `crossdenoise phantoms` gives known-good data)"
                .into(),
            evidence: trends
                .iter()
                .map(|(n, t)| format!("{n} {:.4} -> {:.4}", t.first, t.last))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }

    if let Some(v) = &m.val
        && let Some((sa, sb)) = v.cross_a.sharpness.zip(v.cross_b.sharpness)
        && sa.min(sb) < criteria::SHARPNESS_MIN
    {
        let recon = t.loss_weights.recon;
        out.push(Finding {
            symptom: "output still blurry",
            cause: "recon weight too small",
            remedy: if recon < 1.0 {
                format!("raise trainer.loss_weights.recon from {recon} to 1.0")
            } else {
                format!(
                    "recon is already {recon}: raise trainer.loss_weights.edge (now {}) \
                     or train longer",
                    t.loss_weights.edge
                )
            },
            evidence: format!(
                "cross output keeps {:.0}% / {:.0}% of the clean image's gradient energy \
                 (below {:.0}%)",
                100.0 * v.cross_a.sharpness.unwrap_or(0.0),
                100.0 * v.cross_b.sharpness.unwrap_or(0.0),
                100.0 * criteria::SHARPNESS_MIN
            ),
        });
    }

    let diverged = outcome
        .error
        .as_deref()
        .filter(|e| e.contains("not finite") || e.contains("diverged"));
    let unstable = if let Some((step, name)) = m.non_finite() {
        Some(format!("{name} loss not finite at step {step}"))
    } else if let Some(e) = diverged {
        Some(e.trim().to_string())
    } else {
        m.worst_spike().map(|(step, v, median)| {
            format!(
                "step {step}: total loss {v:.4} is {:.1}x the median {median:.4} of the \
                 {} steps before",
                v / median,
                criteria::SPIKE_WINDOW
            )
        })
    };
    if let Some(evidence) = unstable {
        out.push(Finding {
            symptom: "training unstable",
            cause: "learning rate too large",
            remedy: if t.lr > 1e-4 {
                format!("lower trainer.lr from {} to 1e-4", t.lr)
            } else {
                format!(
                    "lr is already {}: set trainer.grad_clip_norm (e.g. 1.0) or warmup_steps",
                    t.lr
                )
            },
            evidence,
        });
    }

    if let Some(e) = outcome.error.as_deref().filter(|e| is_out_of_memory(e)) {
        out.push(Finding {
            symptom: "out of memory",
            cause: "batch size too large",
            remedy: if t.batch_size > 2 {
                format!("lower trainer.batch_size from {} to 2", t.batch_size)
            } else {
                format!(
                    "batch is already {}: lower data.image_size or model.base_channels",
                    t.batch_size
                )
            },
            evidence: e.trim().to_string(),
        });
    }
    out
}

pub(crate) fn is_out_of_memory(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("out of memory")
        || e.contains("memory allocation")
        || e.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "oom")
}

/// A trap of the original study found in a config before training.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// The config key at fault.
    pub key: &'static str,
    pub message: String,
}

/// Bytes the synthetic data set of `config` holds in memory while it trains: per pixel of
/// each pair, the noisy and clean image of both contrasts (f32) and the findings' masks
/// (u8). Folder data is sized by its files, unknown here.
pub fn data_memory_bytes(config: &Config) -> Option<u64> {
    let d = &config.data;
    if d.source != crate::config::DataSource::Synthetic {
        return None;
    }
    let per_pixel = 4 * 4 + 2 * crossdenoise_image::phantom::Finding::ALL.len() as u64;
    let pixels = (d.image_size as u64).pow(2);
    Some((d.train_pairs as u64 + d.val_pairs as u64) * pixels * per_pixel)
}

/// A warning when the data set alone would take more than half of `memory` bytes (the
/// machine's): the run would swap or be killed long after it started.
pub fn memory_warning(config: &Config, memory: u64) -> Option<Warning> {
    let need = data_memory_bytes(config)?;
    (need > memory / 2).then(|| Warning {
        key: "data.train_pairs",
        message: format!(
            "{} + {} pairs of {}x{} phantoms hold about {:.1} GiB in memory, more than half of this machine's {:.1} GiB; use fewer pairs or a smaller data.image_size",
            config.data.train_pairs,
            config.data.val_pairs,
            config.data.image_size,
            config.data.image_size,
            need as f64 / (1u64 << 30) as f64,
            memory as f64 / (1u64 << 30) as f64
        ),
    })
}

/// The study's failure patterns: the wrong skips, the zero-initialised identity mapping,
/// training noise far above 0.01, cross loss without the losses it builds on, no edge loss.
/// For the denoisers: a training crop smaller than the blind-spot network's reach.
pub fn lint(config: &Config) -> Vec<Warning> {
    if config.model.kind.is_denoiser() {
        // The study's traps are the dual-domain network's (skips, identity mapping, loss
        // weights); a denoiser's is a crop too small for its blind-spot network.
        let crop = crate::denoiser::crops::crop_warning(
            config.trainer.crop_size,
            config.data.image_size,
            config.model.depth,
        );
        return crop
            .map(|message| Warning {
                key: "trainer.crop_size",
                message,
            })
            .into_iter()
            .collect();
    }
    let t = &config.trainer;
    let w = &t.loss_weights;
    let mut out = Vec::new();
    if t.cross_domain_strategy == CrossDomainStrategy::UseSourceSkip {
        out.push(Warning {
            key: "trainer.cross_domain_strategy",
            message: "use_source_skip gives the target decoder the source contrast's skips \
                      (the original failing method: cross loss stays flat); use no_skip or \
                      use_target_skip"
                .into(),
        });
    }
    if matches!(
        t.cross_domain_strategy,
        CrossDomainStrategy::UseTargetSkip | CrossDomainStrategy::MixedSkip
    ) {
        out.push(Warning {
            key: "trainer.cross_domain_strategy",
            message: format!(
                "{}: the cross decoder sees skips from the target image itself, so its loss \
                 can fall by copying the noisy target; the exported path has no skips and no \
                 target, so judge such a run by its no-skip paths",
                t.cross_domain_strategy.name()
            ),
        });
    }
    if t.identity_mapping {
        out.push(Warning {
            key: "trainer.identity_mapping",
            message: "true: the residual's last conv starts at zero, so every decoder \
                      outputs its input at first and the cross path learns slowly; the \
                      study recommends false"
                .into(),
        });
    }
    for (key, sigma) in [
        ("trainer.noise.sigma_a", t.noise.sigma_a),
        ("trainer.noise.sigma_b", t.noise.sigma_b),
    ] {
        if sigma > SIGMA_HIGH {
            out.push(Warning {
                key,
                message: format!(
                    "{sigma} is far above the recommended 0.01 (the original failing \
                     config used 0.25): the targets drown in added noise"
                ),
            });
        }
    }
    if w.cross > 0.0 {
        for (key, weight, why) in [
            (
                "trainer.loss_weights.content",
                w.content,
                "nothing pulls the two latents together, so decoding one domain's latent \
                 in the other means nothing",
            ),
            (
                "trainer.loss_weights.recon",
                w.recon,
                "the decoders never learn their own contrast, which the cross path builds on",
            ),
        ] {
            if weight == 0.0 {
                out.push(Warning {
                    key,
                    message: format!("0 with cross {}: {why}", w.cross),
                });
            }
        }
    }
    if w.edge == 0.0 {
        out.push(Warning {
            key: "trainer.loss_weights.edge",
            message: "0: without the edge loss outputs tend to over-smooth (the study \
                      uses 0.05)"
                .into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::loss::LossValues;

    fn config(trainer: serde_json::Value) -> Config {
        Config::from_value(
            serde_json::json!({"name": "t", "trainer": trainer}),
            std::path::Path::new("t.json"),
        )
        .unwrap()
    }

    fn run(cross: impl Fn(usize) -> f32) -> RunMetrics {
        RunMetrics {
            steps: (0..100)
                .map(|i| LossValues {
                    total: 1.0 / (1.0 + i as f32),
                    content: Some(0.5 / (1.0 + i as f32)),
                    recon: Some(1.0 / (1.0 + i as f32)),
                    cross: Some(cross(i)),
                    edge: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn flat_cross_loss_on_source_skips_names_the_strategy() {
        let c = config(serde_json::json!({"cross_domain_strategy": "use_source_skip"}));
        let found = diagnose(&run(|_| 0.9), &c, &RunOutcome::default());
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].symptom, "cross loss does not fall");
        assert!(found[0].remedy.contains("use_target_skip or no_skip"));
        assert!(
            found[0]
                .evidence
                .contains("(+0.0%), less than the 50% drop"),
            "{}",
            found[0].evidence
        );

        let healthy = diagnose(&run(|i| 1.0 / (1.0 + i as f32)), &c, &RunOutcome::default());
        assert!(healthy.is_empty(), "{healthy:#?}");
    }

    #[test]
    fn errors_map_to_unstable_and_out_of_memory_rows() {
        let c = config(serde_json::json!({"batch_size": 8, "lr": 1e-3}));
        let outcome = RunOutcome {
            error: Some("CUDA out of memory. Tried to allocate 2.00 GiB".into()),
        };
        let found = diagnose(&run(|i| 1.0 / (1.0 + i as f32)), &c, &outcome);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].remedy, "lower trainer.batch_size from 8 to 2");
        assert!(is_out_of_memory("process killed (OOM)"));
        assert!(!is_out_of_memory("no room left in the checkpoint folder"));

        let outcome = RunOutcome {
            error: Some("training diverged: loss not finite at epoch 0 step 3".into()),
        };
        let found = diagnose(&run(|i| 1.0 / (1.0 + i as f32)), &c, &outcome);
        assert_eq!(found[0].symptom, "training unstable");
        assert_eq!(found[0].remedy, "lower trainer.lr from 0.001 to 1e-4");
    }

    #[test]
    fn a_data_set_larger_than_half_the_memory_is_warned_of() {
        let mut c = config(serde_json::json!({}));
        c.data.train_pairs = 100_000;
        c.data.image_size = 512;
        let need = data_memory_bytes(&c).unwrap();
        assert!(need > 400 << 30, "{need}");
        let w = memory_warning(&c, 24 << 30).expect("a warning");
        assert_eq!(w.key, "data.train_pairs");
        assert!(w.message.contains("GiB"), "{}", w.message);
        c.data.train_pairs = 100;
        assert!(memory_warning(&c, 24 << 30).is_none());
    }

    #[test]
    fn lint_finds_the_original_failing_config() {
        let c = config(serde_json::json!({
            "cross_domain_strategy": "use_source_skip",
            "identity_mapping": true,
            "noise": {"sigma_a": 0.25, "sigma_b": 0.25},
            "loss_weights": {"content": 0, "recon": 0, "cross": 1, "edge": 0}
        }));
        let keys: Vec<&str> = lint(&c).iter().map(|w| w.key).collect();
        assert_eq!(
            keys,
            [
                "trainer.cross_domain_strategy",
                "trainer.identity_mapping",
                "trainer.noise.sigma_a",
                "trainer.noise.sigma_b",
                "trainer.loss_weights.content",
                "trainer.loss_weights.recon",
                "trainer.loss_weights.edge",
            ]
        );
        assert!(lint(&config(serde_json::json!({}))).is_empty());
        let leak = lint(&config(
            serde_json::json!({"cross_domain_strategy": "mixed_skip"}),
        ));
        assert!(
            leak[0].message.contains("copying the noisy target"),
            "{leak:?}"
        );
    }
}
