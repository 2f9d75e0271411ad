//! A series' noise map is estimated from all of its slices: `crossdenoise denoise --noise
//! map` pools the slices of each input folder (they share one g-factor map), and a folder
//! that is not one acquisition is served slice by slice with a warning, never refused.

use crossdenoise_image::io::{read_npy, write_npy};

use crate::util::{coil_phantoms, crossdenoise, export, refused, stderr, tiny_coil_run};

#[test]
fn a_folder_of_slices_shares_one_noise_map() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    export(&tiny_coil_run(), &cwd.join("coil.onnx"), &["--to", "a"]);
    coil_phantoms(cwd, "set", "3", "128", "0");
    let denoise = |out_dir: &str, inputs: &str, extra: &[&str]| {
        let mut args = vec![
            "denoise",
            "--model",
            "coil.onnx",
            "--guide",
            "set/pdfs",
            "--noise",
            "map",
            "--coils",
            "8",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out_dir, inputs]);
        let out = crossdenoise(&args, cwd);
        assert!(out.status.success(), "{out_dir}: {}", stderr(&out));
        stderr(&out)
    };
    let warning = "estimated slice by slice";
    let pooled = denoise("pooled", "set/pd", &[]);
    assert!(!pooled.contains(warning), "{pooled}");
    let alone = denoise("alone", "set/pd", &["--noise-pool", "slice"]);
    assert!(!alone.contains(warning), "{alone}");
    // The pooled maps are not each slice's own, so neither are the results.
    let read = |p: &str| read_npy(&cwd.join(p)).unwrap();
    for name in ["0000.npy", "0001.npy", "0002.npy"] {
        let (a, b) = (
            read(&format!("pooled/pd/{name}")),
            read(&format!("alone/pd/{name}")),
        );
        assert!(a.iter().all(|v| v.is_finite()), "{name}");
        assert_ne!(a, b, "{name}");
    }
    // A folder whose third slice is another acquisition (twice the noise and signal) is
    // denoised slice by slice, with a warning that says so, and every slice is written.
    std::fs::create_dir_all(cwd.join("mixed")).unwrap();
    for name in ["0000.npy", "0001.npy", "0002.npy"] {
        let mut slice = read(&format!("set/pd/{name}"));
        if name == "0002.npy" {
            slice.mapv_inplace(|v| 2.0 * v);
        }
        write_npy(&cwd.join("mixed").join(name), slice.view()).unwrap();
    }
    let mixed = denoise("mixed-out", "mixed", &[]);
    assert!(mixed.contains(warning), "{mixed}");
    assert!(mixed.contains("not one acquisition"), "{mixed}");
    for name in ["0000.npy", "0001.npy"] {
        assert_eq!(
            read(&format!("mixed-out/mixed/{name}")),
            read(&format!("alone/pd/{name}")),
            "served as it is alone: {name}"
        );
    }
    // `noise-map --series` writes the series' maps (not each slice's own), and refuses a
    // folder that is not one acquisition, naming why.
    let maps = |out_dir: &str, inputs: &[&str], series: bool| {
        let mut args = vec!["noise-map", "--coils", "8", "--out", out_dir];
        if series {
            args.push("--series");
        }
        args.extend_from_slice(inputs);
        crossdenoise(&args, cwd)
    };
    let set = ["set/pd/0000.npy", "set/pd/0001.npy", "set/pd/0002.npy"];
    for (out_dir, series) in [("maps-series", true), ("maps-alone", false)] {
        let out = maps(out_dir, &set, series);
        assert!(out.status.success(), "{out_dir}: {}", stderr(&out));
    }
    for name in ["0000.npy", "0001.npy", "0002.npy"] {
        let pooled = read(&format!("maps-series/{name}"));
        assert!(pooled.iter().all(|v| v.is_finite() && *v > 0.0), "{name}");
        assert_ne!(pooled, read(&format!("maps-alone/{name}")), "{name}");
    }
    let mixed = maps(
        "maps-mixed",
        &["mixed/0000.npy", "mixed/0001.npy", "mixed/0002.npy"],
        true,
    );
    refused(&mixed, "not one acquisition");
}
