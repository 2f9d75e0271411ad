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
//! neighbours, and less by how far its estimate is from the tile's own beyond their
//! errors) and interpolated bilinearly to pixels.
//!
//! A true g-factor map is smooth but for folds where it jumps; the smoothing keeps a jump
//! between tiles, and the interpolation blurs it over a tile. Parallel imaging folds along
//! the phase-encoding direction, so the map changes fastest across it (at acceleration 2,
//! cusps a few percent high at the fold lines); along the readout it follows the coils'
//! smooth sensitivities. Where the direction is known the tiles are as many pixels as
//! square ones, but [`NoiseMapSettings::elongation`] times longer along the readout and as
//! many times narrower across the folds.

use ndarray::{Array2, ArrayView2};

use crate::noise::{estimate_sigma, upper_median};
use crate::{Error, Result};

mod folds;
mod series;
mod settings;
mod slice_map;
mod tiles;

pub(crate) use series::{ReadSlice, split_maps};
pub use series::{SERIES_LEVEL_ERRORS, SERIES_LEVEL_TOLERANCE};
pub use settings::{NoiseMapSettings, PhaseEncoding, SetAside, Stated};

use series::SplitMaps;
use slice_map::{SliceMap, estimate, partner_tissue};

use tiles::SliceBlocks;

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
    /// The same model with what the images state of their acquisition, where they state
    /// it ([`NoiseMapSettings::as_stated`]).
    pub fn as_stated(&self, stated: Stated) -> NoiseModel {
        match self {
            NoiseModel::Slice => NoiseModel::Slice,
            NoiseModel::Map(settings) => NoiseModel::Map(settings.as_stated(stated)),
        }
    }

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
    /// its tissue too dark to show, and checks its estimate in tissue
    /// ([`estimate_pair_noise_maps`]).
    pub fn sigma_of_pair(
        &self,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
    ) -> Result<(Array2<f32>, Array2<f32>)> {
        match self {
            NoiseModel::Slice => Ok((self.sigma(a)?, self.sigma(b)?)),
            NoiseModel::Map(settings) => {
                let (mut x, mut y) = estimate_pair_noise_maps(&[a], &[b], settings)?;
                Ok((x.maps.remove(0), y.maps.remove(0)))
            }
        }
    }
}

/// The relative error (rms, in tissue) of a map that pooled `slices` slices of a series:
/// an error no pooling removes (the tissue's texture, the tiles' smoothing of the g-factor)
/// and one that falls as the blocks behind each tile grow, `sqrt(e0^2 + e1^2 / slices)`. On
/// the held-out 8-coil phantoms at acceleration 2 (both contrasts, two noise levels) a
/// slice's own map was 2.2-3.3% off the true one (2.75% over all four) and a series of 8
/// slices' 1.9-2.1% (2.0%; docs/scanner-noise.md). Serving integrates it out, with the
/// prediction's own error (`posterior::Inversion`).
pub fn map_relative_error(slices: usize) -> f32 {
    const UNPOOLED: f32 = 0.0187;
    const PER_SLICE: f32 = 0.0201;
    UNPOOLED.hypot(PER_SLICE / (slices.max(1) as f32).sqrt())
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
    Some(upper_median(&mut values))
}

/// The noise standard deviation at every pixel of `image`, in its intensity units.
pub fn estimate_noise_map(
    image: ArrayView2<f32>,
    settings: &NoiseMapSettings,
) -> Result<Array2<f32>> {
    let slice = SliceBlocks::new(image, None, settings.coils);
    Ok(estimate(&[&slice], image.dim(), settings)?.remove(0).map)
}

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
    let slice = SliceBlocks::new(
        image,
        partner_tissue(image, partner, settings)?,
        settings.coils,
    );
    Ok(estimate(&[&slice], image.dim(), settings)?.remove(0).map)
}

/// The noise maps of the slices of one series, each tile's estimate resting on every
/// slice's blocks at that place (with `partners`, each slice read beside its own, as
/// [`estimate_noise_map_beside`] does). The slices of one acquisition share their coil
/// array, acceleration and receiver, so their g-factor map and noise level are the same:
/// a slice's tile alone is a few percent uncertain and its tissue's texture pulls it up,
/// and the 8-coil noncentral chi correction in fat-suppressed tissue needs the sigma to a
/// percent (docs/scanner-noise.md). The maps differ only where a slice has air and another
/// tissue. Slices of different sizes are refused. A slice whose own map is further off the
/// pooled one than [`SERIES_LEVEL_TOLERANCE`] and its own precision allow is of another
/// acquisition or was read badly alone: it is set apart, named in [`PooledMaps::apart`],
/// and the rest pooled without it; the slices set apart are pooled among themselves where
/// they agree (another acquisition), each mapped alone otherwise.
pub fn estimate_series_noise_maps(
    images: &[ArrayView2<f32>],
    partners: Option<&[ArrayView2<f32>]>,
    settings: &NoiseMapSettings,
) -> Result<PooledMaps> {
    let split = series_maps(images, partners, settings)?;
    Ok(PooledMaps {
        maps: split.maps.into_iter().map(|s| s.map).collect(),
        apart: split.apart,
        counts: split.pooled,
    })
}

