//! The statistics a noise map rests on: 2 x 2 blocks, each tile's sigma from its blocks
//! (of one slice, or of every slice of a series at that place), and the smoothing and
//! interpolation of the tiles to pixels.

use ndarray::{Array2, ArrayView2, Zip};

use crate::magnitude_bias::{BiasCorrection, noncentral_chi_mean};
use crate::noise::{MAD_TO_SIGMA, estimate_sigma, upper_median};

/// A block counts as tissue this many sigmas above the air's mean.
const TISSUE_ABOVE_FLOOR: f32 = 3.0;
/// Below [`TISSUE_ABOVE_FLOOR`], a block counts as dark tissue from this many sigmas above
/// the air's mean (an amplitude of about 2.8 sigmas, 8 coils). Nearer the floor its level
/// no longer tells its spread: from 0 to 1.5 sigmas of amplitude the spread goes from 0.70
/// to 0.74 sigma and the mean from 3.94 to 4.21, in step, so its `HH` detail reads back
/// whatever sigma its level was read with.
const DARK_ABOVE_FLOOR: f32 = 1.0;
/// A dark block counts only while its own mean is within this many sigmas of its
/// surroundings' (its 2 x 2 mean's own spread is 0.35-0.45 sigma there): where they differ,
/// its surroundings take in an edge, and its spread read at their level is not its own.
const DARK_WITHIN: f32 = 0.6;

/// One slice as a map reads it: its blocks, the mean around each, the blocks its partner
/// contrast shows as tissue (never air), and its first, global sigma.
pub(super) struct SliceBlocks {
    pub blocks: Array2<Block>,
    pub surroundings: Array2<f32>,
    pub partner_tissue: Option<Array2<bool>>,
    pub global: f32,
    /// The slice itself: for its air's own sigma where the first sigma finds nothing
    /// (`slice_map`), and for its strips between fold lines to be read anew (`folds`).
    pub image: Array2<f32>,
}

impl SliceBlocks {
    pub fn new(image: ArrayView2<f32>, partner_tissue: Option<Array2<bool>>, coils: u32) -> Self {
        let blocks = Array2::from_shape_fn((image.nrows() / 2, image.ncols() / 2), |(i, j)| {
            Block::at(image, i, j)
        });
        // Air is told by the mean of the 8 x 8 pixels around a block: one block's mean
        // spreads enough that a threshold on it would keep the quieter air blocks and bias
        // the air's second moment low (by 3% for 8 coils).
        let surroundings = neighbourhood_means(&blocks, AIR_NEIGHBOURHOOD);
        let global = global_sigma(image, &blocks, coils);
        SliceBlocks {
            blocks,
            surroundings,
            partner_tissue,
            global,
            image: image.to_owned(),
        }
    }

    /// Whether `block` is air: its surroundings below `below`, and not tissue in the
    /// partner.
    pub fn is_air(&self, block: (usize, usize), below: f32) -> bool {
        self.surroundings[block] < below && !self.partner_tissue.as_ref().is_some_and(|t| t[block])
    }
}

/// The side, in blocks, of the neighbourhood whose mean tells air.
const AIR_NEIGHBOURHOOD: usize = 4;

/// What one pass over the tiles reads: every slice's blocks at each tile (a series'
/// slices share their coils and g-factor map, so a tile's evidence is all of theirs).
pub(super) struct Scan<'a> {
    pub slices: &'a [&'a SliceBlocks],
    /// Tile rows and columns in blocks.
    pub per_tile: (usize, usize),
    /// Fewest blocks one slice's tile needs to rest on.
    pub min_blocks: usize,
    /// Width of the smoothing across tiles, in tiles.
    pub smoothing: f32,
    pub coils: u32,
    pub spread: Spread,
    /// The series' global sigma: the first threshold between tissue and air, and what the
    /// tiles fall back to where none has any evidence.
    pub global: f32,
}

