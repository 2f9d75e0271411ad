//! Shared by the runtime's integration tests: the Python reference tools (see
//! `reference.py`), a loaded ONNX Runtime and phantom slices.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crossdenoise_runtime::OnnxRuntime;
use crossdenoise_runtime::phantom::{PhantomConfig, PhantomGenerator};
use ndarray::Array2;

/// The Python of `.venv` (made by `scripts/python-env.sh`, which the test command runs), or
/// `$CROSSDENOISE_PYTHON`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CROSSDENOISE_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `bash scripts/python-env.sh` (scripts/test.sh does)",
        venv.display()
    );
    venv
}

/// Runs `reference.py` with `args`; panics with its stderr when it fails.
pub fn reference<S: AsRef<OsStr>>(args: &[S]) {
    // Relative to the workspace so other crates' tests can share this module.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/tests/support/reference.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "reference.py {:?} failed:\n{}",
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
}

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
