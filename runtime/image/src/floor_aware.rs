//! The noise floor's inversion as a posterior mean that knows the air exists.
//!
//! [`BiasCorrection`] inverts a denoised magnitude's mean exactly. At the noise floor that is
//! ill-conditioned: the mean rises only by about `t^2 / 8` sigma above the floor's, so a
//! denoised air pixel a tenth of a sigma above it comes back as an amplitude of most of a
//! sigma, and the air of a slice stays grey (worst at a coil array's floor, where the noise
//! map's own error adds to it). Here the amplitude's prior is a point mass at zero (the air)
//! with weight `zero_weight` plus a flat density up to the slice's largest amplitude, the
//! denoised mean is the true mean plus Gaussian error of sd `error` (in sigmas), and both
//! are fitted to each slice by maximum marginal likelihood over the histogram of its
//! `mean / sigma` ratios (empirical Bayes: nothing is set by hand, a slice without air gets
//! a weight near zero and so the exact inversion). Only ratios within
//! [`ABOVE_FLOOR`] sigmas of the floor are touched: above them the point mass has no weight
//! and the flat prior's posterior mean is the exact inversion.

use ndarray::{ArrayView2, Zip};

use crate::magnitude_bias::{BiasCorrection, magnitude_mean};

/// Ratios more than this many sigmas above the floor's mean are inverted exactly; the
/// table blends into the exact inversion over the last sigma below it.
pub const ABOVE_FLOOR: f64 = 4.0;
/// Amplitudes tabulated for the fit and the posterior, from 0 to where the mean reaches
/// [`ABOVE_FLOOR`] plus five of the widest error.
const AMPLITUDES: usize = 480;
/// Histogram bins of the slice's ratios below the cut.
const BINS: usize = 160;
/// Points of the posterior-mean table.
const TABLE: usize = 320;
/// The candidate errors (sd of the denoised mean, in sigmas), geometric. Held to a tenth of
/// the noise: a larger error lets the point mass explain fat-suppressed tissue 1 to 3 sigma
/// above zero as noisy air (QUALITY.md, "a stronger fair baseline").
const ERRORS: (f64, f64, usize) = (0.01, 0.1, 12);
/// The candidate weights of the point mass: 0, 1/40, ... 38/40.
const WEIGHTS: usize = 39;

/// A slice's fitted prior and its posterior-mean table, or the exact inversion alone.
#[derive(Debug, Clone, PartialEq)]
pub struct FloorAware {
    fit: Option<Fit>,
}

#[derive(Debug, Clone, PartialEq)]
struct Fit {
    zero_weight: f64,
    error: f64,
    /// Ratios `lo..=hi` of the table, `hi` the cut above the floor.
    lo: f64,
    hi: f64,
    /// The posterior mean of the amplitude, in sigmas, at `TABLE` evenly spaced ratios.
    amplitudes: Vec<f64>,
}

impl FloorAware {
    /// The exact inversion, unchanged (what a slice with no pixel near the floor gets).
    pub fn exact() -> Self {
        FloorAware { fit: None }
    }

