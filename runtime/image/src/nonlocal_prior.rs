//! A second, nonlocal opinion on each pixel's clean amplitude, fused into the network's
//! prior before the posterior step (`posterior.rs`).
//!
//! The blind-spot network predicts a pixel from its surroundings within 30 CPU minutes of
//! training, and in bright flat tissue that prediction is what PD loses to BM3D on: its error
//! there is mostly low-frequency, a quarter to a third of a noise sigma (QUALITY.md, "where
//! PD's gap is"). BM3D's strength is the other kind of evidence: many pixels elsewhere in
//! the slice that look alike, averaged. This module adds that evidence without giving up
//! what the posterior needs, a prior that does not contain the pixel's own observation:
//!
//! - The pixels `q` of a window around `p` (never `p` itself) are weighted by how alike the
//!   network's prediction is around `p` and around `q` (3 x 3 patches of the prior mean, the
//!   pilot), with the width the network states for its own prediction: two predictions that
//!   differ by less than their stated error are taken as the same tissue.
//! - Their observed magnitudes are averaged in squares, where the noise adds a known
//!   `2 L sigma^2` (noncentral chi of `L` coils; Rician at `L = 1`), so the estimate of the
//!   amplitude has no floor bias.
//! - Its variance is the noise's share (`sigma^2` over the weights' effective count) plus the
//!   spread of the averaged pixels beyond the noise: where unlike tissue was averaged, the
//!   estimate says it is unsure, and the network's prior keeps the say.
//! - The two estimates are fused as two Gaussian opinions (precision-weighted).
//!
//! The pilot around `p` contains predictions of its neighbours, which saw `p`'s observation;
//! it decides only the weights, never the values averaged, so the observation enters the
//! posterior through its likelihood alone (checked by a test: changing `p`'s observation
//! leaves its nonlocal estimate unchanged).

use ndarray::{Array2, ArrayView2};

/// How far the window reaches from the pixel, in pixels: a 15 x 15 window.
pub const SEARCH_RADIUS: usize = 7;
/// The half-size of the pilot's patches compared: 3 x 3.
pub const PATCH_RADIUS: usize = 1;

/// A prior per pixel, as Gaussian mean and standard deviation of the clean amplitude, in the
/// image's units.
#[derive(Debug, Clone)]
pub struct PriorMaps {
    pub mean: Array2<f32>,
    pub std: Array2<f32>,
}

/// The smallest slice side the estimate is made on. On smaller slices the window spans a
/// large part of the anatomy, whose features are a few pixels wide, and the estimate mixes
/// unlike tissue: with the tests' small model, 0.45 dB lost at 32 x 32 (PD at SNR 8), level at
/// 64 x 64, 0.9 dB gained at 128 x 128 (QUALITY.md, "a nonlocal opinion in the prior").
pub const MIN_SIDE: usize = 64;

/// Rows of a band: each band's sums stay in the cache while every offset adds to them, and
/// the bands are shared among the machine's cores.
const BAND: usize = 16;

/// The network's prior `network` fused with the nonlocal estimate from `observed` at each
/// pixel where `active` is set (elsewhere, and on a slice with a side under [`MIN_SIDE`],
/// it is returned as it is); `sigma` is each pixel's noise and `coils` the magnitude's coil
/// count (the noise floor's degrees of freedom).
pub fn fuse(
    network: &PriorMaps,
    observed: ArrayView2<f32>,
    sigma: ArrayView2<f32>,
    coils: u32,
    active: ArrayView2<bool>,
) -> PriorMaps {
    let (h, w) = observed.dim();
    if h.min(w) < MIN_SIDE {
        return network.clone();
    }
    let (pilot, observed, sigma, active) = (
        network.mean.as_standard_layout(),
        observed.as_standard_layout(),
        sigma.as_standard_layout(),
        active.as_standard_layout(),
    );
    let patch_len = ((2 * PATCH_RADIUS + 1) * (2 * PATCH_RADIUS + 1)) as f32;
    let planes = Planes {
        h,
        w,
        coils,
        pilot: pilot.as_slice().expect("standard layout"),
        observed: observed.as_slice().expect("standard layout"),
        sigma: sigma.as_slice().expect("standard layout"),
        active: active.as_slice().expect("standard layout"),
        // Two predictions of the same tissue differ by twice the variance each states; a
        // patch's squared differences are summed, hence its length.
        width: network
            .std
            .iter()
            .map(|s| 2.0 * s * s * patch_len)
            .collect(),
    };
    let bands: Vec<(usize, usize)> = (0..h)
        .step_by(BAND)
        .map(|r| (r, (r + BAND).min(h)))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_core = bands.len().div_ceil(cores.max(1)).max(1);
    // Each band adds the pairs it starts to the sums of its rows and of the rows below
    // that its window reaches; those are added together here.
    let mut sums = Sums::new(h * w);
    std::thread::scope(|scope| {
        let planes = &planes;
        let handles: Vec<_> = bands
            .chunks(per_core)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|&band| (band.0, planes.band(band)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            // A band's panic is a bug here, not a slice to serve without the estimate.
            let bands = handle
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            for (r0, band) in bands {
                sums.merge(r0 * w, &band);
            }
        }
    });
    let mut fused = network.clone();
    for (p, &sigma) in planes.sigma.iter().enumerate() {
        let at = (p / w, p % w);
        let v1 = f64::from(network.std[at]).powi(2);
        let Some((amplitude, v2)) = sums.estimate(p, f64::from(sigma)) else {
            continue;
        };
        if !(v1 > 0.0 && v1.is_finite()) {
            continue;
        }
        let v = 1.0 / (1.0 / v1 + 1.0 / v2);
        let m1 = f64::from(network.mean[at]);
        fused.mean[at] = (v * (m1 / v1 + amplitude / v2)) as f32;
        fused.std[at] = v.sqrt() as f32;
    }
    fused
}

