//! One slice's (or one series') noise map from its blocks: the passes over the tiles,
//! what is air, and which of a partner's blocks are tissue.

use ndarray::{Array2, ArrayView2, Axis, Slice};

use super::folds;
use super::settings::NoiseMapSettings;
use super::tiles::{Scan, SliceBlocks, Spread, Tiles, bilinear};
use crate::Result;
use crate::air::AirSigma;
use crate::magnitude_bias::noncentral_chi_mean;
use crate::noise::upper_median;

/// A block counts as air below this many sigmas above the air's mean.
const AIR_ABOVE_FLOOR: f32 = 0.5;
/// The same once the air's own sigma is known near the block: closer, so that dark tissue
/// (fat-suppressed, a sigma or two above the floor) is not taken for air.
const AIR_ABOVE_LOCAL_FLOOR: f32 = 0.25;

/// Most passes over the tiles with the air told by the map before.
const AIR_PASSES: usize = 4;
/// The air's level has settled once a pass moves it by less than this (relative).
const AIR_SETTLED: f32 = 0.005;

/// Fewest 2 x 2 blocks a read rests on (its slices' together) for it to be tested for jumps
/// at the fold lines: one slice of 256 x 256. Dim, fat-suppressed slices of 128 and 192
/// pixels read alone at R = 2, where the map meets itself at the line, had one strip read
/// 17-46% off its neighbour (5 of 64, beside their partners or not): a jump as large as a
/// true fold's, which the whole map did not show (within 1%, or of the other sign).
const FOLD_EVIDENCE_BLOCKS: usize = 128 * 128;

/// A partner's block counts as tissue this many of its sigmas above its air's floor.
const PARTNER_TISSUE_ABOVE_FLOOR: f32 = 1.0;

/// The blocks of `image` that `partner` shows as tissue by its own map; none for a partner
/// of another size.
pub(super) fn partner_tissue(
    image: ArrayView2<f32>,
    partner: ArrayView2<f32>,
    settings: &NoiseMapSettings,
) -> Result<Option<Array2<bool>>> {
    if partner.dim() != image.dim() {
        return Ok(None);
    }
    // The partner's blocks and their surroundings, read once for its map and its tissue.
    let own = SliceBlocks::new(partner, None, settings.coils);
    let partner_map = estimate(&[&own], partner.dim(), settings)?.remove(0).map;
    let floor = noncentral_chi_mean(0.0, settings.coils) as f32;
    Ok(Some(Array2::from_shape_fn(own.blocks.dim(), |(i, j)| {
        own.surroundings[(i, j)]
            > (floor + PARTNER_TISSUE_ABOVE_FLOOR) * partner_map[(2 * i, 2 * j)]
    })))
}

/// One slice's map, which of its pixels it read as air, and how many blocks its tiles
/// rest on (the series' together, for a pooled map).
pub(crate) struct SliceMap {
    pub(crate) map: Array2<f32>,
    pub(super) air: Array2<bool>,
    pub(super) blocks: f32,
}

/// The maps of `slices` (one, or a series), each `dim` pixels: read between the fold lines
/// where the map jumps at them (`folds`) and the read rests on enough blocks to tell
/// ([`FOLD_EVIDENCE_BLOCKS`]), whole otherwise.
pub(super) fn estimate(
    slices: &[&SliceBlocks],
    dim: (usize, usize),
    settings: &NoiseMapSettings,
) -> Result<Vec<SliceMap>> {
    settings.validate()?;
    let blocks = slices.len() * (dim.0 / 2) * (dim.1 / 2);
    let Some((axis, lines)) =
        folds::lines(settings, dim).filter(|_| blocks >= FOLD_EVIDENCE_BLOCKS)
    else {
        return estimate_whole(slices, dim, settings);
    };
    let split = between(slices, dim, settings, axis, &lines)?;
    let jumps: Vec<usize> = lines
        .iter()
        .copied()
        .filter(|&line| folds::jumps_at(&split[0].map, axis, line))
        .collect();
    match jumps.len() {
        0 => estimate_whole(slices, dim, settings),
        n if n == lines.len() => Ok(split),
        _ => between(slices, dim, settings, axis, &jumps),
    }
}

