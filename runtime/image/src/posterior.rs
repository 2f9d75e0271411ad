//! The posterior mean of a pixel's clean amplitude, given a prior predicted from its
//! surroundings and the pixel's own noisy magnitude (Laine, Karras, Lehtinen, Aila 2019,
//! "High-Quality Self-Supervised Deep Image Denoising", with the Rician likelihood of a
//! magnitude image instead of their Gaussian one).
//!
//! A blind-spot network never sees the pixel it predicts, which is what lets it learn from
//! noisy images alone, but it also throws away the best single piece of evidence about that
//! pixel: its own value. A small finding (a few pixels brighter than their surroundings) is
//! what the surroundings cannot predict, so the network's estimate smooths it away. The
//! posterior weighs the observation back in, as far as the prior is uncertain: where the
//! network is sure (a smooth region) the output is its prediction, where it is not (an edge,
//! a lesion) the output moves towards what the pixel itself shows.
//!
//! The prior of the clean amplitude `A` is the magnitude of a Gaussian, `A = |X|`,
//! `X ~ N(mean, std^2)`, its mean the network's prediction with the Rician bias removed plus
//! a shift the network states, its width a spread the network states: a Gaussian for
//! bright tissue, and a well-defined law near zero
//! (the Rician likelihood is even in `A`, so the folded half is as good as the other). The
//! likelihood of an observed magnitude `y` at noise `sigma` is Rician,
//! `p(y | A) = y / sigma^2 exp(-(y^2 + A^2) / 2 sigma^2) I0(y A / sigma^2)`, or for `L` coils
//! combined by root-sum-of-squares noncentral chi,
//! `p(y | A) = y^L / (sigma^2 A^(L-1)) exp(-(y^2 + A^2) / 2 sigma^2) I_(L-1)(y A / sigma^2)`
//! (the Rician one at `L = 1`): the coil count is the bias correction's. The posterior mean
//! has no closed form; it is computed on a grid of bins around the posterior ([`Grid`]),
//! the folded prior's density and the likelihood at each bin's centre. Training fits the
//! prior by the marginal likelihood of the observation on the likelihood's reach
//! (`crossdenoise-train`, the prior's mass in each bin exact through erf), under exactly the
//! model the posterior assumes.

use ndarray::{Array2, ArrayView2, Zip};

use crate::collaborative_wiener;
use crate::floor_aware::{FloorAware, inside_body};
use crate::magnitude_bias::{BiasCorrection, log_ive_scaled, root_rule};
use crate::nonlocal_prior::{self, PriorMaps};

/// The exported graph's outputs of a model that states a prior, in this order: the expected
/// magnitude (what a model without a prior returns too), the spread and the shift.
pub const OUTPUT_EXPECTED: &str = "denoised";
pub const OUTPUT_SPREAD: &str = "spread";
pub const OUTPUT_SHIFT: &str = "shift";

/// Bins of the grid between the amplitudes the prior and the likelihood reach.
pub const BINS: usize = 48;
/// How far the likelihood reaches either side of the observation, in noise sigmas.
pub const LIKELIHOOD_REACH: f64 = 6.0;
/// How far the prior reaches either side of its mean, in its own standard deviations.
pub const PRIOR_REACH: f64 = 6.0;
/// How far the grid reaches either side of the posterior's (Gaussian-approximated) mean, in
/// its standard deviations.
pub const POSTERIOR_REACH: f64 = 8.0;
/// Where the prediction's amplitude is below `FLOOR.0` noise sigmas the served value is the
/// prediction alone, above `FLOOR.1` the posterior mean, and in between a linear blend. Near
/// the noise floor one pixel's Rician likelihood barely tells an amplitude of 0 from one of
/// half a sigma, so the marginal likelihood cannot teach the prior there how narrow it should
/// be; the prior stays about as wide as the noise, and its posterior brings the noise back
/// into the air and dark tissue, where the prediction alone is nearly exact (measured on the
/// main job's model: 0.5 dB and 0.15 SSIM lost in PD, docs/denoising.md).
pub const FLOOR: (f64, f64) = (2.0, 4.0);

/// The spread output of a network is `ln(std / sigma)`, clamped to this range: from a prior
/// 400 times narrower than the noise (the output is the prediction) to one 55 times wider
/// (the output is the observation's own amplitude).
pub const SPREAD_RANGE: (f32, f32) = (-6.0, 4.0);

