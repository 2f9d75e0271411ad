//! What the air around the anatomy says about how a slice was made, so that a scan served
//! under the wrong noise model is told, not silently denoised badly.
//!
//! Nothing in a DICOM or MRD image states whether its magnitude is one coil's (or a
//! sensitivity-weighted combination: Rician) or a root-sum-of-squares of L coils
//! (noncentral chi with 2L degrees of freedom), nor whether the scanner filtered or
//! interpolated it. The air shows both. Where the clean signal is zero, a magnitude of L
//! coils is a central chi variable, whose mean squared over its mean square,
//! `2 G(L + 1/2)^2 / (G(L)^2 2L)`, depends on L alone (one coil 0.785, two 0.884, eight
//! 0.969) and not on sigma; and independent noise leaves neighbouring air pixels
//! uncorrelated, which a filter or an interpolation does not. A blind-spot network assumes
//! that independence (it predicts a pixel from its neighbours, which then carry its noise),
//! and the bias correction assumes the coil count: a mismatch in either costs quality
//! without any error, so the runtime's callers report it.

use std::fmt;

use ndarray::ArrayView2;

use crate::magnitude_bias::noncentral_chi_mean;

/// Side of the square blocks the air is read in, in pixels.
const BLOCK: usize = 8;
/// The darkest share of the blocks is taken as the air.
const DARKEST: f32 = 0.1;
/// Fewer air blocks than this say nothing.
const MIN_BLOCKS: usize = 16;
/// The air blocks' means may differ by this factor at most (the g-factor's range in the
/// air is well under it); more says the darkest blocks are tissue, not air.
const MAX_SPREAD: f32 = 2.0;
/// A block with more than this share of exact zeros is masked, not air.
const MAX_ZERO_SHARE: f32 = 0.25;
/// Neighbouring air pixels correlated above this: the slice was filtered or interpolated.
/// Independent noise reads within about 0.03 of zero on a 256 x 256 slice.
pub const CORRELATED: f32 = 0.2;
/// The largest coil count read (the ratio is within 0.8% of 1 beyond it): a higher one is
/// tissue well above its noise, not air.
const MAX_COILS: u32 = 32;

/// What the air of one slice reads as.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AirReading {
    /// The air's mean squared over its mean square (the median over its blocks).
    pub ratio: f32,
    /// The coil count whose central chi has the nearest ratio.
    pub coils: u32,
    /// The correlation of horizontally and vertically neighbouring air pixels.
    pub correlation: f32,
    /// How many blocks of [`BLOCK`] x [`BLOCK`] pixels were read as air.
    pub blocks: usize,
}

/// The mean squared over the mean square of a central chi magnitude of `coils` coils.
pub fn chi_ratio(coils: u32) -> f32 {
    let mean = noncentral_chi_mean(0.0, coils);
    (mean * mean / (2.0 * f64::from(coils.max(1)))) as f32
}

/// Reads the air of `image`; `None` where it has too little air to read (a tight crop, a
/// masked background, a slice smaller than 16 blocks of air), or none that is homogeneous
/// (the darkest blocks of a crop inside the anatomy differ more).
pub fn read_air(image: ArrayView2<f32>) -> Option<AirReading> {
    read(image).map(|(reading, _)| reading)
}

