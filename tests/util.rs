//! Running the real binary.

use std::path::{Path, PathBuf};
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

pub use crate::support::{failed, reference, refused};

/// `--set` arguments shrinking a shipped config to a tiny run: 32 x 32, four training
/// pairs (two steps an epoch at batch 2), two validation pairs, four channels.
pub const TINY: [&str; 8] = [
    "--set",
    "data.image_size=32",
    "--set",
    "data.train_pairs=4",
    "--set",
    "data.val_pairs=2",
    "--set",
    "model.base_channels=4",
];

/// Trains `configs/config.json` with `--epochs epochs` and `sets` (key=value overrides)
/// into `CARGO_TARGET_TMPDIR/<folder>`; returns the run folder.
fn trained_run(folder: &str, epochs: &str, sets: &[&str]) -> std::path::PathBuf {
    trained("config", folder, epochs, sets)
}

/// Trains `configs/<config>.json` into `CARGO_TARGET_TMPDIR/<folder>`; returns the run.
fn trained(config_name: &str, folder: &str, epochs: &str, sets: &[&str]) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(folder);
    let config = crate::support::workspace_root()
        .join("configs")
        .join(format!("{config_name}.json"));
    let mut args = vec![
        "train",
        config.to_str().unwrap(),
        "--out",
        root.to_str().unwrap(),
        "--force",
        "--epochs",
        epochs,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = crossdenoise(&args, root.parent().unwrap());
    assert!(out.status.success(), "training {folder}: {}", stderr(&out));
    // Each shipped config is named after its file.
    root.join(config_name)
}

/// `--set` values shrinking `configs/guided.json` to a tiny run: 32 x 32 slices, 16 x 16
/// crops, four channels, depth 2; with the posterior step, so the end-to-end tests carry its
/// second output through export, the runtime, the CLI and the daemon.
pub const TINY_GUIDED: [&str; 9] = [
    "model.posterior=true",
    "data.image_size=32",
    "data.train_pairs=4",
    "data.val_pairs=2",
    "model.base_channels=4",
    "model.depth=2",
    "trainer.crop_size=16",
    "trainer.batch_size=2",
    "trainer.steps_per_epoch=3",
];

/// The one tiny guided run (both directions) the end-to-end tests share, trained once per
/// test process.
pub fn tiny_guided_run() -> std::path::PathBuf {
    use std::sync::OnceLock;
    static RUN: OnceLock<std::path::PathBuf> = OnceLock::new();
    RUN.get_or_init(|| trained("guided", "tiny-guided", "1", &TINY_GUIDED))
        .clone()
}

/// A tiny guided run that keeps the running average of its weights
/// (`trainer.average_weights`), trained once per test process.
pub fn tiny_averaged_run() -> std::path::PathBuf {
    use std::sync::OnceLock;
    static RUN: OnceLock<std::path::PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let mut sets = TINY_GUIDED.to_vec();
        sets.push("trainer.average_weights=0.5");
        trained("guided", "tiny-averaged", "1", &sets)
    })
    .clone()
}

/// A small guided run that has learned to denoise (8 channels, depth 2, 24 pairs of 32 x 32,
/// each slice at its own SNR between 4 and 25 (PD) and 4 and 20 (PDFS), as
/// `configs/guided.json` draws them over its range, 240 steps of 8 whole slices: about 30 s),
/// trained once per test process; returns the run folder and a low PD and PDFS SNR inside
/// its range for the tests that need one setting.
pub fn learned_guided_run() -> (std::path::PathBuf, [&'static str; 2]) {
    use std::sync::OnceLock;
    static RUN: OnceLock<std::path::PathBuf> = OnceLock::new();
    const SNR: [&str; 2] = ["5", "4"];
    let run = RUN.get_or_init(|| {
        trained(
            "guided",
            "learned-guided",
            "4",
            &[
                "data.image_size=32",
                "data.train_pairs=24",
                "data.val_pairs=2",
                "data.snr_range_a=[4, 25]",
                "data.snr_range_b=[4, 20]",
                "model.base_channels=8",
                "model.depth=2",
                "trainer.crop_size=32",
                "trainer.batch_size=8",
                "trainer.steps_per_epoch=60",
                "trainer.warmup_steps=10",
                // The recipe this small run's checks were set on; the config's 5e-3 with
                // Adam's second moment at 0.99 is for its 2100 steps of 16 channels.
                "trainer.lr=3e-3",
                "trainer.adam_beta2=0.999",
            ],
        )
    });
    (run.clone(), SNR)
}

/// A tiny guided run on 8-coil root-sum-of-squares phantoms with acceleration 2
/// (`data.coils`), with the posterior step under the noncentral chi likelihood: what the
/// runtime checks of a model trained for a coil array, trained once per test process.
pub fn tiny_coil_run() -> std::path::PathBuf {
    use std::sync::OnceLock;
    static RUN: OnceLock<std::path::PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let mut sets = TINY_GUIDED.to_vec();
        sets.push(r#"data.coils={"count": 8, "acceleration": 2}"#);
        trained("guided", "tiny-coil", "1", &sets)
    })
    .clone()
}

