//! The Rician bias of magnitude images, and its removal from a denoised one.
//!
//! A magnitude image is `|A + n|` with complex Gaussian noise of per-component std sigma.
//! Its expectation is the Rician mean `sigma m(A / sigma)`, with
//! `m(t) = sqrt(pi/2) [(1 + t^2/2) I0e(t^2/4) + (t^2/2) I1e(t^2/4)]`: `1.25 sigma` in air
//! (where `A = 0`) and about `sqrt(A^2 + sigma^2)` in bright tissue. A denoiser of magnitude
//! images (BM3D, NLM, or the project's blind-spot network trained on noisy images) estimates
//! that expectation, so its air is a grey floor and its dark tissue too bright. `m` rises
//! monotonically, so the amplitude follows by inverting it: [`RicianCorrection`] does that
//! with a table (exact to the table's step), mapping everything at or below the Rayleigh
//! mean to 0 (Gudbjartsson & Patz 1995 give the same inversion; the square-root rule
//! `sqrt(M^2 - sigma^2)` it reduces to above ~4 sigma leaves 0.76 sigma in air).

use ndarray::ArrayViewMut2;

/// `sqrt(pi / 2)`: the Rician mean of zero amplitude, in sigmas.
pub const RAYLEIGH_MEAN: f64 = 1.253_314_137_315_500_3;
/// The table covers amplitudes up to this many sigmas; above it `m(t) = sqrt(t^2 + 1)` to
/// better than 1e-4.
const TABLE_MAX: f64 = 12.0;
const TABLE_STEPS: usize = 4800;

/// `m(t)`: the Rician mean of amplitude `t`, noise 1.
pub fn rician_mean(t: f64) -> f64 {
    let x = t * t / 4.0;
    RAYLEIGH_MEAN * ((1.0 + 2.0 * x) * i0e(x) + 2.0 * x * i1e(x))
}

/// The inverse of [`rician_mean`], tabulated once.
#[derive(Debug, Clone)]
pub struct RicianCorrection {
    /// `m(t_k)` at `t_k = k TABLE_MAX / TABLE_STEPS`.
    means: Vec<f64>,
}

impl Default for RicianCorrection {
    fn default() -> Self {
        let step = TABLE_MAX / TABLE_STEPS as f64;
        RicianCorrection {
            means: (0..=TABLE_STEPS)
                .map(|k| rician_mean(k as f64 * step))
                .collect(),
        }
    }
}

impl RicianCorrection {
    /// The amplitude whose Rician mean is `mean`, for noise `sigma` (0 for a mean at or below
    /// the Rayleigh mean; `mean` itself when `sigma` is 0).
    pub fn amplitude(&self, mean: f32, sigma: f32) -> f32 {
        if sigma.is_nan() || sigma <= 0.0 {
            return mean;
        }
        let (m, s) = (f64::from(mean), f64::from(sigma));
        let r = m / s;
        if r <= RAYLEIGH_MEAN {
            return 0.0;
        }
        let last = *self.means.last().expect("a table");
        if r >= last {
            return ((m * m - s * s).max(0.0)).sqrt() as f32;
        }
        // The first tabulated mean above r; interpolate between it and the one before.
        let k = self.means.partition_point(|&v| v <= r).max(1);
        let (lo, hi) = (self.means[k - 1], self.means[k]);
        let step = TABLE_MAX / TABLE_STEPS as f64;
        let t = (k as f64 - 1.0 + (r - lo) / (hi - lo)) * step;
        (t * s) as f32
    }

    /// Replaces every value of `image` (a denoised magnitude) by its amplitude.
    pub fn apply(&self, mut image: ArrayViewMut2<f32>, sigma: f32) {
        image.mapv_inplace(|v| self.amplitude(v, sigma));
    }
}