/// The noise sigma of `image`'s air, as a magnitude of `coils` coils: the second moment of
/// the blocks of [`BLOCK`] x [`BLOCK`] pixels whose mean is under a third of a sigma over
/// the air's floor, read until that sigma holds, from the darkest tenth's level. `None`
/// where [`read_air`] reads no air (a crop inside the anatomy, a masked background).
/// Unlike a sigma read from the tissue's details, it does not depend on how many blocks
/// lie a few sigmas above the floor, whose spread is under sigma: a fat-suppressed slice
/// of 8 coils read that way came 20% low.
pub fn air_sigma(image: ArrayView2<f32>, coils: u32) -> Option<AirSigma> {
    let (reading, mut blocks) = read(image)?;
    let floor = noncentral_chi_mean(0.0, coils) as f32;
    let darkest = &mut blocks[..reading.blocks];
    let mid = darkest.len() / 2;
    let mut sigma = darkest
        .select_nth_unstable_by(mid, |a, b| a.mean.total_cmp(&b.mean))
        .1
        .mean
        / floor;
    let mut pixels = 0;
    for _ in 0..AIR_SIGMA_PASSES {
        let below = (floor + AIR_SIGMA_ABOVE_FLOOR) * sigma;
        let (sum, n) = blocks
            .iter()
            .filter(|b| b.mean < below)
            .fold((0.0f64, 0usize), |(s, n), b| {
                (s + f64::from(b.square), n + 1)
            });
        if n == 0 {
            break;
        }
        sigma = ((sum / n as f64) / (2.0 * f64::from(coils.max(1)))).sqrt() as f32;
        pixels = n * BLOCK * BLOCK;
    }
    Some(AirSigma { sigma, pixels })
}

/// What [`air_sigma`] reads: the sigma, and how many pixels of air it rests on (how far it
/// is to be preferred to a sigma read elsewhere).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AirSigma {
    pub sigma: f32,
    pub pixels: usize,
}

/// One block of [`BLOCK`] x [`BLOCK`] pixels: its mean, its mean square, the one squared
/// over the other, and where it is.
#[derive(Debug, Clone, Copy)]
struct AirBlock {
    mean: f32,
    square: f32,
    ratio: f32,
    by: usize,
    bx: usize,
}

/// What [`read_air`] reads, and the slice's blocks with the air it read (the darkest
/// `blocks` of them) first.
fn read(image: ArrayView2<f32>) -> Option<(AirReading, Vec<AirBlock>)> {
    let (h, w) = image.dim();
    let (bh, bw) = (h / BLOCK, w / BLOCK);
    let mut blocks: Vec<AirBlock> = Vec::with_capacity(bh * bw);
    let mut masked = 0;
    for by in 0..bh {
        for bx in 0..bw {
            let block = image.slice(ndarray::s![
                by * BLOCK..(by + 1) * BLOCK,
                bx * BLOCK..(bx + 1) * BLOCK
            ]);
            if block.iter().any(|v| !v.is_finite()) {
                continue;
            }
            let zeros = block.iter().filter(|v| **v == 0.0).count();
            if zeros as f32 > MAX_ZERO_SHARE * (BLOCK * BLOCK) as f32 {
                masked += 1;
                continue;
            }
            let n = (BLOCK * BLOCK) as f64;
            let mean = block.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
            let square = block.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / n;
            if square > 0.0 {
                blocks.push(AirBlock {
                    mean: mean as f32,
                    square: square as f32,
                    ratio: (mean * mean / square) as f32,
                    by,
                    bx,
                });
            }
        }
    }
    let count = ((bh * bw) as f32 * DARKEST).round() as usize;
    // A background set to zero leaves no air to read, only tissue.
    if count < MIN_BLOCKS || blocks.len() < count || masked >= count {
        return None;
    }
    blocks.select_nth_unstable_by(count - 1, |a, b| a.mean.total_cmp(&b.mean));
    let air = &blocks[..count];
    let (low, high) = air.iter().fold((f32::INFINITY, 0.0f32), |(l, h), b| {
        (l.min(b.mean), h.max(b.mean))
    });
    if !(low > 0.0 && high <= MAX_SPREAD * low) {
        return None;
    }
    let mut ratios: Vec<f32> = air.iter().map(|b| b.ratio).collect();
    let mid = ratios.len() / 2;
    let ratio = *ratios.select_nth_unstable_by(mid, f32::total_cmp).1;
    let correlation = neighbour_correlation(image, air);
    let coils = (1..=MAX_COILS)
        .min_by(|a, b| {
            (chi_ratio(*a) - ratio)
                .abs()
                .total_cmp(&(chi_ratio(*b) - ratio).abs())
        })
        .unwrap_or(1);
    if coils == MAX_COILS {
        return None;
    }
    let reading = AirReading {
        ratio,
        coils,
        correlation,
        blocks: count,
    };
    Some((reading, blocks))
}

