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
//!
//! One slice's histogram cannot tell air from tissue its contrast shows dark: PDFS's
//! suppressed fat lies 1 to 3 sigma above zero, the knee's partial-volume rim and its thin
//! dark structures (a tendon, the cortex) lie near the floor in both contrasts, and a point
//! mass fitted to the slice pulls them to black. Where they are can be told: air is outside
//! the body. The body ([`inside_body`]) is every pixel near one where the slice itself or its
//! partner contrast shows tissue (air is air in both, while fat-suppressed fat is bright in
//! PD), with every region it encloses filled in: one solid outline, so that nothing of the
//! partner's inner structure decides anything inside it. Inside the body the point mass has
//! no weight (the exact inversion) and its pixels are left out of the fit.

use ndarray::{Array2, ArrayView2, Zip};

use crate::magnitude_bias::{BiasCorrection, magnitude_mean};
use crate::neighbourhood::{grown, local_mean};

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
/// The partner shows tissue at a pixel where the mean of its 3 x 3 neighbourhood, in its
/// sigmas, is this far above its floor's mean. Its air's 3 x 3 mean has a sd of about 0.22
/// sigma on one coil (0.24 on eight), so air passes for tissue about once in 10^5 pixels;
/// tissue of about 2 sigma or brighter is seen.
pub const PARTNER_MARGIN: f64 = 1.0;

/// The body reaches this far (in rows or columns) past a pixel that shows tissue when the
/// slice is read alone, so that the partial-volume rim of the knee, dark in a fat-suppressed
/// contrast, is inside it: a point mass fitted to the slice pulled that rim to black, which
/// cost a well-trained model 0.2-0.6 dB in the tissue (QUALITY.md, "the partner contrast and
/// the rim"; a single-contrast PDFS model still loses 0.3-0.5 dB with one pixel).
pub const OWN_REACH: usize = 2;
/// The body's reach when the partner's tissue joins it on a single coil's (Rician)
/// magnitude: the partner's 3 x 3 mean already marks the rim its contrast shows bright
/// (PD's subcutaneous fat, dark in PDFS) a pixel past its edge, so a second pixel would only
/// be air, where the exact inversion turns a prediction a few hundredths of a sigma above
/// the floor into a grey halo around the knee (0.2 sigma on average two pixels out:
/// QUALITY.md, "the outline beside a partner"). A coil array's floor hides more of the rim
/// from the partner: a sigma above the floor's mean is an amplitude of 3.0 sigma for 8
/// coils against 2.0 for one, so there the reach stays [`OWN_REACH`] (with one pixel,
/// 8-coil PDFS lost 0.6 dB at SNR 10).
pub const PAIRED_REACH: usize = 1;

/// Where no pixel may be taken for air: the body, as one solid region. It holds every pixel
/// within [`OWN_REACH`] ([`PAIRED_REACH`] with a partner on one coil) of one whose denoised
/// mean `mean` (noise `sigma`) is [`PARTNER_MARGIN`] sigmas above the floor's mean or where
/// the partner shows tissue (`partner`, from [`partner_tissue`]), and every region those
/// pixels enclose (the air is what the image's border reaches without crossing them).
/// Filled, the partner's inner structure (PD's bright fat around PDFS's dark one) decides
/// nothing: inside the outline every pixel gets its own exact inversion, whatever the
/// partner shows there.
pub fn inside_body(
    mean: ArrayView2<f32>,
    sigma: ArrayView2<f32>,
    coils: u32,
    partner: Option<ArrayView2<bool>>,
) -> Array2<bool> {
    let cut = magnitude_mean(0.0, coils) + PARTNER_MARGIN;
    let mut tissue = Zip::from(&mean).and(&sigma).map_collect(|&m, &s| {
        let r = f64::from(m) / f64::from(s);
        s.is_nan() || s <= 0.0 || r > cut || r.is_nan()
    });
    let reach = match partner {
        Some(p) => {
            Zip::from(&mut tissue).and(&p).for_each(|t, &p| *t |= p);
            if coils <= 1 { PAIRED_REACH } else { OWN_REACH }
        }
        None => OWN_REACH,
    };
    filled(&grown(tissue.view(), reach))
}

