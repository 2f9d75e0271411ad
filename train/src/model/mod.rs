//! The dual-domain network of docs/DESIGN.md, "The model".
//!
//! Two encoders (or one shared) map PD (`a`) and PDFS (`b`) into one latent space; one
//! decoder per contrast maps a latent back to an image. Decoders fuse skips additively, so
//! the same decoder runs with its own skips (reconstruction), another domain's skips or
//! none at all (the no_skip cross path that is exported).
//!
//! Beside it, the product's denoiser ([`GuidedDenoiser`]): a blind-spot network that
//! denoises a contrast from its own image, the other contrast as a guide.

pub mod blind_spot;
mod conv_block;
mod decoder;
mod dual_domain;
mod encoder;
mod guided;
pub mod init;
mod ops;
mod precision;
pub mod strategy;

pub use conv_block::{ConvBlock, ConvBlockConfig};
pub use decoder::{Decoder, DecoderConfig};
pub use dual_domain::{Domain, DualDomain, DualDomainConfig, ForwardPlan, Outputs};
pub use encoder::{Encoded, Encoder, EncoderConfig};
pub use guided::{
    DenoiserPair, GuidedDenoiser, GuidedDenoiserConfig, NOISE_GAIN, NoiseInput, PriorHead,
    PriorOutput,
};
pub use precision::{Precision, PrecisionError, PrecisionSetting};
pub use strategy::CrossDomainStrategy;

/// LeakyReLU slope used everywhere in the network.
pub const LEAKY_SLOPE: f64 = 0.2;
/// InstanceNorm epsilon (PyTorch's default), also written into the ONNX graph.
pub const NORM_EPSILON: f64 = 1e-5;
