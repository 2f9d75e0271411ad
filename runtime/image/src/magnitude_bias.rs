//! The noise-floor bias of magnitude images, and its removal from a denoised one.
//!
//! A single-coil magnitude image is `|A + n|` with complex Gaussian noise of per-component
//! std sigma. Its expectation is the Rician mean `sigma m(A / sigma)`, with
//! `m(t) = sqrt(pi/2) [(1 + t^2/2) I0e(t^2/4) + (t^2/2) I1e(t^2/4)]`: `1.25 sigma` in air
//! (where `A = 0`) and about `sqrt(A^2 + sigma^2)` in bright tissue. A knee coil's L
//! channels, prewhitened and combined by root-sum-of-squares, give a noncentral chi
//! magnitude with 2L degrees of freedom instead: its floor is `sqrt(2) G(L + 1/2) / G(L)`
//! sigmas (3.94 for 8 coils) and its mean about `sqrt(A^2 + (2L - 1) sigma^2)` above it
//! ([`noncentral_chi_mean`], the Rician mean for L = 1).
//!
//! A denoiser of magnitude images (BM3D, NLM, or the project's blind-spot network trained
//! on noisy images) estimates that expectation, so its air is a grey floor and its dark
//! tissue too bright. The mean rises monotonically with the amplitude, so the amplitude
//! follows by inverting it: [`BiasCorrection`] does that with a table (exact to the table's
//! step), mapping everything at or below the floor to 0 (Gudbjartsson & Patz 1995 give the
//! same inversion for one coil; the square-root rule `sqrt(M^2 - sigma^2)` it reduces to
//! above ~4 sigma leaves 0.76 sigma in air).

use ndarray::ArrayViewMut2;

/// `sqrt(pi / 2)`: the Rician mean of zero amplitude, in sigmas.
pub const RAYLEIGH_MEAN: f64 = 1.253_314_137_315_500_3;
/// For one coil the table covers amplitudes up to this many sigmas; above it
/// `m(t) = sqrt(t^2 + 1)` to better than 1e-4. L coils need `sqrt(L)` times as far for the
/// square-root rule `sqrt(t^2 + 2L - 1)` to hold as well.
const TABLE_MAX: f64 = 12.0;
const TABLE_STEPS: usize = 4800;

/// `m(t)`: the Rician mean of amplitude `t`, noise 1.
pub fn rician_mean(t: f64) -> f64 {
    let x = t * t / 4.0;
    RAYLEIGH_MEAN * ((1.0 + 2.0 * x) * i0e(x) + 2.0 * x * i1e(x))
}

/// The mean of a magnitude of `coils` coils at amplitude `t`, noise 1: the Rician mean's
/// closed form for one coil, the noncentral chi series for more.
pub fn magnitude_mean(t: f64, coils: u32) -> f64 {
    if coils <= 1 {
        rician_mean(t)
    } else {
        noncentral_chi_mean(t, coils)
    }
}

/// The mean of a noncentral chi magnitude with `2 coils` degrees of freedom, amplitude `t`,
/// noise 1: `sqrt(pi/2) (2L-1)!! / (2^(L-1) (L-1)!) 1F1(-1/2; L; -t^2/2)`.
///
/// Kummer's transformation turns the alternating series into one of positive terms,
/// `1F1(-1/2; L; -x) = e^-x 1F1(L + 1/2; L; x)`, summed in logarithms so that no term
/// overflows at large `x`.
pub fn noncentral_chi_mean(t: f64, coils: u32) -> f64 {
    let l = f64::from(coils.max(1));
    // sqrt(pi/2) (2L-1)!! / (2^(L-1) (L-1)!) = sqrt(2) G(L + 1/2) / G(L), built factor by
    // factor: each coil multiplies it by (k + 1/2) / k.
    let mut scale = RAYLEIGH_MEAN;
    for k in 1..coils.max(1) {
        let k = f64::from(k);
        scale *= (k + 0.5) / k;
    }
    let x = t * t / 2.0;
    if x == 0.0 {
        return scale;
    }
    // Terms e^-x x^k / k! (L + 1/2)_k / (L)_k, up to well past the peak near k = x.
    let last = (x + 12.0 * x.sqrt() + 40.0).ceil() as usize;
    let (mut log_term, mut sum) = (-x, 0.0);
    for k in 0..=last {
        sum += log_term.exp();
        let k = k as f64;
        log_term += x.ln() - (k + 1.0).ln() + ((l + 0.5 + k) / (l + k)).ln();
    }
    scale * sum
}