impl Scan<'_> {
    /// The smoothed tile estimates of the whole slice and of its air alone, with `sigma(s,
    /// block)` the sigma so far at a block of slice `s` and air blocks those whose
    /// surroundings are below `air_below(s, block)`.
    ///
    /// A tissue block is one whose mean and surroundings are both [`TISSUE_ABOVE_FLOOR`]
    /// sigmas above the floor, and its spread is read at its surroundings' level. Read at
    /// its own mean, the spread of a block near the threshold, which counts only when its
    /// noise raised that mean, is too wide for it: at 8 coils and a few sigmas above the
    /// floor (PD at SNR 10) the map ran 3-9% low. Its own mean keeps out the dark side of an
    /// edge whose surroundings take in the bright side.
    ///
    /// With `dark`, dark tissue counts too: blocks under that threshold and over
    /// [`DARK_ABOVE_FLOOR`], not air, whose own mean agrees with their surroundings'
    /// ([`DARK_WITHIN`]), never in place of a tile's air. PD's marrow at SNR 10 is such,
    /// and, without it, the middle of a knee had no evidence of its own: its tiles took
    /// their neighbours' level, 2-3% low on the g-factor's ridge, where the fat-suppressed
    /// partner's marrow, near the floor, needs its sigma most. Their spread is read at
    /// their surroundings over `sigma`, once, not over the tile's own estimate as it is
    /// refined: a few sigmas above the floor the spread follows the level almost in step,
    /// and refined together the two drifted (up to 20% off in tiles of dark tissue alone).
    /// So `sigma` must be a map read without them (`dark` off in the first pass, whose
    /// sigma is the slice's global one, 7-13% off in a fat-suppressed slice). The agreement
    /// is asked of the block's mean, not a threshold on it, so the selection is even about
    /// its noise, which its `HH` detail does not share.
    pub fn tiles(
        &self,
        sigma: impl Fn(usize, (usize, usize)) -> f32,
        air_below: impl Fn(usize, (usize, usize)) -> f32,
        dark: bool,
    ) -> Tiles {
        let (bh, bw) = self.slices[0].blocks.dim();
        let (per_row, per_col) = self.per_tile;
        let (th, tw) = (bh.div_ceil(per_row), bw.div_ceil(per_col));
        let mut estimate = Array2::<f32>::zeros((th, tw));
        let mut weight = Array2::<f32>::zeros((th, tw));
        // The air's own estimate of every tile with enough air, tissue tiles included: the
        // noncentral chi correction at the air's floor needs the air's sigma to a percent
        // or two (docs/scanner-noise.md), which a tissue tile's estimate is not.
        let mut air_estimate = Array2::<f32>::zeros((th, tw));
        let mut air_weight = Array2::<f32>::zeros((th, tw));
        let mut tissue_read = Array2::from_elem((th, tw), false);
        let (mut found, mut corrected) = (TileBlocks::default(), Vec::new());
        // A series' tile needs as many blocks per slice as one slice's would.
        let enough = self.min_blocks * self.slices.len();
        for ti in 0..th {
            for tj in 0..tw {
                let rows = ti * per_row..((ti + 1) * per_row).min(bh);
                let cols = tj * per_col..((tj + 1) * per_col).min(bw);
                found.clear();
                for (s, slice) in self.slices.iter().enumerate() {
                    for block in rows.clone().flat_map(|i| cols.clone().map(move |j| (i, j))) {
                        let level = sigma(s, block);
                        let air = air_below(s, block);
                        found.add(self, slice, block, level, air, dark);
                    }
                }
                // Dark tissue never displaces a tile's air: where bright tissue is too scarce
                // for a tile, its air's second moment, exact, was and stays its estimate (a
                // single-coil slice read as 8 coils had its tiles' dark tissue read twice
                // too high).
                if found.tissue.len() < enough && found.air.len() >= enough {
                    found.dark.clear();
                }
                let read = found.tissue.len() + found.dark.len();
                if read >= enough {
                    estimate[(ti, tj)] = self.tissue_sigma(&found, &mut corrected);
                    weight[(ti, tj)] = read as f32;
                    tissue_read[(ti, tj)] = true;
                }
                if found.air.len() >= enough {
                    let second = found.air.iter().sum::<f32>() / found.air.len() as f32;
                    air_estimate[(ti, tj)] = (second / (2.0 * self.coils as f32)).sqrt();
                    air_weight[(ti, tj)] = found.air.len() as f32;
                    if read < enough {
                        estimate[(ti, tj)] = air_estimate[(ti, tj)];
                        weight[(ti, tj)] = air_weight[(ti, tj)];
                    }
                }
            }
        }
        // The tissue's estimates put on the air's footing, where the two can be compared.
        let bias = tissue_over_air(&estimate, &weight, &tissue_read, &air_estimate, &air_weight);
        Zip::from(&mut estimate)
            .and(&tissue_read)
            .for_each(|e, &read| {
                if read {
                    *e /= bias;
                }
            });
        // A tile out of the smoothing's reach of any evidence (dim tissue its partner will
        // not let be air, across a knee that fills the field of view) takes the level its
        // slice's tiles read, not the first, global sigma: that one reads blocks a few
        // sigmas above the floor without their spread, and ran 13% low in a fat-suppressed
        // slice of 8 coils, which put its own map 20% off its series'.
        let total = weight.sum();
        let level = if total > 0.0 {
            (&estimate * &weight).sum() / total
        } else {
            self.global
        };
        let fallback = Array2::from_elem((th, tw), level);
        let smooth = normalised_convolution(&estimate, &weight, self.smoothing, &fallback);
        let air = normalised_convolution(&air_estimate, &air_weight, self.smoothing, &smooth);
        Tiles {
            whole: smooth,
            air,
            blocks: weight.sum(),
            air_blocks: air_weight.sum(),
        }
    }

    /// A tile's sigma from its tissue: the median of the details over their spreads first,
    /// then their clipped second moment, each round reading the bright blocks' spreads at
    /// the sigma so far (the dark ones' are read already).
    fn tissue_sigma(&self, found: &TileBlocks, corrected: &mut Vec<f32>) -> f32 {
        let mut sigma = self.global;
        for round in 0..REFINEMENTS {
            corrected.clear();
            corrected.extend(
                found
                    .tissue
                    .iter()
                    .map(|&(m, d)| d / self.spread.at(m / sigma)),
            );
            corrected.extend_from_slice(&found.dark);
            sigma = if round == 0 {
                upper_median(corrected) / MAD_TO_SIGMA
            } else {
                clipped_sigma(corrected, sigma)
            };
        }
        sigma
    }
}