/// A series' noise maps, one per slice, and the slices set apart from its pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PooledMaps {
    pub maps: Vec<Array2<f32>>,
    /// Slices whose own map was too far off the pool's to share it (another acquisition,
    /// or a slice read badly alone), pooled among themselves where they agree or mapped
    /// alone: (slice, how far its own map was off the pool's in its tissue, relatively).
    pub apart: Vec<(usize, f32)>,
    /// How many slices each slice's map pooled.
    counts: Vec<usize>,
}

impl PooledMaps {
    /// How many slices slice `k`'s map pooled, itself included.
    pub fn pooled(&self, k: usize) -> usize {
        self.counts[k]
    }

    /// Which slices were set apart and why, in words; `None` when every slice was pooled.
    pub fn apart_reason(&self) -> Option<String> {
        if self.apart.is_empty() {
            return None;
        }
        let each: Vec<String> = self
            .apart
            .iter()
            .map(|&(k, off)| format!("slice {k} {:+.0}%", 100.0 * off))
            .collect();
        Some(format!(
            "{} of {} slices set apart, their own noise maps off the series' pooled one in \
             their tissue ({}): another acquisition (pooled by itself), or read badly alone \
             (mapped alone)",
            self.apart.len(),
            self.maps.len(),
            each.join(", ")
        ))
    }
}

/// [`estimate_series_noise_maps`], with each slice's air.
fn series_maps(
    images: &[ArrayView2<f32>],
    partners: Option<&[ArrayView2<f32>]>,
    settings: &NoiseMapSettings,
) -> Result<SplitMaps> {
    settings.validate()?;
    if let Some(partners) = partners
        && partners.len() != images.len()
    {
        return Err(Error::Invalid {
            what: "noise map series",
            reason: format!("{} slices but {} partners", images.len(), partners.len()),
        });
    }
    let slices = images
        .iter()
        .enumerate()
        .map(|(k, image)| ReadSlice::new(*image, partners.map(|p| p[k]), settings))
        .collect::<Result<Vec<_>>>()?;
    series::split_maps(&slices.iter().collect::<Vec<_>>(), settings)
}

/// The maps of two series' slices, in order: the first series', then the second's.
pub(crate) type PairMaps = (Vec<Array2<f32>>, Vec<Array2<f32>>);

/// Two maps of one coil array and acceleration may differ in shape by this much (the rms
/// of their log ratio over the air both read) before neither is taken to check the other.
pub const PAIR_SHAPE_AGREEMENT: f32 = 0.03;

/// The noise maps of two co-registered series of one protocol (a knee's PD and PDFS: the
/// same coil array, field of view and acceleration, so the same g-factor map, each at its
/// own noise level), each series pooled ([`estimate_series_noise_maps`]) and read beside
/// the other; one slice each is a series of one. In tissue each contrast's estimate is
/// pulled up where its own image says least of the noise: by its anatomy's texture (PD's
/// bright marrow, 2% at SNR 20), or by having little tissue bright enough to read
/// (fat-suppressed PDFS, 3% at SNR 10), and the two are pulled up in different places. So
/// each pixel takes the lower of its own estimate and its partner's scaled to its own
/// level (the ratio of the two over the air both read, where both are precise). Where the
/// shapes disagree in that air by more than [`PAIR_SHAPE_AGREEMENT`] (another
/// acceleration, another coil), or there is too little air to tell, each keeps its own; so
/// does a slice either series set apart from its pool ([`PooledMaps::apart`]).
pub fn estimate_pair_noise_maps(
    a: &[ArrayView2<f32>],
    b: &[ArrayView2<f32>],
    settings: &NoiseMapSettings,
) -> Result<(PooledMaps, PooledMaps)> {
    let split_a = series_maps(a, Some(b), settings)?;
    let split_b = series_maps(b, Some(a), settings)?;
    let (a, b) = combine_pair(&split_a, &split_b, settings);
    Ok((
        PooledMaps {
            maps: a,
            apart: split_a.apart,
            counts: split_a.pooled,
        },
        PooledMaps {
            maps: b,
            apart: split_b.apart,
            counts: split_b.pooled,
        },
    ))
}

