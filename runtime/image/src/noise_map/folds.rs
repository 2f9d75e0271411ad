//! Where parallel imaging's g-factor map may jump: the fold lines, and the strips of a
//! slice between them.
//!
//! SENSE unfolds each pixel together with the copies folded onto it, `1 / R` of the field
//! of view apart along the phase encoding. Where one of those copies crosses the field of
//! view's edge, the set of pixels unfolded together changes, and the g-factor can jump
//! there: at `k N / R` across the image (k = 1 to R - 1). At R = 3 the phantoms' middle
//! third sits 40% over its flanks; a map smoothed across the lines blurred the jump over a
//! tile to either side, and the middle band read 13-15% low. Read strip by strip, each
//! strip's map rests on its own evidence. Where the map does not jump (the phantoms' R = 2
//! map meets itself at the middle line), strips only cost evidence, so a line splits the
//! map only where the strips read a jump there.

use std::ops::Range;

use ndarray::{Array2, Axis, Slice};

use super::settings::{NoiseMapSettings, PhaseEncoding};
use super::tiles::SliceBlocks;

/// The strips' maps on either side of a line must differ by more than this (relative) for
/// the line to split the map. The strips' edges read the phantoms' 40% jump at R = 3 as
/// 26-55%, and a map that meets itself at the line (R = 2) within 13% (a slice read alone);
/// split there, its error in tissue went from 1.7% to 1.9-2.4% rms, the evidence a strip
/// loses costing more than the blur it saves.
const FOLD_JUMP: f32 = 0.20;

/// The axis the phase encoding runs along (the fold lines lie across it), and the fold
/// lines of a `dim` slice, in pixels along it (each on an even pixel, so that the 2 x 2
/// blocks fall on one side): none without a stated acceleration and phase encoding, or
/// where a strip would be narrower than two tiles across.
pub(super) fn lines(
    settings: &NoiseMapSettings,
    dim: (usize, usize),
) -> Option<(Axis, Vec<usize>)> {
    let axis = match settings.phase_encoding {
        PhaseEncoding::Unknown => return None,
        PhaseEncoding::LeftRight => Axis(1),
        PhaseEncoding::UpDown => Axis(0),
    };
    let r = settings.acceleration as usize;
    let extent = along(dim, axis);
    if r < 2 || extent / r < 2 * along(settings.tile_shape(), axis) {
        return None;
    }
    Some((
        axis,
        (1..r).map(|k| ((k * extent + r / 2) / r) & !1).collect(),
    ))
}

/// The size of a `(rows, cols)` shape along `axis`.
pub(super) fn along((rows, cols): (usize, usize), axis: Axis) -> usize {
    if axis == Axis(0) { rows } else { cols }
}

/// The strips between `lines` of a slice `extent` pixels along the phase encoding.
pub(super) fn strips(lines: &[usize], extent: usize) -> Vec<Range<usize>> {
    let mut edges = Vec::with_capacity(lines.len() + 2);
    edges.push(0);
    edges.extend_from_slice(lines);
    edges.push(extent);
    edges.windows(2).map(|w| w[0]..w[1]).collect()
}

/// The part of `slice` within `pixels` along `axis` (`pixels.start` even), read as a slice
/// of its own (its first sigmas too: the whole slice's, read at the other strips' level, put
/// the air of a strip 40% noisier over the first air threshold) but for the tissue its
/// partner shows there.
pub(super) fn strip_of(
    slice: &SliceBlocks,
    axis: Axis,
    pixels: &Range<usize>,
    coils: u32,
) -> SliceBlocks {
    let blocks = pixels.start / 2..(pixels.end / 2).min(slice.blocks.len_of(axis));
    let tissue = slice
        .partner_tissue
        .as_ref()
        .map(|t| t.slice_axis(axis, Slice::from(blocks)).to_owned());
    let image = slice.image.slice_axis(axis, Slice::from(pixels.clone()));
    SliceBlocks::new(image, tissue, coils)
}

