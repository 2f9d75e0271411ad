//! A series' slices pooled into one noise map: each slice read once, the pool checked
//! against each slice's own map, and a slice whose own map is too far off set apart.

use std::cell::OnceCell;

use ndarray::ArrayView2;

use super::settings::NoiseMapSettings;
use super::slice_map::{SliceMap, estimate, partner_tissue};
use super::tiles::{SliceBlocks, blocks_error};
use crate::noise::upper_median;
use crate::{Error, Result};

/// A slice's own map may be this far from its series' pooled map (the median of their
/// ratio over the slice's tissue), plus [`SERIES_LEVEL_ERRORS`] of its own precision,
/// before it is set apart from the pool (in a series growing as it arrives too). The
/// 256 x 256 slices of one acquisition came within 4.3% on single-coil, 8-coil and
/// g-factor phantoms (R = 2 and 3; one slice in 16 at SNR 10 on two fresh seeds read
/// 12-13% off until the air was read until it holds, `slice_map::estimate`); two series
/// 25% apart, mixed 3 + 3 or 5 + 1, 13% or more.
pub const SERIES_LEVEL_TOLERANCE: f32 = 0.06;
/// How many of a slice's own relative errors (a tile's error over the square root of the
/// blocks its tiles read) widen [`SERIES_LEVEL_TOLERANCE`]: a small slice's own map rests on
/// few blocks (a 48 x 40 slice of 8 coils read 7% off its series' with one acquisition), a
/// 256 x 256 slice's on thousands (a widening under 2%). A slice none of whose tiles could
/// be read has no map of its own, and is not checked.
pub const SERIES_LEVEL_ERRORS: f32 = 2.0;

/// A series' maps as [`split_maps`] made them.
pub(crate) struct SplitMaps {
    /// Each slice's map.
    pub maps: Vec<SliceMap>,
    /// How many slices each slice's map pooled, itself included.
    pub pooled: Vec<usize>,
    /// The slices set apart from the series' pool: (slice, how far its own map was off the
    /// pool's).
    pub apart: Vec<(usize, f32)>,
}

impl SplitMaps {
    /// Whether slice `k` was set apart from its series' pool.
    pub fn is_apart(&self, k: usize) -> bool {
        self.apart.iter().any(|&(slice, _)| slice == k)
    }
}

/// Pooled maps, and the slices (place, how far off) whose own maps are off them.
type Pooled = (Vec<SliceMap>, Vec<(usize, f32)>);

/// One slice of a series as its map reads it: its blocks, with the tissue its partner
/// shows, and its own map once a series is checked. Read once, a slice can be pooled with
/// the slices that come after it (a series growing as it arrives).
pub(crate) struct ReadSlice {
    blocks: SliceBlocks,
    dim: (usize, usize),
    own: OnceCell<SliceMap>,
}

impl ReadSlice {
    /// `image` read beside `partner` (see `noise_map::estimate_noise_map_beside`) or alone.
    pub(crate) fn new(
        image: ArrayView2<f32>,
        partner: Option<ArrayView2<f32>>,
        settings: &NoiseMapSettings,
    ) -> Result<Self> {
        let tissue = match partner {
            Some(p) => partner_tissue(image, p, settings)?,
            None => None,
        };
        Ok(ReadSlice {
            blocks: SliceBlocks::new(image, tissue, settings.coils),
            dim: image.dim(),
            own: OnceCell::new(),
        })
    }

    pub(crate) fn dim(&self) -> (usize, usize) {
        self.dim
    }

    /// Its map estimated from itself alone (with the settings of the first call).
    fn own(&self, settings: &NoiseMapSettings) -> Result<&SliceMap> {
        if self.own.get().is_none() {
            let map = estimate(&[&self.blocks], self.dim, settings)?.remove(0);
            let _ = self.own.set(map);
        }
        Ok(self.own.get().expect("set above"))
    }
}

