//! Shared by the runtime's integration tests: the Python reference tools (see
//! `reference.py`), a loaded ONNX Runtime and phantom slices.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use crossdenoise_runtime::OnnxRuntime;
use ndarray::Array2;

mod python;
pub use python::reference;

pub fn runtime() -> OnnxRuntime {
    OnnxRuntime::load().expect("ONNX Runtime installed by scripts/install-ort.sh")
}

/// A test model (`reference.py make-model`) in `dir`, with extra flags.
pub fn test_model(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec!["make-model".to_string(), path.display().to_string()];
    args.extend(flags.iter().map(|f| f.to_string()));
    reference(&args);
    path
}

/// Noisy phantom PDFS slices in scanner-like units (0..~2000), cropped to `h x w`.
pub fn phantom_slices(n: usize, h: usize, w: usize) -> Vec<Array2<f32>> {
    let size = h.max(w).div_ceil(16) * 16;
    let generator = PhantomGenerator::new(
        PhantomConfig {
            size,
            snr_pd: 12.0,
            snr_pdfs: 8.0,
        },
        11,
    )
    .unwrap();
    (0..n as u64)
        .map(|i| {
            generator
                .pair(i)
                .pdfs
                .slice(ndarray::s![..h, ..w])
                .mapv(|v| v * 2000.0)
        })
        .collect()
}

pub fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b.iter())
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}
