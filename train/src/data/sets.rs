//! What a config's data loads into: sets of normalised pairs, the training and validation
//! sets, and what goes wrong reading them (apart from the loaders, which all fill them).

use std::path::PathBuf;

use ndarray::Array2;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Runtime(#[from] crossdenoise_image::Error),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Noise-free images of both domains, index-aligned with a [`PairSet`].
pub type CleanPairs = (Vec<Array2<f32>>, Vec<Array2<f32>>);

/// One set of normalised pairs, all of one size.
#[derive(Debug, Clone)]
pub struct PairSet {
    pub names: Vec<String>,
    pub a: Vec<Array2<f32>>,
    pub b: Vec<Array2<f32>>,
    /// Noise-free images (phantoms only), on the same scale as `a` / `b`.
    pub clean: Option<CleanPairs>,
    /// The masks of each pair's findings, in `phantom::Finding::ALL` order (phantoms only).
    pub findings: Option<Vec<[Array2<u8>; 2]>>,
}

impl PairSet {
    /// An empty set of acquired slices alone (no clean images, no findings): what real
    /// data brings.
    pub fn acquired() -> Self {
        PairSet {
            names: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
            clean: None,
            findings: None,
        }
    }

    pub fn len(&self) -> usize {
        self.a.len()
    }

    pub fn is_empty(&self) -> bool {
        self.a.is_empty()
    }

    pub fn dim(&self) -> (usize, usize) {
        self.a[0].dim()
    }
}

/// The training and validation sets of a config.
#[derive(Debug, Clone)]
pub struct Data {
    pub train: PairSet,
    pub val: PairSet,
    /// The magnitudes' noise distribution, in coils (1: Rician; L: noncentral chi of L
    /// coils combined by root-sum-of-squares): the phantoms' coil array, or fastMRI's files.
    pub noise_coils: u32,
}
