//! Parity: the exported graph in ONNX Runtime against Burn's forward pass of the same path,
//! on phantom slices of two sizes and a batch of two.

use std::fmt;
use std::path::Path;

use burn::prelude::*;
use crossdenoise_runtime::phantom::{PhantomConfig, PhantomGenerator};
use crossdenoise_runtime::{Denoiser, DenoiserOptions, Normalization, OnnxRuntime};
use crossdenoise_train::model::{Domain, DualDomain};
use ndarray::{Array4, s};

use crate::ExportError;

/// One compared input.
#[derive(Debug, Clone, PartialEq)]
pub struct ParityCase {
    /// `[N, 1, H, W]`.
    pub shape: [usize; 4],
    pub max_abs_error: f32,
    /// The largest output magnitude, to read the error against.
    pub max_abs_output: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParityReport {
    pub cases: Vec<ParityCase>,
}

impl ParityReport {
    pub fn max_abs_error(&self) -> f32 {
        self.cases.iter().fold(0.0, |m, c| m.max(c.max_abs_error))
    }
}

impl fmt::Display for ParityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cases {
            writeln!(
                f,
                "  input {:?}: max abs error {:.2e} (outputs up to {:.3})",
                c.shape, c.max_abs_error, c.max_abs_output
            )?;
        }
        Ok(())
    }
}

/// Runs the model file at `onnx` and Burn's `translate(from, to)` on the same inputs.
pub fn check(
    model: &DualDomain,
    from: Domain,
    to: Domain,
    onnx: &Path,
    depth: usize,
) -> Result<ParityReport, ExportError> {
    let m = 1usize << depth;
    let runtime = OnnxRuntime::load()?;
    let options = DenoiserOptions {
        warmup: None,
        ..DenoiserOptions::default()
    };
    let mut session = Denoiser::open(&runtime, onnx, &options)?;
    let device = Device::flex();
    let mut cases = Vec::new();
    // At least 64 pixels a side whatever the depth, one square and one oblong size.
    let round = |v: usize| v.div_ceil(m).max(1) * m;
    let side = round(64.max(4 * m));
    let (tall, narrow) = (round(side * 5 / 4), round(side * 3 / 4));
    for (n, h, w) in [(1, side, side), (1, tall, narrow), (2, side, side)] {
        let input = phantom_input(from, n, h, w);
        let ours = session.infer_raw(input.view())?;
        let x = Tensor::<4>::from_data(
            TensorData::new(input.iter().copied().collect::<Vec<f32>>(), [n, 1, h, w]),
            &device,
        );
        let burn: Vec<f32> = model
            .translate(from, to, x)
            .into_data()
            .try_to_vec::<f32>()
            .expect("float output");
        let max_abs_error = ours
            .iter()
            .zip(&burn)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let max_abs_output = burn.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        cases.push(ParityCase {
            shape: [n, 1, h, w],
            max_abs_error: if max_abs_error.is_nan() {
                f32::INFINITY
            } else {
                max_abs_error
            },
            max_abs_output,
        });
    }
    Ok(ParityReport { cases })
}

/// Normalised noisy phantom slices of the `from` contrast, as the runtime feeds them.
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