/// Whether `map` jumps at `line` along `axis`: the medians of the two pixel lines either
/// side of it differ by more than [`FOLD_JUMP`].
pub(super) fn jumps_at(map: &Array2<f32>, axis: Axis, line: usize) -> bool {
    let median = |at: usize| {
        let mut v: Vec<f32> = map.index_axis(axis, at).to_vec();
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    let (before, after) = (median(line - 1), median(line));
    before > 0.0 && after > 0.0 && (after / before).ln().abs() > FOLD_JUMP.ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise_map::estimate_noise_map;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// Eight coils' root-sum-of-squares of a square object (the rest air) under the noise
    /// map `sigma`.
    fn scanned(size: usize, sigma: impl Fn(usize) -> f32, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let inside = |x: usize| (size / 8..size * 7 / 8).contains(&x);
        Array2::from_shape_fn((size, size), |(i, j)| {
            let s = sigma(j);
            let mut noise = || s * rng.sample::<f32, _>(StandardNormal);
            let signal = if inside(i) && inside(j) { 0.5 } else { 0.0 };
            let first = (signal + noise()).powi(2);
            let rest: f32 = (1..16).map(|_| noise().powi(2)).sum();
            (first + rest).sqrt()
        })
    }

    /// The mean and largest relative error of `map` in the object's rows over `cols`.
    fn error(map: &Array2<f32>, sigma: impl Fn(usize) -> f32, cols: Range<usize>) -> (f32, f32) {
        let size = map.nrows();
        let rows = size / 8 + 8..size * 7 / 8 - 8;
        let e: Vec<f32> = rows
            .flat_map(|i| cols.clone().map(move |j| (i, j)))
            .map(|(i, j)| map[(i, j)] / sigma(j) - 1.0)
            .collect();
        let worst = e.iter().fold(0f32, |a, v| a.max(v.abs()));
        (e.iter().sum::<f32>() / e.len() as f32, worst)
    }

    /// Eight coils, phase encoding left-right, at `acceleration`.
    fn coil_array(acceleration: u32) -> NoiseMapSettings {
        NoiseMapSettings {
            coils: 8,
            phase_encoding: PhaseEncoding::LeftRight,
            acceleration,
            ..Default::default()
        }
    }

    #[test]
    fn a_map_that_jumps_at_the_folds_is_read_between_them() {
        // R = 3 across the columns: the middle third 40% noisier than its flanks.
        let size = 256;
        let sigma = |j: usize| if (84..170).contains(&j) { 0.028 } else { 0.02 };
        let img = scanned(size, sigma, 3);
        let whole = estimate_noise_map(img.view(), &coil_array(1)).unwrap();
        let folded = estimate_noise_map(img.view(), &coil_array(3)).unwrap();
        for (band, cols) in [("left", 32..84), ("middle", 84..170), ("right", 170..224)] {
            let (mean, worst) = error(&folded, sigma, cols.clone());
            assert!(mean.abs() < 0.03 && worst < 0.08, "{band}: {mean} {worst}");
            // Smoothed across the lines, the jump was blurred over a tile either side.
            let (_, blurred) = error(&whole, sigma, cols);
            assert!(blurred > 0.12, "{band}: whole map within {blurred}");
        }
    }

    /// Too few blocks to tell a jump from a strip read badly: a small slice read alone is
    /// read whole; a series of them, read between the lines.
    #[test]
    fn a_read_on_too_little_evidence_is_not_split() {
        let sigma = |j: usize| if (42..84).contains(&j) { 0.028 } else { 0.02 };
        let series: Vec<_> = (0..4).map(|s| scanned(128, sigma, 10 + s)).collect();
        let views: Vec<_> = series.iter().map(|i| i.view()).collect();
        let one = |r| estimate_noise_map(views[0], &coil_array(r)).unwrap();
        assert_eq!(one(3), one(1), "a slice of 128 alone");
        let pooled = |r| {
            crate::noise_map::estimate_series_noise_maps(&views, None, &coil_array(r))
                .unwrap()
                .maps
                .remove(0)
        };
        let (folded, whole) = (pooled(3), pooled(1));
        assert_ne!(folded, whole, "four slices of 128");
        let (mean, worst) = error(&folded, sigma, 42..84);
        assert!(mean.abs() < 0.03 && worst < 0.1, "middle: {mean} {worst}");
    }

    #[test]
    fn a_map_that_meets_itself_at_the_folds_is_read_whole() {
        let sigma = |_| 0.02;
        let img = scanned(192, sigma, 4);
        let whole = estimate_noise_map(img.view(), &coil_array(1)).unwrap();
        for r in [2, 3] {
            assert_eq!(
                estimate_noise_map(img.view(), &coil_array(r)).unwrap(),
                whole
            );
        }
    }

    fn at(acceleration: u32, phase_encoding: PhaseEncoding) -> NoiseMapSettings {
        NoiseMapSettings {
            acceleration,
            phase_encoding,
            ..Default::default()
        }
    }

    #[test]
    fn the_lines_sit_a_fold_apart_on_even_pixels_across_the_phase_encoding() {
        assert_eq!(
            lines(&at(3, PhaseEncoding::LeftRight), (256, 256)),
            Some((Axis(1), vec![84, 170]))
        );
        assert_eq!(
            lines(&at(2, PhaseEncoding::UpDown), (320, 256)),
            Some((Axis(0), vec![160]))
        );
        assert_eq!(
            lines(&at(3, PhaseEncoding::UpDown), (256, 320)),
            Some((Axis(0), vec![84, 170]))
        );
        // Not stated, or too narrow for two tiles (16 pixels) a strip.
        assert_eq!(lines(&at(3, PhaseEncoding::Unknown), (256, 256)), None);
        assert_eq!(lines(&at(1, PhaseEncoding::LeftRight), (256, 256)), None);
        assert_eq!(lines(&at(3, PhaseEncoding::LeftRight), (256, 64)), None);
        assert_eq!(strips(&[84, 170], 256), [0..84, 84..170, 170..256]);
    }

    #[test]
    fn a_jump_is_told_from_a_map_that_meets_itself() {
        let map = Array2::from_shape_fn((8, 12), |(_, j)| if j < 6 { 1.0 } else { 1.4 });
        assert!(jumps_at(&map, Axis(1), 6));
        assert!(!jumps_at(&map, Axis(1), 3));
        let cusp = Array2::from_shape_fn((8, 12), |(_, j)| 1.0 + 0.01 * (j as f32 - 6.0).abs());
        assert!(!jumps_at(&cusp, Axis(1), 6));
        assert!(!jumps_at(&map.t().to_owned(), Axis(0), 3));
        assert!(jumps_at(&map.t().to_owned(), Axis(0), 6));
    }
}