/// The inverse of the magnitude's mean for a number of coils, tabulated once.
#[derive(Debug, Clone)]
pub struct BiasCorrection {
    /// The coils whose magnitude this inverts (1: Rician).
    coils: u32,
    /// `m(t_k)` at `t_k = k table_max / TABLE_STEPS`.
    means: Vec<f64>,
    table_max: f64,
}

impl Default for BiasCorrection {
    /// One coil: the Rician inversion.
    fn default() -> Self {
        Self::for_coils(1)
    }
}

impl BiasCorrection {
    /// The inversion for `coils` prewhitened channels combined by root-sum-of-squares (1: a
    /// single coil, or any combination that leaves complex Gaussian noise, such as a
    /// sensitivity-weighted one).
    pub fn for_coils(coils: u32) -> Self {
        let coils = coils.max(1);
        let table_max = TABLE_MAX * f64::from(coils).sqrt();
        let step = table_max / TABLE_STEPS as f64;
        let means = (0..=TABLE_STEPS)
            .map(|k| magnitude_mean(k as f64 * step, coils))
            .collect();
        BiasCorrection {
            coils,
            means,
            table_max,
        }
    }

    /// The magnitude's degrees of freedom, in coils (1: Rician).
    pub fn coils(&self) -> u32 {
        self.coils
    }

    /// The amplitude whose mean is `mean`, for noise `sigma` (0 for a mean at or below
    /// the noise floor; `mean` itself when `sigma` is 0).
    pub fn amplitude(&self, mean: f32, sigma: f32) -> f32 {
        if sigma.is_nan() || sigma <= 0.0 {
            return mean;
        }
        let (m, s) = (f64::from(mean), f64::from(sigma));
        let r = m / s;
        if r <= self.means[0] {
            return 0.0;
        }
        let last = *self.means.last().expect("a table");
        if r >= last {
            return (root_rule(r, self.coils) * s) as f32;
        }
        // The first tabulated mean above r; interpolate between it and the one before.
        let k = self.means.partition_point(|&v| v <= r).max(1);
        let (lo, hi) = (self.means[k - 1], self.means[k]);
        let step = self.table_max / TABLE_STEPS as f64;
        let t = (k as f64 - 1.0 + (r - lo) / (hi - lo)) * step;
        (t * s) as f32
    }

    /// The magnitude's mean at amplitude `amplitude` and noise `sigma`, from the same table
    /// (interpolated; past it `sqrt(A^2 + (2L - 1) sigma^2)`), so that [`Self::amplitude`]
    /// inverts it; `amplitude` itself when `sigma` is 0, and a NaN for a NaN (a failing
    /// model's output must stay visible to the checks after it, not become the floor).
    pub fn mean(&self, amplitude: f32, sigma: f32) -> f32 {
        if amplitude.is_nan() || sigma.is_nan() || sigma <= 0.0 {
            return amplitude;
        }
        let (a, s) = (f64::from(amplitude.max(0.0)), f64::from(sigma));
        let step = self.table_max / TABLE_STEPS as f64;
        let at = a / s / step;
        let k = at.floor() as usize;
        if k >= TABLE_STEPS {
            let t = a / s;
            return ((t * t + f64::from(2 * self.coils - 1)).sqrt() * s) as f32;
        }
        let f = at - k as f64;
        ((self.means[k] * (1.0 - f) + self.means[k + 1] * f) * s) as f32
    }

