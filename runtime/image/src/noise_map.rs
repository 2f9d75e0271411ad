//! The noise level of a magnitude image pixel by pixel, estimated from the image itself.
//!
//! Parallel imaging makes the noise vary across a slice with the g-factor map (by a factor
//! of two at acceleration 3), so one sigma per slice ([`crate::noise::estimate_sigma`])
//! over-smooths where the noise is low and leaves it where it is high. The map here is
//! built the same robust way, locally: the finest diagonal Haar band of 2 x 2 blocks over a
//! tile of tissue gives that tile's sigma, first by its median absolute value, then by its
//! second moment within 2.5 sigma (which keeps most of the details' evidence and still
//! drops edges). At high SNR a noncentral chi magnitude varies like Gaussian noise of the
//! channels' sigma, whatever the number of coils; a few sigmas above the floor it varies
//! less (8 coils at 4 sigma: 0.9 sigma), so each block's detail is divided by the spread its
//! mean implies, and the tile's sigma refined a few times. In the air the magnitude's second
//! moment is `2 L sigma^2` for L combined coils: tiles with too little tissue rest on it,
//! and the air pixels of every tile take a map of the air's own (a tissue tile's estimate
//! is several percent uncertain, and the chi correction at the air's floor turns a 3%
//! error into a sigma of grey). The tile estimates are smoothed by normalised convolution
//! (each weighted by how many blocks it rests on, so empty tiles are filled from their
//! neighbours) and interpolated bilinearly to pixels.
//!
//! A true g-factor map is smooth but for folds where it jumps; the map is smooth
//! everywhere, so it errs within about a tile of those.

use ndarray::{Array2, ArrayView2};

use crate::magnitude_bias::{BiasCorrection, noncentral_chi_mean};
use crate::noise::{MAD_TO_SIGMA, estimate_sigma};
use crate::{Error, Result};

/// How the map is estimated. The defaults suit 128 to 512 pixel knee slices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseMapSettings {
    /// Tile side in pixels (even): each tile's estimate rests on `(tile / 2)^2` blocks.
    pub tile: usize,
    /// Fewer usable blocks than this leave a tile to its neighbours.
    pub min_blocks: usize,
    /// Width (standard deviation) of the smoothing across tiles, in tiles.
    pub smoothing: f32,
    /// The magnitude's degrees of freedom in coils (1 for Rician; L for root-sum-of-squares
    /// of L prewhitened channels): sets the air floor and the air's second moment.
    pub coils: u32,
}

impl Default for NoiseMapSettings {
    fn default() -> Self {
        NoiseMapSettings {
            tile: 32,
            min_blocks: 32,
            smoothing: 1.0,
            coils: 1,
        }
    }
}

/// How a slice's noise is known where it is served.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum NoiseModel {
    /// One sigma for the slice ([`estimate_sigma`]), one coil: Rician. What the product was
    /// trained for, and right for a single-coil or sensitivity-combined scan without
    /// parallel imaging.
    #[default]
    Slice,
    /// A sigma per pixel ([`estimate_noise_map`]) for a magnitude of `settings.coils`
    /// coils: a parallel-imaging scan whose noise follows a g-factor map, or a
    /// root-sum-of-squares one (noncentral chi).
    Map(NoiseMapSettings),
}

impl NoiseModel {
    /// The magnitude's degrees of freedom, in coils.
    pub fn coils(&self) -> u32 {
        match self {
            NoiseModel::Slice => 1,
            NoiseModel::Map(settings) => settings.coils,
        }
    }

    /// The noise sd of every pixel of `image`.
    pub fn sigma(&self, image: ArrayView2<f32>) -> Result<Array2<f32>> {
        match self {
            NoiseModel::Slice => Ok(Array2::from_elem(image.dim(), estimate_sigma(image))),
            NoiseModel::Map(settings) => estimate_noise_map(image, settings),
        }
    }

    /// The noise sd of every pixel of two slices of the same anatomy (a slice and its
    /// guide, a training pair), each read beside the other: the other tells its air from
    /// its tissue too dark to show ([`estimate_noise_map_beside`]).
    pub fn sigma_of_pair(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        match self {
            NoiseModel::Slice => Ok((self.sigma(a)?, self.sigma(b)?)),
            NoiseModel::Map(settings) => Ok((
                estimate_noise_map_beside(a, b, settings)?,
                estimate_noise_map_beside(b, a, settings)?,
            )),
        }
    }
}

