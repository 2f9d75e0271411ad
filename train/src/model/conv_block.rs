//! The network's building block, Conv3x3 -> InstanceNorm -> LeakyReLU twice. InstanceNorm,
//! not BatchNorm: the batches are a few slices, and each slice's own statistics are what a
//! single served slice has too.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{InstanceNorm, InstanceNormConfig, PaddingConfig2d};
use burn::prelude::*;

use super::ops::{conv3x3, instance_norm as norm, leaky_relu};
use super::{LEAKY_SLOPE, NORM_EPSILON, Precision};

/// Conv3x3 (pad 1) -> InstanceNorm -> LeakyReLU(0.2), twice.
#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv1: Conv2d,
    pub norm1: InstanceNorm,
    pub conv2: Conv2d,
    pub norm2: InstanceNorm,
}

#[derive(Config, Debug)]
pub struct ConvBlockConfig {
    pub channels_in: usize,
    pub channels_out: usize,
}

/// InstanceNorm without affine parameters (PyTorch's `InstanceNorm2d` default).
pub fn instance_norm(channels: usize, device: &Device) -> InstanceNorm {
    InstanceNormConfig::new(channels)
        .with_affine(false)
        .with_epsilon(NORM_EPSILON)
        .init(device)
}

impl ConvBlockConfig {
    pub fn init(&self, device: &Device) -> ConvBlock {
        let conv = |cin, cout| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        ConvBlock {
            conv1: conv(self.channels_in, self.channels_out),
            norm1: instance_norm(self.channels_out, device),
            conv2: conv(self.channels_out, self.channels_out),
            norm2: instance_norm(self.channels_out, device),
        }
    }
}

impl ConvBlock {
    /// `[N, C_in, H, W] -> [N, C_out, H, W]`, the convolutions computing in `precision`.
    pub fn forward(&self, x: Tensor<4>, precision: Precision) -> Tensor<4> {
        let x = leaky_relu::forward(
            norm::forward(&self.norm1, conv3x3::forward(&self.conv1, x, precision)),
            LEAKY_SLOPE,
        );
        leaky_relu::forward(
            norm::forward(&self.norm2, conv3x3::forward(&self.conv2, x, precision)),
            LEAKY_SLOPE,
        )
    }
}
