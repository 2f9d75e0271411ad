//! The part of crossdenoise that both the workstation and the scanner-side box run.
//!
//! It holds everything that must mean the same thing at training and at serving time —
//! image types, the normalisation and padding, file formats, quality metrics — plus the
//! synthetic knee phantoms that are the project's embedded data set, and the ONNX Runtime
//! [`Denoiser`] that serves an exported model. It never depends on
//! Burn, so the daemon next to the console stays small.

pub mod denoise_files;
pub mod denoiser;
pub mod dicom;
pub mod error;
pub mod execution_provider;
pub mod image;
pub mod io;
pub mod leakage;
pub mod metrics;
pub mod model_metadata;
pub mod noise;
pub mod normalize;
pub mod onnx_runtime;
pub mod pad;
pub mod phantom;
pub mod phantom_set;
pub mod picture;
pub mod rician;

pub use denoiser::{Denoiser, DenoiserOptions};
pub use error::{Error, Result};
pub use execution_provider::{ProviderKind, ProviderSettings};
pub use image::{Batch, Slice};
pub use model_metadata::{AssumedMetadata, GuideMetadata, ModelKind, ModelMetadata};
pub use normalize::{NormScale, Normalization};
pub use onnx_runtime::OnnxRuntime;
pub use pad::Padding;