/// What one tile's blocks say, sorted by what they are.
#[derive(Default)]
struct TileBlocks {
    /// Bright tissue: each block's surroundings and detail.
    tissue: Vec<(f32, f32)>,
    /// Dark tissue: each block's detail over its spread.
    dark: Vec<f32>,
    /// Air: each block's second moment.
    air: Vec<f32>,
}

impl TileBlocks {
    fn clear(&mut self) {
        self.tissue.clear();
        self.dark.clear();
        self.air.clear();
    }

    /// Sorts `block` of `slice`, with `level` the sigma so far there and `air_below` the
    /// surroundings' level under which it is air (`Scan::tiles`).
    fn add(
        &mut self,
        scan: &Scan,
        slice: &SliceBlocks,
        block: (usize, usize),
        level: f32,
        air_below: f32,
        dark: bool,
    ) {
        let floor = scan.spread.floor;
        let (b, around) = (slice.blocks[block], slice.surroundings[block]);
        let above = (floor + TISSUE_ABOVE_FLOOR) * level;
        if around > above && b.mean > above {
            self.tissue.push((around, b.detail));
        } else if slice.is_air(block, air_below) {
            self.air.push(b.power);
        } else if dark
            && around <= above
            && around > (floor + DARK_ABOVE_FLOOR) * level
            && (b.mean - around).abs() < DARK_WITHIN * level
        {
            self.dark.push(b.detail / scan.spread.at(around / level));
        }
    }
}

/// The prior spread of the tissue estimates' bias against the air's (relative): texture
/// and the selection of blocks near the tissue threshold put PD's marrow 2-3% high.
const TISSUE_BIAS_PRIOR: f32 = 0.02;
/// Tissue estimates that read further than this from the air's (relative, before any
/// shrinking) say the air holds more than noise (a ghost, a fold), not that the tissue
/// reads high: no correction.
const TISSUE_BIAS_LIMIT: f32 = 0.10;
/// Fewest tiles read both ways for the comparison.
const TILES_READ_BOTH_WAYS: usize = 3;

