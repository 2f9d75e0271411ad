use std::path::PathBuf;

/// Why a config could not be used; always names the file, and the key where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not valid JSON: {reason}")]
    Json { file: PathBuf, reason: String },
    #[error("{file}: {key}: {reason}")]
    Key {
        file: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{file}: `extends` chain loops back to {again}")]
    ExtendsLoop { file: PathBuf, again: PathBuf },
}
