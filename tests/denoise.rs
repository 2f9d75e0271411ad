//! `crossdenoise denoise`: an ONNX model over files of every supported format, on the real
//! ONNX Runtime, and the errors a user sees.

use std::fs;
use std::path::{Path, PathBuf};

use crossdenoise_image::dicom::DicomSlice;
use crossdenoise_image::io::{GrayImage, read_npy, read_png, write_npy, write_png};
use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use ndarray::Array2;

use crate::util::{crossdenoise, crossdenoise_env, failed, reference, refused, stderr};

fn phantom(i: u64, h: usize, w: usize) -> Array2<f32> {
    let g = PhantomGenerator::new(
        PhantomConfig {
            size: 64,
            snr_pd: 10.0,
            snr_pdfs: 8.0,
        },
        5,
    )
    .unwrap();
    g.pair(i)
        .pdfs
        .slice(ndarray::s![..h, ..w])
        .mapv(|v| v * 1500.0)
}

/// A model, a 37x45 `.npy`, a 16-bit and an 8-bit PNG, and a two-slice DICOM series.
fn inputs(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let model = dir.join("model.onnx");
    reference(&["make-model", model.to_str().unwrap()]);
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let npy = data.join("slice.npy");
    write_npy(&npy, phantom(0, 37, 45).view()).unwrap();
    let png16 = data.join("slice16.png");
    write_png(
        &png16,
        &GrayImage::U16(phantom(1, 48, 40).mapv(|v| v.round() as u16)),
    )
    .unwrap();
    let png8 = data.join("slice8.png");
    write_png(
        &png8,
        &GrayImage::U8(phantom(2, 32, 32).mapv(|v| (v / 8.0).min(255.0) as u8)),
    )
    .unwrap();
    let series = dir.join("series");
    fs::create_dir_all(&series).unwrap();
    let (a, b) = (dir.join("d0.npy"), dir.join("d1.npy"));
    write_npy(&a, phantom(3, 40, 40).view()).unwrap();
    write_npy(&b, phantom(4, 40, 40).view()).unwrap();
    reference(&[
        "dicom-series",
        series.to_str().unwrap(),
        "u12",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    (model, vec![npy, png16, png8, series])
}

fn snapshot(paths: &[PathBuf]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            all.extend(
                entries
                    .into_iter()
                    .map(|e| (e.clone(), fs::read(e).unwrap())),
            );
        } else {
            all.push((p.clone(), fs::read(p).unwrap()));
        }
    }
    all
}

#[test]
fn denoises_every_format_into_the_same_format_with_previews() {
    let dir = tempfile::tempdir().unwrap();
    let (model, ins) = inputs(dir.path());
    let before = snapshot(&ins);
    let mut args = vec![
        "denoise",
        "--model",
        model.to_str().unwrap(),
        "--out",
        "out",
        "--preview",
    ];
    args.extend(ins.iter().map(|p| p.to_str().unwrap()));
    let out = crossdenoise(&args, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("on cpu") && err.contains("5 of 5 files denoised"),
        "{err}"
    );
    assert_eq!(before, snapshot(&ins), "inputs untouched");

    let o = dir.path().join("out");
    let npy = read_npy(&o.join("slice.npy")).unwrap();
    assert_eq!(npy.dim(), (37, 45));
    assert_ne!(npy, read_npy(&ins[0]).unwrap());
    assert!(
        matches!(read_png(&o.join("slice16.png")).unwrap(), GrayImage::U16(a) if a.dim() == (48, 40))
    );
    assert!(
        matches!(read_png(&o.join("slice8.png")).unwrap(), GrayImage::U8(a) if a.dim() == (32, 32))
    );
    for name in ["slice_000.dcm", "slice_001.dcm"] {
        let d = DicomSlice::read(&o.join("series").join(name)).unwrap();
        assert_eq!(d.image.dim(), (40, 40));
        assert_eq!(d.bits_stored, 12);
    }
    for p in [
        "slice.png",
        "slice16.png",
        "slice8.png",
        "series/slice_000.png",
    ] {
        let grid = read_png(&o.join("preview").join(p)).unwrap();
        assert!(grid.dim().1 > 3 * 32, "{p}: three tiles side by side");
    }
    // No temporary files left behind.
    assert!(fs::read_dir(&o).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")
    }));
}