/// A slice's planes, row-major.
struct Planes<'a> {
    h: usize,
    w: usize,
    coils: u32,
    pilot: &'a [f32],
    observed: &'a [f32],
    sigma: &'a [f32],
    active: &'a [bool],
    width: Vec<f32>,
}

impl Planes<'_> {
    /// The sums of the pairs whose first pixel lies in the rows `r0..r1`, for the rows
    /// `r0..r1 + SEARCH_RADIUS` (clipped to the slice). The patch distance is symmetric, so
    /// each pair is compared once, from its upper (or, in one row, left) pixel, and adds to
    /// both of its pixels.
    fn band(&self, (r0, r1): (usize, usize)) -> Sums {
        let (h, w, pr, r) = (self.h, self.w, PATCH_RADIUS, SEARCH_RADIUS);
        // The band's rows and those its patches reach (clamped into the slice, as the
        // patches' own edges are).
        let (e0, e1) = (r0.saturating_sub(pr), (r1 + pr).min(h));
        let mut diff = vec![0f32; (e1 - e0) * w];
        let mut patch = vec![0f32; (e1 - e0) * w];
        let mut sums = Sums::new(((r1 + r).min(h) - r0) * w);
        let r = r as isize;
        for dy in 0..=r {
            for dx in if dy == 0 { 1..=r } else { -r..=r } {
                for i in e0..e1 {
                    let qi = (i as isize + dy).min(h as isize - 1) as usize;
                    for j in 0..w {
                        let qj = (j as isize + dx).clamp(0, w as isize - 1) as usize;
                        let d = self.pilot[i * w + j] - self.pilot[qi * w + qj];
                        diff[(i - e0) * w + j] = d * d;
                    }
                }
                box_sum(&diff, &mut patch, e1 - e0, w, pr);
                // Only pairs whose second pixel lies inside the slice.
                let rows = r0..r1.min(h.saturating_sub(dy as usize));
                let cols = (-dx).max(0) as usize..(w as isize - dx.max(0)).max(0) as usize;
                for i in rows {
                    let qi = i + dy as usize;
                    for j in cols.clone() {
                        let (p, q) = (i * w + j, qi * w + (j as isize + dx) as usize);
                        let distance = patch[(i - e0) * w + j];
                        for (to, from) in [(p, q), (q, p)] {
                            let x = distance / self.width[to];
                            // exp(-28) is below 1e-12: nothing to add.
                            if self.active[to] && x < 28.0 {
                                let weight = f64::from((-x).exp());
                                let (y, s) = (self.observed[from], self.sigma[from]);
                                sums.add(to - r0 * w, weight, y, s, self.coils);
                            }
                        }
                    }
                }
            }
        }
        sums
    }
}

/// The weighted sums behind each pixel's nonlocal estimate.
struct Sums {
    weight: Vec<f64>,
    weight2: Vec<f64>,
    value: Vec<f64>,
    value2: Vec<f64>,
    amplitude2: Vec<f64>,
}

