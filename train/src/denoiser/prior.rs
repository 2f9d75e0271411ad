//! The loss of the prior: the negative log marginal likelihood of each noisy pixel under the
//! prior the network states for it and the noise of a magnitude image (Rician, or
//! noncentral chi for coils combined by root-sum-of-squares: the bias correction's coils).
//!
//! The prior of the clean amplitude is `|N(mean, std^2)|` (`crossdenoise_image::posterior`):
//! its mean is the network's prediction with the Rician bias removed, as served (held fixed
//! here: the prediction learns from its own loss, `denoiser::loss`), plus the head's shift
//! `sigma shift`; its width is `std = sigma exp(spread)`. The shift and the spread are what
//! this loss trains. The marginal likelihood of the
//! observation `y`, `integral prior(A) L(y | A) dA`, is summed over the bins of exactly the
//! grid the posterior is computed on at serving time (`posterior::Grid::posterior`: around
//! the posterior, a third of its deviation per bin or finer), the folded prior's density and
//! the Rician likelihood at each bin's centre. The grid follows the spread the network
//! states now, so the integral stays accurate for a prior of any width: a fixed grid of bins
//! a quarter of the noise wide cannot tell a prior a tenth of the noise wide from one a
//! hundredth wide, and left the spread in the air and in smooth tissue (where the prediction
//! is nearly exact) stuck at the bins' width, which let the noise back into the posterior.
//! A prior too narrow for what the surroundings can tell makes the observed pixels
//! improbable, one too wide throws the surroundings away; the loss is least where the
//! spread is the real uncertainty of the prediction.
//!
//! Everything that depends on the observation and the current prior alone (the bins'
//! centres and width, the likelihoods) is computed on the host; only the prior's density
//! carries gradients.

use burn::prelude::*;
use crossdenoise_image::magnitude_bias::BiasCorrection;
#[cfg(test)]
use crossdenoise_image::magnitude_bias::{i0e, rician_mean};
use crossdenoise_image::posterior::{self, BINS, Prior, SPREAD_RANGE};
use ndarray::Array2;
use rayon::prelude::*;

use super::loss::MIN_SIGMA;

/// What the loss needs of a batch besides the head's outputs, in noise sigmas: the bins'
/// centres (`[N, BINS, H, W]`), the log likelihood of the observation at each
/// (`[N, BINS, H, W]`, without the factors of `y` alone, which no prior changes), the log of
/// the bins' width and the prediction's amplitude (both `[N, 1, H, W]`).
#[derive(Debug, Clone)]
pub struct PriorTargets {
    pub centres: Tensor<4>,
    pub log_likelihood: Tensor<4>,
    pub log_width: Tensor<4>,
    pub amplitude: Tensor<4>,
}

/// The head's outputs of a batch as they are now, on the host (normalised).
#[derive(Debug, Clone, Copy)]
pub struct HeadNow<'a> {
    pub spread: &'a [Array2<f32>],
    pub shift: &'a [Array2<f32>],
}