/// How much higher the tissue's tile estimates read than the air's, as a factor (1 where it
/// cannot tell). The tissue's tiles take its texture and, near the tissue threshold, a
/// selection of blocks for noise too: a few percent high in bright, textured tissue (PD's
/// marrow), which fat-suppressed PDFS, too dark there for tiles of its own, takes through
/// the pair rule, and at PDFS SNR 10 a map 1% high costs 1.9 dB. The air's second moment
/// has neither. Where a tile reads both, the two see one g-factor, so their ratio is the
/// tissue estimates' bias in this slice or series: the inverse-variance mean of the log
/// ratios, shrunk towards none by its own error (one slice's ten or so such tiles tell it
/// within 3-4%, mostly noise; a series of 8 pooled within 1.3%).
fn tissue_over_air(
    estimate: &Array2<f32>,
    weight: &Array2<f32>,
    tissue_read: &Array2<bool>,
    air_estimate: &Array2<f32>,
    air_weight: &Array2<f32>,
) -> f32 {
    let (mut sum, mut precision, mut tiles) = (0.0f32, 0.0f32, 0usize);
    for (t, &read) in tissue_read.indexed_iter() {
        if read && air_weight[t] > 0.0 && estimate[t] > 0.0 && air_estimate[t] > 0.0 {
            let variance = blocks_error(weight[t]).powi(2) + blocks_error(air_weight[t]).powi(2);
            sum += (estimate[t] / air_estimate[t]).ln() / variance;
            precision += 1.0 / variance;
            tiles += 1;
        }
    }
    if tiles < TILES_READ_BOTH_WAYS {
        return 1.0;
    }
    let read = sum / precision;
    if read.abs() > TISSUE_BIAS_LIMIT.ln_1p() {
        return 1.0;
    }
    let prior = TISSUE_BIAS_PRIOR * TISSUE_BIAS_PRIOR;
    (read * prior / (prior + 1.0 / precision)).exp()
}

/// A scan's smoothed tile estimates.
pub(super) struct Tiles {
    /// Of the slice: its tissue, or its air where a tile has too little tissue.
    pub whole: Array2<f32>,
    /// Of its air alone (the whole's where a tile has too little air).
    pub air: Array2<f32>,
    /// How many blocks the tiles' own estimates rest on, together: none where every tile
    /// fell back to the global sigma.
    pub blocks: f32,
    /// How many blocks the tiles' air estimates rest on: none where no tile found enough
    /// air under its threshold.
    pub air_blocks: f32,
}

/// One 2 x 2 block of the image: what the estimates read of it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Block {
    pub mean: f32,
    /// `|HH|`, the finest diagonal Haar detail: the noise's sd in tissue, whatever the
    /// block's level or gradient.
    pub detail: f32,
    /// The mean of the squares: the air's second moment.
    pub power: f32,
}