/// A prior of a pixel's clean amplitude, `|N(mean, std^2)|`, in the image's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub mean: f64,
    pub std: f64,
}

impl Prior {
    /// The prior a network states: its expected magnitude (the Rician mean it was trained
    /// to predict, `expected`) turned into an amplitude and moved by its shift output
    /// `shift` (in noise sigmas), and its spread output `spread` (`ln(std / sigma)`).
    pub fn from_network(
        correction: &BiasCorrection,
        expected: f32,
        spread: f32,
        shift: f32,
        sigma: f32,
    ) -> Self {
        Prior::around(correction.amplitude(expected, sigma), spread, shift, sigma)
    }

    /// [`Prior::from_network`] for a caller that has the prediction's `amplitude` (its
    /// expected magnitude with the Rician bias removed) already.
    pub fn around(amplitude: f32, spread: f32, shift: f32, sigma: f32) -> Self {
        let sigma = f64::from(sigma);
        Prior {
            mean: f64::from(amplitude) + f64::from(shift) * sigma,
            std: sigma * f64::from(spread.clamp(SPREAD_RANGE.0, SPREAD_RANGE.1)).exp(),
        }
    }
}

/// The bins of one pixel's posterior: edges `lo + k (hi - lo) / BINS`, in noise sigmas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub lo: f64,
    pub hi: f64,
}

impl Grid {
    /// The likelihood's reach around an observation `y` (in sigmas) of a magnitude of
    /// `coils` coils: where the likelihood is above `exp(-18)` of its peak, from
    /// `LIKELIHOOD_REACH` below the amplitude the observation suggests to as far above
    /// the observation.
    pub fn likelihood(y: f64, coils: u32) -> Self {
        Grid {
            lo: (root_rule(y, coils) - LIKELIHOOD_REACH).max(0.0),
            hi: y + LIKELIHOOD_REACH,
        }
    }

    /// The amplitudes (in sigmas) where the posterior of `y` under `prior` has its mass:
    /// around the Gaussian approximation of the posterior (the precision-weighted mean of
    /// the prior mean and the observation's amplitude `sqrt(y^2 - (2 L - 1))`), `POSTERIOR_REACH`
    /// of its deviations either side. `None` when the prior and the likelihood share no
    /// reach at all: the prediction is far off (a finding the surroundings did not
    /// predict), and the observation wins.
    pub fn posterior(y: f64, prior: Prior, coils: u32) -> Option<Self> {
        let amplitude = root_rule(y, coils);
        let mean = prior.mean.abs();
        if (mean - amplitude).abs() > PRIOR_REACH * prior.std + LIKELIHOOD_REACH {
            return None;
        }
        let precision = 1.0 / (prior.std * prior.std) + 1.0;
        let centre = (mean / (prior.std * prior.std) + amplitude) / precision;
        let reach = POSTERIOR_REACH / precision.sqrt();
        Some(Grid {
            lo: (centre - reach).max(0.0),
            hi: centre + reach,
        })
    }

    pub fn edge(&self, k: usize) -> f64 {
        self.lo + (self.hi - self.lo) * k as f64 / BINS as f64
    }

    pub fn centre(&self, k: usize) -> f64 {
        self.lo + (self.hi - self.lo) * (k as f64 + 0.5) / BINS as f64
    }
}

/// The log likelihood of observing `y` given amplitude `a` (both in sigmas) for a magnitude
/// of `coils` coils, up to a term that depends on `y` alone:
/// `-(y - a)^2 / 2 + ln((y a)^-(L-1) exp(-y a) I_(L-1)(y a))` (Rician at one coil).
pub fn log_likelihood(coils: u32, y: f64, a: f64) -> f64 {
    -0.5 * (y - a) * (y - a) + log_ive_scaled(coils.max(1) - 1, y * a)
}