/// The maps of `slices`, pooled over those whose own maps agree with their pool; the
/// others (slice, how far its own map was off the pool's) are set apart, and pooled among
/// themselves as a series of their own (split again where they disagree), or mapped alone
/// when one is set apart. A whole series is not given up for one slice: mapping every
/// slice alone cost a series 1-2 dB at SNR 10 when one slice read badly alone. Two
/// acquisitions mixed 5 + 1 set the one apart, 3 + 3 one of the halves, and each half is
/// pooled. Slices of different sizes are refused.
pub(crate) fn split_maps(slices: &[&ReadSlice], settings: &NoiseMapSettings) -> Result<SplitMaps> {
    let dim = same_size(slices)?;
    let mut members: Vec<usize> = (0..slices.len()).collect();
    let mut apart: Vec<(usize, f32)> = Vec::new();
    let pooled = loop {
        let held: Vec<&ReadSlice> = members.iter().map(|&k| slices[k]).collect();
        let (maps, odd) = pool(&held, dim, settings)?;
        let Some(&(_, worst)) = odd.first() else {
            break maps;
        };
        // A pool of two acquisitions sits between them: the slices off it on the side of
        // the furthest leave, the others are pooled again without them.
        let leaving: Vec<(usize, f32)> = odd
            .into_iter()
            .filter(|&(_, off)| off.signum() == worst.signum())
            .collect();
        apart.extend(leaving.iter().map(|&(k, off)| (members[k], off)));
        if leaving.len() == held.len() {
            members.clear();
            break Vec::new();
        }
        members = (0..members.len())
            .filter(|k| !leaving.iter().any(|&(l, _)| l == *k))
            .map(|k| members[k])
            .collect();
    };
    apart.sort_by_key(|&(k, _)| k);
    let mut placed: Vec<Option<SliceMap>> = slices.iter().map(|_| None).collect();
    let mut counts = vec![1; slices.len()];
    for (&k, map) in members.iter().zip(pooled) {
        placed[k] = Some(map);
        counts[k] = members.len();
    }
    // The slices set apart are a series of their own: smaller each time, unless every
    // slice left its pool, when each is mapped alone.
    let away: Vec<usize> = apart.iter().map(|&(k, _)| k).collect();
    if away.len() >= 2 && away.len() < slices.len() {
        let theirs: Vec<&ReadSlice> = away.iter().map(|&k| slices[k]).collect();
        let theirs = split_maps(&theirs, settings)?;
        for ((&k, map), n) in away.iter().zip(theirs.maps).zip(theirs.pooled) {
            placed[k] = Some(map);
            counts[k] = n;
        }
    }
    let maps = placed
        .into_iter()
        .zip(slices)
        .map(|(map, slice)| match map {
            Some(map) => Ok(map),
            None => Ok(estimate(&[&slice.blocks], dim, settings)?.remove(0)),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SplitMaps {
        maps,
        pooled: counts,
        apart,
    })
}

/// The size every slice of a series must have: the first's.
fn same_size(slices: &[&ReadSlice]) -> Result<(usize, usize)> {
    let dim = slices.first().map_or((0, 0), |s| s.dim);
    if let Some((k, other)) = slices.iter().enumerate().find(|(_, s)| s.dim != dim) {
        return Err(Error::Invalid {
            what: "noise map series",
            reason: format!(
                "slice {k} is {:?}, the series' first {dim:?}: not one acquisition",
                other.dim
            ),
        });
    }
    Ok(dim)
}

/// The pooled maps of `slices`, and those (place, how far off) whose own map is further off
/// the pool's than they allow, the furthest (for its precision) first.
fn pool(slices: &[&ReadSlice], dim: (usize, usize), settings: &NoiseMapSettings) -> Result<Pooled> {
    if slices.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let blocks: Vec<&SliceBlocks> = slices.iter().map(|s| &s.blocks).collect();
    let maps = estimate(&blocks, dim, settings)?;
    // The check compares levels, read on square tiles: a slice of one acquisition read
    // alone on tiles narrowed across the folds came 9% off its series' (PD at SNR 10, 8
    // coils, R = 2), more than the tolerance.
    let square = settings.square();
    let odd = if square == *settings {
        odd_slices(slices, &maps, &square)?
    } else {
        odd_slices(slices, &estimate(&blocks, dim, &square)?, &square)?
    };
    Ok((maps, odd))
}

/// The slices (place, how far off) whose own map is further off the series' pooled map over
/// their tissue than [`SERIES_LEVEL_TOLERANCE`] widened by [`SERIES_LEVEL_ERRORS`] of their
/// precision, the furthest for its precision first. Each slice's one-sigma estimate is no
/// test: under a g-factor map it follows where the slice's tissue lies (21% apart within
/// one R = 3 fat-suppressed series), while a map is compared with a map place by place.
fn odd_slices(
    slices: &[&ReadSlice],
    pooled: &[SliceMap],
    settings: &NoiseMapSettings,
) -> Result<Vec<(usize, f32)>> {
    if slices.len() < 2 {
        return Ok(Vec::new());
    }
    let mut odd: Vec<(usize, f32, f32)> = Vec::new();
    for (k, (slice, series)) in slices.iter().zip(pooled).enumerate() {
        let own = slice.own(settings)?;
        // Tiles too dim to read (a small fat-suppressed slice) leave a slice with no map of
        // its own, only the global sigma they fell back to: it says nothing of the series.
        if own.blocks < settings.min_blocks as f32 {
            continue;
        }
        let mut ratios: Vec<f32> = ndarray::Zip::from(&own.map)
            .and(&series.map)
            .and(&own.air)
            .fold(Vec::new(), |mut r, &o, &p, &air| {
                if !air && o > 0.0 && p > 0.0 {
                    r.push(o / p);
                }
                r
            });
        if ratios.is_empty() {
            continue;
        }
        // Its precision is that of the blocks its tiles read, not of the tissue it covers:
        // a 96 x 96 fat-suppressed slice of 8 coils may spread one tile's 38 blocks over all
        // of it (20% off its series' with one acquisition).
        let tolerance = SERIES_LEVEL_TOLERANCE + SERIES_LEVEL_ERRORS * blocks_error(own.blocks);
        let off = upper_median(&mut ratios) - 1.0;
        let excess = off.abs() / tolerance;
        if excess > 1.0 {
            odd.push((k, off, excess));
        }
    }
    odd.sort_by(|a, b| b.2.total_cmp(&a.2));
    Ok(odd.into_iter().map(|(k, off, _)| (k, off)).collect())
}
