//! The training batches of the denoisers: random square crops of random slices, each turned
//! by a random quarter turn and flip, the same for both contrasts of a pair.
//!
//! Crops let a 256 x 256 or 320 x 320 data set train at the cost of small images, and the
//! eight orientations are free data for anatomy that has no preferred one at the pixel
//! level. Everything is a function of `(seed, step)`, so a resumed run sees the batches an
//! uninterrupted one would.

use std::ops::Range;

use crossdenoise_image::orientation::oriented;
use ndarray::{Array2, ArrayView2, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{PairSet, SliceNoise};

const STREAM_CROPS: u64 = 3;

/// One batch: the crops of both contrasts, each crop's slice noise (the sd the losses
/// assume, the level the network reads) and, when asked for (a clean target), the same
/// crops of the set's clean images (else empty).
#[derive(Debug, Clone)]
pub struct CropBatch {
    pub a: Vec<Array2<f32>>,
    pub b: Vec<Array2<f32>>,
    pub sigma_a: Vec<f32>,
    pub sigma_b: Vec<f32>,
    pub level_a: Vec<f32>,
    pub level_b: Vec<f32>,
    pub clean_a: Vec<Array2<f32>>,
    pub clean_b: Vec<Array2<f32>>,
}

/// Draws the batch of `step`: `batch` crops of side `crop` from `set`, whose slices' noise
/// is `noise`, and of its clean images too if `clean`; keeps the crops of `part` (this
/// process's share of a data-parallel step; `0..batch` alone).
pub fn batch(
    set: &PairSet,
    noise: &[SliceNoise],
    seed: u64,
    step: u64,
    (batch, part): (usize, Range<usize>),
    crop: usize,
    clean: bool,
) -> CropBatch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0x9E6C_63D0_676A_9A99));
    rng.set_stream(STREAM_CROPS);
    let mut out = CropBatch {
        a: Vec::with_capacity(batch),
        b: Vec::with_capacity(batch),
        sigma_a: Vec::with_capacity(batch),
        sigma_b: Vec::with_capacity(batch),
        level_a: Vec::with_capacity(batch),
        level_b: Vec::with_capacity(batch),
        clean_a: Vec::new(),
        clean_b: Vec::new(),
    };
    let (h, w) = set.dim();
    for k in 0..batch {
        let i = rng.random_range(0..set.len());
        let r = rng.random_range(0..=h - crop);
        let c = rng.random_range(0..=w - crop);
        let turns = rng.random_range(0..4);
        let flip = rng.random_bool(0.5);
        if !part.contains(&k) {
            continue;
        }
        let take = |img: &Array2<f32>| orient(img.slice(s![r..r + crop, c..c + crop]), turns, flip);
        out.a.push(take(&set.a[i]));
        out.b.push(take(&set.b[i]));
        out.sigma_a.push(noise[i].sd[0]);
        out.sigma_b.push(noise[i].sd[1]);
        out.level_a.push(noise[i].level[0]);
        out.level_b.push(noise[i].level[1]);
        if let Some((ca, cb)) = set.clean.as_ref().filter(|_| clean) {
            out.clean_a.push(take(&ca[i]));
            out.clean_b.push(take(&cb[i]));
        }
    }
    out
}

/// The smallest crop side, per pixel of the coarsest level (`2^depth`), that trains the
/// deep layers on what a whole slice shows them.
///
/// A crop much narrower than the network's reach (`blind_spot::reach`, 69 pixels at depth 3)
/// fills its deepest features mostly with zero padding, which a whole slice never does.
/// At depth 3, crops of 64 trained well and crops of 48 gave a PD prediction that kept its
/// noise on whole slices (SSIM 0.78, while the training loss fell below the 64-pixel
/// run's); at depth 4 (reach 141), crops of 64 left PD 0.1-1.7 dB under depth 3's, though
/// those runs also differed in width and precision (QUALITY.md).
pub const MIN_CROP_PER_COARSE_PIXEL: usize = 8;

/// Why `crop` is too small for a denoiser of `depth` levels trained on slices of side
/// `image`, or `None` (a crop of the whole slice shows what serving shows).
pub fn crop_warning(crop: usize, image: usize, depth: usize) -> Option<String> {
    let least = MIN_CROP_PER_COARSE_PIXEL << depth;
    (crop < least && crop < image).then(|| {
        format!(
            "{crop} is smaller than {least} for model.depth {depth}: a prediction reads {} \
             pixels to each side, so crops this small show the deepest layers mostly zero \
             padding, which whole slices never do (at depth 3, crops of 48 left the PD \
             prediction noisy on whole slices); use trainer.crop_size >= {least} or a \
             smaller model.depth",
            crate::model::blind_spot::reach(depth)
        )
    })
}

