//! The original study's dual-domain network: an encoder per contrast (or one shared) into a
//! common latent space and a decoder per contrast, so any contrast's latent can be decoded
//! as either contrast. Recon paths decode a contrast's own latent, cross paths the other's;
//! which skips each call receives is the strategy's choice (`strategy.rs`). The cross path
//! is contrast synthesis, kept and exported as the study asked (docs/DESIGN.md, "The model").

use burn::prelude::*;

use super::strategy::CrossDomainStrategy;
use super::{Decoder, DecoderConfig, Encoder, EncoderConfig, Precision};

/// The two domains: `a` (PD by default) and `b` (PDFS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    A,
    B,
}

impl std::str::FromStr for Domain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "a" => Ok(Domain::A),
            "b" => Ok(Domain::B),
            other => Err(format!("unknown domain {other:?} (expected a or b)")),
        }
    }
}

#[derive(Module, Debug)]
pub struct DualDomain {
    pub encoder_a: Encoder,
    /// `None` when one encoder is shared by both domains.
    pub encoder_b: Option<Encoder>,
    pub decoder_a: Decoder,
    pub decoder_b: Decoder,
}

#[derive(Config, Debug)]
pub struct DualDomainConfig {
    pub base_channels: usize,
    pub depth: usize,
    #[config(default = false)]
    pub shared_encoder: bool,
    #[config(default = false)]
    pub identity_mapping: bool,
}

/// What one training forward pass computed. Paths whose losses have weight 0 are `None`:
/// they were never run.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub z_a: Tensor<4>,
    pub z_b: Tensor<4>,
    /// D_a(z_a) and D_b(z_b) with the strategy's reconstruction skips.
    pub recon_a: Option<Tensor<4>>,
    pub recon_b: Option<Tensor<4>>,
    /// D_a(z_b) and D_b(z_a) with the strategy's cross skips.
    pub cross_a: Option<Tensor<4>>,
    pub cross_b: Option<Tensor<4>>,
}

/// Which paths a forward pass runs, and how the cross path is wired.
#[derive(Debug, Clone, Copy)]
pub struct ForwardPlan {
    pub strategy: CrossDomainStrategy,
    pub mixed_skip_alpha: f32,
    pub recon: bool,
    pub cross: bool,
    /// What the convolutions compute in (training may ask for bf16; inference is f32).
    pub precision: Precision,
}

impl DualDomainConfig {
    pub fn init(&self, device: &Device) -> DualDomain {
        let enc = EncoderConfig::new(self.base_channels, self.depth);
        let dec = DecoderConfig::new(self.base_channels, self.depth)
            .with_identity_mapping(self.identity_mapping);
        DualDomain {
            encoder_a: enc.init(device),
            encoder_b: (!self.shared_encoder).then(|| enc.init(device)),
            decoder_a: dec.init(device),
            decoder_b: dec.init(device),
        }
    }
}

impl DualDomain {
    pub fn encoder(&self, domain: Domain) -> &Encoder {
        match domain {
            Domain::A => &self.encoder_a,
            Domain::B => self.encoder_b.as_ref().unwrap_or(&self.encoder_a),
        }
    }

    pub fn decoder(&self, domain: Domain) -> &Decoder {
        match domain {
            Domain::A => &self.decoder_a,
            Domain::B => &self.decoder_b,
        }
    }

    /// The skip-free path `D_to(E_from(x))`: the cross path that is exported and served
    /// (with `from == to` the same-domain denoiser).
    pub fn translate(&self, from: Domain, to: Domain, x: Tensor<4>) -> Tensor<4> {
        let z = self.encoder(from).latent(x.clone());
        self.decoder(to).forward(z, None, Some(x), Precision::F32)
    }

    /// The training forward pass on noisy inputs `x_a`, `x_b` (`[N, 1, H, W]`).
    pub fn forward(&self, x_a: Tensor<4>, x_b: Tensor<4>, plan: &ForwardPlan) -> Outputs {
        let p = plan.precision;
        let ea = self.encoder(Domain::A).forward(x_a.clone(), p);
        let eb = self.encoder(Domain::B).forward(x_b.clone(), p);
        let (recon_a, recon_b) = if plan.recon {
            let own = plan.strategy.recon_uses_skips();
            (
                Some(self.decoder_a.forward(
                    ea.z.clone(),
                    own.then_some(&ea.skips[..]),
                    Some(x_a.clone()),
                    p,
                )),
                Some(self.decoder_b.forward(
                    eb.z.clone(),
                    own.then_some(&eb.skips[..]),
                    Some(x_b.clone()),
                    p,
                )),
            )
        } else {
            (None, None)
        };
        let (cross_a, cross_b) = if plan.cross {
            let alpha = plan.mixed_skip_alpha;
            // D_a(z_b): target a, source b; D_b(z_a): target b, source a.
            let skips_a = plan.strategy.cross_skips(&ea.skips, &eb.skips, alpha);
            let skips_b = plan.strategy.cross_skips(&eb.skips, &ea.skips, alpha);
            (
                Some(self.decoder_a.forward(
                    eb.z.clone(),
                    skips_a.as_deref(),
                    Some(x_b.clone()),
                    p,
                )),
                Some(
                    self.decoder_b
                        .forward(ea.z.clone(), skips_b.as_deref(), Some(x_a), p),
                ),
            )
        } else {
            (None, None)
        };
        Outputs {
            z_a: ea.z,
            z_b: eb.z,
            recon_a,
            recon_b,
            cross_a,
            cross_b,
        }
    }
}