/// The maps read strip by strip between `lines` along `axis`, put together.
fn between(
    slices: &[&SliceBlocks],
    dim: (usize, usize),
    settings: &NoiseMapSettings,
    axis: Axis,
    lines: &[usize],
) -> Result<Vec<SliceMap>> {
    let mut maps = SliceMap::empty(slices.len(), dim);
    for pixels in folds::strips(lines, folds::along(dim, axis)) {
        let parts: Vec<SliceBlocks> = slices
            .iter()
            .map(|s| folds::strip_of(s, axis, &pixels, settings.coils))
            .collect();
        let refs: Vec<&SliceBlocks> = parts.iter().collect();
        let part_dim = match axis {
            Axis(0) => (pixels.len(), dim.1),
            _ => (dim.0, pixels.len()),
        };
        let range = Slice::from(pixels.clone());
        for (whole, part) in maps
            .iter_mut()
            .zip(estimate_whole(&refs, part_dim, settings)?)
        {
            whole.map.slice_axis_mut(axis, range).assign(&part.map);
            whole.air.slice_axis_mut(axis, range).assign(&part.air);
            whole.blocks += part.blocks;
        }
    }
    Ok(maps)
}

/// The maps of `slices` read over the whole of each.
fn estimate_whole(
    slices: &[&SliceBlocks],
    dim: (usize, usize),
    settings: &NoiseMapSettings,
) -> Result<Vec<SliceMap>> {
    let (rows, cols) = dim;
    let (bh, bw) = (rows / 2, cols / 2);
    if bh == 0 || bw == 0 {
        return Ok(SliceMap::empty(slices.len(), dim));
    }
    // A first, global sigma to tell tissue and air apart.
    let globals: Vec<f32> = slices.iter().map(|s| s.global).collect();
    let mut positive: Vec<f32> = globals.iter().copied().filter(|g| *g > 0.0).collect();
    if positive.is_empty() {
        return Ok(SliceMap::empty(slices.len(), dim));
    }
    let global = upper_median(&mut positive);
    let floor = noncentral_chi_mean(0.0, settings.coils) as f32;
    let (tile_rows, tile_cols) = settings.tile_shape();
    let per_tile = (tile_rows / 2, tile_cols / 2);
    let mut scan = Scan {
        slices,
        per_tile,
        min_blocks: settings.min_blocks,
        smoothing: settings.smoothing,
        coils: settings.coils,
        spread: Spread::new(settings.coils),
        global,
    };
    // Tissue and air are told apart by the slice's sigma first, then by that first map:
    // air twice as noisy as the slice (a g-factor of 2 at acceleration 3) sits above a
    // threshold set by the slice's sigma and would be left out, or only its quieter blocks
    // kept, which biases its sigma low.
    let first = first_pass(&mut scan, &globals, floor);
    let at_blocks = |tiles: &Array2<f32>| bilinear(tiles, bh, bw, per_tile);
    // Then by the map before, until the air's level holds. The threshold sits a quarter
    // sigma over a floor of about four sigmas (8 coils), so a map a few percent low keeps
    // only the quieter air blocks, which read low in turn: at 0.93 of the true sigma it
    // keeps 29% of the air and reads it 2.6% low, and a fat-suppressed slice whose first
    // map read 7% low came out 7% low again after one pass. Read again, the noisier blocks
    // return and the air climbs to its level, where it holds. The tissue stays told by the
    // first map.
    let tissue_ref = at_blocks(&first.whole);
    let mut air_ref = at_blocks(&first.air);
    let mut level = air_level(&first);
    // Dark tissue is read over the first map only where that map rests on evidence, not on
    // the global sigma alone.
    let dark = first.blocks > 0.0;
    let mut tiles = first;
    for _ in 0..AIR_PASSES {
        tiles = scan.tiles(
            |_, b| tissue_ref[b],
            |_, b| (floor + AIR_ABOVE_LOCAL_FLOOR) * air_ref[b],
            dark,
        );
        let next = air_level(&tiles);
        let settled = (next / level - 1.0).abs() < AIR_SETTLED;
        level = next;
        if settled {
            break;
        }
        air_ref = at_blocks(&tiles.air);
    }
    let air_below = |b: (usize, usize)| (floor + AIR_ABOVE_LOCAL_FLOOR) * air_ref[b];
    let map = bilinear(&tiles.whole, rows, cols, (tile_rows, tile_cols));
    let air_map = bilinear(&tiles.air, rows, cols, (tile_rows, tile_cols));
    Ok(slices
        .iter()
        .map(|slice| SliceMap::in_series(slice, &map, &air_map, air_below, tiles.blocks))
        .collect())
}