impl Sums {
    fn new(n: usize) -> Self {
        Sums {
            weight: vec![0.0; n],
            weight2: vec![0.0; n],
            value: vec![0.0; n],
            value2: vec![0.0; n],
            amplitude2: vec![0.0; n],
        }
    }

    /// Adds `other`, the sums of the pixels from `start` on.
    fn merge(&mut self, start: usize, other: &Sums) {
        for (mine, theirs) in [
            (&mut self.weight, &other.weight),
            (&mut self.weight2, &other.weight2),
            (&mut self.value, &other.value),
            (&mut self.value2, &other.value2),
            (&mut self.amplitude2, &other.amplitude2),
        ] {
            for (m, t) in mine[start..].iter_mut().zip(theirs) {
                *m += t;
            }
        }
    }

    fn add(&mut self, p: usize, weight: f64, observed: f32, sigma: f32, coils: u32) {
        let (y, s) = (f64::from(observed), f64::from(sigma));
        self.weight[p] += weight;
        self.weight2[p] += weight * weight;
        self.value[p] += weight * y;
        self.value2[p] += weight * y * y;
        // A magnitude of `L` coils squared carries `2 L sigma^2` of noise on average.
        self.amplitude2[p] += weight * (y * y - 2.0 * f64::from(coils.max(1)) * s * s);
    }

    /// The amplitude estimate at `p` and its variance, for a pixel of noise `sigma`.
    fn estimate(&self, p: usize, sigma: f64) -> Option<(f64, f64)> {
        let sw = self.weight[p];
        if !(sw > 0.0 && sw.is_finite()) {
            return None;
        }
        let amplitude = (self.amplitude2[p] / sw).max(0.0).sqrt();
        let effective = sw * sw / self.weight2[p];
        let spread = (self.value2[p] / sw - (self.value[p] / sw).powi(2)).max(0.0);
        let variance = sigma * sigma / effective + (spread - sigma * sigma).max(0.0);
        (variance > 0.0 && variance.is_finite()).then_some((amplitude, variance))
    }
}

