//! One contrast's encoder: a stem at full resolution and `depth` average-pooled levels. It
//! returns every level's features as skips as well as the latent, because the strategies
//! differ only in which skips a decoder is given, not in what the encoder computes.

use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::prelude::*;

use super::{ConvBlock, ConvBlockConfig, Precision};

/// Stem ConvBlock(1 -> C) at full resolution, then `depth` levels of AvgPool 2x2 ->
/// ConvBlock(C 2^(l-1) -> C 2^l).
#[derive(Module, Debug)]
pub struct Encoder {
    pub stem: ConvBlock,
    pub levels: Vec<ConvBlock>,
    pub pool: AvgPool2d,
}

#[derive(Config, Debug)]
pub struct EncoderConfig {
    pub base_channels: usize,
    pub depth: usize,
}

/// What an encoder produces: the skips `s0..s(depth-1)` (full resolution first) and the
/// latent `z` (`C 2^depth` channels at `H / 2^depth`).
#[derive(Debug, Clone)]
pub struct Encoded {
    pub skips: Vec<Tensor<4>>,
    pub z: Tensor<4>,
}

impl EncoderConfig {
    pub fn init(&self, device: &Device) -> Encoder {
        let c = self.base_channels;
        Encoder {
            stem: ConvBlockConfig::new(1, c).init(device),
            levels: (1..=self.depth)
                .map(|l| ConvBlockConfig::new(c << (l - 1), c << l).init(device))
                .collect(),
            pool: AvgPool2dConfig::new([2, 2]).init(),
        }
    }
}

impl Encoder {
    /// `[N, 1, H, W]` -> skips and latent, the convolutions computing in `precision`.
    pub fn forward(&self, x: Tensor<4>, precision: Precision) -> Encoded {
        let mut h = self.stem.forward(x, precision); // [N, C, H, W]
        let mut skips = Vec::with_capacity(self.levels.len());
        for level in &self.levels {
            skips.push(h.clone());
            h = level.forward(self.pool.forward(h), precision); // [N, C 2^l, H / 2^l, W / 2^l]
        }
        Encoded { skips, z: h }
    }

    /// The latent only, in f32 (inference): skips are still computed by the levels but not
    /// kept.
    pub fn latent(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward(x, Precision::F32).z
    }
}