/// The first pass over the tiles, tissue and air told apart by each slice's first sigma.
fn first_pass(scan: &mut Scan, globals: &[f32], floor: f32) -> Tiles {
    let first = scan.tiles(
        |s, _| globals[s],
        |s, _| (floor + AIR_ABOVE_FLOOR) * globals[s],
        false, // dark tissue is read over this first map (`Scan::tiles`)
    );
    // A first sigma so low that its thresholds find neither air nor tissue anywhere: the
    // tissue's details read without their spread, in a slice mostly of dim tissue a few
    // sigmas above the floor (spread 0.8-0.9 sigma), settle 15-20% low, the air's floor
    // then lies above the air threshold and the tissue under the tissue one, and every
    // tile fell back to that sigma (a fat-suppressed slice of 8 coils mapped alone came
    // out 20% low; read so, 5% high). Read again from the air's own sigma, where the slice
    // has air. Only then: started from the air's sigma every time, the held-out phantoms'
    // maps at SNR 10 came 2-5% high, since which blocks a few sigmas above the floor the
    // tiles read rests on the balance the tissue's first sigma strikes
    // (docs/scanner-noise.md, "What is not done yet").
    if first.blocks > 0.0 && first.air_blocks > 0.0 {
        return first;
    }
    let read: Vec<Option<AirSigma>> = scan
        .slices
        .iter()
        .map(|s| air_sigma_of(s, scan.coils))
        .collect();
    if read.iter().all(Option::is_none) {
        return first;
    }
    // Likewise a first pass that found no air and rests on less tissue than the air's own
    // sigma rests on air: a first sigma 8% under the air's puts the air threshold under the
    // floor of 16 coils, and a fat-suppressed slice of 16 coils at SNR 10 with a few dozen
    // blocks of bright tissue read them 21% low; the passes after it never found its air,
    // and mapped alone it came out 11% low, its air too. Where the tissue is ample (a strip
    // between fold lines whose air lies where the g-factor is highest, 28% over its
    // tissue's), its reading stands, and the air is found by the passes after it.
    let air_pixels: usize = read.iter().flatten().map(|air| air.pixels).sum();
    let tissue_pixels = 4.0 * first.blocks; // 2 x 2 blocks
    if first.blocks > 0.0 && air_pixels as f32 <= tissue_pixels {
        return first;
    }
    let airs: Vec<f32> = read
        .iter()
        .zip(scan.slices)
        .map(|(air, s)| air.map_or(s.global, |air| air.sigma))
        .collect();
    let mut positive: Vec<f32> = airs.iter().copied().filter(|g| *g > 0.0).collect();
    if positive.is_empty() {
        return first;
    }
    scan.global = upper_median(&mut positive);
    scan.tiles(
        |s, _| airs[s],
        |s, _| (floor + AIR_ABOVE_FLOOR) * airs[s],
        false,
    )
}

/// The sigma of a slice's air (`air::air_sigma`), never read where its partner shows
/// tissue: dim fat-suppressed tissue beside a bright partner is not air, though it may be
/// the slice's darkest, most even part (a knee filling the field of view).
fn air_sigma_of(slice: &SliceBlocks, coils: u32) -> Option<AirSigma> {
    let Some(tissue) = &slice.partner_tissue else {
        return crate::air::air_sigma(slice.image.view(), coils);
    };
    let (bh, bw) = tissue.dim();
    if bh == 0 || bw == 0 {
        return None;
    }
    let masked = Array2::from_shape_fn(slice.image.dim(), |(i, j)| {
        if tissue[((i / 2).min(bh - 1), (j / 2).min(bw - 1))] {
            f32::NAN
        } else {
            slice.image[(i, j)]
        }
    });
    crate::air::air_sigma(masked.view(), coils)
}

impl SliceMap {
    /// `n` maps of `dim` pixels, all zero, read on no block: what a slice too small for a
    /// block, or without a sigma, maps to, and what strips are put together in.
    fn empty(n: usize, dim: (usize, usize)) -> Vec<SliceMap> {
        (0..n)
            .map(|_| SliceMap {
                map: Array2::zeros(dim),
                air: Array2::from_elem(dim, false),
                blocks: 0.0,
            })
            .collect()
    }

