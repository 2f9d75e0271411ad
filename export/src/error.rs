//! Errors of an export; each names the file or folder at fault.

use std::path::{Path, PathBuf};

use crate::agreement::ParityReport;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a crossdenoise run or checkpoint folder ({reason})")]
    NotARun { path: PathBuf, reason: String },

    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error("{path}: the checkpoint does not match its run's config: {reason}")]
    Mismatch { path: PathBuf, reason: String },

    #[error("{0}")]
    Unsupported(String),

    #[error("cannot encode the ONNX model: {0}")]
    Encode(String),

    #[error("parity check could not run: {0}")]
    ParityRun(#[from] crossdenoise_runtime::Error),

    #[error(
        "parity check failed: ONNX Runtime and Burn differ by {:.3e} (max abs), above the \
         {tolerance:.0e} tolerance; nothing was written\n{report}",
        report.max_abs_error()
    )]
    Parity {
        report: Box<ParityReport>,
        tolerance: f32,
    },
}

impl ExportError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ExportError::Io {
            path: path.into(),
            source,
        }
    }
}
