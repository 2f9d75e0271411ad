//! The acquisition noise level of a magnitude image, estimated from the image itself.
//!
//! The guided denoiser weighs what it predicts from a pixel's surroundings against the
//! pixel's own value by the noise variance, and real scans do not say what theirs is. The
//! estimate is the classic robust one (Donoho's MAD of the finest diagonal wavelet band,
//! here the 2 x 2 Haar `(a - b - c + d) / 2`), restricted to blocks of tissue: in the air
//! around the anatomy a magnitude image's noise is Rayleigh, with 0.43 of the variance, and
//! would pull a whole-image median down. Edges barely touch a median over thousands of
//! blocks.
//!
//! The steps are plain enough to be written as ONNX nodes (a sort, a count, a gather): the
//! exported graph computes the same number from its input, so training (which calls this
//! function) and serving agree.

use ndarray::ArrayView2;

/// The input of a denoiser that reads its slices' noise levels: `[N, K]`, each slice's
/// estimated sigma in the network's normalised units (and its guide's, for a guided model),
/// as `crossdenoise_train::model::guided::NoiseInput` reads them.
pub const INPUT_NOISE: &str = "noise";

/// `median(|HH|) / 0.6745` is the standard deviation of Gaussian noise.
pub const MAD_TO_SIGMA: f32 = 0.6745;
/// A block counts as tissue when its mean exceeds this many sigmas.
pub const TISSUE_SIGMAS: f32 = 4.0;
/// Refinements of the tissue mask after the whole-image start.
pub const REFINEMENTS: usize = 3;
/// Fewer tissue blocks than this keep the previous estimate.
pub const MIN_TISSUE_BLOCKS: usize = 64;

/// The noise standard deviation of `image`, in its own intensity units (0 for an image of
/// fewer than 2 x 2 pixels).
pub fn estimate_sigma(image: ArrayView2<f32>) -> f32 {
    let (h, w) = (image.nrows() / 2, image.ncols() / 2);
    if h == 0 || w == 0 {
        return 0.0;
    }
    let mut detail = Vec::with_capacity(h * w);
    let mut mean = Vec::with_capacity(h * w);
    for i in 0..h {
        for j in 0..w {
            let a = image[(2 * i, 2 * j)];
            let b = image[(2 * i, 2 * j + 1)];
            let c = image[(2 * i + 1, 2 * j)];
            let d = image[(2 * i + 1, 2 * j + 1)];
            detail.push(((a - b) - (c - d)).abs() * 0.5);
            mean.push(((a + b) + (c + d)) * 0.25);
        }
    }
    let mut sigma = upper_median(&mut detail.clone()) / MAD_TO_SIGMA;
    for _ in 0..REFINEMENTS {
        let threshold = TISSUE_SIGMAS * sigma;
        let mut tissue: Vec<f32> = detail
            .iter()
            .zip(&mean)
            .filter(|(_, m)| **m > threshold)
            .map(|(d, _)| *d)
            .collect();
        if tissue.len() >= MIN_TISSUE_BLOCKS {
            sigma = upper_median(&mut tissue) / MAD_TO_SIGMA;
        }
    }
    sigma
}

/// The element at index `len / 2` of the sorted values (the upper median for an even count,
/// as a sort-and-gather in a graph takes it); reorders `values`.
pub(crate) fn upper_median(values: &mut [f32]) -> f32 {
    let k = values.len() / 2;
    *values.select_nth_unstable_by(k, f32::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    #[test]
    fn gaussian_noise_on_a_flat_object_in_air() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let sigma = 0.07f32;
        // An object filling the middle half, magnitude of complex noise everywhere.
        let img = Array2::from_shape_fn((128, 128), |(i, j)| {
            let s = if (32..96).contains(&i) && (32..96).contains(&j) {
                0.8
            } else {
                0.0
            };
            let re: f32 = rng.sample(StandardNormal);
            let im: f32 = rng.sample(StandardNormal);
            ((s + sigma * re).powi(2) + (sigma * im).powi(2)).sqrt()
        });
        let est = estimate_sigma(img.view());
        assert!((est / sigma - 1.0).abs() < 0.05, "{est} vs {sigma}");
    }

    #[test]
    fn median_and_small_images() {
        assert_eq!(upper_median(&mut [3.0, 1.0, 2.0, 4.0]), 3.0);
        assert_eq!(upper_median(&mut [5.0]), 5.0);
        assert_eq!(estimate_sigma(Array2::<f32>::zeros((1, 7)).view()), 0.0);
        assert_eq!(estimate_sigma(Array2::<f32>::zeros((8, 8)).view()), 0.0);
    }
}
