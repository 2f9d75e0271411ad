//! The tests' independent Python references: finds the `.venv` Python (made by
//! `scripts/python-env.sh`, which the test command runs) and runs `reference.py` with it.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

/// The workspace root: the nearest folder with a Cargo.lock above the running test's
/// package. Read when the test runs (cargo sets `CARGO_MANIFEST_DIR` for it), not when this
/// crate was compiled: a build shared between checkouts (CI's cached target folder) must
/// find the checkout under test, not the one that compiled it first.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .expect("the test's package folder");
    let mut dir = start.clone();
    while !dir.join("Cargo.lock").exists() {
        assert!(dir.pop(), "no Cargo.lock above {}", start.display());
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