/// `exp(-x) I0(x)`, `x >= 0` (Abramowitz & Stegun 9.8.1 / 9.8.2, relative error < 2e-7).
pub fn i0e(x: f64) -> f64 {
    if x < 3.75 {
        let t = (x / 3.75).powi(2);
        poly(
            t,
            &[
                1.0,
                3.515_622_9,
                3.089_942_4,
                1.206_749_2,
                0.265_973_2,
                0.036_076_8,
                0.004_581_3,
            ],
        ) * (-x).exp()
    } else {
        poly(
            3.75 / x,
            &[
                0.398_942_28,
                0.013_285_92,
                0.002_253_19,
                -0.001_575_65,
                0.009_162_81,
                -0.020_577_06,
                0.026_355_37,
                -0.016_476_33,
                0.003_923_77,
            ],
        ) / x.sqrt()
    }
}

/// `exp(-x) I1(x)`, `x >= 0` (Abramowitz & Stegun 9.8.3 / 9.8.4).
fn i1e(x: f64) -> f64 {
    if x < 3.75 {
        let t = (x / 3.75).powi(2);
        x * poly(
            t,
            &[
                0.5,
                0.878_905_94,
                0.514_988_69,
                0.150_849_34,
                0.026_587_33,
                0.003_015_32,
                0.000_324_11,
            ],
        ) * (-x).exp()
    } else {
        poly(
            3.75 / x,
            &[
                0.398_942_28,
                -0.039_880_24,
                -0.003_620_18,
                0.001_638_01,
                -0.010_315_55,
                0.022_829_67,
                -0.028_953_12,
                0.017_876_54,
                -0.004_200_59,
            ],
        ) / x.sqrt()
    }
}

/// Horner's rule, lowest order first.
fn poly(t: f64, coeffs: &[f64]) -> f64 {
    coeffs.iter().rev().fold(0.0, |acc, &c| acc * t + c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_functions_match_scipy() {
        // scipy.special.i0e / i1e, rounded to 7 decimals.
        for (x, i0, i1) in [
            (0.0, 1.0, 0.0),
            (1.0, 0.465_759_6, 0.207_910_4),
            (3.7, 0.216_049_4, 0.183_837_9),
            (3.8, 0.212_900_1, 0.182_107_6),
            (10.0, 0.127_833_3, 0.121_262_7),
            (500.0, 0.017_845_7, 0.017_827_9),
        ] {
            assert!(
                (i0e(x) - i0).abs() < 1e-7 + 2e-6 * i0,
                "i0e({x}) = {}",
                i0e(x)
            );
            assert!(
                (i1e(x) - i1).abs() < 1e-7 + 2e-6 * i1,
                "i1e({x}) = {}",
                i1e(x)
            );
        }
    }

    #[test]
    fn rician_mean_at_known_points() {
        assert!((rician_mean(0.0) - RAYLEIGH_MEAN).abs() < 1e-12);
        // scipy: at A = sigma 1.548572, at 10 sigma 10.050127 (near sqrt(101)).
        assert!((rician_mean(1.0) - 1.548_572_5).abs() < 1e-6);
        assert!((rician_mean(10.0) - 10.050_127).abs() < 1e-5);
    }

    #[test]
    fn amplitude_inverts_the_mean() {
        let c = RicianCorrection::default();
        let sigma = 0.05f32;
        for a in [0.02f32, 0.05, 0.1, 0.3, 0.59, 0.9] {
            let m = (rician_mean(f64::from(a / sigma)) * f64::from(sigma)) as f32;
            let back = c.amplitude(m, sigma);
            assert!((back - a).abs() < 2e-4 * a.max(0.1), "{a} -> {m} -> {back}");
        }
        // The noise floor maps to black, a noise-free image stays as it is.
        assert_eq!(c.amplitude(1.2 * sigma, sigma), 0.0);
        assert_eq!(c.amplitude(0.5, 0.0), 0.5);
        // Far above the table, the square-root rule.
        assert!((c.amplitude(2.0, 0.05) - (4.0f32 - 0.0025).sqrt()).abs() < 1e-6);
    }
}
