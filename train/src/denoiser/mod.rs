//! The product's denoisers (`model.kind` guided or single): both contrasts, each from its
//! own noisy image, self-supervised on the acquired pairs alone.
//!
//! The training loop, run folder, checkpoints, resume and failure handling are the run's
//! (`crate::run`); this folder has the denoisers' task (`training`): its batches (random
//! crops, `crops`), losses (`loss`, `prior`) and validation (`validation`), whose figures a
//! person reads: PSNR / SSIM of each denoised contrast against the clean phantom beside the
//! acquired image's, and how far each output shows the other contrast's findings (leakage).

pub mod crops;
pub mod loss;
pub mod prior;
pub mod training;
pub mod validation;

pub use training::{
    DenoiserFinals, DenoiserLine, DenoiserLoss, DenoiserState, DenoiserSummary, DenoiserSums,
    DenoiserTask, train,
};
pub use validation::{DenoiserValidation, DirectionValidation, FindingLeakage, Score};
