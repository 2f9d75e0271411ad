//! A series' noise map is estimated from all of its slices: `crossdenoise denoise --noise
//! map` pools the slices of each input folder (they share one g-factor map); a slice of
//! another acquisition is set apart with a warning, never refused.

use crossdenoise_image::dicom::DicomSlice;
use crossdenoise_image::io::{read_npy, write_npy};

use ndarray::Array2;
use std::path::Path;
use std::process::Output;

use crate::util::{coil_phantoms, crossdenoise, export, refused, stderr, tiny_coil_run};

/// `crossdenoise denoise` of the folder `inputs` in `cwd` with the tiny coil model
/// (`coil.onnx`, guided by `set/pdfs`) under an 8-coil noise map, into `out_dir`.
fn denoise_coil(cwd: &Path, out_dir: &str, inputs: &str, extra: &[&str]) -> Output {
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
    crossdenoise(&args, cwd)
}

#[test]
fn a_folder_of_slices_shares_one_noise_map() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    export(&tiny_coil_run(), &cwd.join("coil.onnx"), &["--to", "a"]);
    coil_phantoms(cwd, "set", "3", "128", "0");
    let denoise = |out_dir: &str, inputs: &str, extra: &[&str]| {
        let out = denoise_coil(cwd, out_dir, inputs, extra);
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
    // A folder whose third slice is another acquisition (twice the noise and signal): the
    // first two are pooled, the third set apart (mapped alone), with a warning naming it, and every
    // slice is written.
    std::fs::create_dir_all(cwd.join("mixed")).unwrap();
    for name in ["0000.npy", "0001.npy", "0002.npy"] {
        let mut slice = read(&format!("set/pd/{name}"));
        if name == "0002.npy" {
            slice.mapv_inplace(|v| 2.0 * v);
        }
        write_npy(&cwd.join("mixed").join(name), slice.view()).unwrap();
    }
    let mixed = denoise("mixed-out", "mixed", &[]);
    assert!(!mixed.contains(warning), "{mixed}");
    assert!(
        mixed.contains("1 of 3 slices set apart") && mixed.contains("(slice 2 +"),
        "{mixed}"
    );
    for name in ["0000.npy", "0001.npy"] {
        let served = read(&format!("mixed-out/mixed/{name}"));
        assert!(served.iter().all(|v| v.is_finite()), "{name}");
        assert_ne!(served, read(&format!("alone/pd/{name}")), "pooled: {name}");
    }
    // `noise-map --series` writes the series' maps (not each slice's own), and maps a
    // slice of another acquisition alone, naming it.
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
    assert!(mixed.status.success(), "{}", stderr(&mixed));
    assert!(stderr(&mixed).contains("(slice 2 +"), "{}", stderr(&mixed));
    let odd = maps("maps-odd", &["mixed/0002.npy"], false);
    assert!(odd.status.success(), "{}", stderr(&odd));
    assert_eq!(read("maps-mixed/0002.npy"), read("maps-odd/0002.npy"));
}