/// The one tiny trained run the end-to-end tests share (4 channels, depth 2, 32 x 32, one
/// epoch), trained once per test process; `identity` selects the identity-mapping variant.
pub fn tiny_run(identity: bool) -> std::path::PathBuf {
    use std::sync::OnceLock;
    static PLAIN: OnceLock<std::path::PathBuf> = OnceLock::new();
    static IDENTITY: OnceLock<std::path::PathBuf> = OnceLock::new();
    let cell = if identity { &IDENTITY } else { &PLAIN };
    cell.get_or_init(|| {
        let identity_set = format!("trainer.identity_mapping={identity}");
        let mut sets: Vec<&str> = TINY.iter().copied().filter(|a| *a != "--set").collect();
        sets.push(&identity_set);
        trained_run(
            if identity {
                "tiny-identity"
            } else {
                "tiny-plain"
            },
            "1",
            &sets,
        )
    })
    .clone()
}

/// Renders an HTML file in headless Chromium (Debian's `chromium`) to a PNG screenshot, as
/// a reader would see it. `None`, with the reason printed, where no Chromium is installed
/// (`.ci/run` installs it, so CI always renders).
pub fn chromium_screenshot(html: &Path, png: &Path) -> Option<()> {
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(bin) = bin else {
        eprintln!("skipped the browser check: no chromium on PATH (apt install chromium)");
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.canonicalize().unwrap().display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success() && png.is_file(),
        "chromium could not render {}: {}",
        html.display(),
        stderr(&out)
    );
    Some(())
}

/// How many pixels of an RGB(A) PNG lie within `tol` of `rgb` in every channel.
pub fn pixels_near(png_path: &Path, rgb: [u8; 3], tol: u8) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let channels = match frame.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("{}: colour type {other:?}", png_path.display()),
    };
    buf[..frame.buffer_size()]
        .chunks_exact(channels)
        .filter(|p| (0..3).all(|c| p[c].abs_diff(rgb[c]) <= tol))
        .count()
}

/// `crossdenoise export RUN --out MODEL EXTRA...`, parity-checked as always.
pub fn export(run: &Path, model: &Path, extra: &[&str]) {
    let mut args = vec![
        "export",
        run.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = crossdenoise(&args, model.parent().unwrap());
    assert!(out.status.success(), "export: {}", stderr(&out));
}

/// Exports both contrasts' denoisers of `run` into `cwd` (pd.onnx, pdfs.onnx).
pub fn export_pair(run: &Path, cwd: &Path) -> (PathBuf, PathBuf) {
    let (pd, pdfs) = (cwd.join("pd.onnx"), cwd.join("pdfs.onnx"));
    export(run, &pd, &["--to", "a"]);
    export(run, &pdfs, &["--to", "b"]);
    (pd, pdfs)
}

/// `crossdenoise phantoms` scanned with an 8-coil array at acceleration 2, into `cwd/out`.
pub fn coil_phantoms(cwd: &Path, out: &str, pairs: &str, size: &str, seed: &str) {
    coil_phantoms_with(cwd, out, [pairs, size, seed], &[]);
}

/// [`coil_phantoms`] of `[pairs, size, seed]` with `extra` flags (`--snr 10`, ...).
pub fn coil_phantoms_with(cwd: &Path, out: &str, set: [&str; 3], extra: &[&str]) {
    let [pairs, size, seed] = set;
    let mut args = vec!["phantoms", "--out", out, "--pairs", pairs, "--size", size];
    args.extend_from_slice(&["--seed", seed, "--coils", "8", "--acceleration", "2"]);
    args.extend_from_slice(extra);
    let run = crossdenoise(&args, cwd);
    assert!(run.status.success(), "phantoms: {}", stderr(&run));
}
