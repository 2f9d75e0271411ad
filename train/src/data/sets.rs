//! What a config's data loads into: sets of normalised pairs, the training and validation
//! sets, and what goes wrong reading them (apart from the loaders, which all fill them).

use std::path::PathBuf;

use crossdenoise_image::noise::estimate_sigma;
use crossdenoise_image::noise_map::{
    NoiseMapSettings, NoiseModel, PhaseEncoding, map_level, noise_factor,
};
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
    /// `a[i]` and `b[i]` are one slice of one patient in two contrasts (false for
    /// fastMRI's volumes of different patients, which train each contrast apart).
    pub paired: bool,
    /// Each slice's noise sd, `[a, b]`, where its noise map gave it: a coil array's slices
    /// divided by their maps ([`PairSet::even_noise`]). `None`: one sigma per slice,
    /// estimated from it ([`PairSet::noise`]).
    pub noise_sd: Option<Vec<[f32; 2]>>,
}

/// A slice's noise, `[a, b]`, twice over: what the network reads and what the losses
/// assume. The two differ for a coil array's slices: the runtime gives a network with a
/// noise input the one-sigma estimate of the slice (`noise::estimate_sigma`, a Rician
/// estimator, which reads a noncentral chi slice of 8 coils 10-26% low), but serves the
/// posterior at the noise map's sd. A prior trained at the low estimate learns to be as
/// wide as the noise it is not told of, and is served too wide (QUALITY.md, "the coil
/// model's prior").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceNoise {
    /// The noise input's level, estimated from the slice as the runtime estimates it.
    pub level: [f32; 2],
    /// The sd the losses, the prior's likelihood and the posterior assume: the noise
    /// map's where the slice was divided by one, else `level`.
    pub sd: [f32; 2],
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
            paired: true,
            noise_sd: None,
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

    /// Each slice's noise: the level its network reads and the sd its losses assume.
    pub fn noise(&self) -> Vec<SliceNoise> {
        (0..self.len())
            .map(|i| {
                let level = [
                    estimate_sigma(self.a[i].view()),
                    estimate_sigma(self.b[i].view()),
                ];
                let sd = self.noise_sd.as_ref().map_or(level, |sd| sd[i]);
                SliceNoise { level, sd }
            })
            .collect()
    }

    /// Divides every slice, and its clean image, by its noise factor (its noise map of
    /// `coils` coils over the map's median, `noise_map::noise_factor`), as the runtime does
    /// with a noise map: the network then learns one noise level per slice, which is what
    /// it will meet. Each slice's sd is then its map's median ([`PairSet::noise_sd`]).
    pub fn even_noise(
        &mut self,
        coils: u32,
        phase_encoding: PhaseEncoding,
    ) -> Result<(), DataError> {
        let settings = NoiseMapSettings {
            coils,
            phase_encoding,
            ..NoiseMapSettings::default()
        };
        let model = NoiseModel::Map(settings);
        let mut sd = Vec::with_capacity(self.len());
        for i in 0..self.a.len() {
            // Each slice read beside its partner, as the runtime reads a slice beside its
            // guide; slices of different patients each alone.
            let (map_a, map_b) = if self.paired {
                model.sigma_of_pair(self.a[i].view(), self.b[i].view())?
            } else {
                (
                    model.sigma(self.a[i].view())?,
                    model.sigma(self.b[i].view())?,
                )
            };
            let (factor_a, factor_b) = (noise_factor(map_a.view()), noise_factor(map_b.view()));
            let level = |map: &Array2<f32>| map_level(map.view()).unwrap_or(0.0);
            sd.push([level(&map_a), level(&map_b)]);
            self.a[i] /= &factor_a;
            self.b[i] /= &factor_b;
            if let Some((clean_a, clean_b)) = self.clean.as_mut() {
                clean_a[i] /= &factor_a;
                clean_b[i] /= &factor_b;
            }
        }
        self.noise_sd = Some(sd);
        Ok(())
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
    /// Which way their phase encoding runs, for their noise maps' tiles.
    pub phase_encoding: PhaseEncoding,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_noise_divides_slice_and_clean_alike() {
        // A flat object, the right half twice as noisy: afterwards the air of both halves
        // has one noise level, and the clean image is divided as its slice was.
        let size = 256;
        let clean = Array2::from_shape_fn((size, size), |(i, _)| {
            if (size / 4..size * 3 / 4).contains(&i) {
                0.7f32
            } else {
                0.0
            }
        });
        let half = |j: usize| if j < size / 2 { 0.03 } else { 0.06 };
        let noisy = crossdenoise_test_support::rician(&clean, |_, j| half(j), 3);
        let mut set = PairSet {
            names: vec!["0".into()],
            a: vec![noisy.clone()],
            b: vec![noisy.clone()],
            clean: Some((vec![clean.clone()], vec![clean.clone()])),
            findings: None,
            paired: true,
            noise_sd: None,
        };
        set.even_noise(1, PhaseEncoding::Unknown).unwrap();
        let air = |cols: std::ops::Range<usize>| {
            let values: Vec<f32> = (0..size / 8)
                .flat_map(|i| cols.clone().map(move |j| (i, j)))
                .map(|at| set.a[0][at].powi(2))
                .collect();
            (values.iter().sum::<f32>() / values.len() as f32 / 2.0).sqrt()
        };
        let (left, right) = (air(8..48), air(208..248));
        assert!(
            (right / left - 1.0).abs() < 0.06,
            "left {left}, right {right}"
        );
        let (ca, _) = set.clean.as_ref().unwrap();
        let factor = |j: usize| noisy[(size / 2, j)] / set.a[0][(size / 2, j)];
        let ratio = factor(size - 20) / factor(20);
        assert!(
            (ratio / 2.0 - 1.0).abs() < 0.1,
            "right over left factor {ratio}"
        );
        for j in [20, size - 20] {
            let clean_factor = clean[(size / 2, j)] / ca[0][(size / 2, j)];
            assert!((clean_factor / factor(j) - 1.0).abs() < 1e-4, "column {j}");
        }
    }
}