/// `--noise-map`: measured maps (here the phantoms' true ones) are served as given, in
/// place of the estimate, and a missing, misfitting or half-given set of maps is refused
/// before anything is written.
#[test]
fn measured_noise_maps_are_served_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    export(&tiny_coil_run(), &cwd.join("coil.onnx"), &["--to", "a"]);
    coil_phantoms(cwd, "set", "2", "96", "3");
    let denoise = |out_dir: &str, extra: &[&str]| denoise_coil(cwd, out_dir, "set/pd", extra);
    let given = |maps: &str, guide_maps: &str| {
        vec![
            "--noise-map".to_string(),
            maps.to_string(),
            "--guide-noise-map".to_string(),
            guide_maps.to_string(),
        ]
    };
    let run = |out_dir: &str, extra: Vec<String>| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let out = denoise(out_dir, &extra);
        assert!(out.status.success(), "{out_dir}: {}", stderr(&out));
    };
    let read = |p: &str| read_npy(&cwd.join(p)).unwrap();
    run("estimated", Vec::new());
    run("true", given("set/clean/noise/pd", "set/clean/noise/pdfs"));
    // The same maps half again as high: more of the noncentral chi floor is taken off, so
    // the slices come out darker.
    for (from, to) in [
        ("set/clean/noise/pd", "high/pd"),
        ("set/clean/noise/pdfs", "high/pdfs"),
    ] {
        std::fs::create_dir_all(cwd.join(to)).unwrap();
        for name in ["0000.npy", "0001.npy"] {
            let map = read(&format!("{from}/{name}")).mapv(|v| 1.5 * v);
            write_npy(&cwd.join(to).join(name), map.view()).unwrap();
        }
    }
    run("high", given("high/pd", "high/pdfs"));
    for name in ["0000.npy", "0001.npy"] {
        let (estimated, truth, high) = (
            read(&format!("estimated/pd/{name}")),
            read(&format!("true/pd/{name}")),
            read(&format!("high/pd/{name}")),
        );
        assert!(truth.iter().all(|v| v.is_finite()), "{name}");
        assert_ne!(truth, estimated, "{name}");
        assert!(
            high.sum() < 0.97 * truth.sum(),
            "{name}: {} against {}",
            high.sum(),
            truth.sum()
        );
    }
    // Refused, naming what is at fault, with nothing written: a missing map, a guided
    // model without its guides' maps, a map of another size.
    let missing = denoise("missing", &["--noise-map", "high/pdfs-none"]);
    refused(&missing, "no noise map");
    assert!(!cwd.join("missing/pd").exists());
    let half = denoise("half", &["--noise-map", "set/clean/noise/pd"]);
    refused(&half, "--guide-noise-map");
    std::fs::create_dir_all(cwd.join("small")).unwrap();
    for name in ["0000.npy", "0001.npy"] {
        let small = read(&format!("set/clean/noise/pd/{name}")).slice_move(ndarray::s![..64, ..]);
        write_npy(&cwd.join("small").join(name), small.view()).unwrap();
    }
    let small = denoise(
        "small",
        &given("small", "set/clean/noise/pdfs")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    refused(&small, "slice map 0 is (64, 96), its slice (96, 96)");
    assert!(!cwd.join("small/pd/0000.npy").exists());
}

/// A DICOM series says which way its phase encoding ran (In-plane Phase Encoding
/// Direction): `noise-map` narrows the tiles across it, as `--phase-encoding` does for the
/// same pixels in files that state nothing, and in place of the flag.
#[test]
fn noise_map_narrows_its_tiles_across_the_direction_a_dicom_series_states() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    coil_phantoms(cwd, "set", "2", "128", "3");
    // In scanner-like units, so the 12-bit stored values keep the noise.
    let slices: Vec<_> = ["0000.npy", "0001.npy"]
        .iter()
        .map(|name| read_npy(&cwd.join("set/pd").join(name)).unwrap() * 1000.0)
        .collect();
    let flags = ["--phase-encoding", "COL", "--frame", "2.25.4242"].map(String::from);
    let files = crate::support::dicom_series(&cwd.join("dcm"), "u12", &slices, &flags);
    // The same pixels in files that state no direction.
    let copies = npy_copies(cwd, &files);
    let dicom: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let maps =
        |out_dir: &str, inputs: &[String], flag: &[&str]| series_maps(cwd, out_dir, inputs, flag);
    let stated = maps("stated", &dicom, &[]);
    let told = maps("told", &copies, &["--phase-encoding", "up-down"]);
    let square = maps("square", &copies, &[]);
    let overridden = maps("overridden", &dicom, &["--phase-encoding", "left-right"]);
    for k in 0..2 {
        assert_eq!(stated[k], told[k], "slice {k}");
        assert_eq!(stated[k], overridden[k], "slice {k}");
        assert_ne!(stated[k], square[k], "slice {k}");
    }
    // `denoise` of the series with its PDFS partners (of the same frame) by the coil model:
    // a --phase-encoding the files set aside is said to be.
    export(&tiny_coil_run(), &cwd.join("coil.onnx"), &["--to", "a"]);
    let partners: Vec<_> = ["0000.npy", "0001.npy"]
        .iter()
        .map(|name| read_npy(&cwd.join("set/pdfs").join(name)).unwrap() * 1000.0)
        .collect();
    crate::support::dicom_series(&cwd.join("dcm_pdfs"), "u12", &partners, &flags);
    for folder in ["dcm", "dcm_pdfs"] {
        for k in 0..2 {
            std::fs::remove_file(cwd.join(folder).join(format!("in_{k}.npy"))).unwrap();
        }
    }
    let denoise = |out_dir: &str, flag: &[&str]| {
        let mut args = vec!["denoise", "--model", "coil.onnx", "--guide", "dcm_pdfs"];
        args.extend_from_slice(&["--noise", "map", "--coils", "8", "--out", out_dir]);
        args.extend_from_slice(flag);
        args.push("dcm");
        let out = crossdenoise(&args, cwd);
        assert!(out.status.success(), "{out_dir}: {}", stderr(&out));
        stderr(&out)
    };
    let told = denoise("served-told", &["--phase-encoding", "left-right"]);
    assert!(
        told.contains("state their phase encoding, up-down, not --phase-encoding left-right"),
        "{told}"
    );
    let quiet = denoise("served", &[]);
    assert!(!quiet.contains("phase encoding"), "{quiet}");
    for k in 0..2 {
        let name = format!("dcm/slice_{k:03}.dcm");
        let (a, b) = (
            DicomSlice::read(&cwd.join("served-told").join(&name)).unwrap(),
            DicomSlice::read(&cwd.join("served").join(&name)).unwrap(),
        );
        assert_eq!(
            a.image, b.image,
            "{name}: served as the files state either way"
        );
    }
}

