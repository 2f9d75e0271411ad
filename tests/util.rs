//! Running the real binary.

use std::path::Path;
use std::process::{Command, Output};

pub fn crossdenoise(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crossdenoise"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the crossdenoise binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Like [`crossdenoise`], with extra environment variables.
pub fn crossdenoise_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crossdenoise"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .output()
        .expect("the crossdenoise binary runs")
}

/// Runs the runtime's independent Python reference tools (`runtime/tests/support/
/// reference.py`, in the `.venv` that `scripts/python-env.sh` makes).
pub fn reference(args: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("CROSSDENOISE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run `bash scripts/python-env.sh` (scripts/test.sh does)",
        python.display()
    );
    let out = Command::new(python)
        .arg(root.join("runtime/tests/support/reference.py"))
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "reference.py {args:?}: {}",
        stderr(&out)
    );
}