/// How much noisier than the slice's typical pixel each pixel is: the noise `map` over its
/// median (all ones for a map of one value, or of none). Dividing a slice by it leaves the
/// noise of the median sigma everywhere: a magnitude of amplitude `A` and sigma `s` divided
/// by `k` is one of `A / k` and `s / k`, of the same distribution. Training and serving
/// both divide by it, so that the network meets one noise level across a slice however
/// the g-factor varies, and multiply its output back.
pub fn noise_factor(map: ArrayView2<f32>) -> Array2<f32> {
    match map_level(map) {
        Some(median) => map.mapv(|v| if v > 0.0 { v / median } else { 1.0 }),
        None => Array2::ones(map.dim()),
    }
}

/// The noise sd of a slice divided by its [`noise_factor`]: the median of the map's
/// positive values (`None` for a map without any).
pub fn map_level(map: ArrayView2<f32>) -> Option<f32> {
    let mut values: Vec<f32> = map.iter().copied().filter(|v| *v > 0.0).collect();
    if values.is_empty() {
        return None;
    }
    let k = values.len() / 2;
    Some(*values.select_nth_unstable_by(k, f32::total_cmp).1)
}

/// A block counts as tissue this many sigmas above the air's mean.
const TISSUE_ABOVE_FLOOR: f32 = 3.0;
/// A block counts as air below this many sigmas above the air's mean.
const AIR_ABOVE_FLOOR: f32 = 0.5;
/// The same once the air's own sigma is known near the block: closer, so that dark tissue
/// (fat-suppressed, a sigma or two above the floor) is not taken for air.
const AIR_ABOVE_LOCAL_FLOOR: f32 = 0.25;
/// The side, in blocks, of the neighbourhood whose mean tells air.
const AIR_NEIGHBOURHOOD: usize = 4;

impl NoiseMapSettings {
    pub fn validate(&self) -> Result<()> {
        let bad = |what, reason: String| Err(Error::Invalid { what, reason });
        if self.tile < 4 || !self.tile.is_multiple_of(2) {
            return bad(
                "noise map tile",
                format!("{} is not an even size of 4 or more", self.tile),
            );
        }
        if self.min_blocks == 0 {
            return bad("noise map min_blocks", "0 would trust an empty tile".into());
        }
        if !(self.smoothing >= 0.0 && self.smoothing.is_finite()) {
            return bad(
                "noise map smoothing",
                format!("{} is not a finite width >= 0", self.smoothing),
            );
        }
        if self.coils == 0 {
            return bad("noise map coils", "0 coils".into());
        }
        Ok(())
    }
}

/// The noise standard deviation at every pixel of `image`, in its intensity units.
pub fn estimate_noise_map(
    image: ArrayView2<f32>,
    settings: &NoiseMapSettings,
) -> Result<Array2<f32>> {
    estimate(image, None, settings)
}

/// A partner's block counts as tissue this many of its sigmas above its air's floor.
const PARTNER_TISSUE_ABOVE_FLOOR: f32 = 1.0;

/// [`estimate_noise_map`], with what is air told by the partner contrast (the same
/// anatomy, co-registered) as well: a block is air only where the partner's is not tissue
/// by the partner's own map. Fat-suppressed tissue a sigma or two above the floor reads as
/// air (PDFS: most of the knee), and its faint amplitude `A` raises the second moment as a
/// sigma `sqrt(1 + A^2 / 2L)` times higher would, 3% at 8 coils, which no statistic of the
/// slice alone tells apart; in the partner (PD) the same tissue is bright. A partner of
/// another size is ignored.
pub fn estimate_noise_map_beside(
    image: ArrayView2<f32>,
    partner: ArrayView2<f32>,
    settings: &NoiseMapSettings,
) -> Result<Array2<f32>> {
    if partner.dim() != image.dim() {
        return estimate_noise_map(image, settings);
    }
    let partner_map = estimate_noise_map(partner, settings)?;
    let (bh, bw) = (partner.nrows() / 2, partner.ncols() / 2);
    let blocks = Array2::from_shape_fn((bh, bw), |(i, j)| Block::at(partner, i, j));
    let around = neighbourhood_means(&blocks, AIR_NEIGHBOURHOOD);
    let floor = noncentral_chi_mean(0.0, settings.coils) as f32;
    let tissue = Array2::from_shape_fn((bh, bw), |(i, j)| {
        around[(i, j)] > (floor + PARTNER_TISSUE_ABOVE_FLOOR) * partner_map[(2 * i, 2 * j)]
    });
    estimate(image, Some(&tissue), settings)
}

