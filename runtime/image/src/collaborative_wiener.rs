//! A collaborative Wiener filter of the observed magnitudes, guided by the served estimate
//! (the second stage of BM3D, Dabov, Foi, Katkovnik, Egiazarian 2007, with the network's
//! posterior as its pilot instead of BM3D's own first stage).
//!
//! The posterior step weighs each pixel's observation in on its own. What it cannot correct
//! is an error the pilot shares with its neighbours: the network's prediction in bright
//! tissue is off by a quarter of a noise sigma mostly at low frequencies (QUALITY.md, "where
//! PD's gap is"), and no single pixel's likelihood tells that apart from its noise. A block's
//! low-frequency coefficients do: the noise is white, so in a transform of 8 x 8 blocks it
//! spreads evenly over 64 coefficients, while the anatomy sits in a few. Grouping alike
//! blocks from across a window and transforming along the group as well concentrates the
//! anatomy further. The pilot says which coefficients hold anatomy (the Wiener weight
//! `p^2 / (p^2 + sigma^2)` of its own coefficient `p`), and the observation's coefficients are
//! kept by that weight: where the pilot is right the result is the pilot with less noise,
//! where it is off at low frequencies the observation corrects it.
//!
//! The filter works on magnitudes and estimates their expected value, bias included (the
//! pilot is given as the expected magnitude of the served amplitude); the caller turns it
//! back into an amplitude with the same bias correction as everything else. Near the noise
//! floor the magnitude's noise is not Gaussian and the caller does not use the result.

use std::collections::BinaryHeap;

use ndarray::{Array2, ArrayView2};

/// The side of the blocks, in pixels.
pub const BLOCK: usize = 8;
/// The distance between reference blocks, in pixels: every pixel is in several groups.
pub const STEP: usize = 3;
/// How far the search for alike blocks reaches from the reference block: 39 x 39 positions.
pub const SEARCH_RADIUS: usize = 19;
/// The most blocks in a group; the group is cut to a power of two for the Haar transform
/// along it.
pub const GROUP_MAX: usize = 32;
/// Two blocks are alike when their pilots' mean squared difference per pixel is at most this
/// many noise variances: the pilot is off by a fraction of a sigma, so blocks whose pilots
/// differ by the noise's own size are of different tissue.
pub const MATCH_DISTANCE: f32 = 1.0;
/// The Kaiser window's shape parameter, which lowers the weight of a block's border pixels in
/// the aggregation (BM3D's value).
const KAISER_BETA: f64 = 2.0;

const AREA: usize = BLOCK * BLOCK;

/// The filtered magnitudes of `observed` (noise `sigma` per pixel) with `pilot` (the expected
/// magnitude of the current estimate, same units) deciding the groups and the Wiener weights;
/// only groups around a reference block with an `active` pixel are filtered. A pixel in no
/// filtered group keeps its pilot value.
pub fn filter(
    observed: ArrayView2<f32>,
    pilot: ArrayView2<f32>,
    sigma: ArrayView2<f32>,
    active: ArrayView2<bool>,
) -> Array2<f32> {
    let (h, w) = observed.dim();
    if h < BLOCK || w < BLOCK {
        return pilot.to_owned();
    }
    let (observed_s, pilot_s, sigma_s, active_s) = (
        observed.as_standard_layout(),
        pilot.as_standard_layout(),
        sigma.as_standard_layout(),
        active.as_standard_layout(),
    );
    let planes = Planes {
        h,
        w,
        observed: observed_s.as_slice().expect("standard layout"),
        pilot: pilot_s.as_slice().expect("standard layout"),
        sigma: sigma_s.as_slice().expect("standard layout"),
        active: active_s.as_slice().expect("standard layout"),
        basis: Basis::new(),
    };
    let rows = positions(h);
    let cols = positions(w);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_core = rows.len().div_ceil(cores.max(1)).max(1);
    let mut sums = Sums::new(h * w);
    std::thread::scope(|scope| {
        let (planes, cols) = (&planes, &cols);
        let handles: Vec<_> = rows
            .chunks(per_core)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut sums = Sums::new(h * w);
                    let mut work = Work::default();
                    for &y in chunk {
                        let groups = planes.match_row(y, cols, &mut work.column_sums);
                        for (&x, group) in cols.iter().zip(groups) {
                            if let Some(group) = group {
                                let reference = y * w + x;
                                work.matches.clear();
                                work.matches.push(reference);
                                work.matches.extend(
                                    group
                                        .into_sorted_vec()
                                        .into_iter()
                                        .map(|(_, at)| at as usize),
                                );
                                planes.filter_group(&mut work, &mut sums);
                            }
                        }
                    }
                    sums
                })
            })
            .collect();
        for handle in handles {
            // A thread's panic is a bug here, not a slice to serve unfiltered.
            let part = handle
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            sums.add(&part);
        }
    });
    let mut out = pilot.to_owned();
    for ((y, x), o) in out.indexed_iter_mut() {
        let p = y * w + x;
        if sums.weight[p] > 0.0 {
            *o = (sums.value[p] / sums.weight[p]) as f32;
        }
    }
    out
}

