//! The loss of the prior's spread: the negative log marginal likelihood of each noisy pixel
//! under the prior the network states for it and the Rician noise of a magnitude image.
//!
//! The prior of the clean amplitude is `|N(mean, std^2)|` (`crossdenoise_image::posterior`):
//! its mean is the network's prediction with the Rician bias removed, as served, and is held
//! fixed here (the prediction learns from its own loss, `denoiser::loss`); its spread
//! `std = sigma exp(spread)` is what this loss trains. The marginal likelihood of the
//! observation `y` is the prior's mass in each bin of the likelihood's reach times the Rician
//! likelihood at the bin's centre, summed: exactly the grid the posterior is computed on at
//! serving time, so the spread is fitted under the model it is used in. A prior too narrow
//! for what the surroundings can tell makes the observed pixels improbable, one too wide
//! throws the surroundings away; the loss is least where the spread is the real uncertainty
//! of the prediction.
//!
//! Everything that depends on the observation alone (the bins' edges, the likelihoods) is
//! computed here on the host; only the masses, through `erf`, carry gradients.

use burn::prelude::*;
use crossdenoise_image::posterior::{self, BINS, SPREAD_RANGE};
use crossdenoise_image::rician::RicianCorrection;
use ndarray::Array2;

use super::loss::MIN_SIGMA;

/// What the loss needs of a batch besides the spread, in noise sigmas: the bins' edges
/// (`[N, BINS + 1, H, W]`), the likelihood of the observation at each bin's centre
/// (`[N, BINS, H, W]`, scaled so that its largest value is 1 at every pixel) and the
/// prior's mean (`[N, 1, H, W]`).
#[derive(Debug, Clone)]
pub struct PriorTargets {
    pub edges: Tensor<4>,
    pub likelihood: Tensor<4>,
    pub mean: Tensor<4>,
}

/// The targets of a batch: the network's predictions `expected` of the `acquired` crops,
/// whose slices have noise `sigmas` (all normalised).
pub fn targets(
    correction: &RicianCorrection,
    expected: &[Array2<f32>],
    acquired: &[Array2<f32>],
    sigmas: &[f32],
    device: &Device,
) -> PriorTargets {
    let n = acquired.len();
    let (h, w) = acquired[0].dim();
    let plane = h * w;
    let mut edges = vec![0.0f32; n * (BINS + 1) * plane];
    let mut likelihood = vec![0.0f32; n * BINS * plane];
    let mut mean = vec![0.0f32; n * plane];
    for (i, ((e, y), &sigma)) in expected.iter().zip(acquired).zip(sigmas).enumerate() {
        let sigma = sigma.max(MIN_SIGMA);
        for (p, (&e, &y)) in e.iter().zip(y.iter()).enumerate() {
            let y = f64::from(y.max(0.0) / sigma);
            mean[i * plane + p] = correction.amplitude(e, sigma) / sigma;
            let grid = posterior::Grid::likelihood(y);
            for k in 0..=BINS {
                edges[(i * (BINS + 1) + k) * plane + p] = grid.edge(k) as f32;
            }
            let l: [f64; BINS] = std::array::from_fn(|k| posterior::likelihood(y, grid.centre(k)));
            let top = l.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
            for (k, v) in l.into_iter().enumerate() {
                likelihood[(i * BINS + k) * plane + p] = (v / top) as f32;
            }
        }
    }
    let tensor =
        |v: Vec<f32>, c: usize| Tensor::<4>::from_data(TensorData::new(v, [n, c, h, w]), device);
    PriorTargets {
        edges: tensor(edges, BINS + 1),
        likelihood: tensor(likelihood, BINS),
        mean: tensor(mean, 1),
    }
}

/// The mean over pixels of `-ln sum_k mass_k(spread) likelihood_k`, the masses those of
/// `|N(mean, exp(spread)^2)|` in each bin.
pub fn loss(spread: Tensor<4>, t: PriorTargets) -> Tensor<1> {
    let std = spread.clamp(SPREAD_RANGE.0, SPREAD_RANGE.1).exp();
    let [n, k1, h, w] = t.edges.dims();
    let cdf = |centre: Tensor<4>| {
        let z = (t.edges.clone() - centre) / std.clone() * std::f32::consts::FRAC_1_SQRT_2;
        (z.erf() + 1.0) * 0.5
    };
    // Both halves of the folded Gaussian: X near +mean and near -mean.
    let c = cdf(t.mean.clone()) + cdf(-t.mean);
    let mass = c.clone().slice([0..n, 1..k1, 0..h, 0..w]) - c.slice([0..n, 0..k1 - 1, 0..h, 0..w]);
    let evidence = (mass.clamp_min(0.0) * t.likelihood).sum_dim(1);
    -(evidence + 1e-12).log().mean()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss is least near the spread that matches how far the prediction is off.
    #[test]
    fn the_loss_prefers_the_true_spread() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let device = Device::flex();
        let correction = RicianCorrection::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (sigma, truth) = (0.05f32, 0.6f32);
        // The prediction is off by N(0, (2 sigma)^2): the right spread is ln 2.
        let off = Normal::new(0.0f32, 2.0 * sigma).unwrap();
        let noise = Normal::new(0.0f32, sigma).unwrap();
        let (mut expected, mut acquired) = (Array2::zeros((32, 32)), Array2::zeros((32, 32)));
        for (e, y) in expected.iter_mut().zip(acquired.iter_mut()) {
            let a = truth + off.sample(&mut rng);
            let (re, im) = (a + noise.sample(&mut rng), noise.sample(&mut rng));
            *y = (re * re + im * im).sqrt();
            // The network predicts the Rician mean of its estimate of the amplitude.
            *e = (truth * truth + sigma * sigma).sqrt();
        }
        let t = targets(&correction, &[expected], &[acquired], &[sigma], &device);
        let at = |s: f32| {
            loss(Tensor::<4>::full([1, 1, 32, 32], s, &device), t.clone()).into_scalar::<f32>()
        };
        let (low, right, high) = (at(-1.0), at(2f32.ln()), at(2.0));
        assert!(right < low && right < high, "{low} {right} {high}");
    }
}
