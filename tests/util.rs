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
/// reference.py`, in the `.venv` that `scripts/python-env.sh` makes); returns its stdout.
pub fn reference(args: &[&str]) -> String {
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one tiny trained run the end-to-end tests share (4 channels, depth 2, 32 x 32, one
/// epoch), trained once per test process; `identity` selects the identity-mapping variant.
pub fn tiny_run(identity: bool) -> std::path::PathBuf {
    use std::sync::OnceLock;
    static PLAIN: OnceLock<std::path::PathBuf> = OnceLock::new();
    static IDENTITY: OnceLock<std::path::PathBuf> = OnceLock::new();
    let cell = if identity { &IDENTITY } else { &PLAIN };
    cell.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(if identity {
            "tiny-identity"
        } else {
            "tiny-plain"
        });
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/config.json");
        let identity_set = format!("trainer.identity_mapping={identity}");
        let out = crossdenoise(
            &[
                "train",
                config.to_str().unwrap(),
                "--out",
                root.to_str().unwrap(),
                "--force",
                "--epochs",
                "1",
                "--set",
                "model.base_channels=4",
                "--set",
                "data.image_size=32",
                "--set",
                "data.train_pairs=4",
                "--set",
                "data.val_pairs=2",
                "--set",
                &identity_set,
            ],
            root.parent().unwrap(),
        );
        assert!(out.status.success(), "tiny training run: {}", stderr(&out));
        root.join("config")
    })
    .clone()
}