/// The sum over each pixel's `(2 radius + 1)^2` patch, the patch's edges clamped into the
/// slice.
fn box_sum(input: &[f32], out: &mut [f32], h: usize, w: usize, radius: usize) {
    let mut rows = vec![0f32; h * w];
    for i in 0..h {
        for j in 0..w {
            let (lo, hi) = (j.saturating_sub(radius), (j + radius).min(w - 1));
            let row = &input[i * w..(i + 1) * w];
            let mut s: f32 = row[lo..=hi].iter().sum();
            // Clamped edges repeat the edge pixel.
            s += (radius - (j - lo)) as f32 * row[lo];
            s += (j + radius).saturating_sub(hi) as f32 * row[hi];
            rows[i * w + j] = s;
        }
    }
    for i in 0..h {
        let (lo, hi) = (i.saturating_sub(radius), (i + radius).min(h - 1));
        for j in 0..w {
            let mut s = 0f32;
            for k in lo..=hi {
                s += rows[k * w + j];
            }
            s += (radius - (i - lo)) as f32 * rows[lo * w + j];
            s += (i + radius).saturating_sub(hi) as f32 * rows[hi * w + j];
            out[i * w + j] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    fn rician(amplitude: &Array2<f32>, sigma: f32, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        amplitude.mapv(|a| {
            let re = a + sigma * rng.sample::<f32, _>(StandardNormal);
            let im = sigma * rng.sample::<f32, _>(StandardNormal);
            re.hypot(im)
        })
    }

    #[test]
    fn the_patch_sum_clamps_its_edges_into_the_slice() {
        let (h, w, r) = (5usize, 4usize, 2usize);
        let input: Vec<f32> = (0..h * w).map(|k| (k * k % 7) as f32).collect();
        let mut out = vec![0f32; h * w];
        box_sum(&input, &mut out, h, w, r);
        for i in 0..h as isize {
            for j in 0..w as isize {
                let mut expected = 0f32;
                for a in -(r as isize)..=r as isize {
                    for b in -(r as isize)..=r as isize {
                        let (y, x) = (
                            (i + a).clamp(0, h as isize - 1),
                            (j + b).clamp(0, w as isize - 1),
                        );
                        expected += input[y as usize * w + x as usize];
                    }
                }
                assert_eq!(out[i as usize * w + j as usize], expected, "at {i},{j}");
            }
        }
    }

    /// The fused prior of a slice whose network prior is centred on the truth `clean`, `std`
    /// wide, at noise 0.05.
    fn fuse_exact(
        clean: &Array2<f32>,
        observed: &Array2<f32>,
        std: f32,
        active: &Array2<bool>,
    ) -> (PriorMaps, PriorMaps) {
        let network = PriorMaps {
            mean: clean.clone(),
            std: Array2::from_elem(clean.dim(), std),
        };
        let sigma = Array2::from_elem(clean.dim(), 0.05f32);
        let fused = fuse(&network, observed.view(), sigma.view(), 1, active.view());
        (network, fused)
    }

    /// A slice with a side under `MIN_SIDE` keeps the network's prior.
    #[test]
    fn a_small_slice_keeps_the_network_prior() {
        let clean = Array2::from_elem((MIN_SIDE - 1, MIN_SIDE), 0.5f32);
        let observed = rician(&clean, 0.05, 5);
        let active = Array2::from_elem(clean.dim(), true);
        let (network, fused) = fuse_exact(&clean, &observed, 0.02, &active);
        assert_eq!(fused.mean, network.mean);
        assert_eq!(fused.std, network.std);
    }

    /// A flat region with a noisy, unbiased network prior: the fused prior is closer to the
    /// truth than the network's, and says it is surer.
    #[test]
    fn a_flat_region_is_pulled_towards_its_neighbours() {
        let (n, sigma, truth) = (MIN_SIDE, 0.05f32, 0.6f32);
        let clean = Array2::from_elem((n, n), truth);
        let observed = rician(&clean, sigma, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let network = PriorMaps {
            mean: clean.mapv(|a| a + 0.3 * sigma * rng.sample::<f32, _>(StandardNormal)),
            std: Array2::from_elem((n, n), 0.3 * sigma),
        };
        let active = Array2::from_elem((n, n), true);
        let sigma_map = Array2::from_elem((n, n), sigma);
        let fused = fuse(
            &network,
            observed.view(),
            sigma_map.view(),
            1,
            active.view(),
        );
        let rms = |m: &Array2<f32>| (m.mapv(|v| (v - truth).powi(2)).mean().unwrap()).sqrt();
        assert!(
            rms(&fused.mean) < 0.5 * rms(&network.mean),
            "{} {}",
            rms(&fused.mean),
            rms(&network.mean)
        );
        // Unbiased in squares: no Rician floor bias in the nonlocal mean.
        let bias = fused.mean.mean().unwrap() - truth;
        assert!(bias.abs() < 0.05 * sigma, "bias {bias}");
        assert!(fused.std.iter().all(|&s| s < 0.3 * sigma));
    }

    /// The pixel's own observation never enters its nonlocal estimate; an inactive pixel
    /// keeps the network's prior.
    #[test]
    fn the_pixel_itself_is_left_out() {
        let n = MIN_SIDE;
        let clean = Array2::from_shape_fn((n, n), |(i, _)| if i < n / 2 { 0.3 } else { 0.8 });
        let observed = rician(&clean, 0.05, 3);
        let mut active = Array2::from_elem((n, n), true);
        active[(0, 0)] = false;
        let (network, before) = fuse_exact(&clean, &observed, 0.02, &active);
        let mut moved = observed.clone();
        moved[(5, 7)] += 0.5;
        let (_, after) = fuse_exact(&clean, &moved, 0.02, &active);
        assert_eq!(before.mean[(5, 7)], after.mean[(5, 7)]);
        assert_eq!(before.std[(5, 7)], after.std[(5, 7)]);
        assert_ne!(
            before.mean[(5, 8)],
            after.mean[(5, 8)],
            "a neighbour sees it"
        );
        assert_eq!(before.mean[(0, 0)], network.mean[(0, 0)]);
    }

    /// Across an edge the pilot keeps the two tissues apart: the fused prior of a pixel on
    /// the dark side stays with the dark tissue.
    #[test]
    fn an_edge_is_not_averaged_across() {
        let n = MIN_SIDE;
        let clean = Array2::from_shape_fn((n, n), |(_, j)| if j < n / 2 { 0.3 } else { 0.8 });
        let observed = rician(&clean, 0.05, 4);
        let active = Array2::from_elem((n, n), true);
        let (_, fused) = fuse_exact(&clean, &observed, 0.015, &active);
        for i in 4..n - 4 {
            assert!((fused.mean[(i, n / 2 - 1)] - 0.3).abs() < 0.02);
            assert!((fused.mean[(i, n / 2)] - 0.8).abs() < 0.02);
        }
    }
}