/// Passes of [`air_sigma`] from the darkest blocks' level.
const AIR_SIGMA_PASSES: usize = 4;
/// A block counts as air for [`air_sigma`] under this many sigmas above the air's floor:
/// the mean of 64 air pixels spreads by a tenth of a sigma (8 coils), so all of the air is
/// kept; at half a sigma, the blocks on the edge of tissue 3 sigmas above black (mean 4.9)
/// were kept too, raised the sigma, and with it the threshold (16% high with a tenth of
/// the slice air).
const AIR_SIGMA_ABOVE_FLOOR: f32 = 0.3;

/// The correlation of neighbouring pixels within the air blocks, each block's own mean
/// removed (so that the g-factor's slow change does not count).
fn neighbour_correlation(image: ArrayView2<f32>, air: &[AirBlock]) -> f32 {
    let (mut products, mut squares) = (0.0f64, 0.0f64);
    for &AirBlock { mean, by, bx, .. } in air {
        let d = |y: usize, x: usize| f64::from(image[[by * BLOCK + y, bx * BLOCK + x]] - mean);
        for y in 0..BLOCK {
            for x in 0..BLOCK {
                let v = d(y, x);
                squares += v * v;
                if x + 1 < BLOCK {
                    products += v * d(y, x + 1) * BLOCK as f64 / (BLOCK - 1) as f64 / 2.0;
                }
                if y + 1 < BLOCK {
                    products += v * d(y + 1, x) * BLOCK as f64 / (BLOCK - 1) as f64 / 2.0;
                }
            }
        }
    }
    if squares > 0.0 {
        (products / squares) as f32
    } else {
        0.0
    }
}

/// The air reads more coils than a slice is served as by more than this factor only where
/// it has more: correlated or unwhitened channels read fewer, never more, and air that a
/// filter smoothed is told by its correlation first. Uncorrelated air of 8, 12 and 16 coils
/// reads within 2 of its count on slices of 128 and 256 (and the phantoms' at neighbour
/// correlations up to 0.45), while a 16-coil series served as 8 had its noise maps 11-18%
/// low and as 12 split into two "acquisitions", 14% rms off, untold before.
pub const MORE_COILS_THAN_SERVED: f32 = 1.25;

/// Why a slice's air disagrees with how it is served.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AirMismatch {
    /// The air reads as `apparent` coils, the slice is served as `served`.
    Coils {
        apparent: u32,
        served: u32,
        ratio: f32,
    },
    /// Neighbouring air pixels are correlated: the scanner filtered or interpolated it.
    Correlated { correlation: f32 },
}

impl AirReading {
    /// What disagrees with serving the slice as a magnitude of `served` coils, if anything.
    /// Only a clear disagreement counts: one coil against several (their ratios are far
    /// apart), fewer coils than served by more than half (unwhitened channels read as fewer
    /// coils than they are), or more than served by over [`MORE_COILS_THAN_SERVED`].
    pub fn mismatch(&self, served: u32) -> Option<AirMismatch> {
        if self.correlation > CORRELATED {
            return Some(AirMismatch::Correlated {
                correlation: self.correlation,
            });
        }
        let one_or_more = (chi_ratio(1) + chi_ratio(2)) / 2.0;
        let apparent = if self.ratio < one_or_more {
            1
        } else {
            self.coils.max(2)
        };
        let (a, s) = (apparent as f32, served.max(1) as f32);
        let disagree =
            (apparent == 1) != (served <= 1) || a > MORE_COILS_THAN_SERVED * s || s > 2.0 * a;
        disagree.then_some(AirMismatch::Coils {
            apparent,
            served: served.max(1),
            ratio: self.ratio,
        })
    }
}