/// The posterior mean of the clean amplitude of a pixel observed as `y` at noise `sigma`
/// in a magnitude of `coils` coils, under `prior` (all in the image's units).
pub fn posterior_mean(y: f32, prior: Prior, sigma: f32, coils: u32) -> f32 {
    let sigma = f64::from(sigma);
    if sigma.is_nan() || sigma <= 0.0 || !prior.std.is_finite() || !prior.mean.is_finite() {
        return prior.mean.abs() as f32;
    }
    let y = f64::from(y).max(0.0) / sigma;
    let p = Prior {
        mean: prior.mean / sigma,
        std: prior.std / sigma,
    };
    if p.std < 1e-4 {
        return prior.mean.abs() as f32;
    }
    // Each bin's weight at its centre, in logs: the folded prior's density (none for the
    // flat prior) times the likelihood. The grid spans the posterior at a third of its
    // deviation per bin or finer, where the midpoint rule is accurate for any prior width.
    let (m, sd) = (p.mean.abs(), p.std);
    let weighted = |grid: Grid, flat: bool| {
        let log_w: [f64; BINS] = std::array::from_fn(|k| {
            let a = grid.centre(k);
            let prior = if flat {
                0.0
            } else {
                let z = (a - m) / sd;
                -0.5 * z * z + (-2.0 * a * m / (sd * sd)).exp().ln_1p()
            };
            prior + log_likelihood(coils, y, a)
        });
        let top = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (num, den) = log_w
            .iter()
            .enumerate()
            .fold((0.0, 0.0), |(n, d), (k, &lw)| {
                let w = (lw - top).exp();
                (n + w * grid.centre(k), d + w)
            });
        (top.is_finite() && den > 0.0).then(|| num / den)
    };
    // The observation's own amplitude (the likelihood under a flat prior) where the prior
    // is far off.
    let amplitude = Grid::posterior(y, p, coils)
        .and_then(|grid| weighted(grid, false))
        .or_else(|| weighted(Grid::likelihood(y, coils), true))
        .unwrap_or(m);
    (amplitude * sigma) as f32
}

/// A network's prior outputs for a slice: its spread and shift planes.
#[derive(Debug, Clone, Copy)]
pub struct PriorPlanes<'a> {
    pub spread: ArrayView2<'a, f32>,
    pub shift: ArrayView2<'a, f32>,
}

/// What is served for a slice from a network's outputs (all in one normalised space, each
/// pixel's noise `sigma` in the same units): the posterior mean of each pixel given its own
/// observed value where the network states a prior (its likelihood that of `correction`'s
/// coils), else its prediction `expected` with the magnitude's bias removed by `correction`;
/// near the noise floor outside the body ([`inside_body`]: the slice's own tissue and its
/// partner's, `partner` from [`crate::floor_aware::partner_tissue`] for a guided model, with
/// what they enclose) the prediction is inverted as the slice's fitted floor prior says
/// ([`FloorAware`]), so that the air comes back black; inside it, exactly, or averaged over
/// a relative error `ratio_error` of the prediction over its sigma ([`Inversion`]; 0 for
/// none).
pub fn serve(
    correction: &BiasCorrection,
    observed: ArrayView2<f32>,
    mut expected: Array2<f32>,
    prior: Option<PriorPlanes>,
    sigma: ArrayView2<f32>,
    partner: Option<ArrayView2<bool>>,
    ratio_error: f32,
) -> Array2<f32> {
    let body = inside_body(expected.view(), sigma, correction.coils(), partner);
    let floor = FloorAware::fit(correction, expected.view(), sigma, Some(body.view()));
    let inversion = Inversion {
        correction,
        floor: &floor,
        ratio_error,
    };
    match prior {
        Some(prior) => {
            let (e, b) = (expected.view(), body.view());
            posterior_image(&inversion, b, observed, e, prior, sigma)
        }
        None => {
            Zip::from(&mut expected)
                .and(&sigma)
                .and(&body)
                .for_each(|e, &s, &inside| *e = inversion.served(*e, s, inside));
            expected
        }
    }
}

/// The relative error of a network's predicted mean magnitude near the noise floor: 1.7-1.8%
/// rms against the clean expected magnitude, in PDFS's fat-suppressed tissue (0.5 to 2 sigma
/// of amplitude) of the 8-coil held-out phantoms at SNR 10 and 12, the coil model served
/// with the true maps (QUALITY.md, "the noise map's error integrated out").
pub const PREDICTION_RELATIVE_ERROR: f32 = 0.018;