/// The maps of two series read beside each other, each pixel the lower of its own and its
/// partner's scaled to its level where their shapes agree ([`estimate_pair_noise_maps`]).
/// A slice either series set apart from its pool is not combined: its map was read badly
/// alone or is another acquisition's, and taking the lower of it would pull its partner's
/// pooled map down with it (a fat-suppressed slice of 8 coils at SNR 10, read alone 10%
/// low and mapped alone 20% low, took its PD partner's map 20% low with it).
pub(crate) fn combine_pair(a: &SplitMaps, b: &SplitMaps, settings: &NoiseMapSettings) -> PairMaps {
    let own = |split: &SplitMaps| split.maps.iter().map(|s| s.map.clone()).collect::<Vec<_>>();
    let shared: Vec<bool> = (0..a.maps.len().min(b.maps.len()))
        .map(|k| !a.is_apart(k) && !b.is_apart(k))
        .collect();
    let Some(ratio) = shared_shape_ratio(&a.maps, &b.maps, &shared, settings) else {
        return (own(a), own(b));
    };
    let combined = |mine: &[SliceMap], theirs: &[SliceMap], scale: f32| {
        mine.iter()
            .zip(theirs)
            .zip(&shared)
            .map(|((m, t), &shared)| {
                if !shared {
                    return m.map.clone();
                }
                ndarray::Zip::from(&m.map)
                    .and(&t.map)
                    .map_collect(|&m, &t| if t > 0.0 { m.min(t * scale) } else { m })
            })
            .collect()
    };
    (
        combined(&a.maps, &b.maps, ratio),
        combined(&b.maps, &a.maps, 1.0 / ratio),
    )
}

