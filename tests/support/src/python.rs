//! The tests' independent Python references: finds the `.venv` Python (made by
//! `scripts/python-env.sh`, which the test command runs) and runs `reference.py` with it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the nearest folder above this crate with a Cargo.lock.
pub fn workspace_root() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    while !dir.join("Cargo.lock").exists() {
        assert!(
            dir.pop(),
            "no Cargo.lock above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    dir
}

/// `$CROSSDENOISE_PYTHON`, else the workspace's `.venv` Python.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CROSSDENOISE_PYTHON") {
        return p.into();
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run `bash scripts/python-env.sh` (scripts/test.sh does)",
        venv.display()
    );
    venv
}

/// Runs `reference.py` with `args` and returns its stdout; panics with its stderr when it
/// fails.
pub fn reference<S: AsRef<OsStr>>(args: &[S]) -> String {
    let script = workspace_root().join("tests/support/reference.py");
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}
