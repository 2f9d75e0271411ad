//! Training of the product's denoisers (`model.kind` guided or single): both contrasts,
//! each from its own noisy image, self-supervised on the acquired pairs alone.
//!
//! The loop shares the run folder, checkpoints, resume and failure handling of the
//! dual-domain loop (`training`), and has its own batches (random crops, `crops`), loss
//! (`loss`) and validation (`validation`), whose figures a person reads: PSNR / SSIM of
//! each denoised contrast against the clean phantom beside the acquired image's, and how
//! far each output shows the other contrast's findings (leakage).

pub mod crops;
pub mod loss;
pub mod prior;
pub mod training;
pub mod validation;

pub use training::{DenoiserLine, DenoiserLoss, DenoiserState, train};
pub use validation::{DenoiserValidation, DirectionValidation, FindingLeakage, Score};