/// A DICOM series states its acceleration (Parallel Reduction Factor In-plane): `noise-map`
/// reads the map between its fold lines, as `--acceleration` does for the same pixels in
/// files that state nothing, and in place of the flag; `--ignore-stated-acceleration`
/// keeps the flag. `denoise` says where the files set a given acceleration aside.
#[test]
fn noise_map_reads_between_the_fold_lines_a_dicom_series_states() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let slices = crate::support::accelerated_slices(2, 192, 1000.0);
    let flags = ["--phase-encoding", "ROW", "--acceleration", "3"].map(String::from);
    let files = crate::support::dicom_series(&cwd.join("dcm"), "u12", &slices, &flags);
    let copies = npy_copies(cwd, &files);
    let dicom: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let maps = |out_dir: &str, inputs: &[String], flag: &[&str]| {
        let flags = [&["--phase-encoding", "left-right"], flag].concat();
        series_maps(cwd, out_dir, inputs, &flags)
    };
    let stated = maps("stated", &dicom, &[]);
    let told = maps("told", &copies, &["--acceleration", "3"]);
    let overridden = maps("overridden", &dicom, &["--acceleration", "2"]);
    let whole = maps("whole", &copies, &[]);
    let ignored = maps("ignored", &dicom, &["--ignore-stated-acceleration"]);
    for k in 0..2 {
        assert_eq!(stated[k], told[k], "slice {k}");
        assert_eq!(stated[k], overridden[k], "slice {k}");
        assert_ne!(stated[k], whole[k], "slice {k}: read whole");
        assert_eq!(ignored[k], whole[k], "slice {k}");
    }
    // The series as its own guide: only the note is asked of the guided coil model here.
    export(&tiny_coil_run(), &cwd.join("coil.onnx"), &["--to", "a"]);
    for k in 0..2 {
        std::fs::remove_file(cwd.join("dcm").join(format!("in_{k}.npy"))).unwrap();
    }
    let mut args = vec!["denoise", "--model", "coil.onnx", "--guide", "dcm"];
    args.extend_from_slice(&["--noise", "map", "--coils", "8", "--out", "served"]);
    args.extend_from_slice(&["--acceleration", "2", "dcm"]);
    let out = crossdenoise(&args, cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("state their acceleration, 3, not --acceleration 2"),
        "{said}"
    );
}

/// `files` (DICOM) written again as `.npy` under `cwd/npy`: the same pixels in files that
/// state nothing of their acquisition.
fn npy_copies(cwd: &Path, files: &[std::path::PathBuf]) -> Vec<String> {
    std::fs::create_dir_all(cwd.join("npy")).unwrap();
    files
        .iter()
        .map(|f| {
            let to = cwd
                .join("npy")
                .join(f.file_stem().unwrap())
                .with_extension("npy");
            let image = DicomSlice::read(f).unwrap().image;
            write_npy(&to, image.view()).unwrap();
            to.display().to_string()
        })
        .collect()
}

/// `noise-map --coils 8 --series` of `inputs` (two slices) with `flag` into `cwd/out_dir`.
fn series_maps(cwd: &Path, out_dir: &str, inputs: &[String], flag: &[&str]) -> [Array2<f32>; 2] {
    let mut args = vec!["noise-map", "--coils", "8", "--series", "--out", out_dir];
    args.extend_from_slice(flag);
    args.extend(inputs.iter().map(String::as_str));
    let out = crossdenoise(&args, cwd);
    assert!(out.status.success(), "{out_dir}: {}", stderr(&out));
    ["slice_000.npy", "slice_001.npy"].map(|name| read_npy(&cwd.join(out_dir).join(name)).unwrap())
}
