//! Which skips each decoder call receives (docs/DESIGN.md, "Cross-domain skip strategies").
//!
//! The original trainer fed the cross decoder D_a(z_b) the *source* domain's skips: PDFS
//! edges and texture into the PD decoder, a signal that conflicts with the target and kept
//! the cross loss flat. The strategies make that choice explicit so it can be compared.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossDomainStrategy {
    /// Decoders never see skips; the latent carries everything (recommended, exported).
    #[default]
    NoSkip,
    /// Cross path gets the target domain's skips (from the target's own noisy input).
    UseTargetSkip,
    /// Cross path gets the source domain's skips: the original, failing method.
    UseSourceSkip,
    /// Cross path gets zero skips.
    ZeroSkip,
    /// Cross path gets `alpha * target + (1 - alpha) * source`.
    MixedSkip,
}

impl CrossDomainStrategy {
    pub const ALL: [CrossDomainStrategy; 5] = [
        CrossDomainStrategy::NoSkip,
        CrossDomainStrategy::UseTargetSkip,
        CrossDomainStrategy::UseSourceSkip,
        CrossDomainStrategy::ZeroSkip,
        CrossDomainStrategy::MixedSkip,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CrossDomainStrategy::NoSkip => "no_skip",
            CrossDomainStrategy::UseTargetSkip => "use_target_skip",
            CrossDomainStrategy::UseSourceSkip => "use_source_skip",
            CrossDomainStrategy::ZeroSkip => "zero_skip",
            CrossDomainStrategy::MixedSkip => "mixed_skip",
        }
    }

    /// Whether the reconstruction path D_x(z_x) gets its own encoder's skips.
    pub fn recon_uses_skips(self) -> bool {
        self != CrossDomainStrategy::NoSkip
    }

    /// The skips for a cross decoder call, from the target domain's and the source domain's
    /// encoder skips; `None` means the decoder runs without skips.
    pub fn cross_skips(
        self,
        target: &[Tensor<4>],
        source: &[Tensor<4>],
        alpha: f32,
    ) -> Option<Vec<Tensor<4>>> {
        match self {
            CrossDomainStrategy::NoSkip => None,
            CrossDomainStrategy::UseTargetSkip => Some(target.to_vec()),
            CrossDomainStrategy::UseSourceSkip => Some(source.to_vec()),
            CrossDomainStrategy::ZeroSkip => Some(target.iter().map(Tensor::zeros_like).collect()),
            CrossDomainStrategy::MixedSkip => Some(
                target
                    .iter()
                    .zip(source)
                    .map(|(t, s)| t.clone().mul_scalar(alpha) + s.clone().mul_scalar(1.0 - alpha))
                    .collect(),
            ),
        }
    }
}

impl std::fmt::Display for CrossDomainStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