/// The targets of a batch: the network's predictions `expected` of the `acquired` crops,
/// whose slices have noise `sigmas`, and the prior it states now (all normalised).
pub fn targets(
    correction: &BiasCorrection,
    expected: &[Array2<f32>],
    now: HeadNow,
    acquired: &[Array2<f32>],
    sigmas: &[f32],
    device: &Device,
) -> PriorTargets {
    let n = acquired.len();
    let coils = correction.coils();
    let (h, w) = acquired[0].dim();
    let plane = h * w;
    let mut centres = vec![0.0f32; n * BINS * plane];
    let mut log_likelihood = vec![0.0f32; n * BINS * plane];
    let mut log_width = vec![0.0f32; n * plane];
    let mut amplitude = vec![0.0f32; n * plane];
    // Slice by slice on the thread pool: each owns its blocks of the four outputs.
    let slices: Vec<_> = expected
        .iter()
        .zip(now.spread)
        .zip(now.shift)
        .zip(acquired)
        .zip(sigmas)
        .collect();
    centres
        .par_chunks_mut(BINS * plane)
        .zip(log_likelihood.par_chunks_mut(BINS * plane))
        .zip(log_width.par_chunks_mut(plane))
        .zip(amplitude.par_chunks_mut(plane))
        .zip(slices)
        .for_each(
            |((((centres, log_likelihood), log_width), amplitude), slice)| {
                let ((((e, r), d), y), &sigma) = slice;
                let sigma = sigma.max(MIN_SIGMA);
                for (p, (((&e, &r), &d), &y)) in e.iter().zip(r).zip(d).zip(y).enumerate() {
                    let y = f64::from(y.max(0.0) / sigma);
                    let base = correction.amplitude(e, sigma);
                    let prior = Prior::around(base, r, d, sigma);
                    let prior = Prior {
                        mean: prior.mean / f64::from(sigma),
                        std: prior.std / f64::from(sigma),
                    };
                    amplitude[p] = base / sigma;
                    let grid = posterior::Grid::posterior(y, prior, coils)
                        .unwrap_or_else(|| posterior::Grid::likelihood(y, coils));
                    log_width[p] = ((grid.hi - grid.lo) / BINS as f64).max(1e-12).ln() as f32;
                    for k in 0..BINS {
                        let a = grid.centre(k);
                        centres[k * plane + p] = a as f32;
                        log_likelihood[k * plane + p] =
                            posterior::log_likelihood(coils, y, a) as f32;
                    }
                }
            },
        );
    let tensor =
        |v: Vec<f32>, c: usize| Tensor::<4>::from_data(TensorData::new(v, [n, c, h, w]), device);
    PriorTargets {
        centres: tensor(centres, BINS),
        log_likelihood: tensor(log_likelihood, BINS),
        log_width: tensor(log_width, 1),
        amplitude: tensor(amplitude, 1),
    }
}

