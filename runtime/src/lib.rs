//! ONNX Runtime serving: the part of crossdenoise that runs an exported model, on the
//! workstation (`crossdenoise denoise`) and next to the console (the daemon).
//!
//! It loads ONNX Runtime from the library the project installs, opens a model with the
//! execution providers asked for (CPU, CUDA, TensorRT, with a reported fallback), and
//! applies the exported model's own preprocessing (from the image core,
//! `crossdenoise-image`) around it: [`Denoiser`] for one slice, [`denoise_files`] for a
//! folder. It never depends on Burn, so the daemon next to the console stays small.

pub mod denoise_files;
pub mod denoiser;
pub mod error;
mod even_noise;
pub mod execution_provider;
pub mod guard;
mod input;
mod local_levels;
mod noise_levels;
pub mod onnx_runtime;
pub mod options;
mod orientations;
pub mod series_noise;
mod session_io;
mod tiles;

pub use denoiser::Denoiser;
pub use error::{Error, Result};
pub use execution_provider::{ProviderKind, ProviderSettings};
pub use onnx_runtime::OnnxRuntime;
pub use options::DenoiserOptions;
pub use series_noise::{Arrival, SeriesNoise};
