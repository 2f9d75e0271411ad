//! The self-supervised loss of the guided and single-contrast denoisers.
//!
//! The network is blind to each pixel's own value, so the best it can predict is the
//! pixel's expected value given everything else: the mean squared error against the noisy
//! image is minimised by the noise-free expectation, never by copying the noise (Laine et
//! al. 2019, Batson & Royer 2019). For a magnitude image that expectation still carries the
//! Rician bias (a grey floor in air); `crossdenoise_image::rician` removes it after
//! inference, as the runtime does when serving. The error is divided by each slice's noise
//! variance, so slices of different noise weigh alike and the loss reads in noise units:
//! about 1 in tissue where the prediction is right (the pixel's own noise remains), 0.43 in
//! air (Rayleigh noise).

use burn::prelude::*;

/// Below this noise level (normalised units) a slice is taken as noise-free.
pub const MIN_SIGMA: f32 = 1e-4;

/// `mean((pred - acquired)^2 / sigma^2)` over a batch; `sigma` is `[N, 1, 1, 1]`.
pub fn loss(pred: Tensor<4>, acquired: Tensor<4>, sigma: Tensor<4>) -> Tensor<1> {
    let var = sigma.clamp_min(MIN_SIGMA).powf_scalar(2.0);
    ((pred - acquired).powf_scalar(2.0) / var).mean()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_is_in_noise_variances() {
        let device = Device::flex();
        let pred = Tensor::<4>::zeros([2, 1, 2, 2], &device);
        let acquired = Tensor::<4>::full([2, 1, 2, 2], 0.2, &device);
        // Slice 0 with sigma 0.1 (error 4 variances), slice 1 with 0.2 (1 variance).
        let sigma = Tensor::<4>::from_data([[[[0.1f32]]], [[[0.2]]]], &device);
        let l = loss(pred, acquired, sigma).into_scalar::<f32>();
        assert!((l - 2.5).abs() < 1e-5, "{l}");
    }
}
