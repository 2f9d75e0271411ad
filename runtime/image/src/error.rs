//! Errors of the image core. Every variant that concerns a file names it, so a user with
//! a folder of thousands of slices learns which one is at fault.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: &'static str,
        expected: String,
        got: String,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a readable .npy file: {reason}")]
    Npy { path: PathBuf, reason: String },

    #[error(
        "{path}: unsupported .npy dtype {dtype} (expected float32 '<f4', float64 '<f8' or uint16 '<u2', 2-D, real)"
    )]
    NpyDtype { path: PathBuf, dtype: String },

    #[error("{path}: expected a 2-D array, got {ndim} dimensions")]
    NotTwoD { path: PathBuf, ndim: usize },

    #[error("{path}: not a readable PNG: {reason}")]
    Png { path: PathBuf, reason: String },

    #[error("{path}: unsupported PNG {reason} (expected 8- or 16-bit grayscale)")]
    PngFormat { path: PathBuf, reason: String },

    #[error("{path}: unsupported image file (expected .npy, .png or DICOM)")]
    Extension { path: PathBuf },

    #[error("{path}: {reason}")]
    Folder { path: PathBuf, reason: String },

    #[error(
        "{root}: pd/pdfs file names do not match: {} only in {a_dir}/: [{}]; {} only in {b_dir}/: [{}]",
        only_a.len(), list(only_a), only_b.len(), list(only_b)
    )]
    Unpaired {
        root: PathBuf,
        a_dir: String,
        b_dir: String,
        only_a: Vec<String>,
        only_b: Vec<String>,
    },

    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    #[error("{path}: {reason}")]
    Dicom { path: PathBuf, reason: String },

    /// A fastMRI file whose layout differs from the published one, naming the dataset or
    /// attribute at fault.
    #[error("{path}: {dataset}: {reason}")]
    FastMri {
        path: PathBuf,
        dataset: String,
        reason: String,
    },
}

/// Lists up to 10 names so an error about a big folder stays readable.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", ... {} more", names.len() - SHOWN));
    }
    s
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The one of `all` (a closed choice of the CLI, configs and manifests) whose name is
/// `name`; otherwise an error naming `what` and every name it could have been, so that
/// each choice lists its names once.
pub(crate) fn by_name<T: Copy>(
    what: &'static str,
    name: &str,
    all: &[T],
    name_of: impl Fn(T) -> &'static str,
) -> Result<T> {
    if let Some(found) = all.iter().copied().find(|&t| name_of(t) == name) {
        return Ok(found);
    }
    let names: Vec<&str> = all.iter().map(|&t| name_of(t)).collect();
    let choices = match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "nothing".into(),
    };
    Err(Error::Invalid {
        what,
        reason: format!("{name:?} is not {choices}"),
    })
}

#[cfg(test)]
mod tests {
    use crate::coils::Combination;
    use crate::noise_map::PhaseEncoding;

    #[test]
    fn a_name_not_among_a_choice_lists_every_name_it_could_have_been() {
        let err = |e: crate::Error| e.to_string();
        assert_eq!(
            err(Combination::parse("sos").unwrap_err()),
            "coil combination: \"sos\" is not rss or sensitivity"
        );
        assert_eq!(
            err(PhaseEncoding::parse("row").unwrap_err()),
            "phase encoding: \"row\" is not unknown, left-right or up-down"
        );
        for c in Combination::ALL {
            assert_eq!(Combination::parse(c.name()).unwrap(), c);
        }
    }
}