impl fmt::Display for AirMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AirMismatch::Coils {
                apparent,
                served,
                ratio,
            } => {
                let what = |l: u32| match l {
                    1 => "one coil (Rician)".to_string(),
                    l => format!("a root-sum-of-squares of about {l} coils"),
                };
                write!(
                    f,
                    "the air reads as {} (mean^2 / mean square {ratio:.3}; one coil {:.3}, \
                     8 coils {:.3}) but is served as {}: the bias correction and the \
                     model's noise floor are then wrong; serve it with ",
                    what(apparent),
                    chi_ratio(1),
                    chi_ratio(8),
                    what(served)
                )?;
                match apparent {
                    1 => write!(f, "--noise slice (or --noise map --coils 1)"),
                    l => write!(
                        f,
                        "--noise map --coils {l} and a model trained on such data"
                    ),
                }
            }
            AirMismatch::Correlated { correlation } => write!(
                f,
                "neighbouring pixels of the air are correlated ({correlation:.2}; independent \
                 noise reads near 0): the scanner filtered or interpolated this slice, and a \
                 blind-spot model keeps correlated noise as if it were anatomy; export the \
                 series without filtering or interpolation if the scanner allows"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coils::CoilArray;
    use crate::phantom::{PhantomConfig, PhantomGenerator};
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    /// A 128 x 128 slice: a bright disc of radius 40 in air, `coils` coils of sigma 1.
    fn slice(coils: u32, seed: u64) -> Array2<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((128, 128), |(y, x)| {
            let (dy, dx) = (y as f32 - 64.0, x as f32 - 64.0);
            let a = if dy * dy + dx * dx < 1600.0 {
                20.0
            } else {
                0.0
            };
            let mut s = 0.0f32;
            for c in 0..coils {
                let re = if c == 0 { a } else { 0.0 } + rng.sample::<f32, _>(StandardNormal);
                let im: f32 = rng.sample(StandardNormal);
                s += re * re + im * im;
            }
            s.sqrt()
        })
    }

    #[test]
    fn the_ratio_of_each_coil_count() {
        assert!((chi_ratio(1) - std::f32::consts::PI / 4.0).abs() < 1e-5);
        assert!((chi_ratio(2) - 0.8836).abs() < 1e-3);
        assert!((chi_ratio(8) - 0.9693).abs() < 1e-3);
        // Rising towards 1 with the coil count.
        assert!((1..20).all(|l| chi_ratio(l) < chi_ratio(l + 1)));
    }

    #[test]
    fn the_air_tells_one_coil_from_eight() {
        for seed in 0..3 {
            let one = read_air(slice(1, seed).view()).unwrap();
            assert_eq!(one.coils, 1, "{one:?}");
            assert!(one.correlation.abs() < 0.06, "{one:?}");
            assert_eq!(one.mismatch(1), None);
            let eight = read_air(slice(8, seed).view()).unwrap();
            assert!((6..=11).contains(&eight.coils), "{eight:?}");
            assert_eq!(eight.mismatch(8), None);
            // Served the other way round, each is told.
            assert!(matches!(
                one.mismatch(8),
                Some(AirMismatch::Coils { apparent: 1, .. })
            ));
            let told = eight.mismatch(1).unwrap();
            assert!(matches!(told, AirMismatch::Coils { served: 1, .. }));
            assert!(told.to_string().contains("--noise map --coils"), "{told}");
        }
    }

    #[test]
    fn air_of_more_coils_than_served_is_told() {
        for seed in 0..3 {
            let sixteen = read_air(slice(16, seed).view()).unwrap();
            assert!((14..=18).contains(&sixteen.coils), "{sixteen:?}");
            assert_eq!(sixteen.mismatch(16), None);
            assert_eq!(sixteen.mismatch(15), None, "{sixteen:?}");
            for served in [8, 12] {
                let told = sixteen.mismatch(served).unwrap();
                assert!(
                    matches!(told, AirMismatch::Coils { served: s, .. } if s == served),
                    "{told:?}"
                );
                let fix = format!("--noise map --coils {}", sixteen.coils);
                assert!(told.to_string().contains(&fix), "{told}");
            }
            // Fewer than served stays quiet down to half: unwhitened channels read fewer.
            let eight = read_air(slice(8, seed).view()).unwrap();
            assert_eq!(eight.mismatch(12), None, "{eight:?}");
            assert!(eight.mismatch(20).is_some(), "{eight:?}");
        }
    }

    #[test]
    fn the_phantoms_air_reads_as_their_coils() {
        let config = PhantomConfig {
            size: 256,
            snr_pd: 10.0,
            snr_pdfs: 6.0,
        };
        let array = CoilArray {
            coils: 8,
            correlation: 0.15,
            acceleration: 2,
            ..CoilArray::default()
        };
        for (coils, generator) in [
            (1, PhantomGenerator::new(config, 3).unwrap()),
            (
                8,
                PhantomGenerator::new(config, 3)
                    .unwrap()
                    .with_coils(array)
                    .unwrap(),
            ),
        ] {
            let pair = generator.pair(1);
            for image in [pair.pd, pair.pdfs] {
                let reading = read_air(image.view()).unwrap();
                assert!(
                    reading.coils.abs_diff(coils) <= coils / 4,
                    "{coils}: {reading:?}"
                );
                assert_eq!(reading.mismatch(coils), None, "{reading:?}");
            }
        }
    }

    #[test]
    fn a_filtered_slice_is_told_by_its_correlated_air() {
        let s = slice(1, 7);
        // A 3 x 3 box filter, as a scanner's smoothing.
        let filtered = Array2::from_shape_fn(s.dim(), |(y, x)| {
            let mut sum = 0.0;
            for dy in 0..3 {
                for dx in 0..3 {
                    sum += s[[
                        (y + dy).saturating_sub(1).min(127),
                        (x + dx).saturating_sub(1).min(127),
                    ]];
                }
            }
            sum / 9.0
        });
        let reading = read_air(filtered.view()).unwrap();
        assert!(reading.correlation > CORRELATED, "{reading:?}");
        let told = reading.mismatch(1).unwrap();
        assert!(matches!(told, AirMismatch::Correlated { .. }));
        assert!(told.to_string().contains("filtered or interpolated"));
    }

    #[test]
    fn the_airs_sigma_is_the_coils_sigma() {
        for seed in 0..3 {
            for coils in [1, 8] {
                let read = air_sigma(slice(coils, seed).view(), coils).unwrap();
                assert!((read.sigma - 1.0).abs() < 0.03, "{coils} coils: {read:?}");
                assert!(read.pixels > 0, "{coils} coils: {read:?}");
            }
        }
        // Read as 8 coils, one coil's air is nothing like it.
        let one = air_sigma(slice(1, 0).view(), 8).unwrap().sigma;
        assert!(one < 0.5, "{one}");
        let ramp = Array2::from_shape_fn((128, 128), |(y, x)| 10.0 + (y + x) as f32);
        assert_eq!(air_sigma(ramp.view(), 8), None);
    }

    #[test]
    fn no_air_or_a_masked_background_reads_nothing() {
        // A crop inside the knee phantom's PD: its darkest blocks are tissue of several
        // levels, not air.
        let generator = PhantomGenerator::new(
            PhantomConfig {
                size: 256,
                ..PhantomConfig::default()
            },
            11,
        )
        .unwrap();
        let pd = generator.pair(0).pd;
        assert!(read_air(pd.view()).is_some());
        assert_eq!(
            read_air(pd.slice(ndarray::s![64..192, 64..192]).view()),
            None
        );
        // Tissue of many levels and no air: its darkest blocks are not alike.
        let ramp = Array2::from_shape_fn((128, 128), |(y, x)| 10.0 + (y + x) as f32);
        assert_eq!(read_air(ramp.view()), None);
        let mut masked = slice(1, 3);
        masked.mapv_inplace(|v| if v < 10.0 { 0.0 } else { v });
        assert_eq!(read_air(masked.view()), None);
        assert_eq!(read_air(Array2::<f32>::zeros((16, 16)).view()), None);
    }
}