/// The map of `image`; `partner_tissue`: its blocks that are tissue in the partner
/// contrast, never read as air.
fn estimate(
    image: ArrayView2<f32>,
    partner_tissue: Option<&Array2<bool>>,
    settings: &NoiseMapSettings,
) -> Result<Array2<f32>> {
    settings.validate()?;
    let (rows, cols) = image.dim();
    let (bh, bw) = (rows / 2, cols / 2);
    if bh == 0 || bw == 0 {
        return Ok(Array2::zeros((rows, cols)));
    }
    let blocks = Array2::from_shape_fn((bh, bw), |(i, j)| Block::at(image, i, j));
    // Air is told by the mean of the 8 x 8 pixels around a block: one block's mean spreads
    // enough that a threshold on it would keep the quieter air blocks and bias the air's
    // second moment low (by 3% for 8 coils).
    let surroundings = neighbourhood_means(&blocks, AIR_NEIGHBOURHOOD);
    // A first, global sigma to tell tissue and air apart.
    let global = global_sigma(image, &blocks, settings.coils);
    if global <= 0.0 {
        return Ok(Array2::zeros((rows, cols)));
    }
    let floor = noncentral_chi_mean(0.0, settings.coils) as f32;
    let per_tile = settings.tile / 2;
    let scan = Scan {
        blocks: &blocks,
        surroundings: &surroundings,
        partner_tissue,
        settings,
        spread: Spread::new(settings.coils),
        global,
    };
    // Tissue and air are told apart by the slice's sigma first, then by that first map:
    // air twice as noisy as the slice (a g-factor of 2 at acceleration 3) sits above a
    // threshold set by the slice's sigma and would be left out, or only its quieter blocks
    // kept, which biases its sigma low.
    let (first, first_air) = scan.tiles(
        |_| (floor + TISSUE_ABOVE_FLOOR) * global,
        |_| (floor + AIR_ABOVE_FLOOR) * global,
    );
    let at_blocks = |tiles: &Array2<f32>| bilinear(tiles, bh, bw, per_tile);
    let (tissue_ref, air_ref) = (at_blocks(&first), at_blocks(&first_air));
    let air_below = |b: (usize, usize)| (floor + AIR_ABOVE_LOCAL_FLOOR) * air_ref[b];
    let (smooth, air_smooth) =
        scan.tiles(|b| (floor + TISSUE_ABOVE_FLOOR) * tissue_ref[b], air_below);
    let map = bilinear(&smooth, rows, cols, settings.tile);
    let air_map = bilinear(&air_smooth, rows, cols, settings.tile);
    // Each pixel of an air block takes the air's map; the rest the tissue's.
    Ok(Array2::from_shape_fn((rows, cols), |(i, j)| {
        let block = ((i / 2).min(bh - 1), (j / 2).min(bw - 1));
        if scan.is_air(block, air_below(block)) {
            air_map[(i, j)]
        } else {
            map[(i, j)]
        }
    }))
}

/// What one pass over a slice's tiles reads.
struct Scan<'a> {
    blocks: &'a Array2<Block>,
    surroundings: &'a Array2<f32>,
    /// Blocks that are tissue in the partner contrast: never air.
    partner_tissue: Option<&'a Array2<bool>>,
    settings: &'a NoiseMapSettings,
    spread: Spread,
    global: f32,
}

