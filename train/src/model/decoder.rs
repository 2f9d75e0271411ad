//! One contrast's decoder: up-sampling levels from the latent back to full resolution, each
//! adding a skip when it is given one. Additive fusion (not concatenation) lets the same
//! weights run with skips (recon), without them (`no_skip` cross path, the exported one) or
//! with another contrast's, which is what the study's strategies compare.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Initializer, InstanceNorm};
use burn::prelude::*;

use super::conv_block::instance_norm;
use super::ops::{instance_norm as norm, leaky_relu, up2x2};
use super::{ConvBlock, ConvBlockConfig, LEAKY_SLOPE, Precision};

/// One decoder level: ConvTranspose 2x2 stride 2 -> InstanceNorm -> LeakyReLU, optional
/// additive skip, ConvBlock.
#[derive(Module, Debug)]
pub struct UpLevel {
    pub up: ConvTranspose2d,
    pub norm: InstanceNorm,
    pub block: ConvBlock,
}

/// Decoder from a latent back to a one-channel image; levels run deepest first.
#[derive(Module, Debug)]
pub struct Decoder {
    pub levels: Vec<UpLevel>,
    pub head: Conv2d,
    #[module(skip)]
    pub identity_mapping: bool,
}

#[derive(Config, Debug)]
pub struct DecoderConfig {
    pub base_channels: usize,
    pub depth: usize,
    /// Output = source input + residual; the head starts at zero (the seed's "zero-init
    /// trap": at initialisation the decoder returns its source input unchanged).
    #[config(default = false)]
    pub identity_mapping: bool,
}

impl DecoderConfig {
    pub fn init(&self, device: &Device) -> Decoder {
        let c = self.base_channels;
        let levels = (0..self.depth)
            .rev()
            .map(|l| UpLevel {
                up: ConvTranspose2dConfig::new([c << (l + 1), c << l], [2, 2])
                    .with_stride([2, 2])
                    .init(device),
                norm: instance_norm(c << l, device),
                block: ConvBlockConfig::new(c << l, c << l).init(device),
            })
            .collect();
        let mut head = Conv2dConfig::new([c, 1], [1, 1]);
        if self.identity_mapping {
            head = head.with_initializer(Initializer::Zeros);
        }
        Decoder {
            levels,
            head: head.init(device),
            identity_mapping: self.identity_mapping,
        }
    }
}

impl Decoder {
    /// Decodes `z`. `skips`, when given, are `s0..s(depth-1)` (full resolution first) and are
    /// added after each up-sampling; `source` is the network input that identity mapping adds
    /// back (ignored without identity mapping). The convolutions compute in `precision`, the
    /// 1x1 head in f32.
    pub fn forward(
        &self,
        z: Tensor<4>,
        skips: Option<&[Tensor<4>]>,
        source: Option<Tensor<4>>,
        precision: Precision,
    ) -> Tensor<4> {
        let depth = self.levels.len();
        let mut h = z;
        for (k, level) in self.levels.iter().enumerate() {
            let l = depth - 1 - k;
            h = leaky_relu::forward(
                norm::forward(&level.norm, up2x2::forward(&level.up, h, precision)),
                LEAKY_SLOPE,
            );
            if let Some(skips) = skips {
                h = h + skips[l].clone();
            }
            h = level.block.forward(h, precision);
        }
        let out = self.head.forward(h);
        match (self.identity_mapping, source) {
            (true, Some(src)) => src + out,
            (true, None) => panic!("identity mapping needs the source input"),
            (false, _) => out,
        }
    }
}
