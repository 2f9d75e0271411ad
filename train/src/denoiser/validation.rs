//! Validation of the denoisers: the self-supervised loss on whole held-out slices (the one
//! figure real data without clean images has), and on phantoms the quality against the
//! clean image next to the acquired image's, and the findings' leakage.

use burn::prelude::*;
use crossdenoise_image::floor_aware::partner_tissue;
use crossdenoise_image::leakage;
use crossdenoise_image::magnitude_bias::BiasCorrection;
use crossdenoise_image::metrics::{self, Quality};
use crossdenoise_image::phantom::Finding;
use crossdenoise_image::picture::Grid;
use crossdenoise_image::posterior;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::loss;
use crate::data::{self, PairSet, SliceNoise};
use crate::model::{DenoiserPair, Domain, Precision};
use crate::run::TrainError;

/// PSNR / SSIM against the clean image, and sharpness (gradient energy over the clean
/// image's: below 1 smoother than the anatomy, above 1 noisier).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub psnr: f64,
    pub ssim: f64,
    pub sharpness: f64,
}

/// How far one output shows one finding unlike its own contrast (see
/// `crossdenoise_image::leakage`), over the slices that carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingLeakage {
    pub finding: String,
    pub slices: usize,
    /// Mean of the signed errors: + shows the finding brighter than its contrast does.
    pub error: f64,
    /// Mean of their magnitudes.
    pub abs_error: f64,
}

/// One direction (the denoiser of one contrast) on the validation slices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectionValidation {
    /// The training loss on whole slices.
    pub loss: f64,
    /// The denoised output against clean (phantoms).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub denoised: Option<Score>,
    /// The acquired image against clean: what the output must beat.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acquired: Option<Score>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub leakage: Vec<FindingLeakage>,
    /// How wide the stated prior is against how far the prediction is off (phantoms, a
    /// network with a prior; [`prior_width`]): 1 when calibrated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prior_width: Option<f64>,
}