/// `mask` with every region it encloses filled: a pixel is outside when a path of
/// unmarked pixels, stepping by rows and columns, joins it to the image's border.
fn filled(mask: &Array2<bool>) -> Array2<bool> {
    let (h, w) = mask.dim();
    let mut outside = Array2::from_elem((h, w), false);
    let mut todo = Vec::new();
    let border = (0..h)
        .flat_map(|i| [(i, 0), (i, w.saturating_sub(1))])
        .chain((0..w).flat_map(|j| [(0, j), (h.saturating_sub(1), j)]));
    for p in border.filter(|_| h > 0 && w > 0) {
        if !mask[p] && !outside[p] {
            outside[p] = true;
            todo.push(p);
        }
    }
    while let Some((i, j)) = todo.pop() {
        let steps = [
            (i.wrapping_sub(1), j),
            (i + 1, j),
            (i, j.wrapping_sub(1)),
            (i, j + 1),
        ];
        for q in steps {
            if q.0 < h && q.1 < w && !mask[q] && !outside[q] {
                outside[q] = true;
                todo.push(q);
            }
        }
    }
    outside.mapv(|o| !o)
}

/// Where the partner contrast (`partner`, its noise `sigma` per pixel, both of the same
/// size as the slice they guide; `coils` the array's) shows tissue: its 3 x 3 neighbourhood
/// mean [`PARTNER_MARGIN`] sigmas above the floor's mean. Out-of-slice neighbours are left
/// out of the mean, and a pixel of no noise (sigma 0 or not a number) counts as tissue.
pub fn partner_tissue(
    partner: ArrayView2<f32>,
    sigma: ArrayView2<f32>,
    coils: u32,
) -> Array2<bool> {
    let cut = magnitude_mean(0.0, coils) + PARTNER_MARGIN;
    let ratio = Zip::from(&partner).and(&sigma).map_collect(|&p, &s| {
        if s > 0.0 {
            f64::from(p) / f64::from(s)
        } else {
            f64::INFINITY
        }
    });
    local_mean(ratio.view(), 1).mapv(|m| m > cut || m.is_nan())
}

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
    /// pixel, in the same units), for the magnitude `correction` inverts; the pixels inside
    /// the body (`body`, from [`inside_body`]) are left out.
    pub fn fit(
        correction: &BiasCorrection,
        mean: ArrayView2<f32>,
        sigma: ArrayView2<f32>,
        body: Option<ArrayView2<bool>>,
    ) -> Self {
        let coils = correction.coils();
        let mu = |t: f64| magnitude_mean(t, coils);
        let floor = mu(0.0);
        let hi = floor + ABOVE_FLOOR;
        let mut low = Vec::with_capacity(mean.len());
        let (mut top, mut high, mut lo) = (0.0f64, 0.0f64, floor - 1.0);
        Zip::indexed(&mean).and(&sigma).for_each(|at, &m, &s| {
            let r = f64::from(m) / f64::from(s);
            // The largest amplitude counts inside the body too: the flat prior reaches it.
            if s > 0.0 && r.is_finite() {
                top = top.max(r);
                if body.is_some_and(|b| b[at]) {
                    return;
                }
                if r < hi {
                    lo = lo.min(r);
                    low.push(r);
                } else {
                    high += 1.0;
                }
            }
        });
        if low.is_empty() {
            return Self::exact();
        }
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

    /// The amplitude served for a denoised mean `mean` of noise `sigma`: exactly inverted
    /// inside the body, as the fit says outside it.
    pub fn served(&self, correction: &BiasCorrection, mean: f32, sigma: f32, inside: bool) -> f32 {
        if inside {
            correction.amplitude(mean, sigma)
        } else {
            self.amplitude(correction, mean, sigma)
        }
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
            let fit = FloorAware::fit(&c, mean.view(), sigma.view(), None);
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
        let fit = FloorAware::fit(&c, mean.view(), sigma.view(), None);
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
            FloorAware::fit(&c, bright.view(), sigma.view(), None),
            FloorAware::exact()
        );
        let none = Array2::<f32>::zeros((0, 0));
        assert_eq!(
            FloorAware::fit(&c, none.view(), none.view(), None),
            FloorAware::exact()
        );
        // A pixel of zero noise is left to the exact inversion (its mean itself).
        let one = Array2::from_elem((1, 1), 0.2f32);
        let zero = Array2::from_elem((1, 1), 0.0f32);
        let fit = FloorAware::fit(&c, one.view(), zero.view(), None);
        assert_eq!(fit.amplitude(&c, 0.2, 0.0), 0.2);
    }

    /// A third air, a third tissue of 1 to 2.5 sigma (fat-suppressed fat: bright in the
    /// partner), a third bright tissue; the denoised means off by 0.05 sigma.
    fn dark_tissue_slice(coils: u32) -> (Array2<f32>, Array2<f32>, Array2<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let sigma = 0.1f32;
        let amplitude = Array2::from_shape_fn((60, 60), |(_, j)| match j {
            0..20 => 0.0,
            20..40 => 0.1 + 0.15 * rng.random::<f32>(),
            _ => 0.8 + 0.4 * rng.random::<f32>(),
        });
        let mean = amplitude.mapv(|a| {
            let n: f32 = rng.sample(StandardNormal);
            sigma * (magnitude_mean(f64::from(a / sigma), coils) as f32 + 0.05 * n)
        });
        // The partner's noisy root-sum-of-squares magnitude: air where this slice has air,
        // 6 sigma elsewhere.
        let partner = Array2::from_shape_fn((60, 60), |(_, j)| {
            let a = if j < 20 { 0.0f32 } else { 0.6 };
            let power: f32 = (0..2 * coils)
                .map(|k| {
                    let n: f32 = rng.sample(StandardNormal);
                    (if k == 0 { a } else { 0.0 } + sigma * n).powi(2)
                })
                .sum();
            power.sqrt()
        });
        (amplitude, mean, partner)
    }

    #[test]
    fn the_partner_marks_its_tissue_and_not_its_air() {
        for coils in [1, 8] {
            let (_, _, partner) = dark_tissue_slice(coils);
            let sigma = Array2::from_elem(partner.dim(), 0.1f32);
            let tissue = partner_tissue(partner.view(), sigma.view(), coils);
            let share = |j: std::ops::Range<usize>| {
                let part = tissue.slice(ndarray::s![.., j]);
                part.iter().filter(|&&t| t).count() as f32 / part.len() as f32
            };
            // The air's own pixels (the column beside the tissue sees it in its
            // neighbourhood).
            assert_eq!(share(0..19), 0.0, "{coils} coils");
            assert_eq!(share(20..60), 1.0, "{coils} coils");
        }
        let (_, _, partner) = dark_tissue_slice(1);
        let sigma = Array2::from_elem(partner.dim(), 0.1f32);
        // A pixel without noise, or not a number, is never taken for air.
        let mut odd = partner.clone();
        odd[(5, 5)] = f32::NAN;
        let mut zero = sigma.clone();
        zero[(9, 9)] = 0.0;
        let marked = partner_tissue(odd.view(), zero.view(), 1);
        assert!(marked[(5, 5)] && marked[(9, 9)] && !marked[(5, 12)]);
    }

    /// What a slice is served at the floor: the fit and the inversion, with the body.
    fn served_with(
        c: &BiasCorrection,
        mean: &Array2<f32>,
        sigma: &Array2<f32>,
        body: Option<&Array2<bool>>,
    ) -> Array2<f32> {
        let fit = FloorAware::fit(c, mean.view(), sigma.view(), body.map(|b| b.view()));
        Array2::from_shape_fn(mean.dim(), |p| {
            fit.served(c, mean[p], sigma[p], body.is_some_and(|b| b[p]))
        })
    }

    #[test]
    fn with_the_partner_dark_tissue_keeps_its_amplitude_and_air_stays_black() {
        for coils in [1, 8] {
            let c = BiasCorrection::for_coils(coils);
            let (amplitude, mean, partner) = dark_tissue_slice(coils);
            let sigma = Array2::from_elem(mean.dim(), 0.1f32);
            let tissue = partner_tissue(partner.view(), sigma.view(), coils);
            let body = inside_body(mean.view(), sigma.view(), coils, Some(tissue.view()));
            let (alone, guided) = (
                served_with(&c, &mean, &sigma, None),
                served_with(&c, &mean, &sigma, Some(&body)),
            );
            let exact = mean.mapv(|m| c.amplitude(m, 0.1));
            let err = |img: &Array2<f32>, j: std::ops::Range<usize>| {
                let d =
                    &img.slice(ndarray::s![.., j.clone()]) - &amplitude.slice(ndarray::s![.., j]);
                (d.mapv(|v| v * v).mean().unwrap()).sqrt() / 0.1
            };
            // Dark tissue: as the exact inversion gives it with the partner.
            assert_eq!(
                guided.slice(ndarray::s![.., 20..]),
                exact.slice(ndarray::s![.., 20..]),
                "{coils} coils"
            );
            assert!(
                err(&guided, 20..40) < err(&alone, 20..40),
                "{coils} coils: dark tissue {} sigma with the partner, {} without",
                err(&guided, 20..40),
                err(&alone, 20..40)
            );
            // The air beyond the body's reach is as black as without the partner.
            assert!(
                err(&guided, 0..17) < 0.1,
                "{coils} coils: air {}",
                err(&guided, 0..17)
            );
            assert!(err(&exact, 0..17) > 2.0 * err(&guided, 0..17));
        }
    }

    #[test]
    fn the_body_reaches_past_its_tissue_and_is_never_air() {
        let sigma = Array2::from_elem((20, 20), 0.1f32);
        let floor = 0.1 * magnitude_mean(0.0, 1) as f32;
        // Air at the floor's mean, one bright pixel at (10, 10).
        let mut mean = Array2::from_elem((20, 20), floor);
        mean[(10, 10)] = 1.0;
        let body = inside_body(mean.view(), sigma.view(), 1, None);
        assert!(body[(10, 10)] && body[(8, 12)] && body[(12, 8)]);
        assert!(!body[(7, 10)] && !body[(10, 13)] && !body[(0, 0)]);
        assert_eq!(body.iter().filter(|&&n| n).count(), 25);
        // A partner's tissue is added, and on one coil everything then reaches one pixel
        // (its 3 x 3 mean has reached the rim already); a pixel without noise is never air.
        let mut partner = Array2::from_elem((20, 20), false);
        partner[(0, 0)] = true;
        let mut zero = sigma.clone();
        zero[(19, 19)] = 0.0;
        let body = inside_body(mean.view(), zero.view(), 1, Some(partner.view()));
        assert!(body[(0, 0)] && body[(1, 1)] && !body[(2, 2)]);
        assert!(body[(19, 19)] && body[(18, 18)] && !body[(17, 17)]);
        assert!(body[(9, 11)] && !body[(8, 12)] && !body[(10, 12)]);
        assert_eq!(body.iter().filter(|&&n| n).count(), 9 + 4 + 4);
        // A coil array's floor hides more of the rim from the partner: two pixels still.
        let floor8 = 0.1 * magnitude_mean(0.0, 8) as f32;
        let mut mean8 = Array2::from_elem((20, 20), floor8);
        mean8[(10, 10)] = 1.0;
        let none = Array2::from_elem((20, 20), false);
        let body = inside_body(mean8.view(), sigma.view(), 8, Some(none.view()));
        assert_eq!(body.iter().filter(|&&n| n).count(), 25);
    }

    /// A ring of bright tissue around dark tissue at the floor (a slice's own, or what its
    /// partner shows): everything the ring encloses is inside the body, and what the partner
    /// shows inside the outline changes nothing that is served.
    #[test]
    fn the_body_fills_what_its_outline_encloses() {
        let c = BiasCorrection::default();
        let (n, sigma) = (48usize, 0.1f32);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let ring = |i: usize, j: usize| {
            let r = ((i as f32 - 24.0).powi(2) + (j as f32 - 24.0).powi(2)).sqrt();
            (14.0..18.0).contains(&r)
        };
        let inner = |i: usize, j: usize| {
            ((i as f32 - 24.0).powi(2) + (j as f32 - 24.0).powi(2)).sqrt() < 14.0
        };
        // Dark tissue of 1.5 sigma inside the ring, air outside.
        let mean = Array2::from_shape_fn((n, n), |(i, j)| {
            let a = if ring(i, j) {
                10.0
            } else if inner(i, j) {
                1.5
            } else {
                0.0
            };
            let e: f32 = rng.sample(StandardNormal);
            sigma * (magnitude_mean(a, 1) as f32 + 0.03 * e)
        });
        let sigmas = Array2::from_elem((n, n), sigma);
        let body = inside_body(mean.view(), sigmas.view(), 1, None);
        assert!(body[(24, 24)] && body[(24, 12)] && !body[(2, 2)] && !body[(24, 3)]);
        // The partner: the same outline, once solid, once with a dark core of its own.
        let solid = Array2::from_shape_fn((n, n), |(i, j)| ring(i, j) || inner(i, j));
        let cored = Array2::from_shape_fn((n, n), |(i, j)| {
            ring(i, j) || (inner(i, j) && ((i as f32 - 24.0).abs() > 6.0))
        });
        let served = |p: &Array2<bool>| {
            let body = inside_body(mean.view(), sigmas.view(), 1, Some(p.view()));
            served_with(&c, &mean, &sigmas, Some(&body))
        };
        assert_eq!(served(&solid), served(&cored));
        // Inside: the exact inversion; outside: black.
        let out = served(&cored);
        assert_eq!(out[(24, 24)], c.amplitude(mean[(24, 24)], sigma));
        assert!(out[(2, 2)] < 0.02, "air {}", out[(2, 2)]);
    }
}