    /// One slice's map from its series' maps of tissue and air: each pixel of a block that is
    /// air in this slice takes the air's map, the rest the tissue's.
    fn in_series(
        slice: &SliceBlocks,
        map: &Array2<f32>,
        air_map: &Array2<f32>,
        air_below: impl Fn((usize, usize)) -> f32,
        blocks: f32,
    ) -> SliceMap {
        let (rows, cols) = map.dim();
        let (bh, bw) = slice.blocks.dim();
        let air = Array2::from_shape_fn((rows, cols), |(i, j)| {
            let block = ((i / 2).min(bh - 1), (j / 2).min(bw - 1));
            slice.is_air(block, air_below(block))
        });
        let map = Array2::from_shape_fn(
            (rows, cols),
            |at| {
                if air[at] { air_map[at] } else { map[at] }
            },
        );
        SliceMap { map, air, blocks }
    }
}

/// The mean of the air's tile estimates: what the next pass's threshold moves.
fn air_level(tiles: &Tiles) -> f32 {
    tiles.air.mean().unwrap_or(0.0).max(f32::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    #[test]
    fn a_first_sigma_that_finds_nothing_is_read_again_from_the_air() {
        // Eight coils; a third of the slice air, the rest dim tissue 3.5 sigma above black.
        // Its first sigma 20% low, as the tissue's details read it in a fat-suppressed slice
        // of the phantoms: the air's floor lies over the air threshold, the tissue under the
        // tissue one, and no tile had anything to read (the map was that sigma everywhere).
        let sigma = 0.05f32;
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let img = Array2::from_shape_fn((128, 128), |(_, j)| {
            let signal = if j < 40 { 0.0 } else { 3.5 * sigma };
            let mut noise = || sigma * rng.sample::<f32, _>(StandardNormal);
            let rest: f32 = (1..16).map(|_| noise().powi(2)).sum();
            ((signal + noise()).powi(2) + rest).sqrt()
        });
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        let mut slice = SliceBlocks::new(img.view(), None, 8);
        slice.global = 0.8 * sigma;
        let map = estimate(&[&slice], img.dim(), &settings).unwrap().remove(0);
        assert!(map.blocks > 0.0, "no tile read anything");
        for (part, cols) in [("air", 0..34), ("tissue", 46..128)] {
            let mean = map.map.slice(ndarray::s![.., cols]).mean().unwrap();
            assert!(
                (mean / sigma - 1.0).abs() < 0.05,
                "{part}: {mean} vs {sigma}"
            );
        }
    }

    #[test]
    fn a_first_pass_blind_to_the_air_of_many_coils_is_read_again_from_it() {
        // Sixteen coils; two fifths of the slice air, the rest dim tissue 3 sigma above black
        // and a little bright tissue (36 blocks). Its first sigma 21% low, as the
        // tissue's details read it in a fat-suppressed slice of 16 coils: the first pass
        // read the bright tissue but no air (its threshold under the floor of 5.6 sigma),
        // nor did any pass after it, and the map came out 12% low, its air too.
        let (sigma, coils) = (0.05f32, 16u32);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let img = Array2::from_shape_fn((128, 128), |(i, j)| {
            let signal = if (64..76).contains(&i) && (96..108).contains(&j) {
                12.0 * sigma
            } else if j < 52 {
                0.0
            } else {
                3.0 * sigma
            };
            let mut noise = || sigma * rng.sample::<f32, _>(StandardNormal);
            let rest: f32 = (1..2 * coils).map(|_| noise().powi(2)).sum();
            ((signal + noise()).powi(2) + rest).sqrt()
        });
        let settings = NoiseMapSettings {
            coils,
            ..Default::default()
        };
        let mut slice = SliceBlocks::new(img.view(), None, coils);
        slice.global = 0.79 * sigma;
        let map = estimate(&[&slice], img.dim(), &settings).unwrap().remove(0);
        for (part, cols) in [("air", 0..46), ("tissue", 58..90)] {
            let mean = map.map.slice(ndarray::s![.., cols]).mean().unwrap();
            assert!(
                (mean / sigma - 1.0).abs() < 0.03,
                "{part}: {mean} vs {sigma}"
            );
        }
    }
}