    /// Fits the prior to a slice's denoised means `mean` and their noise `sigma` (one per
    /// pixel, in the same units), for the magnitude `correction` inverts.
    pub fn fit(correction: &BiasCorrection, mean: ArrayView2<f32>, sigma: ArrayView2<f32>) -> Self {
        let coils = correction.coils();
        let mu = |t: f64| magnitude_mean(t, coils);
        let floor = mu(0.0);
        let hi = floor + ABOVE_FLOOR;
        let mut ratios = Vec::with_capacity(mean.len());
        let mut top = 0.0f64;
        Zip::from(&mean).and(&sigma).for_each(|&m, &s| {
            let r = f64::from(m) / f64::from(s);
            if s > 0.0 && r.is_finite() {
                top = top.max(r);
                ratios.push(r);
            }
        });
        let lo = ratios.iter().copied().fold(floor - 1.0, f64::min);
        let low: Vec<f64> = ratios.iter().copied().filter(|&r| r < hi).collect();
        if low.is_empty() {
            return Self::exact();
        }
        let high = (ratios.len() - low.len()) as f64;
        // The amplitude grid: far enough that the widest error's likelihood of the cut is
        // covered; the flat prior reaches the slice's largest amplitude (at least that).
        let reach = hi + 5.0 * ERRORS.1;
        let mut t_end = 1.0;
        while mu(t_end) < reach {
            t_end += 0.5;
        }
        let step = t_end / AMPLITUDES as f64;
        let grid: Vec<(f64, f64)> = (1..=AMPLITUDES)
            .map(|k| {
                let t = k as f64 * step;
                (t, mu(t))
            })
            .collect();
        let t_max = correction.amplitude(top as f32, 1.0).max(t_end as f32) as f64;
        let flat = step / t_max;
        let width = (hi - lo) / BINS as f64;
        let mut counts = vec![0.0f64; BINS];
        for r in &low {
            counts[(((r - lo) / width) as usize).min(BINS - 1)] += 1.0;
        }
        let centres: Vec<f64> = (0..BINS).map(|b| lo + (b as f64 + 0.5) * width).collect();
        let mut best = (f64::NEG_INFINITY, 0.0, ERRORS.0);
        for e in 0..ERRORS.2 {
            let error = ERRORS.0 * (ERRORS.1 / ERRORS.0).powf(e as f64 / (ERRORS.2 - 1) as f64);
            let (at_zero, signal) = likelihoods(&centres, &grid, floor, error, flat);
            for w in 0..WEIGHTS {
                let weight = w as f64 / 40.0;
                let mut ll = high * (1.0 - weight).ln();
                for b in 0..BINS {
                    if counts[b] > 0.0 {
                        let p = weight * at_zero[b] + (1.0 - weight) * signal[b];
                        ll += counts[b] * p.max(1e-300).ln();
                    }
                }
                if ll > best.0 {
                    best = (ll, weight, error);
                }
            }
        }
        let (_, zero_weight, error) = best;
        let amplitudes = (0..TABLE)
            .map(|i| {
                let r = lo + (hi - lo) * i as f64 / (TABLE - 1) as f64;
                posterior_mean(r, &grid, floor, error, flat, zero_weight)
            })
            .collect();
        FloorAware {
            fit: Some(Fit {
                zero_weight,
                error,
                lo,
                hi,
                amplitudes,
            }),
        }
    }

    /// The fitted weight of the point mass at zero and the error's sd in sigmas (None for
    /// the exact inversion).
    pub fn prior(&self) -> Option<(f64, f64)> {
        self.fit.as_ref().map(|f| (f.zero_weight, f.error))
    }

    /// The amplitude a denoised mean `mean` of noise `sigma` stands for.
    pub fn amplitude(&self, correction: &BiasCorrection, mean: f32, sigma: f32) -> f32 {
        let exact = correction.amplitude(mean, sigma);
        let Some(fit) = &self.fit else {
            return exact;
        };
        if sigma.is_nan() || sigma <= 0.0 {
            return exact;
        }
        let r = f64::from(mean) / f64::from(sigma);
        if r.is_nan() || r >= fit.hi {
            return exact;
        }
        let x =
            ((r - fit.lo) / (fit.hi - fit.lo) * (TABLE - 1) as f64).clamp(0.0, (TABLE - 1) as f64);
        let k = (x as usize).min(TABLE - 2);
        let f = x - k as f64;
        let table = (1.0 - f) * fit.amplitudes[k] + f * fit.amplitudes[k + 1];
        // Over the last sigma below the cut, into the exact inversion.
        let w = (fit.hi - r).clamp(0.0, 1.0);
        let t = w * table + (1.0 - w) * f64::from(exact / sigma);
        (t * f64::from(sigma)) as f32
    }
}

/// The Gaussian density of `x` with sd `s`.
fn density(x: f64, s: f64) -> f64 {
    (-0.5 * (x / s).powi(2)).exp() / s
}

/// Per bin centre: the likelihood of the ratio under the point mass at zero, and under the
/// flat prior (each grid amplitude weighted by `flat`, its share of the prior).
fn likelihoods(
    centres: &[f64],
    grid: &[(f64, f64)],
    floor: f64,
    error: f64,
    flat: f64,
) -> (Vec<f64>, Vec<f64>) {
    let at_zero = centres.iter().map(|&r| density(r - floor, error)).collect();
    let signal = centres
        .iter()
        .map(|&r| {
            flat * grid
                .iter()
                .map(|&(_, m)| density(r - m, error))
                .sum::<f64>()
        })
        .collect();
    (at_zero, signal)
}

