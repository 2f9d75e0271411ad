//! Training and validation pairs, normalised once at load, and the noise added to them.
//!
//! Each acquired slice is normalised by its own scale (the runtime's `Normalization`); a
//! phantom's clean image is scaled by its acquired image's scale so the two stay comparable.
//! Shuffling and training noise are derived from `(seed, epoch)` and `(seed, step)` rather
//! than from a running generator, so a resumed run sees exactly the batches and noise an
//! uninterrupted one would.

use std::path::Path;

use burn::prelude::*;
use crossdenoise_image::coils;
use crossdenoise_image::io::PairedFolder;
use crossdenoise_image::noise_map::PhaseEncoding;
use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use crossdenoise_image::{Normalization, Padding};
use ndarray::{Array2, ArrayView2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::config::{Config, DataSource, NoiseConfig, NoiseKind};

pub mod fastmri;
mod sets;

pub use sets::{CleanPairs, Data, DataError, PairSet, SliceNoise};

const STREAM_SHUFFLE: u64 = 1;
const STREAM_NOISE: u64 = 2;

impl Data {
    /// The config's sets; a coil array's slices (phantoms with `data.coils`, fastMRI's
    /// multi-coil files) divided by their noise maps, as the runtime serves them.
    pub fn load(config: &Config) -> Result<Self, DataError> {
        let mut data = Self::load_sets(config)?;
        if data.noise_coils > 1 {
            data.train
                .even_noise(data.noise_coils, data.phase_encoding)?;
            data.val.even_noise(data.noise_coils, data.phase_encoding)?;
        }
        Ok(data)
    }

    fn load_sets(config: &Config) -> Result<Self, DataError> {
        let d = &config.data;
        let multiple = 1usize << config.model.depth;
        match d.source {
            DataSource::Synthetic => {
                let cfg = PhantomConfig {
                    size: d.image_size,
                    snr_pd: d.snr_a,
                    snr_pdfs: d.snr_b,
                };
                let mut g = PhantomGenerator::new(cfg, config.seed)?;
                if let Some(coils) = &d.coils {
                    g = g.with_coils(coils.array())?;
                }
                let snr = |i: usize| {
                    [
                        slice_snr(d.snr_range_a, d.snr_a, config.seed, i, 0),
                        slice_snr(d.snr_range_b, d.snr_b, config.seed, i, 1),
                    ]
                };
                let range = |from: usize, n: usize| phantom_set(&g, from..from + n, snr);
                Ok(Data {
                    train: range(0, d.train_pairs)?,
                    val: range(d.train_pairs, d.val_pairs)?,
                    noise_coils: d.noise_coils(),
                    phase_encoding: coils::PHASE_ENCODING,
                })
            }
            DataSource::Folder => {
                let root = d
                    .path
                    .as_deref()
                    .expect("validated: folder data has a path");
                let [a, b] = &d.domains;
                let all = folder_set(&PairedFolder::open_with(root, a, b)?, multiple)?;
                match &d.val_path {
                    Some(v) => Ok(Data {
                        train: all,
                        val: folder_set(&PairedFolder::open_with(v, a, b)?, multiple)?,
                        noise_coils: 1,
                        phase_encoding: PhaseEncoding::Unknown,
                    }),
                    None => split_tail(all, d.val_pairs, root),
                }
            }
            DataSource::Fastmri => fastmri::Plan::new(config)?.load(multiple),
        }
    }
}

const STREAM_SNR: u64 = 4;

/// The SNR of phantom slice `index` of contrast `which` (0 = a, 1 = b): `fixed`, or drawn
/// log-uniformly from `range` by the seed and the slice, so a resumed run and the same
/// seed see the same noise levels.
pub fn slice_snr(range: Option<[f32; 2]>, fixed: f32, seed: u64, index: usize, which: u64) -> f32 {
    let Some([low, high]) = range else {
        return fixed;
    };
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(STREAM_SNR + 8 * which);
    let u: f32 = rng.random();
    (low.ln() + u * (high.ln() - low.ln())).exp()
}

fn phantom_set(
    g: &PhantomGenerator,
    range: std::ops::Range<usize>,
    snr: impl Fn(usize) -> [f32; 2],
) -> Result<PairSet, DataError> {
    let norm = Normalization::default();
    let mut set = PairSet {
        names: Vec::new(),
        a: Vec::new(),
        b: Vec::new(),
        clean: Some((Vec::new(), Vec::new())),
        findings: Some(Vec::new()),
        paired: true,
        noise_sd: None,
    };
    for i in range {
        let [snr_a, snr_b] = snr(i);
        let p = g.pair_at_snr(i as u64, snr_a, snr_b);
        set.findings
            .as_mut()
            .expect("phantoms have findings")
            .push(p.findings);
        let (a, sa) = norm.normalize(p.pd.view())?;
        let (b, sb) = norm.normalize(p.pdfs.view())?;
        let (ca, cb) = set.clean.as_mut().expect("phantoms have clean images");
        let mut clean_a = p.clean_pd;
        let mut clean_b = p.clean_pdfs;
        norm.apply_in_place(clean_a.view_mut(), sa);
        norm.apply_in_place(clean_b.view_mut(), sb);
        ca.push(clean_a);
        cb.push(clean_b);
        set.names.push(format!("phantom_{i:05}"));
        set.a.push(a);
        set.b.push(b);
    }
    Ok(set)
}

fn folder_set(folder: &PairedFolder, multiple: usize) -> Result<PairSet, DataError> {
    let norm = Normalization::default();
    let mut set = PairSet::acquired();
    let mut size = None;
    for i in 0..folder.len() {
        let (a, b) = folder.load(i)?;
        let path = &folder.pairs[i].a;
        match size {
            None => size = Some(a.dim()),
            Some(s) if s != a.dim() => {
                return Err(DataError::Invalid {
                    path: path.clone(),
                    reason: format!(
                        "size {:?} differs from the first pair's {s:?}; all training slices must share one size",
                        a.dim()
                    ),
                });
            }
            Some(_) => {}
        }
        let prep = |img: ArrayView2<f32>| -> Result<Array2<f32>, DataError> {
            let (n, _) = norm.normalize(img)?;
            let pad = Padding::to_multiple(n.nrows(), n.ncols(), multiple)?;
            Ok(pad.pad(n.view()))
        };
        set.a.push(prep(a.view())?);
        set.b.push(prep(b.view())?);
        set.names.push(folder.pairs[i].name.clone());
    }
    Ok(set)
}

fn split_tail(mut all: PairSet, val_pairs: usize, root: &Path) -> Result<Data, DataError> {
    if all.len() <= val_pairs {
        return Err(DataError::Invalid {
            path: root.into(),
            reason: format!(
                "{} pairs cannot hold out data.val_pairs = {val_pairs} for validation and still train",
                all.len()
            ),
        });
    }
    let at = all.len() - val_pairs;
    let val = PairSet {
        names: all.names.split_off(at),
        a: all.a.split_off(at),
        b: all.b.split_off(at),
        clean: None,
        findings: None,
        paired: true,
        noise_sd: None,
    };
    Ok(Data {
        train: all,
        val,
        noise_coils: 1,
        phase_encoding: PhaseEncoding::Unknown,
    })
}

/// The order of training pairs in `epoch` (a permutation of `0..n`).
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(STREAM_SHUFFLE);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// Stacks images into a `[N, 1, H, W]` tensor.
pub fn stack(images: &[&Array2<f32>], device: &Device) -> Tensor<4> {
    let (h, w) = images[0].dim();
    let mut data = Vec::with_capacity(images.len() * h * w);
    for img in images {
        data.extend(img.iter().copied());
    }
    Tensor::from_data(TensorData::new(data, [images.len(), 1, h, w]), device)
}

/// Adds the training noise of `step` to a batch of domain `which` (0 = a, 1 = b).
pub fn noisy(
    images: &[&Array2<f32>],
    noise: &NoiseConfig,
    seed: u64,
    step: u64,
    which: u64,
) -> Vec<Array2<f32>> {
    let sigma = if which == 0 {
        noise.sigma_a
    } else {
        noise.sigma_b
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.set_stream(STREAM_NOISE * 2 + which);
    images
        .iter()
        .map(|img| {
            img.mapv(|x| {
                let n1: f32 = rng.sample(StandardNormal);
                match noise.kind {
                    NoiseKind::Gaussian => x + sigma * n1,
                    NoiseKind::Rician => {
                        let n2: f32 = rng.sample(StandardNormal);
                        ((x + sigma * n1).powi(2) + (sigma * n2).powi(2)).sqrt()
                    }
                }
            })
        })
        .collect()
}

/// Converts a `[N, 1, H, W]` tensor back to slices.
pub fn unstack(t: Tensor<4>) -> Vec<Array2<f32>> {
    let [n, _, h, w] = t.dims();
    let data = t.into_data().try_to_vec::<f32>().expect("float tensor");
    data.chunks_exact(h * w)
        .take(n)
        .map(|c| Array2::from_shape_vec((h, w), c.to_vec()).expect("shape"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_snrs_spread_over_their_range_and_repeat() {
        let range = Some([8.0f32, 25.0]);
        let snrs: Vec<f32> = (0..200).map(|i| slice_snr(range, 20.0, 42, i, 0)).collect();
        assert!(snrs.iter().all(|s| (8.0..=25.0).contains(s)));
        let below_14 = snrs.iter().filter(|&&s| s < 14.14).count();
        // Log-uniform: half below the geometric mean sqrt(8 * 25).
        assert!((70..130).contains(&below_14), "{below_14}");
        assert_eq!(snrs[7], slice_snr(range, 20.0, 42, 7, 0));
        assert_ne!(
            snrs[7],
            slice_snr(range, 20.0, 42, 7, 1),
            "each contrast its own"
        );
        assert_eq!(slice_snr(None, 20.0, 42, 7, 0), 20.0);
    }

    #[test]
    fn phantoms_drawn_from_a_range_carry_their_own_noise_levels() {
        let mut config: Config = serde_json::from_str(
            r#"{"name": "r", "data": {"image_size": 64, "train_pairs": 6, "val_pairs": 1,
                "snr_range_a": [5, 40], "snr_range_b": [12, 12]}}"#,
        )
        .unwrap();
        config.model.depth = 2;
        let data = Data::load(&config).unwrap();
        let sigma = |img: &Array2<f32>| crossdenoise_image::noise::estimate_sigma(img.view());
        let a: Vec<f32> = data.train.a.iter().map(sigma).collect();
        let b: Vec<f32> = data.train.b.iter().map(sigma).collect();
        let spread = |v: &[f32]| {
            v.iter().copied().fold(f32::MIN, f32::max) / v.iter().copied().fold(f32::MAX, f32::min)
        };
        // PDFS at one SNR varies only with each slice's normalisation.
        assert!(spread(&a) > 2.0 * spread(&b), "PD {a:?}, PDFS {b:?}");
    }

    /// A coil array's slices are served at their noise map's sd, so the losses must see that
    /// sd: it matches the air's second moment (`2 L sigma^2` for L coils), which the
    /// one-sigma estimate of a Rician magnitude does not. A single-coil slice has one sd,
    /// the level its network reads.
    #[test]
    fn a_coil_arrays_slices_carry_their_noise_maps_sd() {
        let config: Config = serde_json::from_str(
            r#"{"name": "c", "data": {"image_size": 128, "train_pairs": 3, "val_pairs": 1,
                "coils": {"count": 8, "acceleration": 2}}}"#,
        )
        .unwrap();
        let data = Data::load(&config).unwrap();
        assert_eq!(data.noise_coils, 8);
        let (clean_a, clean_b) = data.train.clean.as_ref().unwrap();
        for (noise, i) in data.train.noise().iter().zip(0..) {
            for (d, (slice, clean)) in [
                (&data.train.a[i], &clean_a[i]),
                (&data.train.b[i], &clean_b[i]),
            ]
            .into_iter()
            .enumerate()
            {
                let air: Vec<f32> = slice
                    .iter()
                    .zip(clean.iter())
                    .filter(|(_, c)| **c == 0.0)
                    .map(|(m, _)| m * m)
                    .collect();
                let truth = (air.iter().sum::<f32>() / air.len() as f32 / 16.0).sqrt();
                assert!(
                    (noise.sd[d] / truth - 1.0).abs() < 0.05,
                    "slice {i} contrast {d}: sd {} against the air's {truth}",
                    noise.sd[d]
                );
            }
        }
        let mut single = config.clone();
        single.data.coils = None;
        let data = Data::load(&single).unwrap();
        assert!(data.train.noise().iter().all(|n| n.sd == n.level));
    }
}
