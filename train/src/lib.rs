//! Training on Burn: the product's guided and single-contrast denoisers ([`denoiser`]), and
//! the original study's dual-domain cross-contrast network ([`study`]), both trained by the
//! one loop of [`run`]; [`job`] trains whichever a config names.
//!
//! Preprocessing is never written again here: normalisation, padding, phantoms and metrics
//! come from `crossdenoise-image`, the image core the runtime serves with, so training and
//! serving agree by construction.

pub mod config;
pub mod data;
pub mod denoiser;
pub mod device;
pub mod job;
pub mod model;
pub mod run;
pub mod study;

pub use config::Config;
