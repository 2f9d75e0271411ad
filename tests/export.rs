//! `crossdenoise export` on a real (tiny) trained run: the ONNX file checked by the onnx
//! package, run by Python onnxruntime and by the Rust runtime with the same result, the
//! Triton repository parsed against Triton's schema, and the errors for bad sources.

use std::fs;
use std::path::Path;

use crossdenoise_image::io::{read_npy, write_npy};
use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use serde_json::Value;

use crate::util::{crossdenoise, failed, reference, refused, stderr, tiny_averaged_run, tiny_run};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The "nodes per op type" lines export prints, as (op, count).
fn printed_ops(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .skip_while(|l| !l.starts_with("nodes per op type"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let mut it = l.split_whitespace();
            (
                it.next().unwrap().to_string(),
                it.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn exported_model_passes_the_checker_and_python_and_rust_agree() {
    let run = tiny_run(false);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    let out = crossdenoise(
        &[
            "export",
            run.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
            "--triton-repo",
            "triton",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("parity with Burn: max abs error"), "{text}");
    assert!(text.contains("IR 8, opset 17"), "{text}");

    // Only the ops of the path, in the numbers the architecture implies (depth 2: 1 + 2
    // encoder blocks and 2 decoder blocks of 2 convs, plus the head) — no Identity,
    // Transpose or Reshape, no skip branch.
    let ops = printed_ops(&text);
    let expected: Vec<(String, u64)> = [
        ("AveragePool", 2),
        ("Conv", 11),
        ("ConvTranspose", 2),
        ("InstanceNormalization", 12),
        ("LeakyRelu", 12),
    ]
    .iter()
    .map(|(o, n)| (o.to_string(), *n))
    .collect();
    assert_eq!(ops, expected, "{text}");

    let checked: Value =
        serde_json::from_str(&reference(&["check-model", model.to_str().unwrap()])).unwrap();
    for (op, n) in &expected {
        assert_eq!(
            checked["ops"][op].as_u64(),
            Some(*n),
            "checker's count of {op}"
        );
    }
    assert_eq!(checked["ir_version"], 8);
    assert_eq!(checked["opset"], 17);
    assert_eq!(
        checked["inputs"]["image"],
        serde_json::json!(["N", 1, "H", "W"])
    );
    assert_eq!(
        checked["outputs"]["denoised"],
        serde_json::json!(["N", 1, "H", "W"])
    );
    let meta = &checked["metadata"];
    assert_eq!(meta["crossdenoise.from"], "b");
    assert_eq!(meta["crossdenoise.to_name"], "pd");
    assert_eq!(meta["crossdenoise.size_multiple"], "4");
    assert_eq!(meta["crossdenoise.depth"], "2");
    assert_eq!(meta["crossdenoise.base_channels"], "4");
    assert_eq!(meta["crossdenoise.normalization.percentile"], "99.5");
    assert_eq!(meta["crossdenoise.config_hash"].as_str().unwrap().len(), 16);
    assert!(checked["doc"].as_str().unwrap().contains("no-skip path"));

    // A 30 x 37 PDFS slice through the Rust runtime and through numpy + Python onnxruntime.
    let g = PhantomGenerator::new(
        PhantomConfig {
            size: 48,
            snr_pd: 10.0,
            snr_pdfs: 8.0,
        },
        9,
    )
    .unwrap();
    let slice = g
        .pair(0)
        .pdfs
        .slice(ndarray::s![..30, ..37])
        .mapv(|v| v * 900.0);
    let input = dir.path().join("in");
    fs::create_dir_all(&input).unwrap();
    write_npy(&input.join("s.npy"), slice.view()).unwrap();
    let out = crossdenoise(
        &[
            "denoise",
            "--model",
            model.to_str().unwrap(),
            "--out",
            "den",
            "in/s.npy",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = read_npy(&dir.path().join("den/s.npy")).unwrap();
    let theirs_path = dir.path().join("theirs.npy");
    reference(&[
        "denoise",
        model.to_str().unwrap(),
        input.join("s.npy").to_str().unwrap(),
        theirs_path.to_str().unwrap(),
    ]);
    let theirs = read_npy(&theirs_path).unwrap();
    assert_eq!(ours.dim(), (30, 37));
    let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(theirs.iter())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err / scale < 1e-5,
        "Rust vs Python onnxruntime: {err} of {scale}"
    );

    // The Triton repository: the model and a config that Triton's schema accepts.
    let repo = dir.path().join("triton/crossdenoise_pdfs_to_pd");
    assert_eq!(
        fs::read(repo.join("1/model.onnx")).unwrap(),
        fs::read(&model).unwrap()
    );
    let config: Value = serde_json::from_str(&reference(&[
        "triton-check",
        repo.join("config.pbtxt").to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(config["name"], "crossdenoise_pdfs_to_pd");
    assert_eq!(config["backend"], "onnxruntime");
    assert_eq!(config["input"][0]["name"], "image");
    assert_eq!(
        config["input"][0]["dims"],
        serde_json::json!(["1", "-1", "-1"])
    );
    assert_eq!(config["output"][0]["name"], "denoised");
    assert!(config["dynamicBatching"].is_object());
    assert_eq!(
        config["optimization"]["executionAccelerators"]["gpuExecutionAccelerator"][0]["name"],
        "tensorrt"
    );
}

#[test]
fn identity_mapping_and_same_domain_paths_export() {
    let run = tiny_run(true);
    let dir = tempfile::tempdir().unwrap();
    let out = crossdenoise(
        &[
            "export",
            run.to_str().unwrap(),
            "--out",
            "aa.onnx",
            "--from",
            "a",
            "--to",
            "a",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // A path from a contrast to itself keeps the contrast: a denoiser of it, no synthesis.
    assert!(text.contains("pd (a) denoiser;"), "{text}");
    assert!(
        printed_ops(&text).contains(&("Add".to_string(), 1)),
        "{text}"
    );
    let checked: Value = serde_json::from_str(&reference(&[
        "check-model",
        dir.path().join("aa.onnx").to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(checked["ops"]["Add"], 1);
}

fn no_model_left(dir: &Path) {
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".onnx") && !n.ends_with(".partial")),
        "{names:?}"
    );
}

#[test]
fn bad_sources_are_named_and_leave_no_file() {
    let run = tiny_run(false);
    let dir = tempfile::tempdir().unwrap();
    let export = |source: &str, extra: &[&str]| {
        let mut args = vec!["export", source, "--out", "m.onnx"];
        args.extend_from_slice(extra);
        crossdenoise(&args, dir.path())
    };

    let out = export("nowhere", &[]);
    refused(&out, "nowhere: not a crossdenoise run");

    fs::create_dir_all(dir.path().join("foreign")).unwrap();
    fs::write(dir.path().join("foreign/notes.txt"), "hi").unwrap();
    let out = export("foreign", &[]);
    refused(&out, "foreign: not a crossdenoise run");

    // A run whose config was edited after training: the checkpoint no longer matches.
    let copy = dir.path().join("edited");
    fs::create_dir_all(copy.join("checkpoint")).unwrap();
    for entry in fs::read_dir(run.join("checkpoint")).unwrap() {
        let e = entry.unwrap();
        fs::copy(e.path(), copy.join("checkpoint").join(e.file_name())).unwrap();
    }
    let config = fs::read_to_string(run.join("config.json")).unwrap();
    let mut v: Value = serde_json::from_str(&config).unwrap();
    v["model"]["base_channels"] = serde_json::json!(8);
    fs::write(copy.join("config.json"), v.to_string()).unwrap();
    let out = export("edited", &[]);
    let err = failed(&out);
    assert!(
        err.contains("checkpoint does not match its run's config"),
        "{err}"
    );

    let out = export(run.to_str().unwrap(), &["--from", "c"]);
    refused(&out, "unknown domain");

    // An average the run did not keep, and weights of no known kind.
    let out = export(run.to_str().unwrap(), &["--weights", "average"]);
    let err = failed(&out);
    assert!(
        err.contains("kept no average of its weights (trainer.average_weights)"),
        "{err}"
    );
    let out = export(run.to_str().unwrap(), &["--weights", "best"]);
    refused(&out, "expected average or last");

    no_model_left(dir.path());

    // The checkpoint folder itself is a valid source too.
    let out = export(run.join("checkpoint").to_str().unwrap(), &["--skip-parity"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning: --skip-parity"));
    assert!(stdout(&out).contains("not checked"));
}

/// A run that keeps the running average of its weights exports the average, parity
/// checked, or its last step's weights when asked.
#[test]
fn a_run_that_averages_its_weights_exports_the_average() {
    let run = tiny_averaged_run();
    let dir = tempfile::tempdir().unwrap();
    let export = |out: &str, extra: &[&str]| {
        let mut args = vec!["export", run.to_str().unwrap(), "--out", out, "--to", "a"];
        args.extend_from_slice(extra);
        crossdenoise(&args, dir.path())
    };
    let average = export("average.onnx", &[]);
    assert!(average.status.success(), "{}", stderr(&average));
    assert!(
        stdout(&average).contains("averaged weights"),
        "{}",
        stdout(&average)
    );
    let last = export("last.onnx", &["--weights", "last"]);
    assert!(last.status.success(), "{}", stderr(&last));
    assert!(!stdout(&last).contains("averaged"), "{}", stdout(&last));
    let read = |name: &str| fs::read(dir.path().join(name)).unwrap();
    assert_ne!(read("average.onnx"), read("last.onnx"));
}

#[test]
fn fp16_export_reports_its_error_and_runs_in_the_runtime() {
    let run = tiny_run(false);
    let dir = tempfile::tempdir().unwrap();
    let out = crossdenoise(
        &[
            "export",
            run.to_str().unwrap(),
            "--out",
            "m16.onnx",
            "--fp16",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("parity with Burn (fp16 model): max abs error"),
        "{text}"
    );
    assert!(text.contains("tolerance 2e-2"), "{text}");
    let model = dir.path().join("m16.onnx");
    let checked: Value =
        serde_json::from_str(&reference(&["check-model", model.to_str().unwrap()])).unwrap();
    assert_eq!(checked["ops"]["Cast"], 2);
    assert_eq!(checked["metadata"]["crossdenoise.precision"], "fp16");

    let g = PhantomGenerator::new(
        PhantomConfig {
            size: 32,
            snr_pd: 10.0,
            snr_pdfs: 8.0,
        },
        4,
    )
    .unwrap();
    write_npy(&dir.path().join("s.npy"), g.pair(0).pdfs.view()).unwrap();
    let out = crossdenoise(
        &["denoise", "--model", "m16.onnx", "--out", "den", "s.npy"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        read_npy(&dir.path().join("den/s.npy")).unwrap().dim(),
        (32, 32)
    );
}

#[test]
fn a_guided_denoiser_exports_with_its_inputs_and_metadata() {
    let run = crate::util::tiny_guided_run();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("pdfs.onnx");
    let out = crossdenoise(
        &[
            "export",
            run.to_str().unwrap(),
            "--to",
            "b",
            "--out",
            model.to_str().unwrap(),
            "--triton-repo",
            "triton",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("pdfs (b) denoiser guided by pd (a)"),
        "{text}"
    );
    // Parity with Burn on a square, an oblong and a batch of two, within 1e-4.
    let errors: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split("max abs error ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(errors.len(), 4, "{text}");
    assert!(errors.iter().all(|e| *e <= 1e-4), "{text}");

    let checked: Value =
        serde_json::from_str(&reference(&["check-model", model.to_str().unwrap()])).unwrap();
    for input in ["image", "guide"] {
        assert_eq!(
            checked["inputs"][input],
            serde_json::json!(["N", 1, "H", "W"]),
            "{input}"
        );
    }
    // The noise levels the network reads: the slice's and its guide's.
    assert_eq!(checked["inputs"]["noise"], serde_json::json!(["N", 2]));
    let meta = &checked["metadata"];
    assert_eq!(meta["crossdenoise.kind"], "guided");
    assert_eq!(meta["crossdenoise.from"], "b");
    assert_eq!(meta["crossdenoise.to_name"], "pdfs");
    assert_eq!(meta["crossdenoise.guide"], "a");
    assert_eq!(meta["crossdenoise.guide_name"], "pd");
    assert_eq!(meta["crossdenoise.guide.normalization.percentile"], "99.5");
    assert_eq!(meta["crossdenoise.rician_correction"], "true");
    assert_eq!(meta["crossdenoise.noise_levels"], "2");
    // Four quarter turns of one U-Net share one set of weights.
    let convs = checked["ops"]["Conv"].as_u64().unwrap();
    assert!(convs > 4 * 10, "{convs} convolutions");
    let repo = dir.path().join("triton/crossdenoise_pdfs_guided");
    let config = fs::read_to_string(repo.join("config.pbtxt")).unwrap();
    assert!(config.contains("name: \"guide\""), "{config}");
    assert!(config.contains("name: \"noise\""), "{config}");
    reference(&["triton-check", repo.join("config.pbtxt").to_str().unwrap()]);

    // A denoiser's output is its input's contrast: --from elsewhere is refused.
    let out = crossdenoise(
        &[
            "export",
            run.to_str().unwrap(),
            "--from",
            "a",
            "--to",
            "b",
            "--out",
            "x.onnx",
        ],
        dir.path(),
    );
    refused(&out, "a denoiser's output is its input's contrast");
    assert!(!dir.path().join("x.onnx").exists());
}

/// Export states the validation the exported weights reached, and warns (without refusing)
/// when that is below the acquired image: the tiny run's three steps are, the learned run is
/// not. Training warns the same way at its end.
#[test]
fn a_denoiser_worse_than_its_input_is_reported_at_training_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let below = "scores below the acquired image on the validation slices";
    let tiny = crate::util::tiny_guided_run();
    let model = dir.path().join("pd.onnx");
    let run_export = |run: &Path| {
        let run = run.to_str().unwrap();
        let out = crossdenoise(
            &["export", run, "--to", "a", "--out", "pd.onnx"],
            dir.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(model.exists());
        (stdout(&out), stderr(&out))
    };
    let (text, err) = run_export(&tiny);
    assert!(
        text.contains("validation at the run's last epoch: "),
        "{text}"
    );
    assert!(err.contains(below), "{err}");
    assert!(err.contains("trainer.lr"), "{err}");
    // The validation of an averaging run scored the average, so it is not told of the last
    // step's weights.
    let averaged = tiny_averaged_run();
    let out = crossdenoise(
        &[
            "export",
            averaged.to_str().unwrap(),
            "--weights",
            "last",
            "--out",
            "pd.onnx",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("validation at"), "{}", stdout(&out));
    assert!(!stderr(&out).contains(below), "{}", stderr(&out));
    let (learned, _) = crate::util::learned_guided_run();
    let (text, err) = run_export(&learned);
    assert!(
        text.contains("validation at the run's last epoch: "),
        "{text}"
    );
    assert!(!err.contains(below), "{err}");

    // Training says it too, naming the contrast, and still ends as a run.
    let config = crate::support::workspace_root().join("configs/guided.json");
    let mut train = vec![
        "train",
        config.to_str().unwrap(),
        "--out",
        "runs",
        "--epochs",
        "1",
    ];
    for set in crate::util::TINY_GUIDED {
        train.extend(["--set", set]);
    }
    let out = crossdenoise(&train, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("the pd denoiser {below}")), "{err}");
}