impl DirectionValidation {
    /// The denoised and the acquired image's PSNR when the output scores below the acquired
    /// image itself. A model worse than its own input has failed (it diverged, or trained far
    /// too little), whatever its loss says, and must not be served unnoticed.
    pub fn below_acquired(&self) -> Option<(f64, f64)> {
        match (&self.denoised, &self.acquired) {
            (Some(d), Some(q)) if d.psnr < q.psnr => Some((d.psnr, q.psnr)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DenoiserValidation {
    pub a: DirectionValidation,
    pub b: DirectionValidation,
}

impl DenoiserValidation {
    pub fn get(&self, to: Domain) -> &DirectionValidation {
        match to {
            Domain::A => &self.a,
            Domain::B => &self.b,
        }
    }
}

/// One direction's raw outputs for a few slices: the expected magnitudes and, for a
/// network with a prior, the spreads and shifts.
pub struct Predictions {
    pub expected: Vec<Array2<f32>>,
    pub prior: Option<PriorPredictions>,
}

/// A prior head's outputs for a few slices.
pub struct PriorPredictions {
    pub spread: Vec<Array2<f32>>,
    pub shift: Vec<Array2<f32>>,
}

/// Both directions' raw predictions for slices `idx` of `set` (`[a, b]`, one image per
/// slice; `noise`: each slice's).
pub fn predict(
    model: &DenoiserPair,
    set: &PairSet,
    noise: &[SliceNoise],
    idx: &[usize],
    device: &Device,
) -> [Predictions; 2] {
    let a: Vec<&Array2<f32>> = idx.iter().map(|&i| &set.a[i]).collect();
    let b: Vec<&Array2<f32>> = idx.iter().map(|&i| &set.b[i]).collect();
    let (xa, xb) = (data::stack(&a, device), data::stack(&b, device));
    let (sa, sb): (Vec<f32>, Vec<f32>) = idx
        .iter()
        .map(|&i| (noise[i].level[0], noise[i].level[1]))
        .unzip();
    let guided = model.to_a.is_guided();
    let (na, nb) = (
        model.to_a.noise_tensor(&sa, &sb, device),
        model.to_b.noise_tensor(&sb, &sa, device),
    );
    let out_a =
        model
            .to_a
            .forward_prior(xa.clone(), guided.then(|| xb.clone()), na, Precision::F32);
    let out_b = model
        .to_b
        .forward_prior(xb, guided.then_some(xa), nb, Precision::F32);
    [out_a, out_b].map(|(expected, prior)| Predictions {
        expected: data::unstack(expected),
        prior: prior.map(|p| PriorPredictions {
            spread: data::unstack(p.spread),
            shift: data::unstack(p.shift),
        }),
    })
}

/// What the runtime serves for one slice: the posterior mean for a network with a prior,
/// else the prediction with the Rician bias removed, at the slice's noise level; `partner`
/// (the guide and its noise level, for a guided network) tells the air from dark tissue.
fn served(
    correction: &BiasCorrection,
    p: &Predictions,
    k: usize,
    acquired: &Array2<f32>,
    sigma: f32,
    partner: Option<(&Array2<f32>, f32)>,
) -> Array2<f32> {
    let prior = p.prior.as_ref().map(|q| posterior::PriorPlanes {
        spread: q.spread[k].view(),
        shift: q.shift[k].view(),
    });
    let tissue = partner.map(|(g, s)| {
        partner_tissue(
            g.view(),
            Array2::from_elem(g.dim(), s).view(),
            correction.coils(),
        )
    });
    posterior::serve(
        correction,
        acquired.view(),
        p.expected[k].clone(),
        prior,
        Array2::from_elem(acquired.dim(), sigma).view(),
        tissue.as_ref().map(|t| t.view()),
        0.0,
    )
}

/// What the runtime serves for slices `idx` (`noise`: each slice's).
pub fn denoise(
    model: &DenoiserPair,
    set: &PairSet,
    correction: &BiasCorrection,
    noise: &[SliceNoise],
    idx: &[usize],
    device: &Device,
) -> [Vec<Array2<f32>>; 2] {
    let raw = predict(model, set, noise, idx, device);
    let guided = model.to_a.is_guided();
    let mut outs: [Vec<Array2<f32>>; 2] = Default::default();
    for (d, (out, p)) in outs.iter_mut().zip(&raw).enumerate() {
        for (k, &i) in idx.iter().enumerate() {
            let (acquired, guide) = own_and_other(&set.a, &set.b, d, i);
            let partner = guided.then_some((guide, noise[i].sd[1 - d]));
            out.push(served(correction, p, k, acquired, noise[i].sd[d], partner));
        }
    }
    outs
}

/// Slice `i` of direction `d` (0: contrast a) from one pair of slice lists (`a`, `b`), and
/// the same slice of the other contrast.
fn own_and_other<'s>(
    a: &'s [Array2<f32>],
    b: &'s [Array2<f32>],
    d: usize,
    i: usize,
) -> (&'s Array2<f32>, &'s Array2<f32>) {
    if d == 0 {
        (&a[i], &b[i])
    } else {
        (&b[i], &a[i])
    }
}

/// Scores both directions on `set` in batches of `batch`; `noise`: each slice's.
pub fn validate(
    model: &DenoiserPair,
    set: &PairSet,
    correction: &BiasCorrection,
    noise: &[SliceNoise],
    batch: usize,
    device: &Device,
) -> Result<DenoiserValidation, TrainError> {
    let mut dirs = [Accumulator::default(), Accumulator::default()];
    let guided = model.to_a.is_guided();
    for start in (0..set.len()).step_by(batch.max(1)) {
        let idx: Vec<usize> = (start..(start + batch).min(set.len())).collect();
        let raw = predict(model, set, noise, &idx, device);
        for (d, (acc, out)) in dirs.iter_mut().zip(&raw).enumerate() {
            for (k, &i) in idx.iter().enumerate() {
                let (acquired, guide) = own_and_other(&set.a, &set.b, d, i);
                let sd = noise[i].sd;
                acc.loss += slice_loss(&out.expected[k], acquired, sd[d], device);
                acc.n += 1;
                let partner = guided.then_some((guide, sd[1 - d]));
                let served = served(correction, out, k, acquired, sd[d], partner);
                let Some((ca, cb)) = &set.clean else { continue };
                let (clean, other) = own_and_other(ca, cb, d, i);
                acc.add_scores(clean, &served, acquired)?;
                if let Some(q) = &out.prior {
                    let planes = posterior::PriorPlanes {
                        spread: q.spread[k].view(),
                        shift: q.shift[k].view(),
                    };
                    let sums = prior_width(correction, &out.expected[k], planes, clean, sd[d]);
                    acc.width[0] += sums[0];
                    acc.width[1] += sums[1];
                }
                if let Some(masks) = &set.findings {
                    acc.add_leakage(&served, clean, other, &masks[i])?;
                }
            }
        }
    }
    let [a, b] = dirs.map(|acc| acc.finish(set.clean.is_some()));
    Ok(DenoiserValidation { a, b })
}

/// The training loss of one whole slice.
fn slice_loss(out: &Array2<f32>, acquired: &Array2<f32>, sigma: f32, device: &Device) -> f64 {
    let s = Tensor::<4>::full([1, 1, 1, 1], sigma, device);
    f64::from(
        loss::loss(
            data::stack(&[out], device),
            data::stack(&[acquired], device),
            s,
        )
        .into_scalar::<f32>(),
    )
}

/// Clean amplitudes at least this many noise sigmas bright count for [`prior_width`]:
/// there the prior is near Gaussian, and its width is the prediction's uncertainty.
const WIDTH_FLOOR: f32 = 4.0;

/// The prior's variance and the prediction's squared error against `clean`, each summed
/// over the pixels at least [`WIDTH_FLOOR`] sigmas bright: the square root of their ratio
/// says how wide the prior a network states is against how far its prediction really is
/// off. 1 when calibrated; well above it the posterior keeps noise it could remove (a coil
/// model whose prior trained at a sigma 10-26% low stated a prior 3 times too wide,
/// QUALITY.md "the coil model's prior"), well below it the posterior smooths what a pixel
/// shows.
fn prior_width(
    correction: &BiasCorrection,
    expected: &Array2<f32>,
    planes: posterior::PriorPlanes,
    clean: &Array2<f32>,
    sigma: f32,
) -> [f64; 2] {
    let mut sums = [0.0; 2];
    for (((&e, &spread), &shift), &c) in expected
        .iter()
        .zip(planes.spread)
        .zip(planes.shift)
        .zip(clean)
    {
        if c < WIDTH_FLOOR * sigma {
            continue;
        }
        let prior = posterior::Prior::from_network(correction, e, spread, shift, sigma);
        sums[0] += prior.std * prior.std;
        sums[1] += (prior.mean - f64::from(c)).powi(2);
    }
    sums
}

#[derive(Default)]
struct Accumulator {
    loss: f64,
    n: usize,
    denoised: [f64; 3],
    acquired: [f64; 3],
    leakage: [(usize, f64, f64); 2],
    /// The prior's variance and the prediction's squared error, summed ([`prior_width`]).
    width: [f64; 2],
}

impl Accumulator {
    fn add_scores(
        &mut self,
        clean: &Array2<f32>,
        out: &Array2<f32>,
        acquired: &Array2<f32>,
    ) -> Result<(), TrainError> {
        for (sums, img) in [(&mut self.denoised, out), (&mut self.acquired, acquired)] {
            let q = Quality::measure(clean.view(), img.view())?;
            sums[0] += q.psnr;
            sums[1] += q.ssim;
            sums[2] += metrics::sharpness(clean.view(), img.view())?.unwrap_or(1.0);
        }
        Ok(())
    }

    fn add_leakage(
        &mut self,
        out: &Array2<f32>,
        clean: &Array2<f32>,
        other: &Array2<f32>,
        masks: &[Array2<u8>; 2],
    ) -> Result<(), TrainError> {
        for (slot, mask) in self.leakage.iter_mut().zip(masks) {
            if let Some(l) = leakage::leakage(out.view(), clean.view(), other.view(), mask.view())?
            {
                slot.0 += 1;
                slot.1 += l.error();
                slot.2 += l.error().abs();
            }
        }
        Ok(())
    }

    fn finish(self, has_clean: bool) -> DirectionValidation {
        let n = self.n.max(1) as f64;
        let score = |s: [f64; 3]| Score {
            psnr: s[0] / n,
            ssim: s[1] / n,
            sharpness: s[2] / n,
        };
        DirectionValidation {
            loss: self.loss / n,
            denoised: has_clean.then(|| score(self.denoised)),
            acquired: has_clean.then(|| score(self.acquired)),
            prior_width: (self.width[1] > 0.0).then(|| (self.width[0] / self.width[1]).sqrt()),
            leakage: Finding::ALL
                .iter()
                .zip(self.leakage)
                .filter(|(_, (count, _, _))| *count > 0)
                .map(|(f, (count, sum, abs))| FindingLeakage {
                    finding: f.name().into(),
                    slices: count,
                    error: sum / count as f64,
                    abs_error: abs / count as f64,
                })
                .collect(),
        }
    }
}

/// Up to four validation slices, one per row: each contrast acquired | denoised (| clean).
pub fn sample_grid(
    model: &DenoiserPair,
    set: &PairSet,
    correction: &BiasCorrection,
    noise: &[SliceNoise],
    domains: &[String; 2],
    device: &Device,
) -> Result<Grid, TrainError> {
    let idx: Vec<usize> = (0..set.len().min(4)).collect();
    let [out_a, out_b] = denoise(model, set, correction, noise, &idx, device);
    let mut titles = Vec::new();
    for name in domains.iter().map(|d| d.to_uppercase()) {
        titles.push(format!("{name} acquired"));
        titles.push(format!("{name} denoised"));
        if set.clean.is_some() {
            titles.push(format!("{name} clean"));
        }
    }
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    let zoom = (256 / set.dim().1).max(1);
    let mut grid = Grid::zoomed(idx.len(), titles.len(), set.dim(), zoom, &titles)?;
    const WINDOW: f32 = 1.1;
    for (r, &i) in idx.iter().enumerate() {
        let mut tiles: Vec<&Array2<f32>> = vec![&set.a[i], &out_a[r]];
        if let Some((ca, _)) = &set.clean {
            tiles.push(&ca[i]);
        }
        tiles.extend([&set.b[i], &out_b[r]]);
        if let Some((_, cb)) = &set.clean {
            tiles.push(&cb[i]);
        }
        for (c, tile) in tiles.into_iter().enumerate() {
            grid.set(r, c, tile.view(), WINDOW)?;
        }
    }
    Ok(grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossdenoise_image::magnitude_bias::rician_mean;

    /// A prior as wide as the prediction's error reads 1, one three times wider reads 3, and
    /// the dark pixels (where the prior is no Gaussian) are left out whatever they hold.
    #[test]
    fn the_prior_width_is_read_against_the_predictions_error() {
        let (sigma, size) = (0.05f32, 64);
        let bright = |i: usize| i < size / 2;
        let clean =
            Array2::from_shape_fn((size, size), |(i, _)| if bright(i) { 0.8f32 } else { 0.05 });
        // The prediction's amplitude is off by +-0.4 sigma in the bright half, by 5 sigmas in
        // the dark one; the network states its expected magnitude, the Rician mean.
        let expected = Array2::from_shape_fn((size, size), |(i, j)| {
            let off = if bright(i) { 0.4 } else { 5.0 }
                * sigma
                * if (i + j) % 2 == 0 { 1.0 } else { -1.0 };
            let a = f64::from((clean[(i, j)] + off).max(0.0) / sigma);
            (f64::from(sigma) * rician_mean(a)) as f32
        });
        let shift = Array2::zeros((size, size));
        let width = |std_in_sigmas: f32| {
            let spread = Array2::from_elem((size, size), std_in_sigmas.ln());
            let planes = posterior::PriorPlanes {
                spread: spread.view(),
                shift: shift.view(),
            };
            let [var, err] =
                prior_width(&BiasCorrection::default(), &expected, planes, &clean, sigma);
            (var / err).sqrt()
        };
        let (calibrated, wide) = (width(0.4), width(1.2));
        assert!((calibrated - 1.0).abs() < 0.05, "{calibrated}");
        assert!((wide - 3.0).abs() < 0.15, "{wide}");
    }
}