/// The ratio of `a`'s maps to `b`'s over the pixels both read as air in the `shared`
/// slices, when their shapes agree there within [`PAIR_SHAPE_AGREEMENT`]; `None` otherwise,
/// or with fewer than `min_blocks` such pixels per shared slice.
fn shared_shape_ratio(
    a: &[SliceMap],
    b: &[SliceMap],
    shared: &[bool],
    settings: &NoiseMapSettings,
) -> Option<f32> {
    let mut logs = Vec::new();
    let mut slices = 0;
    for ((x, y), _) in a.iter().zip(b).zip(shared).filter(|(_, s)| **s) {
        if x.map.dim() != y.map.dim() {
            return None;
        }
        slices += 1;
        ndarray::Zip::from(&x.map)
            .and(&y.map)
            .and(&x.air)
            .and(&y.air)
            .for_each(|&m, &n, &air_x, &air_y| {
                if air_x && air_y && m > 0.0 && n > 0.0 {
                    logs.push((m / n).ln());
                }
            });
    }
    if slices == 0 || logs.len() < 4 * settings.min_blocks * slices {
        return None;
    }
    let centre = upper_median(&mut logs);
    let rms = (logs.iter().map(|l| (l - centre).powi(2)).sum::<f32>() / logs.len() as f32).sqrt();
    (rms <= PAIR_SHAPE_AGREEMENT).then(|| centre.exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// The root-sum-of-squares of `coils` channels (1: Rician), the signal
    /// `signal(i, j)` in one, each channel's noise `sigma(i, j)`.
    fn scanned(
        size: usize,
        coils: usize,
        signal: impl Fn(usize, usize) -> f32,
        sigma: impl Fn(usize, usize) -> f32,
        seed: u64,
    ) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((size, size), |(i, j)| {
            let s = sigma(i, j);
            let mut noise = || s * rng.sample::<f32, _>(StandardNormal);
            let first = (signal(i, j) + noise()).powi(2);
            let rest: f32 = (1..2 * coils).map(|_| noise().powi(2)).sum();
            (first + rest).sqrt()
        })
    }

    /// The amplitude `signal(i, j)` with Rician noise of `sigma(i, j)`.
    fn rician(
        size: usize,
        signal: impl Fn(usize, usize) -> f32,
        sigma: impl Fn(usize, usize) -> f32,
        seed: u64,
    ) -> Array2<f32> {
        scanned(size, 1, signal, sigma, seed)
    }

    /// Phantom pairs of `size` scanned by a knee coil at R = 2, SNR `snr` (PD, PDFS).
    fn knee_coil(size: usize, snr: (f32, f32), seed: u64) -> crate::phantom::PhantomGenerator {
        let config = crate::phantom::PhantomConfig {
            size,
            snr_pd: snr.0,
            snr_pdfs: snr.1,
        };
        crate::phantom::PhantomGenerator::new(config, seed)
            .unwrap()
            .with_coils(crate::coils::CoilArray::knee(2))
            .unwrap()
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
        // Away from the step (a tile and a half either side) and inside the object; and at
        // the centres of the tiles either side of it, which the smoothing does not average
        // across the step (it would put them 30% off).
        for (j, want) in [
            (48, 0.03),
            (80, 0.03),
            (112, 0.03),
            (144, 0.06),
            (176, 0.06),
            (208, 0.06),
        ] {
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
    fn tiles_narrowed_across_the_folds_follow_a_fold_line_cusp() {
        // Acceleration 2 along the columns: the g-factor peaks at the fold line in the middle
        // (10%, half of it 14 columns away) and is flat along the rows. Square tiles of 32 average the
        // cusp away (3.7% rms around it); tiles of 64 x 16 follow it (2.4%), from the same number
        // of blocks each.
        let size = 256;
        let truth = |_: usize, j: usize| {
            let d = (j as f32 - size as f32 / 2.0).abs();
            0.03 * (1.0 + 0.1 * (-d / 20.0).exp())
        };
        let images: Vec<Array2<f32>> = (0..4).map(|k| object(size, truth, 40 + k)).collect();
        let views: Vec<ArrayView2<f32>> = images.iter().map(|i| i.view()).collect();
        let error = |phase_encoding| {
            let settings = NoiseMapSettings {
                phase_encoding,
                ..NoiseMapSettings::default()
            };
            let maps = estimate_series_noise_maps(&views, None, &settings)
                .unwrap()
                .maps;
            // Mean over the rows inside the object, column by column around the cusp.
            let (rows, cols) = (size / 8 + 16..size * 7 / 8 - 16, 104..152);
            let squares: f32 = cols
                .clone()
                .map(|j| {
                    let mean =
                        rows.clone().map(|i| maps[0][(i, j)]).sum::<f32>() / rows.len() as f32;
                    (mean / truth(0, j) - 1.0).powi(2)
                })
                .sum();
            (squares / cols.len() as f32).sqrt()
        };
        let (square, narrowed) = (
            error(PhaseEncoding::Unknown),
            error(PhaseEncoding::LeftRight),
        );
        eprintln!(
            "square {square} narrowed {narrowed} across {}",
            error(PhaseEncoding::UpDown)
        );
        assert!(narrowed < 0.03, "narrowed tiles {narrowed}");
        assert!(
            narrowed < 0.7 * square,
            "narrowed {narrowed} vs square {square}"
        );
        // Across the other way the cusp is along the tiles' long side: no better.
        let across = error(PhaseEncoding::UpDown);
        assert!(
            across > narrowed,
            "up-down {across} vs left-right {narrowed}"
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

    /// The root-sum-of-squares of `coils` channels of `signal(i, j)`, each channel's noise
    /// `sigma`.
    fn chi(
        size: usize,
        coils: usize,
        signal: impl Fn(usize, usize) -> f32,
        sigma: f32,
        seed: u64,
    ) -> Array2<f32> {
        scanned(size, coils, signal, |_, _| sigma, seed)
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
    fn tiles_out_of_reach_of_any_evidence_take_the_level_the_tiles_read() {
        // Eight coils. The slice: fat-suppressed tissue a sigma and a bit above black over
        // its left 160 columns (tissue in its partner, so never air), and tissue 6 sigmas
        // above black over the rest, no air anywhere (a knee filling the field of view). The
        // left tiles read nothing, and those more than the smoothing's reach from the right
        // ones used to take the slice's first, global sigma: read from blocks a few sigmas
        // above the floor without their spread, 7% low here (13% in a fat-suppressed
        // phantom slice of 8 coils).
        let (size, sigma) = (256, 0.02f32);
        let slice = |_, j: usize| if j < 160 { 1.3 * sigma } else { 6.0 * sigma };
        let (image, partner) = (
            chi(size, 8, slice, sigma, 21),
            chi(size, 8, |_, _| 30.0 * sigma, sigma, 22),
        );
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        let map = estimate_noise_map_beside(image.view(), partner.view(), &settings).unwrap();
        let read =
            |cols: std::ops::Range<usize>| map.slice(ndarray::s![.., cols]).mean().unwrap() / sigma;
        let (far, near) = (read(0..48), read(192..256));
        assert!((far - near).abs() < 0.03, "far left {far}, right {near}");
        assert!((far - 1.0).abs() < 0.06, "far left {far}");
    }

    #[test]
    fn dark_tissue_across_a_g_factor_ridge_is_read_at_its_own_level() {
        // Eight coils, phase encoding left-right: a g-factor ridge down the middle (1.5 at
        // its crest, 1 some 40 columns off), where the knee's middle is tissue 4 sigmas above
        // black (PD's marrow at SNR 10): under the tissue threshold, and never air, its
        // partner bright there. Bright tissue and air lie off the ridge only. Read from them
        // alone, the crest took its flanks' level, 19% low; read from its own dark blocks it
        // is 4-5% low, what the tiles' width and smoothing leave of a ridge this narrow.
        let (size, sigma) = (256, 0.02f32);
        let g = |j: usize| {
            let x = (j as f32 - 128.0) / 48.0;
            1.0 + 0.4 * (-x * x).exp()
        };
        let noise = move |_: usize, j: usize| sigma * g(j);
        let slice = move |_: usize, j: usize| match j.abs_diff(128) {
            d if d < 48 => 4.0 * sigma * g(j),
            d if d < 112 => 12.0 * sigma,
            _ => 0.0,
        };
        let partner = |_: usize, j: usize| if j.abs_diff(128) < 112 { 0.6 } else { 0.0 };
        let (image, other) = (
            scanned(size, 8, slice, noise, 31),
            scanned(size, 8, partner, noise, 32),
        );
        let settings = NoiseMapSettings {
            coils: 8,
            phase_encoding: PhaseEncoding::LeftRight,
            ..Default::default()
        };
        let map = estimate_noise_map_beside(image.view(), other.view(), &settings).unwrap();
        let crest = (120..136)
            .map(|j| (32..224).map(|i| map[(i, j)]).sum::<f32>() / (192.0 * sigma * g(j)))
            .sum::<f32>()
            / 16.0;
        assert!((crest - 1.0).abs() < 0.06, "the crest reads {crest}");
    }

    #[test]
    fn textured_tissue_is_read_on_the_airs_footing() {
        // Eight slices of one series, 8 coils: bright tissue with a fine texture of 0.5
        // sigma (which the tiles' detail takes for noise: 5% too much), air all around it.
        // Where a tile reads both, the air's second moment tells the tissue's estimates how
        // high they read, and they are brought down by as much as the series can tell.
        let (size, sigma) = (256, 0.02f32);
        let inside = |k: usize| (48..208).contains(&k);
        let slices: Vec<_> = (0..8u64)
            .map(|seed| {
                let texture = |i: usize, j: usize| {
                    let h = (i as u64 * 7919 + j as u64 * 104_729 + seed * 1_299_709)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    ((h >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * 0.5 * 3f32.sqrt()
                };
                let signal = |i, j| {
                    if inside(i) && inside(j) {
                        (20.0 + texture(i, j)) * sigma
                    } else {
                        0.0
                    }
                };
                chi(size, 8, signal, sigma, 40 + seed)
            })
            .collect();
        let views: Vec<_> = slices.iter().map(|s| s.view()).collect();
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        let maps = estimate_series_noise_maps(&views, None, &settings)
            .unwrap()
            .maps;
        let tissue = maps[0].slice(ndarray::s![80..176, 80..176]).mean().unwrap() / sigma;
        assert!((tissue - 1.0).abs() < 0.025, "tissue reads {tissue}");
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
    fn dim_tissue_beside_a_little_air_is_not_read_as_air() {
        // Eight coils; a tenth or a third of the slice air, the rest dim tissue 3.75 sigma
        // above black (fat-suppressed). Too little of it lies above the tissue threshold for
        // a first sigma from its details, which fell back to the second moment of every
        // block, as if all were air: 27-34% high, and the tissue, under the air threshold
        // it set, was read as air that high. The air's own sigma is the fallback now.
        let sigma = 0.05f32;
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        for air in [13, 38] {
            let img = chi(
                128,
                8,
                |_, j| if j < air { 0.0 } else { 3.75 * sigma },
                sigma,
                1,
            );
            let map = estimate_noise_map(img.view(), &settings).unwrap();
            for (part, cols) in [("air", 0..air - 6), ("tissue", air + 6..128)] {
                let mean = map.slice(ndarray::s![.., cols]).mean().unwrap();
                assert!(
                    (mean / sigma - 1.0).abs() < 0.05,
                    "{part} beside {air} columns of air: {mean} vs {sigma}"
                );
            }
        }
    }

    /// A g-factor-like map: higher towards the left, 20% across the slice.
    fn g_map(size: usize, level: f32) -> impl Fn(usize, usize) -> f32 {
        move |_, j| level * (1.2 - 0.2 * j as f32 / size as f32)
    }

    /// The rms relative error of `maps` against `truth` where `inside` holds.
    fn rms_error(
        maps: &[Array2<f32>],
        truth: &impl Fn(usize, usize) -> f32,
        inside: impl Fn(usize, usize) -> bool,
    ) -> f32 {
        let (mut sum, mut n) = (0.0f32, 0usize);
        for map in maps {
            for ((i, j), v) in map.indexed_iter() {
                if inside(i, j) {
                    sum += (v / truth(i, j) - 1.0).powi(2);
                    n += 1;
                }
            }
        }
        (sum / n as f32).sqrt()
    }

    #[test]
    fn a_series_map_rests_on_all_its_slices() {
        // Eight slices of one acquisition (one g-factor map, fresh noise, the object a
        // little larger from slice to slice): each tile's estimate pools their blocks, so
        // the map's error in the object is well under a slice's own.
        let (size, sigma) = (128, 0.02f32);
        let truth = g_map(size, sigma);
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        let slices: Vec<Array2<f32>> = (0..8)
            .map(|k| {
                let half = 40 + k;
                let signal = move |i: usize, j: usize| {
                    let inside = |x: usize| x.abs_diff(64) < half;
                    if inside(i) && inside(j) {
                        12.0 * sigma
                    } else {
                        0.0
                    }
                };
                scanned(size, 8, signal, &truth, 40 + k as u64)
            })
            .collect();
        let views: Vec<_> = slices.iter().map(|s| s.view()).collect();
        let alone: Vec<_> = views
            .iter()
            .map(|v| estimate_noise_map(*v, &settings).unwrap())
            .collect();
        let pooled = estimate_series_noise_maps(&views, None, &settings)
            .unwrap()
            .maps;
        let object = |i: usize, j: usize| i.abs_diff(64) < 36 && j.abs_diff(64) < 36;
        let (alone, pooled) = (
            rms_error(&alone, &truth, object),
            rms_error(&pooled, &truth, object),
        );
        assert!(pooled < 0.02, "pooled {pooled}");
        // 1.5% against 2.2% (0.69 of it while the air was read in two passes, 0.72 since
        // it is read until it holds: the slices alone gained a little).
        assert!(pooled < 0.75 * alone, "pooled {pooled} vs alone {alone}");
        // One slice is a series of one: the same map as alone.
        let one = estimate_series_noise_maps(&views[..1], None, &settings)
            .unwrap()
            .maps;
        assert_eq!(one[0], estimate_noise_map(views[0], &settings).unwrap());
    }

    #[test]
    fn a_fat_suppressed_slice_whose_first_sigma_reads_low_is_mapped_at_its_level() {
        // A knee coil at R = 2, SNR 10, one pair read alone: this PDFS slice's dim tissue
        // put its first, global sigma 14% low, the threshold that tells its air with it,
        // and after one more pass its map was still 7% low (the PD map beside it too),
        // 12% off its series' pool in the check. Read until the air's level holds, within
        // a few percent.
        let generator = knee_coil(256, (10.0, 10.0), 1003);
        let pair = generator.pair(2);
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        let (pd, pdfs) =
            estimate_pair_noise_maps(&[pair.pd.view()], &[pair.pdfs.view()], &settings).unwrap();
        for (map, truth, what) in [
            (&pd.maps[0], &pair.noise_pd, "PD"),
            (&pdfs.maps[0], &pair.noise_pdfs, "PDFS"),
        ] {
            let ratio = map_level(map.view()).unwrap() / map_level(truth.view()).unwrap();
            assert!((ratio - 1.0).abs() < 0.03, "{what}: {ratio}");
        }
    }

    #[test]
    fn a_slice_of_another_acquisition_is_set_apart_and_another_size_refused() {
        let size = 64;
        let a = object(size, |_, _| 0.02, 1);
        let b = object(size, |_, _| 0.03, 2);
        let settings = NoiseMapSettings::default();
        // Two slices of one acquisition and one 50% noisier: the two pooled, the third
        // mapped alone, named, and its own map read the other's level.
        let views = [a.view(), a.view(), b.view()];
        let got = estimate_series_noise_maps(&views, None, &settings).unwrap();
        assert_eq!(got.apart.len(), 1);
        assert_eq!(got.apart[0].0, 2);
        assert!(got.apart[0].1 > 0.1, "{:?}", got.apart);
        assert_eq!((got.pooled(0), got.pooled(2)), (2, 1));
        assert_eq!(
            got.maps[2],
            estimate_noise_map(b.view(), &settings).unwrap()
        );
        let pooled = estimate_series_noise_maps(&views[..2], None, &settings).unwrap();
        assert_eq!(got.maps[0], pooled.maps[0]);
        let reason = got.apart_reason().unwrap();
        assert!(
            reason.contains("1 of 3 slices") && reason.contains("slice 2 +"),
            "{reason}"
        );
        assert!(pooled.apart_reason().is_none());
        // Half and half: the one further off the pool leaves, and each is mapped alone.
        let halves = estimate_series_noise_maps(&[a.view(), b.view()], None, &settings).unwrap();
        assert_eq!(halves.apart.len(), 1);
        assert_eq!(halves.maps[1], got.maps[2]);
        assert_eq!(
            halves.maps[0],
            estimate_noise_map(a.view(), &settings).unwrap()
        );
        // Slices of another size are no series at all.
        let small = object(32, |_, _| 0.02, 3);
        let err = estimate_series_noise_maps(&[a.view(), small.view()], None, &settings)
            .unwrap_err()
            .to_string();
        assert!(err.contains("noise map series"), "{err}");
        assert!(err.contains("slice 1 is (32, 32)"), "{err}");
    }

    #[test]
    fn a_series_on_narrowed_tiles_is_checked_on_square_ones() {
        // A knee coil at R = 2, SNR 10: one slice read alone on tiles of 64 x 16 came 9%
        // off its series' pooled map, and the pair's series were refused. Its level, read
        // on square tiles, is within the tolerance.
        let generator = knee_coil(256, (10.0, 10.0), 1000);
        let pairs: Vec<_> = (0..8).map(|k| generator.pair(k)).collect();
        let pd: Vec<_> = pairs.iter().map(|p| p.pd.view()).collect();
        let pdfs: Vec<_> = pairs.iter().map(|p| p.pdfs.view()).collect();
        let settings = NoiseMapSettings {
            coils: 8,
            phase_encoding: PhaseEncoding::LeftRight,
            ..Default::default()
        };
        let (maps_pd, maps_pdfs) = estimate_pair_noise_maps(&pd, &pdfs, &settings).unwrap();
        for (maps, truth) in [
            (maps_pd, &pairs[5].noise_pd),
            (maps_pdfs, &pairs[5].noise_pdfs),
        ] {
            assert_eq!(maps.apart, vec![], "every slice pooled");
            let (level, truth) = (map_level(maps.maps[5].view()), map_level(truth.view()));
            let (level, truth) = (level.unwrap(), truth.unwrap());
            assert!((level / truth - 1.0).abs() < 0.05, "{level} vs {truth}");
        }
    }

    #[test]
    fn a_small_dim_series_is_not_refused_for_its_slices_few_blocks() {
        // 96 x 96 fat-suppressed slices of a knee coil at R = 2 (SNR 12 before the
        // g-factor): a few dozen blocks per slice are bright enough to read, so a slice's
        // own map is a guess that can be 20% off. One acquisition, pooled, every seed.
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        for seed in [11, 13] {
            let generator = knee_coil(96, (20.0, 12.0), seed);
            let pairs: Vec<_> = (0..6).map(|k| generator.pair(k)).collect();
            let pd: Vec<_> = pairs.iter().map(|p| p.pd.view()).collect();
            let pdfs: Vec<_> = pairs.iter().map(|p| p.pdfs.view()).collect();
            for (partners, what) in [(None, "alone"), (Some(&pd[..]), "beside PD")] {
                let maps = estimate_series_noise_maps(&pdfs, partners, &settings)
                    .unwrap_or_else(|e| panic!("seed {seed}, {what}: {e}"))
                    .maps;
                // Pooled, the guess is the series' median: within 10% of the truth.
                let level = map_level(maps[0].view()).unwrap();
                let truth = map_level(pairs[0].noise_pdfs.view()).unwrap();
                assert!((level / truth - 1.0).abs() < 0.1, "{level} vs {truth}");
            }
        }
    }

    #[test]
    fn a_series_is_told_by_its_maps_not_by_where_its_tissue_lies() {
        // One acquisition whose noise doubles from left to right (a g-factor map), its
        // object now on the quiet side, now on the noisy one: its maps agree place by
        // place. It is pooled.
        let size = 128;
        let ramp = |_: usize, j: usize| 0.02 * (1.0 + j as f32 / size as f32);
        let moving: Vec<_> = (0..4)
            .map(|k| {
                let cols = if k % 2 == 0 { 8..72 } else { 56..120 };
                let signal = |i: usize, j: usize| {
                    if (16..112).contains(&i) && cols.contains(&j) {
                        0.7
                    } else {
                        0.0
                    }
                };
                rician(size, signal, ramp, k)
            })
            .collect();
        let views: Vec<_> = moving.iter().map(|s| s.view()).collect();
        let settings = NoiseMapSettings::default();
        let pooled = estimate_series_noise_maps(&views, None, &settings).unwrap();
        assert_eq!((pooled.maps.len(), pooled.apart.len()), (4, 0));
        // Two acquisitions 20% apart, three slices each: each slice's one sigma is within
        // 20% of the series' median, its maps about 9% off the pooled one. One half is set
        // apart, and each half is pooled by itself.
        let mixed: Vec<_> = (0..6)
            .map(|k| object(256, |_, _| [0.02, 0.024][k % 2], 10 + k as u64))
            .collect();
        let views: Vec<_> = mixed.iter().map(|s| s.view()).collect();
        let mixed = estimate_series_noise_maps(&views, None, &settings).unwrap();
        assert_eq!(mixed.apart.len(), 3, "{:?}", mixed.apart);
        let side = mixed.apart[0].0 % 2;
        assert!(
            mixed
                .apart
                .iter()
                .all(|&(k, off)| k % 2 == side && off.abs() > 0.06)
        );
        let together = mixed.pooled((side + 1) % 2);
        assert_eq!(together, 3, "the other half pooled");
        assert_eq!(mixed.pooled(side), 3, "the half set apart pooled by itself");
        let half: Vec<_> = (side..6).step_by(2).map(|k| views[k]).collect();
        let alone = estimate_series_noise_maps(&half, None, &settings).unwrap();
        assert_eq!(alone.apart, vec![]);
        assert_eq!(mixed.maps[side], alone.maps[0]);
    }

    #[test]
    fn a_pair_takes_the_lower_estimate_where_its_shapes_agree() {
        // PD-like: bright tissue with a fine texture the details take for noise (its map
        // reads high inside); PDFS-like: the same noise shape at 1.5 times the level, a
        // flat object. Read as a pair, the PD map takes the partner's shape inside; a
        // partner of another shape (no g-factor) leaves it its own.
        let (size, sigma) = (128, 0.02f32);
        let truth = g_map(size, sigma);
        let inside = |i: usize, j: usize| i.abs_diff(64) < 44 && j.abs_diff(64) < 44;
        let textured = move |i: usize, j: usize| {
            let texture = if (i + j).is_multiple_of(2) { 1.0 } else { -1.0 };
            if inside(i, j) {
                (14.0 + texture) * sigma
            } else {
                0.0
            }
        };
        let flat = move |i: usize, j: usize| if inside(i, j) { 6.0 * sigma } else { 0.0 };
        let pd = scanned(size, 8, textured, &truth, 7);
        let fs_truth = g_map(size, 1.5 * sigma);
        let fs = scanned(size, 8, flat, &fs_truth, 8);
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        let alone = estimate_series_noise_maps(&[pd.view()], Some(&[fs.view()]), &settings)
            .unwrap()
            .maps;
        let (pair, _) = estimate_pair_noise_maps(&[pd.view()], &[fs.view()], &settings).unwrap();
        let core = |i: usize, j: usize| i.abs_diff(64) < 30 && j.abs_diff(64) < 30;
        let (alone_err, pair_err) = (
            rms_error(&alone, &truth, core),
            rms_error(&pair.maps, &truth, core),
        );
        assert!(alone_err > 0.1, "the texture reads as noise: {alone_err}");
        assert!(pair_err < 0.05, "read beside its partner: {pair_err}");
        let uniform = scanned(size, 8, flat, |_, _| 1.5 * sigma, 9);
        let (kept, _) =
            estimate_pair_noise_maps(&[pd.view()], &[uniform.view()], &settings).unwrap();
        let own = estimate_series_noise_maps(&[pd.view()], Some(&[uniform.view()]), &settings)
            .unwrap()
            .maps;
        assert_eq!(kept.maps, own, "shapes that disagree are not combined");
    }

    #[test]
    fn a_slice_set_apart_does_not_pull_its_partners_map_down() {
        // Eight pairs of one coil array; the partner series' third slice is quieter by a
        // third (another acquisition, or a slice read badly alone): it is set apart. The
        // lower of its map would take the first series' pooled third slice a third low;
        // each keeps its own there.
        let (size, sigma) = (128, 0.02f32);
        let truth = g_map(size, sigma);
        let inside = |i: usize, j: usize| i.abs_diff(64) < 44 && j.abs_diff(64) < 44;
        let bright = move |i: usize, j: usize| if inside(i, j) { 14.0 * sigma } else { 0.0 };
        let flat = move |i: usize, j: usize| if inside(i, j) { 6.0 * sigma } else { 0.0 };
        let pd: Vec<_> = (0..8)
            .map(|k| scanned(size, 8, bright, &truth, 20 + k))
            .collect();
        let fs: Vec<_> = (0..8)
            .map(|k| {
                let level = if k == 2 { sigma } else { 1.5 * sigma };
                scanned(size, 8, flat, g_map(size, level), 30 + k)
            })
            .collect();
        let pd_views: Vec<_> = pd.iter().map(|s| s.view()).collect();
        let fs_views: Vec<_> = fs.iter().map(|s| s.view()).collect();
        let settings = NoiseMapSettings {
            coils: 8,
            ..Default::default()
        };
        let (maps_pd, maps_fs) = estimate_pair_noise_maps(&pd_views, &fs_views, &settings).unwrap();
        assert_eq!(maps_pd.apart, vec![], "every PD slice pooled");
        assert_eq!(maps_fs.apart.len(), 1, "{:?}", maps_fs.apart);
        assert_eq!(maps_fs.apart[0].0, 2);
        let core = |i: usize, j: usize| i.abs_diff(64) < 30 && j.abs_diff(64) < 30;
        for (k, map) in maps_pd.maps.iter().enumerate() {
            let err = rms_error(std::slice::from_ref(map), &truth, core);
            assert!(err < 0.06, "PD slice {k}: {err}");
        }
        let quiet = g_map(size, sigma);
        let err = rms_error(&maps_fs.maps[2..3], &quiet, core);
        assert!(err < 0.1, "the quiet slice keeps its own level: {err}");
    }

    #[test]
    fn a_map_is_as_uncertain_as_the_slices_it_pooled_allow() {
        // The two measured points, and a floor that pooling never passes.
        assert!((map_relative_error(1) - 0.0275).abs() < 0.0005);
        assert!((map_relative_error(8) - 0.020).abs() < 0.0005);
        assert!(map_relative_error(64) > 0.0187 && map_relative_error(64) < map_relative_error(8));
        assert_eq!(map_relative_error(0), map_relative_error(1));
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
            (
                NoiseMapSettings {
                    acceleration: 0,
                    ..Default::default()
                },
                "acceleration",
            ),
        ] {
            let err = estimate_noise_map(img.view(), &settings)
                .unwrap_err()
                .to_string();
            assert!(err.contains(word), "{err}");
        }
    }
}