/// `img` turned by `turns` quarter turns, then mirrored left-right if `flip`.
pub fn orient(img: ArrayView2<f32>, turns: usize, flip: bool) -> Array2<f32> {
    oriented(img, turns, flip).as_standard_layout().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_smaller_than_the_reach_are_warned_of() {
        assert!(crop_warning(64, 256, 3).is_none());
        assert!(crop_warning(128, 256, 4).is_none());
        let small = crop_warning(48, 256, 3).expect("48 at depth 3");
        assert!(
            small.contains(">= 64") && small.contains("69 pixels"),
            "{small}"
        );
        let deep = crop_warning(64, 256, 4).expect("64 at depth 4");
        assert!(deep.contains(">= 128"), "{deep}");
        // Whole slices, however small, are what serving sees.
        assert!(crop_warning(32, 32, 3).is_none());
    }

    #[test]
    fn orientations_are_rotations_and_mirrors() {
        let img = Array2::from_shape_vec((2, 2), vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(orient(img.view(), 0, false), img);
        let turned = orient(img.view(), 1, false);
        assert_eq!(turned.as_slice().unwrap(), &[2.0, 4.0, 1.0, 3.0]);
        assert_eq!(orient(turned.view(), 3, false), img);
        assert_eq!(
            orient(img.view(), 0, true).as_slice().unwrap(),
            &[2.0, 1.0, 4.0, 3.0]
        );
    }

    #[test]
    fn batches_repeat_by_step_and_keep_pairs_aligned() {
        let n = 16;
        let ramp = |k: f32| Array2::from_shape_fn((n, n), |(i, j)| k + (i * n + j) as f32);
        let set = PairSet {
            names: vec!["x".into(), "y".into()],
            a: vec![ramp(0.0), ramp(1000.0)],
            b: vec![ramp(0.5), ramp(1000.5)],
            clean: None,
            findings: None,
            paired: true,
            noise_sd: None,
        };
        let sigmas = [
            SliceNoise {
                level: [0.1, 0.2],
                sd: [0.15, 0.25],
            },
            SliceNoise {
                level: [0.3, 0.4],
                sd: [0.35, 0.45],
            },
        ];
        let one = batch(&set, &sigmas, 7, 3, (4, 0..4), 8, false);
        let again = batch(&set, &sigmas, 7, 3, (4, 0..4), 8, false);
        let other = batch(&set, &sigmas, 7, 4, (4, 0..4), 8, false);
        assert_eq!(one.a, again.a);
        assert_ne!(one.a, other.a);
        for k in 0..4 {
            assert_eq!(one.a[k].dim(), (8, 8));
            // Same crop, same orientation in both contrasts.
            assert_eq!(one.b[k], one.a[k].mapv(|v| v + 0.5));
            let slice = usize::from(one.a[k][(0, 0)] >= 1000.0);
            assert_eq!([one.sigma_a[k], one.sigma_b[k]], sigmas[slice].sd);
            assert_eq!([one.level_a[k], one.level_b[k]], sigmas[slice].level);
        }
        assert!(one.clean_a.is_empty() && one.clean_b.is_empty());
        // A process's share of the step is that part of the whole batch.
        let part = batch(&set, &sigmas, 7, 3, (4, 1..3), 8, false);
        assert_eq!(part.a, one.a[1..3]);
        assert_eq!(part.sigma_b, one.sigma_b[1..3]);
        // Clean images are cropped and turned as their acquired slice is.
        let clean = PairSet {
            clean: Some((
                vec![ramp(0.25), ramp(1000.25)],
                vec![ramp(0.75), ramp(1000.75)],
            )),
            ..set
        };
        assert!(
            batch(&clean, &sigmas, 7, 3, (4, 0..4), 8, false)
                .clean_a
                .is_empty()
        );
        let with = batch(&clean, &sigmas, 7, 3, (4, 0..4), 8, true);
        assert_eq!(with.a, one.a);
        for k in 0..4 {
            assert_eq!(with.clean_a[k], one.a[k].mapv(|v| v + 0.25));
            assert_eq!(with.clean_b[k], one.a[k].mapv(|v| v + 0.75));
        }
    }
}
