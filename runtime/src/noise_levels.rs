//! The noise levels a model with a noise input reads beside its slices: each slice's sigma
//! (and its guide's) in the network's normalised units, estimated exactly as training
//! estimated its slices' (`crossdenoise_image::noise::estimate_sigma` on the normalised
//! slice, without its padding), and where a guide shows tissue by its own.

use crossdenoise_image::Padding;
use crossdenoise_image::floor_aware::partner_tissue;
use crossdenoise_image::noise::estimate_sigma;
use crossdenoise_image::noise_map::NoiseModel;
use ndarray::{Array2, ArrayView2};

use crate::Result;

/// `[N, K]` row-major: for each of the `n` padded planes (`ph x pw`) of `input` its sigma,
/// followed by its guide's when there are guides.
pub(crate) fn noise_levels(
    input: &[f32],
    guide: Option<&[f32]>,
    padding: &Padding,
    (ph, pw): (usize, usize),
    n: usize,
) -> Vec<f32> {
    let plane = ph * pw;
    let sigma = |batch: &[f32], i: usize| {
        let view = ArrayView2::from_shape((ph, pw), &batch[i * plane..(i + 1) * plane])
            .expect("a whole plane");
        estimate_sigma(padding.crop(view))
    };
    (0..n)
        .flat_map(|i| std::iter::once(sigma(input, i)).chain(guide.map(|g| sigma(g, i))))
        .collect()
}

/// Where a guide (`guide`, its plane without padding) shows tissue
/// ([`partner_tissue`]), read against the noise level the model read for it (`level`) or,
/// for a model that reads none, one the slice's noise model estimates from it.
pub(crate) fn guide_tissue(
    guide: ArrayView2<f32>,
    level: Option<f32>,
    noise: &NoiseModel,
    coils: u32,
) -> Result<Array2<bool>> {
    let sigma = match level {
        Some(s) => Array2::from_elem(guide.dim(), s),
        None => noise.sigma(guide)?,
    };
    Ok(partner_tissue(guide, sigma.view(), coils))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each slice's level comes before its guide's, and padding is not counted: a slice of
    /// pure noise padded by reflection gives its own sigma.
    #[test]
    fn levels_pair_each_slice_with_its_guide() {
        let (h, w) = (60, 60);
        let padding = Padding::to_multiple(h, w, 16).unwrap();
        let (ph, pw) = padding.padded_dim(h, w);
        let noisy = |seed: u64, sigma: f32| {
            // A bright flat slice (all tissue) with Rician noise of this sigma.
            let flat = ndarray::Array2::from_elem((h, w), 1.0f32);
            let slice = crossdenoise_test_support::rician(&flat, |_, _| sigma, seed);
            let mut out = ndarray::Array2::zeros((ph, pw));
            padding.pad_map_into(slice.view(), out.view_mut(), |v| v);
            out.into_raw_vec_and_offset().0
        };
        let input = [noisy(1, 0.02), noisy(2, 0.04)].concat();
        let guide = [noisy(3, 0.05), noisy(4, 0.08)].concat();
        let levels = noise_levels(&input, Some(&guide), &padding, (ph, pw), 2);
        assert_eq!(levels.len(), 4);
        for (got, want) in levels.iter().zip([0.02, 0.05, 0.04, 0.08]) {
            assert!((got / want - 1.0).abs() < 0.1, "{levels:?}");
        }
        let alone = noise_levels(&input, None, &padding, (ph, pw), 2);
        assert_eq!(alone, vec![levels[0], levels[2]]);
    }
}