/// How a denoised mean below the posterior's phase-in becomes an amplitude: as `floor` says
/// outside the knee's outline, exactly inverted inside it. The inversion reads the ratio of
/// the predicted mean to the pixel's sigma; with an estimated noise map that ratio is known
/// to a relative standard deviation `ratio_error` (the map's error and the prediction's,
/// combined), and the inversion inside is averaged over sigma `(1 - d)`, `1` and `(1 + d)`
/// times the map, weighted 1/6, 2/3 and 1/6 (Gauss-Hermite's three points, `d = sqrt(3)
/// ratio_error`): the error integrated out. At the noncentral chi floor of a coil array the
/// inverted amplitude is steep and lopsided in that ratio: on the 8-coil held-out phantoms a
/// map 1% high took 1.9 dB from PDFS's fat-suppressed tissue (1 to 3 sigma under a
/// 3.94-sigma floor), 1% low 0.6 dB, so the inversion as if the ratio were exact loses on
/// both sides (QUALITY.md, "the noise map's error integrated out"). Outside the outline the
/// air's map, read from the air alone, is several times more precise and the floor's prior
/// already weighs the prediction's error.
pub struct Inversion<'a> {
    pub correction: &'a BiasCorrection,
    pub floor: &'a FloorAware,
    pub ratio_error: f32,
}

impl Inversion<'_> {
    pub fn served(&self, mean: f32, sigma: f32, inside: bool) -> f32 {
        let c = self.correction;
        if !inside || self.ratio_error <= 0.0 {
            return self.floor.served(c, mean, sigma, inside);
        }
        let d = 3f32.sqrt() * self.ratio_error;
        let at = |k: f32| self.floor.served(c, mean, sigma * k, true);
        (at(1.0 - d) + 4.0 * at(1.0) + at(1.0 + d)) / 6.0
    }
}

/// The posterior mean of every pixel of a slice: `observed` (the noisy magnitudes),
/// `expected` and `prior` (a network's outputs for it), all in one normalised space, and the
/// noise `sigma` of each pixel in the same units; below the posterior's phase-in the
/// prediction is inverted as `inversion` says, in or outside the `body`. Where
/// the posterior is computed, the network's prior is first fused with the nonlocal estimate
/// of [`crate::nonlocal_prior`], and the posterior then averaged with the collaborative Wiener
/// filter it guides ([`refine`]).
pub fn posterior_image(
    inversion: &Inversion,
    body: ArrayView2<bool>,
    observed: ArrayView2<f32>,
    expected: ArrayView2<f32>,
    prior: PriorPlanes,
    sigma: ArrayView2<f32>,
) -> Array2<f32> {
    let correction = inversion.correction;
    let dim = observed.dim();
    let mut network = PriorMaps {
        mean: Array2::zeros(dim),
        std: Array2::zeros(dim),
    };
    // The share of the posterior in what is served: 0 below the phase-in, 1 past it.
    let mut share = Array2::<f64>::zeros(dim);
    Zip::indexed(&mut share)
        .and(&expected)
        .and(&prior.spread)
        .and(&prior.shift)
        .for_each(|at, w, &e, &r, &d| {
            let sigma = sigma[at];
            let amplitude = correction.amplitude(e, sigma);
            *w = ((f64::from(amplitude / sigma) - FLOOR.0) / (FLOOR.1 - FLOOR.0)).clamp(0.0, 1.0);
            let p = Prior::around(amplitude, r, d, sigma);
            network.mean[at] = p.mean as f32;
            network.std[at] = p.std as f32;
        });
    let active = share.mapv(|w| w > 0.0);
    let fused = nonlocal_prior::fuse(&network, observed, sigma, correction.coils(), active.view());
    let mut out = Array2::zeros(dim);
    Zip::indexed(&mut out)
        .and(&observed)
        .and(&expected)
        .and(&share)
        .for_each(|at, o, &y, &e, &w| {
            let sigma = sigma[at];
            // Below the posterior's phase-in the prediction is served; past it (most of the
            // tissue) only the posterior, so the floor's inversion is not computed there.
            let served = || inversion.served(e, sigma, body[at]);
            *o = if w > 0.0 {
                let prior = Prior {
                    mean: f64::from(fused.mean[at]),
                    std: f64::from(fused.std[at]),
                };
                let post = posterior_mean(y, prior, sigma, correction.coils());
                if w < 1.0 {
                    (w * f64::from(post) + (1.0 - w) * f64::from(served())) as f32
                } else {
                    post
                }
            } else {
                served()
            };
        });
    refine(correction, observed, sigma, &share, active.view(), out)
}