/// The posterior mean of the amplitude (in sigmas) given the ratio `r`.
fn posterior_mean(
    r: f64,
    grid: &[(f64, f64)],
    floor: f64,
    error: f64,
    flat: f64,
    zero_weight: f64,
) -> f64 {
    let mut weight = zero_weight * density(r - floor, error);
    let mut moment = 0.0;
    for &(t, m) in grid {
        let w = (1.0 - zero_weight) * flat * density(r - m, error);
        weight += w;
        moment += w * t;
    }
    if weight > 0.0 { moment / weight } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    use super::*;

    /// A slice whose left half is air and right half tissue of 8 to 12 sigma, each pixel's
    /// denoised mean off by Gaussian error of `error` sigma; sigma 0.1.
    fn slice(coils: u32, error: f32, air: bool) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let sigma = 0.1f32;
        let amplitude = Array2::from_shape_fn((64, 64), |(_, j)| {
            if air && j < 32 {
                0.0
            } else {
                0.8 + 0.4 * rng.random::<f32>()
            }
        });
        let mean = amplitude.mapv(|a| {
            let t = f64::from(a / sigma);
            let m = magnitude_mean(t, coils);
            let n: f32 = rng.sample(StandardNormal);
            sigma * (m as f32 + error * n)
        });
        (amplitude, mean, Array2::from_elem((64, 64), sigma))
    }

    fn served(c: &BiasCorrection, f: &FloorAware, mean: &Array2<f32>, sigma: f32) -> Array2<f32> {
        mean.mapv(|m| f.amplitude(c, m, sigma))
    }

    #[test]
    fn air_comes_back_black_and_tissue_as_the_exact_inversion_gives_it() {
        for coils in [1, 8] {
            let c = BiasCorrection::for_coils(coils);
            let (_, mean, sigma) = slice(coils, 0.05, true);
            let fit = FloorAware::fit(&c, mean.view(), sigma.view());
            let (weight, _) = fit.prior().expect("air near the floor");
            assert!(weight > 0.3, "{coils} coils: weight {weight}");
            let ours = served(&c, &fit, &mean, 0.1);
            let exact = served(&c, &FloorAware::exact(), &mean, 0.1);
            let air = |img: &Array2<f32>| img.slice(ndarray::s![.., ..32]).mean().unwrap() / 0.1;
            assert!(air(&ours) < 0.1, "{coils} coils: air {} sigma", air(&ours));
            assert!(
                air(&exact) > 2.0 * air(&ours),
                "{coils} coils: exact air {}",
                air(&exact)
            );
            let tissue = |img: &Array2<f32>| img.slice(ndarray::s![.., 32..]).to_owned();
            let d = (tissue(&ours) - tissue(&exact)).mapv(f32::abs);
            assert!(d.iter().all(|&v| v < 1e-6), "{coils} coils: tissue moved");
        }
    }

    #[test]
    fn a_slice_without_air_keeps_the_exact_inversion() {
        let c = BiasCorrection::default();
        // Amplitudes of 1 to 3 sigma: near the floor, but no air.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let amplitude = Array2::from_shape_fn((64, 64), |_| 0.1 + 0.2 * rng.random::<f32>());
        let mean = amplitude.mapv(|a| 0.1 * magnitude_mean(f64::from(a / 0.1), 1) as f32);
        let sigma = Array2::from_elem((64, 64), 0.1f32);
        let fit = FloorAware::fit(&c, mean.view(), sigma.view());
        let (weight, _) = fit.prior().expect("pixels near the floor");
        assert!(weight < 0.05, "weight {weight}");
        let ours = served(&c, &fit, &mean, 0.1);
        let err = (&ours - &amplitude).mapv(f32::abs).mean().unwrap() / 0.1;
        assert!(err < 0.1, "mean error {err} sigma");
    }

    #[test]
    fn slices_far_above_the_floor_or_empty_are_inverted_exactly() {
        let c = BiasCorrection::default();
        let bright = Array2::from_elem((8, 8), 2.0f32);
        let sigma = Array2::from_elem((8, 8), 0.1f32);
        assert_eq!(
            FloorAware::fit(&c, bright.view(), sigma.view()),
            FloorAware::exact()
        );
        let none = Array2::<f32>::zeros((0, 0));
        assert_eq!(
            FloorAware::fit(&c, none.view(), none.view()),
            FloorAware::exact()
        );
        // A pixel of zero noise is left to the exact inversion (its mean itself).
        let one = Array2::from_elem((1, 1), 0.2f32);
        let zero = Array2::from_elem((1, 1), 0.0f32);
        let fit = FloorAware::fit(&c, one.view(), zero.view());
        assert_eq!(fit.amplitude(&c, 0.2, 0.0), 0.2);
    }
}
