//! `crossdenoise phantoms`: the embedded data set written to disk.

use crossdenoise_image::io::{PairedFolder, read_png, read_slice};

use crate::util::{crossdenoise, stderr};

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
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));

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
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("phantom size: 100 is not a positive multiple of 16"),
        "{}",
        stderr(&out)
    );

    let out = crossdenoise(&["phantoms", "--out", "x", "--format", "jpeg"], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown format"), "{}", stderr(&out));
}