impl Scan<'_> {
    /// Whether `block` is air: its surroundings below `below`, and not tissue in the
    /// partner.
    fn is_air(&self, block: (usize, usize), below: f32) -> bool {
        self.surroundings[block] < below && !self.partner_tissue.is_some_and(|t| t[block])
    }

    /// The smoothed tile estimates of the whole slice and of its air alone, with tissue
    /// blocks those whose mean is above `tissue_above(block)` and air blocks those whose
    /// surroundings are below `air_below(block)`.
    fn tiles(
        &self,
        tissue_above: impl Fn((usize, usize)) -> f32,
        air_below: impl Fn((usize, usize)) -> f32,
    ) -> (Array2<f32>, Array2<f32>) {
        let settings = self.settings;
        let (bh, bw) = self.blocks.dim();
        let per_tile = settings.tile / 2;
        let (th, tw) = (bh.div_ceil(per_tile), bw.div_ceil(per_tile));
        let mut estimate = Array2::<f32>::zeros((th, tw));
        let mut weight = Array2::<f32>::zeros((th, tw));
        // The air's own estimate of every tile with enough air, tissue tiles included: the
        // noncentral chi correction at the air's floor needs the air's sigma to a percent
        // or two (docs/scanner-noise.md), which a tissue tile's estimate is not.
        let mut air_estimate = Array2::<f32>::zeros((th, tw));
        let mut air_weight = Array2::<f32>::zeros((th, tw));
        let (mut tissue, mut corrected, mut air) = (Vec::new(), Vec::new(), Vec::new());
        for ti in 0..th {
            for tj in 0..tw {
                tissue.clear();
                air.clear();
                for bi in ti * per_tile..((ti + 1) * per_tile).min(bh) {
                    for bj in tj * per_tile..((tj + 1) * per_tile).min(bw) {
                        let block = self.blocks[(bi, bj)];
                        if block.mean > tissue_above((bi, bj)) {
                            tissue.push((block.mean, block.detail));
                        } else if self.is_air((bi, bj), air_below((bi, bj))) {
                            air.push(block.power);
                        }
                    }
                }
                if tissue.len() >= settings.min_blocks {
                    let mut sigma = self.global;
                    for round in 0..REFINEMENTS {
                        corrected.clear();
                        corrected
                            .extend(tissue.iter().map(|&(m, d)| d / self.spread.at(m / sigma)));
                        sigma = if round == 0 {
                            let k = corrected.len() / 2;
                            *corrected.select_nth_unstable_by(k, f32::total_cmp).1 / MAD_TO_SIGMA
                        } else {
                            clipped_sigma(&corrected, sigma)
                        };
                    }
                    estimate[(ti, tj)] = sigma;
                    weight[(ti, tj)] = tissue.len() as f32;
                }
                if air.len() >= settings.min_blocks {
                    let second = air.iter().sum::<f32>() / air.len() as f32;
                    air_estimate[(ti, tj)] = (second / (2.0 * settings.coils as f32)).sqrt();
                    air_weight[(ti, tj)] = air.len() as f32;
                    if tissue.len() < settings.min_blocks {
                        estimate[(ti, tj)] = air_estimate[(ti, tj)];
                        weight[(ti, tj)] = air_weight[(ti, tj)];
                    }
                }
            }
        }
        let fallback = Array2::from_elem((th, tw), self.global);
        let smooth = normalised_convolution(&estimate, &weight, settings.smoothing, &fallback);
        let air_smooth =
            normalised_convolution(&air_estimate, &air_weight, settings.smoothing, &smooth);
        (smooth, air_smooth)
    }
}

/// One 2 x 2 block of the image: what the estimates read of it.
#[derive(Debug, Clone, Copy, Default)]
struct Block {
    mean: f32,
    /// `|HH|`, the finest diagonal Haar detail: the noise's sd in tissue, whatever the
    /// block's level or gradient.
    detail: f32,
    /// The mean of the squares: the air's second moment.
    power: f32,
}

impl Block {
    fn at(image: ArrayView2<f32>, i: usize, j: usize) -> Self {
        let a = image[(2 * i, 2 * j)];
        let b = image[(2 * i, 2 * j + 1)];
        let c = image[(2 * i + 1, 2 * j)];
        let d = image[(2 * i + 1, 2 * j + 1)];
        Block {
            mean: ((a + b) + (c + d)) * 0.25,
            detail: ((a - b) - (c - d)).abs() * 0.5,
            power: (a * a + b * b + c * c + d * d) * 0.25,
        }
    }
}