/// The reference blocks' first rows (or columns) along a side of `n` pixels: every
/// [`STEP`], and the last block flush with the edge so that every pixel is covered.
fn positions(n: usize) -> Vec<usize> {
    let last = n - BLOCK;
    let mut at: Vec<usize> = (0..=last).step_by(STEP).collect();
    if at.last() != Some(&last) {
        at.push(last);
    }
    at
}

/// The weighted estimates each pixel received, and their weights.
struct Sums {
    value: Vec<f64>,
    weight: Vec<f64>,
}

impl Sums {
    fn new(len: usize) -> Self {
        Self {
            value: vec![0.0; len],
            weight: vec![0.0; len],
        }
    }

    fn add(&mut self, other: &Sums) {
        for (a, b) in self.value.iter_mut().zip(&other.value) {
            *a += b;
        }
        for (a, b) in self.weight.iter_mut().zip(&other.weight) {
            *a += b;
        }
    }
}

/// The orthonormal 8-point DCT-II matrix and the aggregation window.
struct Basis {
    dct: [[f32; BLOCK]; BLOCK],
    dct_t: [[f32; BLOCK]; BLOCK],
    window: [f32; AREA],
}

impl Basis {
    fn new() -> Self {
        let mut dct = [[0.0f32; BLOCK]; BLOCK];
        let n = BLOCK as f64;
        for (k, row) in dct.iter_mut().enumerate() {
            let scale = if k == 0 {
                (1.0 / n).sqrt()
            } else {
                (2.0 / n).sqrt()
            };
            for (i, c) in row.iter_mut().enumerate() {
                let angle = std::f64::consts::PI * (2.0 * i as f64 + 1.0) * k as f64 / (2.0 * n);
                *c = (scale * angle.cos()) as f32;
            }
        }
        let kaiser: Vec<f64> = (0..BLOCK)
            .map(|i| {
                let r = 2.0 * i as f64 / (n - 1.0) - 1.0;
                bessel_i0(KAISER_BETA * (1.0 - r * r).sqrt()) / bessel_i0(KAISER_BETA)
            })
            .collect();
        let mut window = [0.0f32; AREA];
        for (p, v) in window.iter_mut().enumerate() {
            *v = (kaiser[p / BLOCK] * kaiser[p % BLOCK]) as f32;
        }
        let dct_t = std::array::from_fn(|i| std::array::from_fn(|k| dct[k][i]));
        Self { dct, dct_t, window }
    }

    /// `D X D^T`, the block's 2-D transform.
    fn forward(&self, block: &[f32; AREA]) -> [f32; AREA] {
        Self::sandwich(&self.dct, block)
    }

    /// `D^T C D`, back to pixels.
    fn inverse(&self, coefficients: &[f32; AREA]) -> [f32; AREA] {
        Self::sandwich(&self.dct_t, coefficients)
    }

