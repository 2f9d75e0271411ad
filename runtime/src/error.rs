//! Errors of ONNX Runtime serving: loading the library and a model, running it, pairing a
//! folder's inputs with their guides. The image core's errors — reading a file, a bad
//! shape, a folder or value that cannot be used, which this crate's own checks raise too —
//! are [`Error::Image`]. Every variant that concerns a file
//! names it, so a user with a folder of thousands of slices learns which one is at fault.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Image(#[from] crossdenoise_image::Error),

    #[error(
        "{} input(s) have no usable guide; nothing was written:\n  {}",
        problems.len(), problems.join("\n  ")
    )]
    Pairing { problems: Vec<String> },

    #[error(
        "ONNX Runtime library not found (looked at: {}). Install it with {hint}",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        hint = crate::onnx_runtime::INSTALL_HINT
    )]
    OrtMissing { searched: Vec<PathBuf> },

    #[error("{path}: cannot load ONNX Runtime: {reason}")]
    OrtLoad { path: PathBuf, reason: String },

    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },

    #[error("execution provider {provider} cannot be used (strict: no fallback): {reason}")]
    Provider {
        provider: crate::execution_provider::ProviderKind,
        reason: String,
    },

    #[error("{path}: inference failed: {reason}")]
    Inference { path: PathBuf, reason: String },

    #[error(
        "the result resembles its guide (correlation {with_guide:.3}) more than its own input ({with_input:.3}): not the input's contrast, or not its partner as guide; not delivered"
    )]
    GuideDominates { with_input: f64, with_guide: f64 },
}

impl Error {
    /// Whether the fault may pass by itself (a full or failing disk, a file briefly not
    /// there): the work is worth trying again, and its input must not be given up.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Error::Image(crossdenoise_image::Error::Io { .. }))
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Image(crossdenoise_image::Error::Io {
            path: path.into(),
            source,
        })
    }
}
