//! Training on Burn: the study's dual-domain cross-contrast network, and the product's
//! guided and single-contrast denoisers (`denoiser`).
//!
//! Preprocessing is never written again here: normalisation, padding, phantoms and metrics
//! come from `crossdenoise-image`, the image core the runtime serves with, so training and
//! serving agree by construction.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod curves;
pub mod data;
pub mod denoiser;
pub mod device;
pub mod experiment;
pub mod loss;
pub mod model;
pub mod records;
pub mod strategy;
pub mod training;

pub use config::Config;