    /// `M X M^T` for an 8 x 8 `m`, in fixed-size loops the compiler vectorises.
    fn sandwich(m: &[[f32; BLOCK]; BLOCK], x: &[f32; AREA]) -> [f32; AREA] {
        // rows = X M^T: row r of X against row k of M.
        let mut rows = [0.0f32; AREA];
        for r in 0..BLOCK {
            let xr = &x[r * BLOCK..(r + 1) * BLOCK];
            for (k, mk) in m.iter().enumerate() {
                rows[r * BLOCK + k] = xr.iter().zip(mk).map(|(a, b)| a * b).sum();
            }
        }
        // out = M rows: row k is the rows of `rows` weighted by row k of M.
        let mut out = [0.0f32; AREA];
        for (k, mk) in m.iter().enumerate() {
            let ok = &mut out[k * BLOCK..(k + 1) * BLOCK];
            for (r, &weight) in mk.iter().enumerate() {
                for (o, &v) in ok.iter_mut().zip(&rows[r * BLOCK..(r + 1) * BLOCK]) {
                    *o += weight * v;
                }
            }
        }
        out
    }
}

/// The modified Bessel function `I0`, by its series (the window's arguments are small).
fn bessel_i0(x: f64) -> f64 {
    let (mut term, mut sum, q) = (1.0, 1.0, x * x / 4.0);
    for k in 1..40 {
        term *= q / (k * k) as f64;
        sum += term;
    }
    sum
}

/// The orthonormal Haar transform along a group of blocks (its length a power of two), in
/// place, every coefficient of the blocks at once: the first block becomes the scaled mean.
fn haar_forward(group: &mut [[f32; AREA]], tmp: &mut Vec<[f32; AREA]>) {
    let mut n = group.len();
    while n > 1 {
        let half = n / 2;
        tmp.clear();
        tmp.extend_from_slice(&group[..n]);
        for i in 0..half {
            let (a, b) = (&tmp[2 * i], &tmp[2 * i + 1]);
            group[i] = std::array::from_fn(|k| (a[k] + b[k]) * std::f32::consts::FRAC_1_SQRT_2);
            group[half + i] =
                std::array::from_fn(|k| (a[k] - b[k]) * std::f32::consts::FRAC_1_SQRT_2);
        }
        n = half;
    }
}

/// The inverse of [`haar_forward`].
fn haar_inverse(group: &mut [[f32; AREA]], tmp: &mut Vec<[f32; AREA]>) {
    let mut n = 2;
    while n <= group.len() {
        let half = n / 2;
        tmp.clear();
        tmp.extend_from_slice(&group[..n]);
        for i in 0..half {
            let (a, d) = (&tmp[i], &tmp[half + i]);
            group[2 * i] = std::array::from_fn(|k| (a[k] + d[k]) * std::f32::consts::FRAC_1_SQRT_2);
            group[2 * i + 1] =
                std::array::from_fn(|k| (a[k] - d[k]) * std::f32::consts::FRAC_1_SQRT_2);
        }
        n *= 2;
    }
}

/// The closest blocks found so far for a reference block, as (distance bits, top left
/// index), the farthest on top.
type Candidates = BinaryHeap<(u32, u32)>;

/// A thread's buffers, reused from group to group.
#[derive(Default)]
struct Work {
    matches: Vec<usize>,
    column_sums: Vec<f32>,
    pilot: Vec<[f32; AREA]>,
    observed: Vec<[f32; AREA]>,
    tmp: Vec<[f32; AREA]>,
}

struct Planes<'a> {
    h: usize,
    w: usize,
    observed: &'a [f32],
    pilot: &'a [f32],
    sigma: &'a [f32],
    active: &'a [bool],
    basis: Basis,
}

