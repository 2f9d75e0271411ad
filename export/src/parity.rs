//! Parity: the exported graph in ONNX Runtime against Burn's forward pass of the same path,
//! on phantom slices of two sizes and a batch of two.

use std::path::Path;

use burn::prelude::*;
use crossdenoise_image::Normalization;
use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use crossdenoise_runtime::{Denoiser, DenoiserOptions, OnnxRuntime};
use crossdenoise_train::model::{Domain, DualDomain, GuidedDenoiser, Precision};
use ndarray::{Array2, Array4, s};

pub use crate::agreement::{ParityCase, ParityReport};
use crate::error::ExportError;

/// Runs the model file at `onnx` and Burn's `translate(from, to)` on the same inputs.
pub fn check(
    model: &DualDomain,
    from: Domain,
    to: Domain,
    onnx: &Path,
    depth: usize,
) -> Result<ParityReport, ExportError> {
    let (mut session, device) = open(onnx)?;
    let mut cases = Vec::new();
    for (n, h, w) in shapes(depth) {
        let input = phantom_input(from, n, h, w);
        let ours = session.infer_raw(input.view(), None, None)?;
        let burn = model.translate(from, to, tensor(&input, &device));
        cases.push(compare(&ours, burn, [n, 1, h, w]));
    }
    Ok(ParityReport { cases })
}

/// Runs the model file at `onnx` and Burn's denoiser of contrast `to` on the same noisy
/// phantom slices (and, for a guided one, their partner slices as guides).
pub fn check_denoiser(
    model: &GuidedDenoiser,
    to: Domain,
    onnx: &Path,
    depth: usize,
) -> Result<ParityReport, ExportError> {
    let (mut session, device) = open(onnx)?;
    let other = match to {
        Domain::A => Domain::B,
        Domain::B => Domain::A,
    };
    let mut cases = Vec::new();
    for (n, h, w) in shapes(depth) {
        let input = phantom_input(to, n, h, w);
        let guide = model.is_guided().then(|| phantom_input(other, n, h, w));
        // Noise levels that differ from slice to slice, so that a graph mixing up a
        // batch's rows shows.
        let k = session.noise_levels();
        let levels = (k > 0)
            .then(|| Array2::from_shape_fn((n, k), |(i, j)| 0.04 + 0.03 * (i + 2 * j) as f32));
        let ours = session.infer_raw(
            input.view(),
            guide.as_ref().map(|g| g.view()),
            levels.as_ref().map(|l| l.view()),
        )?;
        let noise = levels.as_ref().map(|l| {
            Tensor::<2>::from_data(
                TensorData::new(l.iter().copied().collect(), [n, k]),
                &device,
            )
        });
        let (expected, prior) = model.forward_prior(
            tensor(&input, &device),
            guide.as_ref().map(|g| tensor(g, &device)),
            noise,
            Precision::F32,
        );
        // A network with a prior: its outputs side by side, as infer_raw returns them.
        let burn = match prior {
            Some(p) => Tensor::cat(vec![expected, p.spread, p.shift], 1),
            None => expected,
        };
        let channels = ours.dim().1;
        cases.push(compare(&ours, burn, [n, channels, h, w]));
    }
    Ok(ParityReport { cases })
}

/// The written graph in ONNX Runtime (no warm-up: the check is its first run), opened for
/// the noise its metadata records, and the CPU device Burn's side runs on.
fn open(onnx: &Path) -> Result<(Denoiser, Device), ExportError> {
    let runtime = OnnxRuntime::load()?;
    let options = DenoiserOptions {
        warmup: None,
        ..DenoiserOptions::default()
    };
    Ok((Denoiser::open(&runtime, onnx, &options)?, Device::flex()))
}

/// At least 64 pixels a side whatever the depth: one square size, one oblong, and a batch
/// of two.
fn shapes(depth: usize) -> [(usize, usize, usize); 3] {
    let m = 1usize << depth;
    let round = |v: usize| v.div_ceil(m).max(1) * m;
    let side = round(64.max(4 * m));
    let (tall, narrow) = (round(side * 5 / 4), round(side * 3 / 4));
    [(1, side, side), (1, tall, narrow), (2, side, side)]
}

fn tensor(a: &Array4<f32>, device: &Device) -> Tensor<4> {
    let (n, c, h, w) = a.dim();
    Tensor::<4>::from_data(
        TensorData::new(a.iter().copied().collect::<Vec<f32>>(), [n, c, h, w]),
        device,
    )
}

fn compare(ours: &Array4<f32>, burn: Tensor<4>, shape: [usize; 4]) -> ParityCase {
    let burn: Vec<f32> = burn.into_data().try_to_vec::<f32>().expect("float output");
    let max_abs_error = ours
        .iter()
        .zip(&burn)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    let max_abs_output = burn.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    ParityCase {
        shape,
        max_abs_error: if max_abs_error.is_nan() {
            f32::INFINITY
        } else {
            max_abs_error
        },
        max_abs_output,
    }
}

/// Normalised noisy phantom slices of the `from` contrast, as the runtime feeds them
/// (the same slices whatever the contrast, so a pair of calls gives pairs).
fn phantom_input(from: Domain, n: usize, h: usize, w: usize) -> Array4<f32> {
    let size = h.max(w).div_ceil(16) * 16;
    let generator = PhantomGenerator::new(
        PhantomConfig {
            size,
            ..PhantomConfig::default()
        },
        2024,
    )
    .expect("valid phantom config");
    let norm = Normalization::default();
    let mut out = Array4::zeros((n, 1, h, w));
    for i in 0..n {
        let pair = generator.pair(i as u64);
        let image = match from {
            Domain::A => pair.pd,
            Domain::B => pair.pdfs,
        };
        let (normed, _) = norm
            .normalize(image.slice(s![..h, ..w]))
            .expect("phantom slices are finite");
        out.slice_mut(s![i, 0, .., ..]).assign(&normed);
    }
    out
}
