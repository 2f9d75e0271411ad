//! The image core of crossdenoise: what must mean the same thing at training and at serving
//! time.
//!
//! Image types, the normalisation and padding, the file formats (.npy, PNG, DICOM), the
//! quality metrics and the leakage measure, fastMRI's k-space files, the model metadata an exported model carries,
//! the Rician noise model, the pictures (PNG grids) and the synthetic knee phantoms that
//! are the project's embedded data set. Training (`crossdenoise-train`) and serving
//! (`crossdenoise-runtime`, the daemon) both build on it; it depends on neither Burn nor
//! ONNX Runtime, so training never links the inference library and the daemon never links
//! the training framework.

pub mod air;
pub mod coils;
pub mod collaborative_wiener;
pub mod dicom;
pub mod error;
pub mod fastmri;
pub mod fat_signal;
pub mod floor_aware;
pub mod growing_series;
pub mod html;
pub mod image;
pub mod io;
pub mod leakage;
pub mod lineage;
pub mod magnitude_bias;
pub mod metrics;
pub mod model_metadata;
pub mod neighbourhood;
pub mod noise;
pub mod noise_map;
pub mod nonlocal_prior;
pub mod normalize;
pub mod orientation;
pub mod pad;
pub mod phantom;
pub mod phantom_set;
pub mod picture;
pub mod posterior;

pub use error::{Error, Result};
pub use image::{Batch, Slice};
pub use model_metadata::{AssumedMetadata, GuideMetadata, ModelKind, ModelMetadata};
pub use normalize::{NormScale, Normalization};
pub use pad::Padding;