impl Planes<'_> {
    fn block(&self, plane: &[f32], at: usize) -> [f32; AREA] {
        let mut b = [0.0f32; AREA];
        for r in 0..BLOCK {
            let row = at + r * self.w;
            b[r * BLOCK..(r + 1) * BLOCK].copy_from_slice(&plane[row..row + BLOCK]);
        }
        b
    }

    /// The blocks alike to each reference block of row `y` (its columns `cols`): for each
    /// reference with an active pixel and a valid noise, the closest blocks of the window
    /// whose pilots differ by at most [`MATCH_DISTANCE`] noise variances (mean square per
    /// pixel), up to [`GROUP_MAX`] less the reference itself, as (distance, top left
    /// index): the distance as the bits of its nonnegative sum, which order as the sums do.
    ///
    /// The window is searched offset by offset: for one offset the squared differences of
    /// the row's eight pixel rows are summed down each column once, over the whole width,
    /// and every reference of the row reads its block's sum from eight of those columns.
    fn match_row(
        &self,
        y: usize,
        cols: &[usize],
        column_sums: &mut Vec<f32>,
    ) -> Vec<Option<Candidates>> {
        let (h, w) = (self.h, self.w);
        // Each reference's match limit (a sum over its block) beside its candidates.
        let mut groups: Vec<Option<(f32, Candidates)>> = cols
            .iter()
            .map(|&x| {
                let at = y * w + x;
                let any_active =
                    (0..BLOCK).any(|r| self.active[at + r * w..at + r * w + BLOCK].contains(&true));
                let sigma = self.sigma[at + (BLOCK / 2) * w + BLOCK / 2];
                (any_active && sigma > 0.0 && sigma.is_finite()).then(|| {
                    let limit = MATCH_DISTANCE * sigma * sigma * AREA as f32;
                    (limit, BinaryHeap::with_capacity(GROUP_MAX))
                })
            })
            .collect();
        if groups.iter().all(Option::is_none) {
            return vec![None; cols.len()];
        }
        let radius = SEARCH_RADIUS as isize;
        column_sums.resize(w, 0.0);
        for dy in -radius..=radius {
            let cy = y as isize + dy;
            if cy < 0 || cy > (h - BLOCK) as isize {
                continue;
            }
            let cy = cy as usize;
            for dx in -radius..=radius {
                if dy == 0 && dx == 0 {
                    continue;
                }
                // The columns c whose partner c + dx is in the slice.
                let c0 = (-dx).max(0) as usize;
                let c1 = (w as isize - dx.max(0)) as usize;
                let sums = &mut column_sums[c0..c1];
                sums.fill(0.0);
                for r in 0..BLOCK {
                    let a = &self.pilot[(y + r) * w + c0..(y + r) * w + c1];
                    let start = ((cy + r) * w + c0) as isize + dx;
                    let b = &self.pilot[start as usize..start as usize + (c1 - c0)];
                    for ((s, &a), &b) in sums.iter_mut().zip(a).zip(b) {
                        *s += (a - b) * (a - b);
                    }
                }
                for (&x, group) in cols.iter().zip(&mut groups) {
                    let Some((limit, heap)) = group else { continue };
                    let cx = x as isize + dx;
                    if cx < 0 || cx > (w - BLOCK) as isize {
                        continue;
                    }
                    let d: f32 = column_sums[x..x + BLOCK].iter().sum();
                    // Not alike, or not a number (a pilot with a NaN is never grouped).
                    if d.is_nan() || d > *limit {
                        continue;
                    }
                    let entry = (d.to_bits(), (cy * w + cx as usize) as u32);
                    if heap.len() < GROUP_MAX - 1 {
                        heap.push(entry);
                    } else if entry < *heap.peek().expect("a full heap") {
                        heap.pop();
                        heap.push(entry);
                    }
                }
            }
        }
        groups
            .into_iter()
            .map(|g| g.map(|(_, heap)| heap))
            .collect()
    }

    /// The noise variance of a group's coefficients: the mean of its blocks' (each read at
    /// its centre). Under a g-factor map a group gathers blocks of several noise levels,
    /// and its coefficients along the group mix them; the reference's alone would shrink
    /// a group from a quieter place too much, or one from a noisier place too little.
    fn group_noise(&self, matches: &[usize]) -> f32 {
        let centre = (BLOCK / 2) * self.w + BLOCK / 2;
        let sum: f32 = matches
            .iter()
            .map(|&at| self.sigma[at + centre].powi(2))
            .sum();
        sum / matches.len().max(1) as f32
    }

    /// Filters the group `work.matches` (top left indices of alike blocks: the reference,
    /// then the others closest first) and adds its estimates to `sums`; the group is cut to
    /// a power of two.
    fn filter_group(&self, work: &mut Work, sums: &mut Sums) {
        let w = self.w;
        let n = 1 << work.matches.len().ilog2();
        work.matches.truncate(n);

        work.pilot.clear();
        work.observed.clear();
        for &at in &work.matches {
            work.pilot
                .push(self.basis.forward(&self.block(self.pilot, at)));
            work.observed
                .push(self.basis.forward(&self.block(self.observed, at)));
        }
        let noise = self.group_noise(&work.matches);
        haar_forward(&mut work.pilot, &mut work.tmp);
        haar_forward(&mut work.observed, &mut work.tmp);
        let mut gain_energy = 0.0f64;
        for (p, o) in work.pilot.iter().zip(work.observed.iter_mut()) {
            let mut energy = 0.0f32;
            for (p, o) in p.iter().zip(o.iter_mut()) {
                let gain = p * p / (p * p + noise);
                *o *= gain;
                energy += gain * gain;
            }
            gain_energy += f64::from(energy);
        }
        haar_inverse(&mut work.observed, &mut work.tmp);
        // BM3D's aggregation weight: the inverse of the estimate's noise variance.
        let weight = 1.0 / (f64::from(noise) * gain_energy.max(1.0));
        for (coefficients, &at) in work.observed.iter().zip(&work.matches) {
            let estimate = self.basis.inverse(coefficients);
            for r in 0..BLOCK {
                for c in 0..BLOCK {
                    let p = at + r * w + c;
                    let k = f64::from(self.basis.window[r * BLOCK + c]) * weight;
                    sums.value[p] += k * f64::from(estimate[r * BLOCK + c]);
                    sums.weight[p] += k;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// A 64 x 64 slice: a bright disc (amplitude 12) on tissue of amplitude 6, noise 1.
    fn disc() -> Array2<f32> {
        Array2::from_shape_fn((64, 64), |(y, x)| {
            let (dy, dx) = (y as f32 - 30.0, x as f32 - 34.0);
            if dy * dy + dx * dx < 15.0 * 15.0 {
                12.0
            } else {
                6.0
            }
        })
    }

    fn gaussian(clean: &Array2<f32>, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        clean.mapv(|a| a + rng.sample::<f32, _>(StandardNormal))
    }

    fn rms(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
        let sum: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        (sum / a.len() as f32).sqrt()
    }

    #[test]
    fn a_pilot_off_at_low_frequency_is_corrected_by_the_observation() {
        let clean = disc();
        let observed = gaussian(&clean, 7);
        // The pilot is off by half a sigma everywhere, and a slow ramp on top: an error no
        // single pixel's observation tells apart from its noise.
        let pilot = Array2::from_shape_fn(clean.dim(), |(y, x)| {
            clean[(y, x)] + 0.5 + 0.01 * (y + x) as f32
        });
        let sigma = Array2::from_elem(clean.dim(), 1.0f32);
        let active = Array2::from_elem(clean.dim(), true);
        let out = filter(observed.view(), pilot.view(), sigma.view(), active.view());
        let mean_error = (&out - &clean).mean().unwrap();
        assert!(mean_error.abs() < 0.1, "mean error {mean_error}");
        let (e_out, e_pilot, e_observed) = (
            rms(&out, &clean),
            rms(&pilot, &clean),
            rms(&observed, &clean),
        );
        assert!(e_out < 0.35, "rms {e_out} (pilot {e_pilot})");
        assert!(e_out < 0.5 * e_pilot && e_out < 0.4 * e_observed);
    }

    #[test]
    fn a_true_pilot_keeps_the_edges_and_takes_the_noise_out() {
        let clean = disc();
        let observed = gaussian(&clean, 8);
        let sigma = Array2::from_elem(clean.dim(), 1.0f32);
        let active = Array2::from_elem(clean.dim(), true);
        let out = filter(observed.view(), clean.view(), sigma.view(), active.view());
        // Along the disc's rim, where a smoothing filter would blur the step.
        let rim: Vec<(usize, usize)> = clean
            .indexed_iter()
            .filter(|&((y, x), &v)| {
                v > 10.0 && y > 0 && x > 0 && y < 63 && x < 63 && {
                    let n = [(y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)];
                    n.iter().any(|&at| clean[at] < 10.0)
                }
            })
            .map(|(at, _)| at)
            .collect();
        assert!(rim.len() > 40);
        let n = rim.len() as f32;
        let rim_bias = rim.iter().map(|&at| out[at] - clean[at]).sum::<f32>() / n;
        let rim_rms = (rim
            .iter()
            .map(|&at| (out[at] - clean[at]).powi(2))
            .sum::<f32>()
            / n)
            .sqrt();
        // What the smallest blur, a 3 x 3 mean, does to the clean rim.
        let blur_bias = rim
            .iter()
            .map(|&(y, x)| {
                let mean = clean
                    .slice(ndarray::s![y - 1..=y + 1, x - 1..=x + 1])
                    .mean()
                    .unwrap();
                mean - clean[(y, x)]
            })
            .sum::<f32>()
            / n;
        // The filter keeps more of the noise at the rim than in flat tissue (its coefficients
        // hold anatomy there) and shrinks the step a little, but does not blur it.
        assert!(
            rim_bias.abs() < 0.25 * blur_bias.abs(),
            "rim bias {rim_bias}, blur {blur_bias}"
        );
        assert!(rim_rms < 0.6, "rim rms {rim_rms}");
        assert!(rms(&out, &clean) < 0.25);
    }

    #[test]
    fn only_groups_around_active_pixels_are_filtered() {
        let clean = disc();
        let observed = gaussian(&clean, 9);
        let sigma = Array2::from_elem(clean.dim(), 1.0f32);
        let none = Array2::from_elem(clean.dim(), false);
        assert_eq!(
            filter(observed.view(), clean.view(), sigma.view(), none.view()),
            clean
        );
        // One active pixel in the top left corner: the blocks around it change, the far
        // corner keeps its pilot.
        let mut one = none.clone();
        one[(2, 2)] = true;
        let out = filter(observed.view(), clean.view(), sigma.view(), one.view());
        assert_ne!(out[(2, 2)], clean[(2, 2)]);
        assert_eq!(out[(63, 63)], clean[(63, 63)]);
        // A slice smaller than a block is returned as its pilot.
        let small = Array2::from_elem((4, 30), 3.0f32);
        let noisy = small.mapv(|v| v + 0.5);
        let s = Array2::from_elem(small.dim(), 1.0f32);
        let a = Array2::from_elem(small.dim(), true);
        assert_eq!(
            filter(noisy.view(), small.view(), s.view(), a.view()),
            small
        );
    }

    #[test]
    fn the_transforms_are_orthonormal_and_invert() {
        let basis = Basis::new();
        let mut block = [0.0f32; AREA];
        for (i, v) in block.iter_mut().enumerate() {
            *v = ((i * 37) % 11) as f32 - 5.0;
        }
        let t = basis.forward(&block);
        let energy = |b: &[f32]| b.iter().map(|v| v * v).sum::<f32>();
        assert!((energy(&t) - energy(&block)).abs() < 1e-3 * energy(&block));
        let back = basis.inverse(&t);
        for (a, b) in back.iter().zip(&block) {
            assert!((a - b).abs() < 1e-4, "{a} != {b}");
        }
        let mut group: Vec<[f32; AREA]> = (0..16)
            .map(|i| std::array::from_fn(|k| ((i * i + k) % 7) as f32))
            .collect();
        let original = group.clone();
        let mut tmp = Vec::new();
        haar_forward(&mut group, &mut tmp);
        let total = |g: &[[f32; AREA]]| g.iter().map(|b| energy(b)).sum::<f32>();
        assert!((total(&group) - total(&original)).abs() < 1e-3 * total(&original));
        // The first block is the scaled mean of the group.
        for k in 0..AREA {
            let mean = original.iter().map(|b| b[k]).sum::<f32>() / 16.0;
            assert!((group[0][k] - mean * 4.0).abs() < 1e-4);
        }
        haar_inverse(&mut group, &mut tmp);
        for (a, b) in group.iter().flatten().zip(original.iter().flatten()) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    /// The planes of `image` as both the observation and the pilot.
    fn planes_of<'a>(
        image: &'a Array2<f32>,
        sigma: &'a Array2<f32>,
        active: &'a Array2<bool>,
    ) -> Planes<'a> {
        let (h, w) = image.dim();
        Planes {
            h,
            w,
            observed: image.as_slice().unwrap(),
            pilot: image.as_slice().unwrap(),
            sigma: sigma.as_slice().unwrap(),
            active: active.as_slice().unwrap(),
            basis: Basis::new(),
        }
    }

    #[test]
    fn a_group_across_noise_levels_is_filtered_at_their_mean_variance() {
        // Sigma 1 on the left half, 2 on the right: a group of a block from each is filtered
        // at the mean of 1 and 4, not at its reference's alone.
        let (h, w) = (32, 32);
        let image = Array2::<f32>::zeros((h, w));
        let sigma = Array2::from_shape_fn((h, w), |(_, j)| if j < 16 { 1.0f32 } else { 2.0 });
        let active = Array2::from_elem((h, w), true);
        let planes = planes_of(&image, &sigma, &active);
        let (left, right) = (4 * w + 2, 4 * w + 20);
        assert_eq!(planes.group_noise(&[right, left]), 2.5);
        assert_eq!(planes.group_noise(&[left, left + 1]), 1.0);
        assert_eq!(planes.group_noise(&[right]), 4.0);
    }

    #[test]
    fn the_search_offset_by_offset_finds_the_closest_blocks() {
        // A noisy disc as the pilot, so that distances differ and few tie.
        let pilot = gaussian(&disc(), 3).mapv(|v| v * 0.3);
        let (h, w) = pilot.dim();
        let sigma = Array2::from_elem((h, w), 1.0f32);
        let active = Array2::from_elem((h, w), true);
        let planes = planes_of(&pilot, &sigma, &active);
        let cols = positions(w);
        let limit = MATCH_DISTANCE * AREA as f32;
        for y in [0, 27, h - BLOCK] {
            let groups = planes.match_row(y, &cols, &mut Vec::new());
            for (&x, group) in cols.iter().zip(groups) {
                let heap = group.expect("an active reference");
                let found: Vec<f32> = heap
                    .into_sorted_vec()
                    .iter()
                    .map(|&(d, _)| f32::from_bits(d))
                    .collect();
                // Every block of the window, its squared difference summed directly.
                let mut all = Vec::new();
                for cy in y.saturating_sub(SEARCH_RADIUS)..=(y + SEARCH_RADIUS).min(h - BLOCK) {
                    for cx in x.saturating_sub(SEARCH_RADIUS)..=(x + SEARCH_RADIUS).min(w - BLOCK) {
                        if (cy, cx) == (y, x) {
                            continue;
                        }
                        let block = |y0: usize, x0: usize| {
                            pilot.slice(ndarray::s![y0..y0 + BLOCK, x0..x0 + BLOCK])
                        };
                        let d: f32 = (&block(y, x) - &block(cy, cx)).mapv(|v| v * v).sum();
                        if d <= limit {
                            all.push(d);
                        }
                    }
                }
                all.sort_by(f32::total_cmp);
                all.truncate(GROUP_MAX - 1);
                assert_eq!(found.len(), all.len(), "at {y}, {x}");
                for (a, b) in found.iter().zip(&all) {
                    assert!(
                        (a - b).abs() < 1e-3 * b.max(1.0),
                        "at {y}, {x}: {a} against {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_pixel_is_covered_by_a_reference_block() {
        for n in [8, 9, 10, 11, 31, 64, 65] {
            let at = positions(n);
            assert_eq!(at[0], 0);
            assert_eq!(*at.last().unwrap() + BLOCK, n);
            assert!(at.windows(2).all(|p| p[1] - p[0] <= STEP));
        }
    }
}