/// The posterior `served` averaged, with the posterior's share of each pixel, with the
/// collaborative Wiener filter of the observation that `served` guides
/// ([`crate::collaborative_wiener`]): the filter corrects the low-frequency error the
/// posterior keeps from the network's prediction, the posterior the filter's errors where its
/// groups are poor; neither is trusted over the other (QUALITY.md, "a collaborative Wiener
/// filter"). Below the posterior's phase-in, near the noise floor, the filter is not used:
/// only groups around `active` pixels (a share above 0) are filtered.
fn refine(
    correction: &BiasCorrection,
    observed: ArrayView2<f32>,
    sigma: ArrayView2<f32>,
    share: &Array2<f64>,
    active: ArrayView2<bool>,
    mut served: Array2<f32>,
) -> Array2<f32> {
    let (h, w) = served.dim();
    if h.min(w) < nonlocal_prior::MIN_SIDE {
        return served;
    }
    let pilot = Zip::from(&served)
        .and(&sigma)
        .map_collect(|&a, &s| correction.mean(a, s));
    let filtered = collaborative_wiener::filter(observed, pilot.view(), sigma, active);
    Zip::from(&mut served)
        .and(&filtered)
        .and(&sigma)
        .and(share)
        .for_each(|o, &f, &s, &w| {
            if w > 0.0 {
                let half = 0.5 * w;
                let amplitude = f64::from(correction.amplitude(f, s));
                *o = ((1.0 - half) * f64::from(*o) + half * amplitude) as f32;
            }
        });
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp(-x) I0(x)` by its series, for the closed forms.
    fn i0e_series(x: f64) -> f64 {
        let (mut term, mut sum) = (1.0f64, 1.0f64);
        for k in 1..200 {
            term *= (x / 2.0) * (x / 2.0) / (k as f64 * k as f64);
            sum += term;
        }
        sum * (-x).exp()
    }

    /// With the prior centred on zero (a half-normal of scale `s`), the posterior is
    /// `exp(-A^2 / 2 tau^2) I0(y A)` with `1 / tau^2 = 1 / s^2 + 1` (sigma 1), whose mean is
    /// `tau sqrt(2 / pi) / I0e(y^2 tau^2 / 4)` (from the integrals of `exp(-a x^2) I0(b x)`
    /// and `x exp(-a x^2) I0(b x)` over the half-line). Every case where the prior and
    /// the likelihood share some reach (where they share none the observation wins by
    /// design: `a_prior_far_from_the_observation_lets_the_observation_win`).
    #[test]
    fn the_posterior_of_a_prior_at_zero_is_the_closed_form() {
        for s in [0.3, 1.0, 2.5, 8.0] {
            for y in [0.0, 0.5, 1.25, 2.0, 4.0, 9.0] {
                if y - LIKELIHOOD_REACH >= PRIOR_REACH * s {
                    continue;
                }
                let tau = 1.0 / (1.0 / (s * s) + 1.0f64).sqrt();
                let x = y * y * tau * tau / 4.0;
                let exact = tau * (2.0 / std::f64::consts::PI).sqrt() / i0e_series(x);
                for sigma in [1.0f32, 0.03] {
                    let prior = Prior {
                        mean: 0.0,
                        std: s * f64::from(sigma),
                    };
                    let got = posterior_mean(y as f32 * sigma, prior, sigma, 1);
                    let want = exact * f64::from(sigma);
                    assert!(
                        (f64::from(got) - want).abs() < 2e-3 * f64::from(sigma),
                        "s {s} y {y} sigma {sigma}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// `1F1(a; b; z)` by its series.
    fn hyp1f1(a: f64, b: f64, z: f64) -> f64 {
        let (mut term, mut sum) = (1.0f64, 1.0f64);
        for k in 0..2000 {
            let k = f64::from(k);
            term *= (a + k) / (b + k) * z / (k + 1.0);
            sum += term;
            if term < 1e-16 * sum {
                break;
            }
        }
        sum
    }

    /// The same for a noncentral chi magnitude of `L` coils: the posterior under a prior at
    /// zero is `exp(-A^2 / 2 tau^2) A^-(L-1) I_(L-1)(y A)`, whose mean is
    /// `tau sqrt(2 / pi) 1F1(1; L; z) / 1F1(1/2; L; z)`, `z = y^2 tau^2 / 2` (the integrals of
    /// `x^(mu-1) exp(-a x^2) I_nu(b x)` over the half-line; at `L = 1` the Rician form
    /// above). Observations from below the floor (`sqrt(2 L)` sigmas) to well above it.
    #[test]
    fn the_noncentral_chi_posterior_of_a_prior_at_zero_is_the_closed_form() {
        for coils in [1u32, 4, 8, 15] {
            let floor = f64::from(2 * coils).sqrt();
            for s in [0.3, 1.0, 2.5] {
                for y in [0.5 * floor, floor, floor + 2.0, floor + 5.0] {
                    if y - LIKELIHOOD_REACH >= PRIOR_REACH * s {
                        continue;
                    }
                    let tau = 1.0 / (1.0 / (s * s) + 1.0f64).sqrt();
                    let z = y * y * tau * tau / 2.0;
                    let l = f64::from(coils);
                    let exact = tau * (2.0 / std::f64::consts::PI).sqrt() * hyp1f1(1.0, l, z)
                        / hyp1f1(0.5, l, z);
                    let sigma = 0.04f32;
                    let prior = Prior {
                        mean: 0.0,
                        std: s * f64::from(sigma),
                    };
                    let got = posterior_mean(y as f32 * sigma, prior, sigma, coils);
                    let want = exact * f64::from(sigma);
                    assert!(
                        (f64::from(got) - want).abs() < 2e-3 * f64::from(sigma),
                        "{coils} coils, s {s}, y {y}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Far above the noise floor the Rician likelihood is nearly Gaussian in `A` around
    /// `sqrt(y^2 - sigma^2)`, so the posterior is nearly the Gaussian one,
    /// `(a_y s^2 + mean sigma^2) / (s^2 + sigma^2)`.
    #[test]
    fn far_above_the_noise_the_posterior_is_the_gaussian_one() {
        let sigma = 0.05f32;
        for (mean, s, y) in [(1.0, 0.05, 1.1), (0.8, 0.02, 0.7), (1.2, 0.2, 1.0)] {
            let got = posterior_mean(y as f32, Prior { mean, std: s }, sigma, 1);
            let v = f64::from(sigma).powi(2);
            let a_y = (y * y - v).sqrt();
            let want = (a_y * s * s + mean * v) / (s * s + v);
            assert!((f64::from(got) - want).abs() < 2e-3, "{got} vs {want}");
        }
    }

    #[test]
    fn a_sure_prior_is_kept_and_a_vague_one_gives_the_observation() {
        let c = BiasCorrection::default();
        let sigma = 0.1f32;
        // Sure: the output is the prior mean, whatever the pixel shows.
        let sure = Prior::from_network(&c, 0.6, SPREAD_RANGE.0, 0.0, sigma);
        assert!((posterior_mean(0.9, sure, sigma, 1) - sure.mean as f32).abs() < 1e-3);
        // Vague: the output is the observation's own amplitude.
        let vague = Prior {
            mean: 0.6,
            std: 50.0,
        };
        let got = posterior_mean(0.9, vague, sigma, 1);
        assert!((got - (0.81f32 - 0.01).sqrt()).abs() < 0.02, "{got}");
        // In air a Rayleigh-level observation under a prior near zero stays near zero.
        let air = Prior {
            mean: 0.0,
            std: 0.02,
        };
        assert!(posterior_mean(0.125, air, sigma, 1) < 0.03);
    }

    /// The shift output moves the prior's mean from the prediction's amplitude, in sigmas.
    #[test]
    fn the_shift_moves_the_prior_mean_in_sigmas() {
        let c = BiasCorrection::default();
        let sigma = 0.1f32;
        let base = Prior::from_network(&c, 0.6, 0.0, 0.0, sigma);
        let moved = Prior::from_network(&c, 0.6, 0.0, -1.5, sigma);
        assert!((base.mean - moved.mean - 0.15).abs() < 1e-6);
        assert_eq!(base.std, moved.std);
        // A prediction at the air's floor with a shift of zero is a prior at zero.
        let air = Prior::from_network(&c, 1.2533 * sigma, -4.0, 0.0, sigma);
        assert!(air.mean.abs() < 1e-3 && air.std < 0.02 * f64::from(sigma));
    }

    /// At the noise floor the prediction is served; far above it the posterior; between them
    /// a blend of the two.
    #[test]
    fn the_posterior_is_phased_in_above_the_noise_floor() {
        let c = BiasCorrection::default();
        let sigma = 0.1f32;
        let image = |e: f32, y: f32| {
            let one = |v: f32| Array2::from_elem((1, 1), v);
            let (spread, shift) = (one(0.5), one(0.0));
            let planes = PriorPlanes {
                spread: spread.view(),
                shift: shift.view(),
            };
            let floor = FloorAware::exact();
            let body = Array2::from_elem((1, 1), false);
            let inversion = Inversion {
                correction: &c,
                floor: &floor,
                ratio_error: 0.0,
            };
            posterior_image(
                &inversion,
                body.view(),
                one(y).view(),
                one(e).view(),
                planes,
                one(sigma).view(),
            )[(0, 0)]
        };
        let expected =
            |a: f32| sigma * crate::magnitude_bias::rician_mean(f64::from(a / sigma)) as f32;
        // Air: a prediction at 1 sigma of amplitude is served as it is, whatever the pixel.
        let a = c.amplitude(expected(0.1), sigma);
        assert!((image(expected(0.1), 0.3) - a).abs() < 1e-6);
        // Bright tissue: the posterior, which moves towards the pixel's own value.
        let (e, y) = (expected(1.0), 1.2);
        let post = posterior_mean(y, Prior::from_network(&c, e, 0.5, 0.0, sigma), sigma, 1);
        assert!((image(e, y) - post).abs() < 1e-6 && post > 1.05);
        // Halfway (3 sigma): halfway between the two.
        let (e, y) = (expected(0.3), 0.5);
        let post = posterior_mean(y, Prior::from_network(&c, e, 0.5, 0.0, sigma), sigma, 1);
        let a = c.amplitude(e, sigma);
        assert!(
            (image(e, y) - 0.5 * (post + a)).abs() < 2e-3,
            "{} {post} {a}",
            image(e, y)
        );
    }

    #[test]
    fn the_map_error_integrated_out_serves_dim_tissue_better_on_the_whole() {
        // 8 coils: amplitudes of 0 to 4 sigma under the 3.94-sigma floor, their expected
        // magnitudes known exactly, served with a map off by a normal error of 2%.
        let c = BiasCorrection::for_coils(8);
        let floor = FloorAware::exact();
        let inversion = |ratio_error| Inversion {
            correction: &c,
            floor: &floor,
            ratio_error,
        };
        let (exact, integrated) = (inversion(0.0), inversion(0.02));
        let (mut plain_all, mut averaged_all) = (0.0, 0.0);
        for a in 0..=40 {
            let amplitude = a as f32 * 0.1;
            let mean = c.mean(amplitude, 1.0);
            let (mut plain, mut averaged, mut total) = (0.0, 0.0, 0.0);
            for k in -80..=80 {
                let e = k as f32 * 0.001;
                let w = (-0.5 * (e / 0.02).powi(2)).exp();
                let sigma = 1.0 + e;
                plain += w * (exact.served(mean, sigma, true) - amplitude).powi(2);
                averaged += w * (integrated.served(mean, sigma, true) - amplitude).powi(2);
                total += w;
            }
            // Up to a sigma (fat-suppressed fat) the exact inversion's kink at the floor
            // makes the map's error up to 20% costlier; from 1.2 to 4 sigma the average is
            // up to 8% worse in rms (these are squares), and past that the same.
            if amplitude <= 1.0 {
                assert!(averaged < plain, "{amplitude}: {averaged} against {plain}");
            } else {
                assert!(
                    averaged < 1.2 * plain,
                    "{amplitude}: {averaged} against {plain}"
                );
            }
            plain_all += plain / total;
            averaged_all += averaged / total;
            // Outside the outline, and with an exact map, nothing changes.
            assert_eq!(
                integrated.served(mean, 1.0, false),
                exact.served(mean, 1.0, false)
            );
        }
        assert!(
            averaged_all < plain_all,
            "{averaged_all} against {plain_all}"
        );
        assert_eq!(exact.served(4.5, 1.0, true), c.amplitude(4.5, 1.0));
    }

    #[test]
    fn a_prior_far_from_the_observation_lets_the_observation_win() {
        let sigma = 0.01f32;
        // The surroundings predict 0.2 with certainty 0.001; the pixel shows 0.5 (30 sigma).
        let got = posterior_mean(
            0.5,
            Prior {
                mean: 0.2,
                std: 0.001,
            },
            sigma,
            1,
        );
        assert!((got - 0.5).abs() < 0.002, "{got}");
    }
}