/// The mean over pixels of `-ln sum_k width density_k likelihood_k`, the density that of
/// `|N(amplitude + shift, exp(spread)^2)|` at each bin's centre.
pub fn loss(spread: Tensor<4>, shift: Tensor<4>, t: PriorTargets) -> Tensor<1> {
    let log_std = spread.clamp(SPREAD_RANGE.0, SPREAD_RANGE.1);
    let std = log_std.clone().exp();
    let mean = (t.amplitude + shift).abs();
    let z = (t.centres.clone() - mean.clone()) / std.clone();
    // Both halves of the folded Gaussian: X near +mean and near -mean, the second as a
    // factor `1 + exp(-2 A |mean| / std^2)` of the first.
    let fold = (t.centres * mean * -2.0 / std.powf_scalar(2.0))
        .clamp_max(0.0)
        .exp()
        .log1p();
    let log_density =
        z.powf_scalar(2.0) * -0.5 + fold - log_std - 0.5 * (2.0 * std::f32::consts::PI).ln();
    let joint = log_density + t.log_likelihood;
    let top = joint.clone().max_dim(1).detach();
    let evidence = (joint - top.clone()).exp().sum_dim(1).log() + top + t.log_width;
    -evidence.mean()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss of one slice whose pixels all have the prior `spread` and `shift`.
    fn loss_at(
        expected: &Array2<f32>,
        acquired: &Array2<f32>,
        sigma: f32,
        (spread, shift): (f32, f32),
    ) -> f32 {
        let device = Device::flex();
        let dim = acquired.dim();
        let plane = |v: f32| [Array2::from_elem(dim, v)];
        let (spreads, shifts) = (plane(spread), plane(shift));
        let now = HeadNow {
            spread: &spreads,
            shift: &shifts,
        };
        let t = targets(
            &BiasCorrection::default(),
            std::slice::from_ref(expected),
            now,
            std::slice::from_ref(acquired),
            &[sigma],
            &device,
        );
        let full = |v| Tensor::<4>::full([1, 1, dim.0, dim.1], v, &device);
        loss(full(spread), full(shift), t).into_scalar::<f32>()
    }

    /// The loss is least at the spread that matches how far the prediction is off: a
    /// prediction nearly exact (0.3 noise sigmas off, narrower than the old fixed bins could
    /// resolve) and one far off (2 sigmas), each against a spread e times narrower and wider.
    #[test]
    fn the_loss_prefers_the_true_spread() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let (sigma, truth, size) = (0.05f32, 0.6f32, 256);
        for (seed, off_by) in [(3u64, 0.3f32), (4, 2.0)] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let off = Normal::new(0.0f32, off_by * sigma).unwrap();
            let noise = Normal::new(0.0f32, sigma).unwrap();
            let mut expected = Array2::zeros((size, size));
            let mut acquired = Array2::zeros((size, size));
            for (e, y) in expected.iter_mut().zip(acquired.iter_mut()) {
                let a = truth + off.sample(&mut rng);
                let (re, im) = (a + noise.sample(&mut rng), noise.sample(&mut rng));
                *y = (re * re + im * im).sqrt();
                // The network predicts the Rician mean of its estimate of the amplitude.
                *e = (truth * truth + sigma * sigma).sqrt();
            }
            let at = |s: f32| loss_at(&expected, &acquired, sigma, (s, 0.0));
            let right = off_by.ln();
            let (low, mid, high) = (at(right - 1.0), at(right), at(right + 1.0));
            assert!(
                mid < low && mid < high,
                "off by {off_by}: {low} {mid} {high}"
            );
        }
    }

    /// A prior far narrower than the noise leaves the observation's own likelihood: the
    /// loss then is the Rician negative log likelihood of `y` at the prior's mean.
    #[test]
    fn a_sharp_prior_gives_the_likelihood_at_its_mean() {
        let sigma = 1.0f32;
        let (amplitude, y) = (3.0f32, 3.4f32);
        // The prediction is the Rician mean of the amplitude, as the network states it.
        let expected = sigma * rician_mean(f64::from(amplitude / sigma)) as f32;
        let got = loss_at(
            &Array2::from_elem((1, 1), expected),
            &Array2::from_elem((1, 1), y),
            sigma,
            (-5.0, 0.0),
        );
        // -ln of exp(-(y - A)^2 / 2) I0e(y A), the likelihood up to the factor of y alone
        // (the targets leave out y / sigma^2, the same for every spread).
        let (a, y) = (f64::from(amplitude), f64::from(y));
        let want = 0.5 * (y - a) * (y - a) - i0e(y * a).ln();
        assert!((f64::from(got) - want).abs() < 1e-2, "{got} vs {want}");
    }

    /// Where the prediction's amplitude is off by the same amount everywhere (a sigma too
    /// bright, as a prediction a little above the air's noise floor becomes), the loss is
    /// least at the shift that undoes it.
    #[test]
    fn the_loss_finds_the_mean_the_prediction_misses() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let (sigma, truth, size) = (0.05f32, 0.3f32, 128);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let noise = Normal::new(0.0f32, sigma).unwrap();
        let mut acquired = Array2::zeros((size, size));
        for y in acquired.iter_mut() {
            let (re, im) = (truth + noise.sample(&mut rng), noise.sample(&mut rng));
            *y = (re * re + im * im).sqrt();
        }
        // The prediction's amplitude is truth + sigma.
        let off = truth + sigma;
        let expected = Array2::from_elem(
            (size, size),
            sigma * rician_mean(f64::from(off / sigma)) as f32,
        );
        let at = |d: f32| loss_at(&expected, &acquired, sigma, (-3.0, d));
        let (none, right, over) = (at(0.0), at(-1.0), at(-2.0));
        assert!(right < none && right < over, "{none} {right} {over}");
    }
}