/// The mean of the block means in the `side` x `side` blocks around each block (clipped at
/// the edges).
fn neighbourhood_means(blocks: &Array2<Block>, side: usize) -> Array2<f32> {
    let (h, w) = blocks.dim();
    let (before, after) = (side / 2, side - side / 2);
    Array2::from_shape_fn((h, w), |(i, j)| {
        let rows = i.saturating_sub(before)..(i + after).min(h);
        let cols = j.saturating_sub(before)..(j + after).min(w);
        let count = (rows.len() * cols.len()) as f32;
        let sum: f32 = rows
            .flat_map(|r| cols.clone().map(move |c| (r, c)))
            .map(|at| blocks[at].mean)
            .sum();
        sum / count
    })
}

/// Refinements of a tile's sigma (each re-reads its blocks' spreads): the median first,
/// then the clipped second moment.
const REFINEMENTS: usize = 4;

/// Details beyond this many sigmas are taken for edges, not noise.
const CLIP: f32 = 2.5;
/// `E[X^2 | |X| < CLIP]` for a standard normal X: `1 - 2 c phi(c) / (2 Phi(c) - 1)`.
const CLIPPED_SECOND_MOMENT: f32 = 0.911_3;

/// The noise sigma of `details` (|HH| in noise units, each already divided by its spread)
/// from their second moment within `CLIP` times the current `sigma`. The median of a tile's
/// details rests on a third of what they say (its efficiency for Gaussian noise is 37%), so
/// a tile of 256 blocks was 7% uncertain; the clipped second moment keeps about 90% of it
/// and still drops the edges the median ignored.
fn clipped_sigma(details: &[f32], sigma: f32) -> f32 {
    let limit = CLIP * sigma;
    let (sum, count) = details
        .iter()
        .filter(|&&d| d < limit)
        .fold((0.0f64, 0usize), |(s, n), &d| (s + f64::from(d * d), n + 1));
    if count == 0 {
        return sigma;
    }
    ((sum / count as f64) as f32 / CLIPPED_SECOND_MOMENT).sqrt()
}

/// The standard deviation of a magnitude in sigmas, as a function of its mean in sigmas:
/// `sqrt(t^2 + 2L - m(t)^2)` at the amplitude `t` whose mean `m(t)` it is.
struct Spread {
    /// At means `floor + k STEP`.
    table: Vec<f32>,
    floor: f32,
}

impl Spread {
    const STEP: f32 = 0.05;
    const SPAN: f32 = 20.0;

    fn new(coils: u32) -> Self {
        let correction = BiasCorrection::for_coils(coils);
        let floor = noncentral_chi_mean(0.0, coils) as f32;
        let dof = 2.0 * coils as f32;
        let table = (0..=(Self::SPAN / Self::STEP) as usize)
            .map(|k| {
                let m = floor + k as f32 * Self::STEP;
                let t = correction.amplitude(m, 1.0);
                (t * t + dof - m * m).max(0.0).sqrt()
            })
            .collect();
        Spread { table, floor }
    }

    /// The spread at mean `ratio` (in sigmas); 1 far above the floor, at least 0.5.
    fn at(&self, ratio: f32) -> f32 {
        let k = ((ratio - self.floor) / Self::STEP).round();
        if k < 0.0 {
            return self.table[0].max(0.5);
        }
        self.table.get(k as usize).copied().unwrap_or(1.0).max(0.5)
    }
}

/// One sigma for the slice, found past the air floor of `coils` coils (the tissue mask of
/// [`estimate_sigma`] assumes one coil's floor of 1.25 sigma, below 8 coils' 3.94).
fn global_sigma(image: ArrayView2<f32>, blocks: &Array2<Block>, coils: u32) -> f32 {
    let start = estimate_sigma(image);
    if start <= 0.0 {
        return start;
    }
    // The whole-image start is pulled towards the air's spread (0.69 sigma for 8 coils);
    // the tissue blocks above the floor then give the sigma itself. An image of air alone
    // has none: its second moment is 2 L sigma^2.
    let floor = noncentral_chi_mean(0.0, coils) as f32;
    let mut sigma = start;
    for _ in 0..4 {
        let threshold = (floor + TISSUE_ABOVE_FLOOR) * sigma;
        let mut details: Vec<f32> = blocks
            .iter()
            .filter(|b| b.mean > threshold)
            .map(|b| b.detail)
            .collect();
        if details.len() < 64 {
            let second = blocks.iter().map(|b| b.power).sum::<f32>() / blocks.len() as f32;
            return (second / (2.0 * coils as f32)).sqrt();
        }
        let k = details.len() / 2;
        sigma = *details.select_nth_unstable_by(k, f32::total_cmp).1 / MAD_TO_SIGMA;
    }
    sigma
}

