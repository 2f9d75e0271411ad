//! `crossdenoise phantoms`: the embedded data set written to disk.

use crossdenoise_image::io::{PairedFolder, read_png, read_slice};

use crate::util::{crossdenoise, refused, stderr};

#[test]
fn writes_paired_folders_clean_images_manifest_and_preview() {
    let dir = tempfile::tempdir().unwrap();
    let out = crossdenoise(
        &[
            "phantoms", "--out", "set", "--pairs", "5", "--size", "64", "--seed", "3",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let root = dir.path().join("set");

    let noisy = PairedFolder::open(&root).unwrap();
    let clean = PairedFolder::open(&root.join("clean")).unwrap();
    assert_eq!((noisy.len(), clean.len()), (5, 5));
    let (pd, pdfs) = noisy.load(4).unwrap();
    let (clean_pd, _) = clean.load(4).unwrap();
    assert_eq!(pd.dim(), (64, 64));
    assert_ne!(pd, pdfs);
    assert_ne!(pd, clean_pd);

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("phantoms.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["seed"], 3);
    assert_eq!(manifest["pairs"], 5);
    assert!((manifest["sigma_pd"].as_f64().unwrap() - 0.05).abs() < 1e-6);

    // The preview is a real 8-bit PNG: 4 columns, one row per pair (up to 4).
    let preview = read_png(&root.join("preview.png")).unwrap();
    let (h, w) = preview.dim();
    assert!(w > 4 * 64 && h > 4 * 64, "preview {w}x{h}");
}

#[test]
fn same_seed_gives_identical_files_and_png_format_works() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        let out = crossdenoise(
            &[
                "phantoms", "--out", name, "--pairs", "2", "--size", "32", "--seed", "7",
                "--format", "png",
            ],
            dir.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let a = read_slice(&dir.path().join("a/pdfs/0001.png")).unwrap();
    let b = read_slice(&dir.path().join("b/pdfs/0001.png")).unwrap();
    assert_eq!(a, b);
    assert!(
        a.iter().any(|&v| v > 10000.0),
        "16-bit PNG uses the intensity scale"
    );
}

#[test]
fn refuses_to_mix_with_an_earlier_set_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["phantoms", "--out", "set", "--pairs", "3", "--size", "32"];
    assert!(crossdenoise(&args, dir.path()).status.success());
    let again = crossdenoise(&args, dir.path());
    refused(&again, "--force");

    let forced = crossdenoise(
        &[
            "phantoms", "--out", "set", "--pairs", "2", "--size", "32", "--force",
        ],
        dir.path(),
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(
        PairedFolder::open(&dir.path().join("set")).unwrap().len(),
        2
    );
}

#[test]
fn bad_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = crossdenoise(&["phantoms", "--out", "x", "--size", "100"], dir.path());
    refused(&out, "phantom size: 100 is not a positive multiple of 16");

    let out = crossdenoise(&["phantoms", "--out", "x", "--format", "jpeg"], dir.path());
    refused(&out, "unknown format");
}

#[test]
fn a_coil_array_writes_its_noise_maps_and_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let out = crossdenoise(
        &[
            "phantoms",
            "--out",
            "set",
            "--pairs",
            "2",
            "--size",
            "64",
            "--coils",
            "8",
            "--acceleration",
            "2",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let root = dir.path().join("set");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("phantoms.json")).unwrap())
            .unwrap();
    let noise = &manifest["noise"];
    assert_eq!(noise["distribution"], "noncentral_chi");
    assert_eq!(noise["dof_coils"], 8);
    assert_eq!(noise["acceleration"], 2);
    assert!(noise["g_factor_max"].as_f64().unwrap() > 1.0);
    assert_eq!(noise["phase_encoding"], "left-right");

    // The true map: sigma sqrt(2) g, and the air's mean is the 8-coil floor (3.94) of it.
    let sigma = manifest["sigma_pd"].as_f64().unwrap() as f32;
    let map = read_slice(&root.join("clean/noise/pd/0000.npy")).unwrap();
    assert!(map.iter().all(|&s| s >= sigma * 2f32.sqrt() * 0.999));
    let acquired = read_slice(&root.join("pd/0000.npy")).unwrap();
    let clean = read_slice(&root.join("clean/pd/0000.npy")).unwrap();
    let air: Vec<f32> = acquired
        .iter()
        .zip(&clean)
        .zip(&map)
        .filter(|((_, c), _)| **c == 0.0)
        .map(|((a, _), s)| a / s)
        .collect();
    assert!(air.len() > 500, "{} air pixels", air.len());
    let floor = air.iter().sum::<f32>() / air.len() as f32;
    assert!((floor - 3.938).abs() < 0.1, "air mean {floor} sigmas");

    // `crossdenoise noise-map` finds that map from the acquired image, in tissue: each slice
    // alone on square tiles, and (as `denoise` serves it) the slices as one series read
    // beside their partner, on square tiles and on tiles narrowed across the phase
    // encoding the set states.
    let runs: [(&[&str], f32); 3] = [
        (&["--phase-encoding", "unknown"], 0.1),
        (
            &[
                "--series",
                "--guide",
                "set/pdfs",
                "--phase-encoding",
                "unknown",
            ],
            0.05,
        ),
        (
            &[
                "--series",
                "--guide",
                "set/pdfs",
                "--phase-encoding",
                "left-right",
            ],
            0.05,
        ),
    ];
    for (how, bound) in runs {
        let mut args = vec!["noise-map", "--coils", "8", "--out", "maps"];
        args.extend_from_slice(how);
        args.extend_from_slice(&["set/pd/0000.npy", "set/pd/0001.npy"]);
        let out = crossdenoise(&args, dir.path());
        assert!(out.status.success(), "{}", stderr(&out));
        for name in ["0000", "0001"] {
            let estimated = read_slice(&dir.path().join(format!("maps/{name}.npy"))).unwrap();
            let truth = read_slice(&root.join(format!("clean/noise/pd/{name}.npy"))).unwrap();
            let clean = read_slice(&root.join(format!("clean/pd/{name}.npy"))).unwrap();
            let errors: Vec<f32> = estimated
                .iter()
                .zip(&truth)
                .zip(&clean)
                .filter(|(_, c)| **c > 0.1)
                .map(|((e, t), _)| (e / t - 1.0).abs())
                .collect();
            let mean = errors.iter().sum::<f32>() / errors.len() as f32;
            assert!(mean < bound, "{how:?} {name}: mean relative error {mean}");
            assert!(dir.path().join(format!("maps/{name}.png")).is_file());
        }
    }
    let sideways = crossdenoise(
        &[
            "noise-map",
            "--phase-encoding",
            "sideways",
            "--out",
            "maps",
            "set/pd/0000.npy",
        ],
        dir.path(),
    );
    refused(&sideways, "sideways");
    let bad_tile = crossdenoise(
        &[
            "noise-map",
            "--tile",
            "5",
            "--out",
            "maps",
            "set/pd/0000.npy",
        ],
        dir.path(),
    );
    refused(&bad_tile, "tile");
    let no_acceleration = crossdenoise(
        &[
            "noise-map",
            "--acceleration",
            "0",
            "--out",
            "maps",
            "set/pd/0000.npy",
        ],
        dir.path(),
    );
    refused(&no_acceleration, "acceleration");

    let bad = crossdenoise(
        &[
            "phantoms",
            "--out",
            "bad",
            "--pairs",
            "1",
            "--size",
            "32",
            "--coils",
            "2",
            "--acceleration",
            "3",
        ],
        dir.path(),
    );
    refused(&bad, "acceleration");
}

/// A reader that closes the pipe early (`crossdenoise phantoms ... | head -1`) ends the
/// command quietly: no panic from printing to a broken pipe.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossdenoise"))
        .args(["phantoms", "--out", "set", "--pairs", "1", "--size", "32"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let said = stderr(&out);
    assert!(!said.contains("panicked"), "{said}");
    // It still wrote the set before it printed.
    assert!(dir.path().join("set/phantoms.json").is_file());
}