    /// Replaces every value of `image` (a denoised magnitude) by its amplitude.
    pub fn apply(&self, mut image: ArrayViewMut2<f32>, sigma: f32) {
        image.mapv_inplace(|v| self.amplitude(v, sigma));
    }
}

/// The amplitude (in sigmas) whose mean is `t` sigmas by the square-root rule,
/// `sqrt(t^2 - (2L - 1))` for `coils` coils, 0 at or below the floor: exact far above it,
/// what the table gives way to, and the amplitude an observation suggests by itself.
pub fn root_rule(t: f64, coils: u32) -> f64 {
    (t * t - f64::from(2 * coils.max(1) - 1)).max(0.0).sqrt()
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

/// `ln(x^-nu exp(-x) I_nu(x))` for an integer order `nu` and `x >= 0`: the log of the
/// modified Bessel function with its growth and its behaviour at zero taken out, so that it
/// is finite everywhere (`-nu ln 2 - ln nu!` at 0). It is what the noncentral chi
/// likelihood of `nu + 1` coils needs of the Bessel function at every bin of a pixel's
/// posterior, millions of times a slice, so it is the cheap uniform asymptotic expansion
/// from order 5 up (Debye's, to the fourth term: within 1e-5 there) and exact below.
pub fn log_ive_scaled(nu: u32, x: f64) -> f64 {
    let x = x.max(0.0);
    match nu {
        0 => i0e(x).max(f64::MIN_POSITIVE).ln(),
        1..=4 => log_ive_scaled_exact(nu, x),
        _ => log_ive_scaled_debye(nu, x),
    }
}

/// Debye's expansion, `I_nu(nu z) ~ exp(nu eta) / (sqrt(2 pi nu) (1 + z^2)^(1/4)) sum_k
/// u_k(t) / nu^k`, `t = 1 / sqrt(1 + z^2)` (Abramowitz & Stegun 9.7.7), with `x^-nu
/// exp(-x)` folded into its logarithm so nothing cancels at either end.
fn log_ive_scaled_debye(nu: u32, x: f64) -> f64 {
    let n = f64::from(nu);
    let z = x / n;
    let root = (1.0 + z * z).sqrt();
    let t = 1.0 / root;
    let t2 = t * t;
    let u1 = t * (3.0 - 5.0 * t2) / 24.0;
    let u2 = t2 * (81.0 - 462.0 * t2 + 385.0 * t2 * t2) / 1152.0;
    let u3 = t * t2 * (30375.0 + t2 * (-369_603.0 + t2 * (765_765.0 - 425_425.0 * t2))) / 414_720.0;
    let u4 = t2
        * t2
        * (4_465_125.0
            + t2 * (-94_121_676.0
                + t2 * (349_922_430.0 + t2 * (-446_185_740.0 + 185_910_725.0 * t2))))
        / 39_813_120.0;
    let series = 1.0 + (u1 + (u2 + (u3 + u4 / n) / n) / n) / n;
    // nu eta - nu ln x - x = nu (root - z) - nu ln nu - nu ln(1 + root).
    n / (root + z)
        - n * n.ln()
        - n * (1.0 + root).ln()
        - 0.5 * (2.0 * std::f64::consts::PI * n).ln()
        - 0.25 * (1.0 + z * z).ln()
        + series.ln()
}

/// The same exactly: below `x = 2 nu` the power series (its terms fall after a dozen),
/// above it the forward recurrence from `I0` and `I1`, which is stable where the orders stay
/// below the argument.
fn log_ive_scaled_exact(nu: u32, x: f64) -> f64 {
    let n = f64::from(nu);
    if nu == 0 {
        return i0e(x).max(f64::MIN_POSITIVE).ln();
    }
    if x >= 2.0 * n && x > 0.0 {
        let (mut prev, mut cur) = (i0e(x), i1e(x));
        for k in 1..nu {
            let next = prev - (2.0 * f64::from(k) / x) * cur;
            prev = cur;
            cur = next;
        }
        return cur.max(f64::MIN_POSITIVE).ln() - n * x.ln();
    }
    // I_nu(x) = (x / 2)^nu sum_k (x^2 / 4)^k / (k! (k + nu)!).
    let q = x * x / 4.0;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in 1..400 {
        let k = f64::from(k);
        term *= q / (k * (k + n));
        sum += term;
        if term < 1e-17 * sum {
            break;
        }
    }
    let ln_factorial: f64 = (2..=nu).map(|k| f64::from(k).ln()).sum();
    -n * std::f64::consts::LN_2 - ln_factorial + sum.ln() - x
}

/// Horner's rule, lowest order first.
fn poly(t: f64, coeffs: &[f64]) -> f64 {
    coeffs.iter().rev().fold(0.0, |acc, &c| acc * t + c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tabulated_mean_is_the_closed_form_and_the_inversion_undoes_it() {
        for coils in [1u32, 8] {
            let correction = BiasCorrection::for_coils(coils);
            for t in [0.0f64, 0.3, 1.0, 2.5, 4.0, 9.0, 30.0, 80.0] {
                let sigma = 0.05f32;
                let amplitude = (t * f64::from(sigma)) as f32;
                let mean = correction.mean(amplitude, sigma);
                let exact = magnitude_mean(t, coils) * f64::from(sigma);
                assert!(
                    (f64::from(mean) - exact).abs() < 1e-4 * f64::from(sigma),
                    "{coils} coils, {t} sigma: {mean} against {exact}"
                );
                assert!(correction.mean(f32::NAN, sigma).is_nan(), "a NaN stays one");
                assert!(correction.amplitude(f32::NAN, sigma).is_nan());
                if t >= 1.0 {
                    let back = correction.amplitude(mean, sigma);
                    assert!(
                        (back - amplitude).abs() < 2e-3 * sigma,
                        "{coils} coils, {t}: {back}"
                    );
                }
            }
        }
    }

    /// `ln(x^-nu e^-x I_nu(x))` against scipy (`log(ive(nu, x)) - nu log(x)`), the exact
    /// form on both sides of its switch from the series to the recurrence, the expansion
    /// against the exact form from 0 to far above, and the limits at zero.
    #[test]
    fn scaled_bessel_of_any_order_matches_scipy() {
        for (nu, x, exact) in [
            (1u32, 0.5, -1.162_058_266_465_389_3),
            (3, 2.0, -5.627_126_249_434_54),
            (7, 13.9, -22.437_193_364_128_063),
            (7, 14.1, -22.519_296_104_860_24),
            (14, 40.0, -56.860_014_711_616_68),
            (14, 300.0, -83.950_520_297_044_35),
        ] {
            let got = log_ive_scaled(nu, x);
            assert!(
                (got - exact).abs() < 1e-5,
                "nu {nu} x {x}: {got} vs {exact}"
            );
            // The exact form's recurrence carries I0's and I1's 2e-7 forward: a few 1e-5 at
            // order 14, shared by neighbouring bins, so a posterior would not see it.
            let exact_form = log_ive_scaled_exact(nu, x);
            assert!(
                (exact_form - exact).abs() < 5e-5,
                "nu {nu} x {x}: {exact_form}"
            );
        }
        for nu in 5..16u32 {
            for k in 0..400 {
                let x = 0.05 * f64::from(k) * f64::from(k);
                let (fast, exact) = (log_ive_scaled(nu, x), log_ive_scaled_exact(nu, x));
                assert!(
                    (fast - exact).abs() < 1e-4,
                    "nu {nu} x {x}: {fast} vs {exact}"
                );
            }
        }
        let at_zero = |nu: u32| {
            -f64::from(nu) * std::f64::consts::LN_2
                - (2..=nu).map(|k| f64::from(k).ln()).sum::<f64>()
        };
        assert!((log_ive_scaled(2, 0.0) - at_zero(2)).abs() < 1e-12);
        assert!((log_ive_scaled(7, 0.0) - at_zero(7)).abs() < 1e-6);
        assert!((log_ive_scaled(0, 1.5) - i0e(1.5).ln()).abs() < 1e-12);
    }

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
        let c = BiasCorrection::default();
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

    #[test]
    fn noncentral_chi_mean_closed_forms() {
        // One coil is the Rician mean, everywhere.
        for t in [0.0, 0.3, 1.0, 2.5, 7.0, 20.0] {
            assert!(
                (noncentral_chi_mean(t, 1) - rician_mean(t)).abs() < 1e-6,
                "t = {t}"
            );
        }
        // No signal: the central chi mean sqrt(2) G(L + 1/2) / G(L); 2 coils 1.879971,
        // 8 coils 3.938026 (scipy: sqrt(2) * gamma(L + .5) / gamma(L)).
        assert!((noncentral_chi_mean(0.0, 2) - 1.879_971).abs() < 1e-6);
        assert!((noncentral_chi_mean(0.0, 8) - 3.938_026).abs() < 1e-6);
        // With signal, scipy's hyp1f1 in the closed form.
        for (coils, t, exact) in [
            (2, 1.5, 2.365_249),
            (8, 3.0, 4.931_993),
            (12, 6.0, 7.694_115),
        ] {
            let m = noncentral_chi_mean(t, coils);
            assert!((m - exact).abs() < 2e-6, "{coils} coils, t {t}: {m}");
        }
        // High SNR: sqrt(t^2 + 2L - 1) to O(1/t^3).
        for coils in [2, 8, 16] {
            let t = 60.0;
            let m = noncentral_chi_mean(t, coils);
            let rule = (t * t + f64::from(2 * coils - 1)).sqrt();
            assert!((m - rule).abs() < 2e-3, "{coils} coils: {m} vs {rule}");
        }
    }

    #[test]
    fn noncentral_chi_mean_matches_simulation() {
        use rand::{Rng, SeedableRng};
        use rand_chacha::ChaCha8Rng;
        use rand_distr::StandardNormal;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let draws = 200_000;
        for (coils, t) in [(2u32, 1.5f64), (8, 0.0), (8, 3.0), (12, 6.0)] {
            // The amplitude spread over the channels; only its total matters.
            let per = t / f64::from(coils).sqrt();
            let mean = (0..draws)
                .map(|_| {
                    (0..coils)
                        .map(|_| {
                            let re = per + rng.sample::<f64, _>(StandardNormal);
                            let im: f64 = rng.sample(StandardNormal);
                            re * re + im * im
                        })
                        .sum::<f64>()
                        .sqrt()
                })
                .sum::<f64>()
                / draws as f64;
            let exact = noncentral_chi_mean(t, coils);
            assert!(
                (mean - exact).abs() < 0.01,
                "{coils} coils, t {t}: {mean} vs {exact}"
            );
        }
    }

    #[test]
    fn coil_correction_inverts_its_mean() {
        for coils in [2u32, 8, 16] {
            let c = BiasCorrection::for_coils(coils);
            let sigma = 0.02f32;
            for a in [0.01f32, 0.04, 0.1, 0.5, 0.9, 1.6] {
                let m =
                    (noncentral_chi_mean(f64::from(a / sigma), coils) * f64::from(sigma)) as f32;
                let back = c.amplitude(m, sigma);
                assert!(
                    (back - a).abs() < 5e-4 * a.max(0.1),
                    "{coils}: {a} -> {m} -> {back}"
                );
            }
            // The floor of 8 coils is 3.94 sigma: a Rician inversion would call it tissue.
            let floor = (noncentral_chi_mean(0.0, coils) * f64::from(sigma)) as f32;
            assert_eq!(c.amplitude(floor * 0.99, sigma), 0.0);
        }
    }
}