#[test]
fn gpu_providers_fall_back_with_a_warning_or_fail_under_strict_ep() {
    let dir = tempfile::tempdir().unwrap();
    let (model, ins) = inputs(dir.path());
    let m = model.to_str().unwrap();
    let input = ins[0].to_str().unwrap();
    let out = crossdenoise(
        &[
            "denoise",
            "--model",
            m,
            "--out",
            "out",
            "--ep",
            "tensorrt,cuda,cpu",
            input,
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning: execution provider tensorrt unavailable"),
        "{err}"
    );
    assert!(
        err.contains("warning: execution provider cuda unavailable"),
        "{err}"
    );
    assert!(err.contains("on cpu"), "{err}");

    let out = crossdenoise(
        &[
            "denoise",
            "--model",
            m,
            "--out",
            "strict",
            "--ep",
            "cuda,cpu",
            "--strict-ep",
            input,
        ],
        dir.path(),
    );
    let err = failed(&out);
    assert!(
        err.contains("execution provider cuda cannot be used (strict"),
        "{err}"
    );
    assert!(!dir.path().join("strict").exists(), "nothing written");

    let out = crossdenoise(
        &[
            "denoise", "--model", m, "--out", "x", "--ep", "cuda,tpu", input,
        ],
        dir.path(),
    );
    refused(&out, "unknown execution provider 'tpu'");
}

#[test]
fn bad_input_is_named_and_nothing_is_overwritten_or_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (model, ins) = inputs(dir.path());
    let m = model.to_str().unwrap();
    let data = ins[0].parent().unwrap().to_path_buf();
    let before = snapshot(&ins);

    // Output folder = input folder.
    let out = crossdenoise(
        &[
            "denoise",
            "--model",
            m,
            "--out",
            data.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
        dir.path(),
    );
    refused(&out, "is an input folder");
    assert_eq!(before, snapshot(&ins));

    // An empty folder.
    fs::create_dir_all(dir.path().join("empty")).unwrap();
    let out = crossdenoise(
        &["denoise", "--model", m, "--out", "o", "empty"],
        dir.path(),
    );
    refused(&out, "empty: holds no .npy, .png or DICOM files");

    // A non-ONNX model.
    fs::write(dir.path().join("bad.onnx"), "{}").unwrap();
    let out = crossdenoise(
        &[
            "denoise",
            "--model",
            "bad.onnx",
            "--out",
            "o",
            ins[0].to_str().unwrap(),
        ],
        dir.path(),
    );
    refused(&out, "bad.onnx: not a model ONNX Runtime can load");

    // NaN pixels in one file: named, the others still denoised, exit status non-zero.
    let mut nan = phantom(6, 32, 32);
    nan[[0, 0]] = f32::NAN;
    let nan_path = dir.path().join("nan.npy");
    write_npy(&nan_path, nan.view()).unwrap();
    let out = crossdenoise(
        &[
            "denoise",
            "--model",
            m,
            "--out",
            "o2",
            "nan.npy",
            ins[0].to_str().unwrap(),
        ],
        dir.path(),
    );
    let err = failed(&out);
    assert!(
        err.contains("nan.npy") && err.contains("non-finite"),
        "{err}"
    );
    assert!(err.contains("1 of 2 files denoised"), "{err}");
    assert!(dir.path().join("o2/slice.npy").exists());
    assert!(!dir.path().join("o2/nan.npy").exists());

    // No ONNX Runtime library: the error says how to install it.
    let out = crossdenoise_env(
        &[
            "denoise",
            "--model",
            m,
            "--out",
            "o3",
            ins[0].to_str().unwrap(),
        ],
        dir.path(),
        &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")],
    );
    refused(&out, "bash scripts/install-ort.sh");
    assert_eq!(before, snapshot(&ins));
}

#[test]
fn a_guided_model_needs_guides_and_a_plain_one_takes_none() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let run = crate::util::tiny_guided_run();
    let guided = cwd.join("pd.onnx");
    let out = crossdenoise(
        &[
            "export",
            run.to_str().unwrap(),
            "--to",
            "a",
            "--out",
            guided.to_str().unwrap(),
        ],
        cwd,
    );
    assert!(out.status.success(), "export: {}", stderr(&out));
    let out = crossdenoise(
        &["phantoms", "--out", "set", "--pairs", "3", "--size", "32"],
        cwd,
    );
    assert!(out.status.success(), "phantoms: {}", stderr(&out));

    // Without --guide: refused, saying what it needs.
    let out = crossdenoise(
        &["denoise", "--model", "pd.onnx", "--out", "o1", "set/pd"],
        cwd,
    );
    let e = failed(&out);
    assert!(
        e.contains(
            "pd (a) denoiser guided by pdfs (b): give the partner contrast's slices with --guide"
        ),
        "{e}"
    );
    assert!(!cwd.join("o1/pd").exists(), "nothing written");

    // A guide missing for one slice: that slice is named, nothing at all is written.
    fs::create_dir_all(cwd.join("partial")).unwrap();
    for i in 0..2 {
        fs::copy(
            cwd.join(format!("set/pdfs/{i:04}.npy")),
            cwd.join(format!("partial/{i:04}.npy")),
        )
        .unwrap();
    }
    let out = crossdenoise(
        &[
            "denoise", "--model", "pd.onnx", "--guide", "partial", "--out", "o2", "set/pd",
        ],
        cwd,
    );
    let e = failed(&out);
    assert!(
        e.contains("1 input(s) have no usable guide; nothing was written"),
        "{e}"
    );
    assert!(e.contains("0002.npy: no guide named 0002.npy"), "{e}");
    assert!(!cwd.join("o2/pd").exists());

    // With the guides: every slice, in its own contrast's units and size.
    let out = crossdenoise(
        &[
            "denoise", "--model", "pd.onnx", "--guide", "set/pdfs", "--out", "o3", "set/pd",
        ],
        cwd,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for i in 0..3 {
        let back = read_npy(&cwd.join(format!("o3/pd/{i:04}.npy"))).unwrap();
        assert_eq!(back.dim(), (32, 32));
        assert!(back.iter().all(|v| v.is_finite() && *v >= 0.0));
    }

    // The usage line of docs/runtime.md, as written: the inputs may follow --guide.
    let usage = documented_usage(&[
        ("MODEL", "pd.onnx"),
        ("GUIDE", "set/pdfs"),
        ("INPUT", "set/pd"),
        ("DIR", "o5"),
    ]);
    assert_eq!(usage[3], "--guide", "{usage:?}");
    let usage: Vec<&str> = usage.iter().map(String::as_str).collect();
    let out = crossdenoise(&usage, cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in 0..3 {
        let usage = read_npy(&cwd.join(format!("o5/pd/{i:04}.npy"))).unwrap();
        let direct = read_npy(&cwd.join(format!("o3/pd/{i:04}.npy"))).unwrap();
        assert_eq!(usage, direct);
    }
    // The shipped config has the posterior step; --no-posterior serves the prediction
    // alone, which differs from it where the pixels' own values weigh in.
    let out = crossdenoise(
        &[
            "denoise",
            "--model",
            "pd.onnx",
            "--guide",
            "set/pdfs",
            "--no-posterior",
            "--out",
            "o7",
            "set/pd",
        ],
        cwd,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut moved = 0.0f32;
    for i in 0..3 {
        let prediction = read_npy(&cwd.join(format!("o7/pd/{i:04}.npy"))).unwrap();
        let posterior = read_npy(&cwd.join(format!("o3/pd/{i:04}.npy"))).unwrap();
        assert!(prediction.iter().all(|v| v.is_finite() && *v >= 0.0));
        moved = prediction
            .iter()
            .zip(&posterior)
            .fold(moved, |m, (a, b)| m.max((a - b).abs()));
    }
    assert!(moved > 0.0, "the posterior step changes the output");

    // --guide repeated: each occurrence one file or folder.
    fs::create_dir_all(cwd.join("last")).unwrap();
    fs::rename(cwd.join("set/pdfs/0002.npy"), cwd.join("last/0002.npy")).unwrap();
    let out = crossdenoise(
        &[
            "denoise", "--model", "pd.onnx", "--guide", "set/pdfs", "--guide", "last", "set/pd",
            "--out", "o6",
        ],
        cwd,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        read_npy(&cwd.join("o6/pd/0002.npy")).unwrap(),
        read_npy(&cwd.join("o3/pd/0002.npy")).unwrap()
    );

    // A one-input model refuses a guide.
    let plain = cwd.join("plain.onnx");
    reference(&["make-model", plain.to_str().unwrap()]);
    let out = crossdenoise(
        &[
            "denoise",
            "--model",
            "plain.onnx",
            "--guide",
            "set/pdfs",
            "--out",
            "o4",
            "set/pd",
        ],
        cwd,
    );
    refused(&out, "it takes no --guide");
}

/// The `crossdenoise denoise` usage line of docs/runtime.md as a command line: its optional
/// `[...]` groups left out but `[--guide GUIDE]...` (once), `...` dropped, the placeholders
/// replaced by `values`.
fn documented_usage(values: &[(&str, &str)]) -> Vec<String> {
    let doc = fs::read_to_string(crate::support::workspace_root().join("docs/runtime.md")).unwrap();
    let line = doc
        .lines()
        .find(|l| l.starts_with("`crossdenoise denoise "))
        .expect("docs/runtime.md has the usage line")
        .trim_matches('`');
    let mut args = Vec::new();
    let mut group: Option<Vec<&str>> = None;
    for word in line.split_whitespace().skip(1) {
        match &mut group {
            Some(g) => {
                let closing = word.trim_end_matches("...").ends_with(']');
                g.push(word.trim_end_matches("...").trim_end_matches(']'));
                if closing {
                    let g = group.take().unwrap();
                    if g[0] == "--guide" {
                        args.extend(g.iter().map(|w| w.to_string()));
                    }
                }
            }
            None if word.starts_with('[') => {
                let w = word.trim_start_matches('[');
                if w.trim_end_matches("...").ends_with(']') {
                    // A one-word optional flag: left out.
                    continue;
                }
                group = Some(vec![w]);
            }
            None => args.push(word.trim_end_matches("...").to_string()),
        }
    }
    args.into_iter()
        .map(|w| {
            values
                .iter()
                .find(|(k, _)| *k == w)
                .map_or(w.clone(), |(_, v)| v.to_string())
        })
        .collect()
}

/// A root-sum-of-squares scan of 8 coils has its air at 3.94 sigma. A model trained on one
/// coil, served one sigma per slice, leaves that floor grey, and the slice's air tells the
/// user so (the scan itself does not say how many coils made it); it is refused for
/// `--noise map --coils 8`. A model trained on such scans is refused without its noise
/// model and served with it, without a word about the air.
#[test]
fn a_coil_array_scan_needs_its_noise_model() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (single, _) = crate::util::learned_guided_run();
    crate::util::export(&single, &cwd.join("single.onnx"), &["--to", "a"]);
    crate::util::export(
        &crate::util::tiny_coil_run(),
        &cwd.join("coil.onnx"),
        &["--to", "a"],
    );
    crate::util::coil_phantoms(cwd, "set", "2", "128", "0");
    let denoise = |model: &str, out_dir: &str, extra: &[&str]| {
        let mut args = vec!["denoise", "--model", model, "--guide", "set/pdfs"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out_dir, "set/pd"]);
        crossdenoise(&args, cwd)
    };
    let map = ["--noise", "map", "--coils", "8"];
    let out = denoise("single.onnx", "o0", &["--coils", "8"]);
    refused(&out, "--noise map");
    let out = denoise("single.onnx", "o0", &["--acceleration", "3"]);
    refused(&out, "--acceleration 3 needs --noise map");
    for (model, extra, advice) in [
        ("single.onnx", &map[..], "one coil (Rician)"),
        ("coil.onnx", &[][..], "serve it with --noise map --coils 8"),
    ] {
        let out = denoise(model, "o1", extra);
        assert!(!out.status.success(), "{model} {extra:?}");
        assert!(stderr(&out).contains(advice), "{}", stderr(&out));
        assert!(!cwd.join("o1/pd").exists(), "nothing written");
    }
    for (model, out_dir, extra, told) in [
        ("single.onnx", "slice", &[][..], true),
        ("coil.onnx", "map", &map[..], false),
    ] {
        let out = denoise(model, out_dir, extra);
        assert!(out.status.success(), "{out_dir}: {}", stderr(&out));
        let warned = stderr(&out)
            .matches("the air reads as a root-sum-of-squares")
            .count();
        assert_eq!(warned, usize::from(told), "{out_dir}: {}", stderr(&out));
    }
    // The air's mean in units of the true noise sd.
    let air = |out_dir: &str| {
        let (mut sum, mut n) = (0.0f32, 0usize);
        for name in ["0000.npy", "0001.npy"] {
            let served = read_npy(&cwd.join(out_dir).join("pd").join(name)).unwrap();
            assert!(served.iter().all(|v| v.is_finite()), "{out_dir}/{name}");
            let clean = read_npy(&cwd.join("set/clean/pd").join(name)).unwrap();
            let map = read_npy(&cwd.join("set/clean/noise/pd").join(name)).unwrap();
            for ((s, c), m) in served.iter().zip(&clean).zip(&map) {
                if *c == 0.0 {
                    sum += s / m;
                    n += 1;
                }
            }
        }
        sum / n as f32
    };
    // One sigma and the Rician correction leave much of the 8-coil floor, a sigma or more of
    // grey where the air should be black (a tiny model's air is no measure of the chi
    // correction: that is QUALITY.md's, with trained models).
    let slice = air("slice");
    assert!(
        slice > 1.0,
        "one-coil model, one sigma: air at {slice} sigma"
    );
    assert!(air("map").is_finite());
}