impl Block {
    pub fn at(image: ArrayView2<f32>, i: usize, j: usize) -> Self {
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
pub(super) const REFINEMENTS: usize = 4;

/// Details beyond this many sigmas are taken for edges, not noise.
const CLIP: f32 = 2.5;
/// `E[X^2 | |X| < CLIP]` for a standard normal X: `1 - 2 c phi(c) / (2 Phi(c) - 1)`.
const CLIPPED_SECOND_MOMENT: f32 = 0.911_3;

/// The noise sigma of `details` (|HH| in noise units, each already divided by its spread)
/// from their second moment within `CLIP` times the current `sigma`. The median of a tile's
/// details rests on a third of what they say (its efficiency for Gaussian noise is 37%), so
/// a tile of 256 blocks was 7% uncertain; the clipped second moment keeps about 90% of it
/// and still drops the edges the median ignored.
pub(super) fn clipped_sigma(details: &[f32], sigma: f32) -> f32 {
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
pub(super) struct Spread {
    /// At means `floor + k STEP`.
    table: Vec<f32>,
    floor: f32,
}

impl Spread {
    const STEP: f32 = 0.05;
    const SPAN: f32 = 20.0;

    pub fn new(coils: u32) -> Self {
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
    pub fn at(&self, ratio: f32) -> f32 {
        let k = ((ratio - self.floor) / Self::STEP).round();
        if k < 0.0 {
            return self.table[0].max(0.5);
        }
        self.table.get(k as usize).copied().unwrap_or(1.0).max(0.5)
    }
}

/// One sigma for the slice, found past the air floor of `coils` coils (the tissue mask of
/// [`estimate_sigma`] assumes one coil's floor of 1.25 sigma, below 8 coils' 3.94).
pub(super) fn global_sigma(image: ArrayView2<f32>, blocks: &Array2<Block>, coils: u32) -> f32 {
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
        // Too little tissue above the threshold: the air's sigma where the slice has air.
        // The second moment of every block is that of an image of air alone; with dim
        // tissue in it (3-4 sigma above black, fat-suppressed), it read 20-35% high, the
        // tissue then fell under the air threshold and was read as air, that high.
        if details.len() < 64 {
            return crate::air::air_sigma(image, coils).map_or_else(
                || {
                    let second = blocks.iter().map(|b| b.power).sum::<f32>() / blocks.len() as f32;
                    (second / (2.0 * coils as f32)).sqrt()
                },
                |air| air.sigma,
            );
        }
        sigma = upper_median(&mut details) / MAD_TO_SIGMA;
    }
    sigma
}

/// An estimate from `n` blocks (a tile's, or a slice's tissue) is off by about this over
/// `sqrt(n)`, relatively (the clipped second moment of `n` Gaussian details:
/// `1 / sqrt(2 n)`, and a little more).
const BLOCK_RELATIVE_ERROR: f32 = 0.8;

/// The relative error of an estimate that rests on `blocks` blocks: [`BLOCK_RELATIVE_ERROR`]
/// over their square root (a tile's, a slice's, or none read as one).
pub(super) fn blocks_error(blocks: f32) -> f32 {
    BLOCK_RELATIVE_ERROR / blocks.max(1.0).sqrt()
}
/// Two tiles are averaged together in full while their estimates differ by up to this
/// many of their combined errors; past it, less and less. A g-factor map is smooth but for
/// folds where it jumps: a jump of twice the level is 10 or more errors, and is kept.
const SAME_LEVEL_WITHIN: f32 = 3.0;

/// Each tile's estimate replaced by the weighted Gaussian average around it, each tile
/// weighted down the further its estimate is from this one's beyond their errors, so that
/// the map keeps a jump; `fallback`'s tile where no tile within reach has any weight.
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
    let error = |t: (usize, usize)| blocks_error(weight[t]);
    Array2::from_shape_fn((th, tw), |(i, j)| {
        let (mut num, mut den) = (0.0f32, 0.0f32);
        let own = (weight[(i, j)] > 0.0 && estimate[(i, j)] > 0.0).then(|| estimate[(i, j)]);
        for di in -reach..=reach {
            for dj in -reach..=reach {
                let (a, b) = (i as isize + di, j as isize + dj);
                if a < 0 || b < 0 || a >= th as isize || b >= tw as isize {
                    continue;
                }
                let at = (a as usize, b as usize);
                let range = match own {
                    Some(e) if estimate[at] > 0.0 => {
                        let apart = (estimate[at] / e).ln().abs();
                        let combined = error((i, j)).hypot(error(at));
                        let beyond = (apart - SAME_LEVEL_WITHIN * combined).max(0.0);
                        (-0.5 * (beyond / combined).powi(2)).exp()
                    }
                    _ => 1.0,
                };
                let w = kernel(di) * kernel(dj) * weight[at] * range;
                num += w * estimate[at];
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
/// middles, held constant beyond the outermost centres; `tile` is a tile's rows and
/// columns.
pub(super) fn bilinear(
    tiles: &Array2<f32>,
    rows: usize,
    cols: usize,
    tile: (usize, usize),
) -> Array2<f32> {
    let (th, tw) = tiles.dim();
    let position = |p: usize, n: usize, tile: usize| {
        let t = ((p as f32 + 0.5) / tile as f32 - 0.5).clamp(0.0, (n - 1) as f32);
        let lo = (t.floor() as usize).min(n - 1);
        (lo, (lo + 1).min(n - 1), t - lo as f32)
    };
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let (i0, i1, fi) = position(i, th, tile.0);
        let (j0, j1, fj) = position(j, tw, tile.1);
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
            let m = upper_median(&mut details) / MAD_TO_SIGMA;
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
}