/// Each tile's estimate replaced by the weighted Gaussian average around it; `fallback`'s
/// tile where no tile within reach has any weight.
fn normalised_convolution(
    estimate: &Array2<f32>,
    weight: &Array2<f32>,
    width: f32,
    fallback: &Array2<f32>,
) -> Array2<f32> {
    let (th, tw) = estimate.dim();
    let reach = (3.0 * width).ceil() as isize;
    let kernel = |d: isize| {
        if width == 0.0 {
            f32::from(u8::from(d == 0))
        } else {
            (-(d * d) as f32 / (2.0 * width * width)).exp()
        }
    };
    Array2::from_shape_fn((th, tw), |(i, j)| {
        let (mut num, mut den) = (0.0f32, 0.0f32);
        for di in -reach..=reach {
            for dj in -reach..=reach {
                let (a, b) = (i as isize + di, j as isize + dj);
                if a < 0 || b < 0 || a >= th as isize || b >= tw as isize {
                    continue;
                }
                let w = kernel(di) * kernel(dj) * weight[(a as usize, b as usize)];
                num += w * estimate[(a as usize, b as usize)];
                den += w;
            }
        }
        if den > 0.0 {
            num / den
        } else {
            fallback[(i, j)]
        }
    })
}

/// The tile grid interpolated to `rows` x `cols` pixels, tile centres at their tiles'
/// middles, held constant beyond the outermost centres.
fn bilinear(tiles: &Array2<f32>, rows: usize, cols: usize, tile: usize) -> Array2<f32> {
    let (th, tw) = tiles.dim();
    let position = |p: usize, n: usize| {
        let t = ((p as f32 + 0.5) / tile as f32 - 0.5).clamp(0.0, (n - 1) as f32);
        let lo = (t.floor() as usize).min(n - 1);
        (lo, (lo + 1).min(n - 1), t - lo as f32)
    };
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let (i0, i1, fi) = position(i, th);
        let (j0, j1, fj) = position(j, tw);
        let top = tiles[(i0, j0)] * (1.0 - fj) + tiles[(i0, j1)] * fj;
        let bottom = tiles[(i1, j0)] * (1.0 - fj) + tiles[(i1, j1)] * fj;
        top * (1.0 - fi) + bottom * fi
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// The amplitude `signal(i, j)` with Rician noise of `sigma(i, j)`.
    fn rician(
        size: usize,
        signal: impl Fn(usize, usize) -> f32,
        sigma: impl Fn(usize, usize) -> f32,
        seed: u64,
    ) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((size, size), |(i, j)| {
            let (s, n) = (signal(i, j), sigma(i, j));
            let re: f32 = rng.sample(StandardNormal);
            let im: f32 = rng.sample(StandardNormal);
            ((s + n * re).powi(2) + (n * im).powi(2)).sqrt()
        })
    }

    /// A flat object in the middle (the rest air), Rician noise of `sigma(i, j)`.
    fn object(size: usize, sigma: impl Fn(usize, usize) -> f32, seed: u64) -> Array2<f32> {
        let inside = |i: usize| (size / 8..size * 7 / 8).contains(&i);
        let signal = |i, j| if inside(i) && inside(j) { 0.7 } else { 0.0 };
        rician(size, signal, sigma, seed)
    }

    #[test]
    fn right_half_twice_as_noisy() {
        let size = 256;
        let img = object(size, |_, j| if j < size / 2 { 0.03 } else { 0.06 }, 1);
        let map = estimate_noise_map(img.view(), &NoiseMapSettings::default()).unwrap();
        // Away from the step (a tile and a half either side) and inside the object.
        for (j, want) in [(48, 0.03), (80, 0.03), (176, 0.06), (208, 0.06)] {
            for i in [48, 128, 208] {
                let got = map[(i, j)];
                assert!(
                    (got / want - 1.0).abs() < 0.1,
                    "({i}, {j}): {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn smooth_map_within_ten_percent_in_tissue() {
        let size = 256;
        let truth = |i: usize, j: usize| {
            let (y, x) = (i as f32 / size as f32 - 0.5, j as f32 / size as f32 - 0.5);
            // A g-factor-like bump, varying over a third of the field of view.
            0.03 * (1.0 + 0.8 * (-(x * x + y * y) / 0.12).exp())
        };
        let img = object(size, truth, 2);
        let map = estimate_noise_map(img.view(), &NoiseMapSettings::default()).unwrap();
        let mut errors = Vec::new();
        for i in size / 8..size * 7 / 8 {
            for j in size / 8..size * 7 / 8 {
                errors.push((map[(i, j)] / truth(i, j) - 1.0).abs());
            }
        }
        let mean = errors.iter().sum::<f32>() / errors.len() as f32;
        assert!(mean < 0.08, "mean relative error {mean}");
        // The bump's top (1.8 times the edge's sigma) is found, not averaged away (the
        // smoothing over a tile and its neighbours takes a few percent off it).
        let centre = map[(size / 2, size / 2)];
        assert!(
            (centre / 0.054 - 1.0).abs() < 0.15,
            "centre {centre} vs 0.054"
        );
    }

    #[test]
    fn air_beside_textured_tissue_keeps_the_air_sigma() {
        // Tissue with fine texture of its own (which the details take for noise) in the
        // middle, uniform noise everywhere: the air in the tiles the tissue shares must still
        // get the air's sigma, which the chi correction at the floor needs to a few percent.
        let (size, sigma) = (256, 0.03f32);
        let signal = |i: usize, j: usize| {
            let inside = (72..184).contains(&i) && (72..184).contains(&j);
            let texture = if (i + j).is_multiple_of(2) {
                0.04
            } else {
                -0.04
            };
            if inside { 0.7 + texture } else { 0.0 }
        };
        let img = rician(size, signal, |_, _| sigma, 5);
        let map = estimate_noise_map(img.view(), &NoiseMapSettings::default()).unwrap();
        // The tissue's estimate is inflated by the texture: the test is about the air.
        assert!(map[(128, 128)] > 1.3 * sigma, "{}", map[(128, 128)]);
        // Air pixels sharing a tile with the tissue (tiles of 32 from 64 and from 160).
        for (i, j) in [(66, 128), (128, 66), (189, 128), (128, 190), (66, 66)] {
            let got = map[(i, j)];
            assert!(
                (got / sigma - 1.0).abs() < 0.04,
                "({i}, {j}): {got} vs {sigma}"
            );
        }
    }

    /// The root-sum-of-squares of `coils` channels, the signal `signal(i, j)` in one, each
    /// channel's noise `sigma`.
    fn chi(
        size: usize,
        coils: usize,
        signal: impl Fn(usize, usize) -> f32,
        sigma: f32,
        seed: u64,
    ) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((size, size), |(i, j)| {
            let noise = |rng: &mut ChaCha8Rng| sigma * rng.sample::<f32, _>(StandardNormal);
            let first = (signal(i, j) + noise(&mut rng)).powi(2);
            let rest: f32 = (1..2 * coils).map(|_| noise(&mut rng).powi(2)).sum();
            (first + rest).sqrt()
        })
    }

    #[test]
    fn the_partner_tells_dark_tissue_from_air() {
        // Eight coils. The slice: a knee of tissue a sigma and a bit above black (fat-
        // suppressed) with a bright rim; its partner: the same knee, bright. Read alone, the
        // dark tissue is taken for air and its faint signal for noise, 3% or so too much;
        // read beside the partner, its sigma comes from the real air around it.
        let (size, sigma) = (256, 0.02f32);
        let knee = |i: usize, j: usize| {
            let (y, x) = (i as f32 - 128.0, j as f32 - 128.0);
            (x * x + y * y).sqrt()
        };
        let slice = |i, j| match knee(i, j) {
            r if r < 80.0 => 1.3 * sigma,
            r if r < 90.0 => 20.0 * sigma,
            _ => 0.0,
        };
        let partner = |i, j| if knee(i, j) < 90.0 { 30.0 * sigma } else { 0.0 };
        let (image, other) = (
            chi(size, 8, slice, sigma, 11),
            chi(size, 8, partner, sigma, 12),
        );
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        let alone = estimate_noise_map(image.view(), &settings).unwrap();
        let beside = estimate_noise_map_beside(image.view(), other.view(), &settings).unwrap();
        let inside =
            |map: &Array2<f32>| map.slice(ndarray::s![88..168, 88..168]).mean().unwrap() / sigma;
        let (alone, beside) = (inside(&alone), inside(&beside));
        assert!(alone > 1.02, "read alone: {alone}");
        assert!(
            (beside - 1.0).abs() < 0.015,
            "read beside the partner: {beside}"
        );
    }

    #[test]
    fn clipped_second_moment_is_steadier_than_the_median() {
        // A tile's 256 details of unit noise, a tenth of them edges: both estimates near 1,
        // the clipped second moment's spread over draws well under the median's.
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let (mut median, mut clipped) = (Vec::new(), Vec::new());
        for _ in 0..300 {
            let mut details: Vec<f32> = (0..256)
                .map(|k| {
                    let n: f32 = rng.sample(StandardNormal);
                    if k % 10 == 0 { 6.0 + n.abs() } else { n.abs() }
                })
                .collect();
            let k = details.len() / 2;
            let m = *details.select_nth_unstable_by(k, f32::total_cmp).1 / MAD_TO_SIGMA;
            let mut c = m;
            for _ in 1..REFINEMENTS {
                c = clipped_sigma(&details, c);
            }
            median.push(m);
            clipped.push(c);
        }
        let stats = |v: &[f32]| {
            let mean = v.iter().sum::<f32>() / v.len() as f32;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
            (mean, var.sqrt())
        };
        let ((m_mean, m_sd), (c_mean, c_sd)) = (stats(&median), stats(&clipped));
        assert!((c_mean - 1.0).abs() < 0.03, "clipped mean {c_mean}");
        assert!(m_mean > 1.0, "the edges pull the median up: {m_mean}");
        assert!(c_sd < 0.75 * m_sd, "clipped sd {c_sd} vs median sd {m_sd}");
    }

    #[test]
    fn divided_by_its_factor_a_slice_has_one_noise_level() {
        // The right half twice as noisy as the left: divided by the factor of its estimated
        // map, both halves' noise (the air's second moment, away from the step, which the map
        // smooths over two tiles or so) is the same within a few percent.
        let size = 256;
        let img = object(size, |_, j| if j < size / 2 { 0.03 } else { 0.06 }, 7);
        let map = estimate_noise_map(img.view(), &NoiseMapSettings::default()).unwrap();
        let even = &img / &noise_factor(map.view());
        let air_sigma = |cols: std::ops::Range<usize>| {
            let (mut sum, mut n) = (0.0f32, 0usize);
            for i in (0..size / 8).chain(size * 7 / 8..size) {
                for j in cols.clone() {
                    sum += even[(i, j)].powi(2);
                    n += 1;
                }
            }
            (sum / n as f32 / 2.0).sqrt()
        };
        let (left, right) = (air_sigma(8..48), air_sigma(208..248));
        assert!(
            (right / left - 1.0).abs() < 0.05,
            "left {left}, right {right}"
        );
        assert_eq!(
            noise_factor(Array2::<f32>::zeros((4, 4)).view()),
            Array2::<f32>::ones((4, 4))
        );
    }

    #[test]
    fn air_alone_gives_the_coils_sigma() {
        // Eight coils, no object: the second moment of a central chi.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let sigma = 0.05f32;
        let img = Array2::from_shape_fn((64, 64), |_| {
            (0..16)
                .map(|_| (sigma * rng.sample::<f32, _>(StandardNormal)).powi(2))
                .sum::<f32>()
                .sqrt()
        });
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        let map = estimate_noise_map(img.view(), &settings).unwrap();
        let mean = map.mean().unwrap();
        assert!((mean / sigma - 1.0).abs() < 0.05, "{mean} vs {sigma}");
    }

    #[test]
    fn bad_settings_are_named() {
        let img = Array2::<f32>::zeros((32, 32));
        for (settings, word) in [
            (
                NoiseMapSettings {
                    tile: 5,
                    ..Default::default()
                },
                "tile",
            ),
            (
                NoiseMapSettings {
                    min_blocks: 0,
                    ..Default::default()
                },
                "min_blocks",
            ),
            (
                NoiseMapSettings {
                    smoothing: f32::NAN,
                    ..Default::default()
                },
                "smoothing",
            ),
        ] {
            let err = estimate_noise_map(img.view(), &settings)
                .unwrap_err()
                .to_string();
            assert!(err.contains(word), "{err}");
        }
    }
}
