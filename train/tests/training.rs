//! The training loop end to end on a tiny phantom config: outputs, reproducibility, and a
//! resumed run ending identical to an uninterrupted one.

use std::fs;
use std::path::Path;

use crossdenoise_train::Config;
use crossdenoise_train::job;
use crossdenoise_train::run::checkpoint::Weights;
use crossdenoise_train::run::{Quiet, TrainOptions};
use crossdenoise_train::study::{self, MetricLine};

fn tiny(name: &str) -> Config {
    let text = format!(
        r#"{{
        "name": "{name}", "seed": 5,
        "data": {{ "source": "synthetic", "image_size": 32, "train_pairs": 6, "val_pairs": 2 }},
        "model": {{ "base_channels": 2, "depth": 2 }},
        "trainer": {{ "epochs": 2, "batch_size": 4, "lr": 0.002 }}
    }}"#
    );
    let c: Config = serde_json::from_str(&text).unwrap();
    c.validate(Path::new("tiny.json")).unwrap();
    c
}

fn opts(out: &Path) -> TrainOptions {
    TrainOptions {
        out: out.into(),
        ..Default::default()
    }
}

fn metrics(run: &Path) -> String {
    fs::read_to_string(run.join("metrics.jsonl")).unwrap()
}

#[test]
fn a_run_writes_its_outputs_and_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let c = tiny("run");
    let s = job::train(&c, &opts(dir.path()), &mut Quiet).unwrap();
    assert_eq!((s.epochs_done, s.steps, s.interrupted), (2, 4, false));
    let run = dir.path().join("run");
    for f in [
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "checkpoint/model.bpk",
        "checkpoint/optimizer.bpk",
        "samples/epoch_002.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let lines: Vec<MetricLine> = metrics(&run)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps = lines
        .iter()
        .filter(|l| matches!(l, MetricLine::Step { .. }))
        .count();
    let epochs: Vec<_> = lines
        .iter()
        .filter_map(|l| match l {
            MetricLine::Epoch { val, .. } => Some((**val).clone()),
            _ => None,
        })
        .collect();
    assert_eq!((steps, epochs.len()), (4, 2));
    let v = &epochs[1];
    assert!(v.cross_a.psnr.is_finite() && v.cross_a.psnr_clean.is_some() && v.baseline_a.is_some());

    // A run of the same name is not silently replaced.
    let err = job::train(&c, &opts(dir.path()), &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");

    // Same config, same seed: the same metrics, line for line.
    let other = tempfile::tempdir().unwrap();
    job::train(&c, &opts(other.path()), &mut Quiet).unwrap();
    assert_eq!(metrics(&run), metrics(&other.path().join("run")));
}

#[test]
fn resumed_run_ends_identical_to_an_uninterrupted_one() {
    let whole = tempfile::tempdir().unwrap();
    let c = tiny("r");
    job::train(&c, &opts(whole.path()), &mut Quiet).unwrap();

    let parts = tempfile::tempdir().unwrap();
    // Stop mid-epoch 0, then at the end of epoch 0 ... the checkpoint takes over each time.
    let first = job::train(
        &c,
        &TrainOptions {
            stop_after_steps: Some(1),
            ..opts(parts.path())
        },
        &mut Quiet,
    )
    .unwrap();
    assert!(first.interrupted);
    assert_eq!(first.steps, 1);
    // Pretend the process died after writing one more line that no checkpoint covers.
    let run = parts.path().join("r");
    fs::OpenOptions::new()
        .append(true)
        .open(run.join("metrics.jsonl"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"kind\":\"garbage\"}\n"))
        .unwrap();
    let second = job::train(
        &c,
        &TrainOptions {
            resume: true,
            stop_after_steps: Some(2),
            ..opts(parts.path())
        },
        &mut Quiet,
    )
    .unwrap();
    assert!(second.interrupted);
    let last = job::train(
        &c,
        &TrainOptions {
            resume: true,
            ..opts(parts.path())
        },
        &mut Quiet,
    )
    .unwrap();
    assert!(!last.interrupted);
    assert_eq!(last.steps, 4);
    assert_eq!(metrics(&run), metrics(&whole.path().join("r")));
}

#[test]
fn resume_refuses_a_changed_config_or_a_missing_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let resume = TrainOptions {
        resume: true,
        ..opts(dir.path())
    };
    let err = job::train(&tiny("m"), &resume, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("no checkpoint"), "{err}");

    let c = tiny("m");
    job::train(
        &c,
        &TrainOptions {
            stop_after_steps: Some(1),
            ..opts(dir.path())
        },
        &mut Quiet,
    )
    .unwrap();
    let mut changed = c.clone();
    changed.trainer.lr = 0.01;
    let err = job::train(&changed, &resume, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("different config"), "{err}");
}

/// bf16 on a backend without bf16 convolutions is refused before the run folder exists,
/// with the key and the fix.
#[test]
fn bf16_off_libtorch_is_refused_before_the_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = tiny("low");
    c.trainer.precision = crossdenoise_train::model::PrecisionSetting::Bf16;
    let err = job::train(&c, &opts(dir.path()), &mut Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("trainer.precision: bf16") && err.contains("flex"),
        "{err}"
    );
    assert!(!dir.path().join("low").exists());
}

/// `auto` is never refused: on flex it trains in f32, and the summary says so.
#[test]
fn auto_precision_trains_in_f32_on_flex() {
    use crossdenoise_train::model::{Precision, PrecisionSetting};
    let dir = tempfile::tempdir().unwrap();
    let mut c = tiny("auto");
    c.trainer.precision = PrecisionSetting::Auto;
    let summary = job::train(&c, &opts(dir.path()), &mut Quiet).unwrap();
    assert_eq!(summary.precision, Precision::F32);
    let written = fs::read_to_string(dir.path().join("auto/summary.json")).unwrap();
    assert!(written.contains(r#""precision": "f32""#), "{written}");
}

#[test]
fn a_finished_run_trains_on_when_only_its_epochs_are_raised() {
    let dir = tempfile::tempdir().unwrap();
    let c = tiny("more");
    let done = job::train(&c, &opts(dir.path()), &mut Quiet).unwrap();
    assert_eq!(done.epochs_done, 2);
    let resume = TrainOptions {
        resume: true,
        ..opts(dir.path())
    };
    let mut longer = c.clone();
    longer.trainer.epochs = 3;
    let more = job::train(&longer, &resume, &mut Quiet).unwrap();
    assert_eq!((more.epochs_done, more.steps), (3, 6));
    let run = dir.path().join("more");
    let saved: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved["trainer"]["epochs"], 3);
    let epochs = metrics(&run)
        .lines()
        .filter(|l| l.contains("\"kind\":\"epoch\""))
        .count();
    assert_eq!(epochs, 3, "one epoch line per epoch, old and new");

    // Raising epochs together with anything else is still a different run.
    let mut other = longer.clone();
    other.trainer.epochs = 4;
    other.trainer.lr = 0.01;
    let err = job::train(&other, &resume, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("different config"), "{err}");
}

#[test]
fn trains_on_paired_folders_and_names_bad_folders() {
    use crossdenoise_image::io::Format;
    use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
    use crossdenoise_image::phantom_set;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("knees");
    let g = PhantomGenerator::new(
        PhantomConfig {
            size: 32,
            ..Default::default()
        },
        1,
    )
    .unwrap();
    phantom_set::prepare_output(&data, false).unwrap();
    phantom_set::write_set(&data, &g, 1, 5, Format::Png, |_| {}).unwrap();

    let mut c = tiny("folder");
    c.data.source = crossdenoise_train::config::DataSource::Folder;
    c.data.path = Some(data.clone());
    c.data.val_pairs = 2;
    c.trainer.epochs = 1;
    let s = study::train(&c, &opts(dir.path()), &mut Quiet).unwrap();
    assert_eq!(s.steps, 1, "3 training pairs in batches of 4");
    let v = s.finals.final_val.unwrap();
    assert!(v.cross_a.psnr.is_finite() && v.cross_a.psnr_clean.is_none() && v.baseline_a.is_none());

    c.data.val_pairs = 5;
    let err = job::train(
        &c,
        &TrainOptions {
            force: true,
            ..opts(dir.path())
        },
        &mut Quiet,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("knees") && err.to_string().contains("val_pairs"),
        "{err}"
    );

    c.data.path = Some(dir.path().join("missing"));
    let err = job::train(
        &c,
        &TrainOptions {
            force: true,
            ..opts(dir.path())
        },
        &mut Quiet,
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

/// A suite of three tiny configs sharing a base by `extends`, in `dir/configs`.
fn tiny_suite(dir: &Path) -> Vec<&'static str> {
    let configs = dir.join("configs");
    fs::create_dir_all(&configs).unwrap();
    fs::write(
        configs.join("base.json"),
        r#"{ "name": "base", "seed": 5,
        "data": { "source": "synthetic", "image_size": 32, "train_pairs": 6, "val_pairs": 2 },
        "model": { "base_channels": 2, "depth": 2 },
        "trainer": { "epochs": 2, "batch_size": 2, "lr": 0.002 } }"#,
    )
    .unwrap();
    let names = vec!["s_no_skip", "s_source_skip", "s_only_cross"];
    for (name, trainer) in names.iter().zip([
        r#"{"cross_domain_strategy": "no_skip"}"#,
        r#"{"cross_domain_strategy": "use_source_skip"}"#,
        r#"{"loss_weights": {"content": 0, "recon": 0, "cross": 1, "edge": 0}}"#,
    ]) {
        fs::write(
            configs.join(format!("{name}.json")),
            format!(r#"{{"extends": "base.json", "name": "{name}", "trainer": {trainer}}}"#),
        )
        .unwrap();
    }
    names
}

#[test]
fn an_interrupted_suite_resumes_without_redoing_finished_runs() {
    use crossdenoise_train::run::Observer;
    use crossdenoise_train::study::experiment::suite::{self, Plan, SuiteOptions};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let names = tiny_suite(dir.path());
    let suite_dir = dir.path().join("runs/tiny");
    let stop = Arc::new(AtomicBool::new(false));
    let opts = SuiteOptions {
        configs: dir.path().join("configs"),
        out: dir.path().join("runs"),
        overrides: vec![],
        force: false,
        stop: Some(stop.clone()),
    };

    // Stop as the second run starts: it trains one step, checkpoints and the suite ends.
    let runs = suite::plan(&suite_dir, &names, &opts).unwrap();
    assert!(runs.iter().all(|r| r.plan == Plan::Fresh));
    let mut started = Vec::new();
    let mut observer = |i: usize, _: &suite::SuiteRun| -> Box<dyn Observer> {
        started.push(i);
        if i == 1 {
            stop.store(true, Ordering::SeqCst);
        }
        Box::new(Quiet)
    };
    assert!(!suite::run(&suite_dir, &runs, &opts, &mut observer).unwrap());
    assert_eq!(started, [0, 1]);
    let first = metrics(&suite_dir.join("s_no_skip"));

    stop.store(false, Ordering::SeqCst);
    let runs = suite::plan(&suite_dir, &names, &opts).unwrap();
    let plans: Vec<Plan> = runs.iter().map(|r| r.plan).collect();
    assert_eq!(plans, [Plan::Done, Plan::Resume, Plan::Fresh]);
    let mut started = Vec::new();
    let mut observer = |i: usize, _: &suite::SuiteRun| -> Box<dyn Observer> {
        started.push(i);
        Box::new(Quiet)
    };
    assert!(suite::run(&suite_dir, &runs, &opts, &mut observer).unwrap());
    assert_eq!(started, [1, 2], "the finished run is not trained again");
    assert_eq!(metrics(&suite_dir.join("s_no_skip")), first);

    // The resumed run holds every step once: 6 pairs / batch 2 x 2 epochs.
    let steps: Vec<u64> = metrics(&suite_dir.join("s_source_skip"))
        .lines()
        .filter_map(|l| match serde_json::from_str(l).unwrap() {
            MetricLine::Step { step, .. } => Some(step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, (1..=6).collect::<Vec<u64>>());

    let (reports, missing) = suite::summarise(&suite_dir, "tiny suite", &runs).unwrap();
    assert!(missing.is_empty());
    assert_eq!(reports.len(), 3);
    let only_cross = &reports[2];
    let failed: Vec<&str> = only_cross.failed().iter().map(|c| c.id).collect();
    assert!(failed.contains(&"content_small"), "{failed:?}");
    let csv = fs::read_to_string(suite_dir.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.lines()
            .nth(3)
            .unwrap()
            .starts_with("s_only_cross,no_skip,0,0,1,0,2,6,")
    );
    let md = fs::read_to_string(suite_dir.join("summary.md")).unwrap();
    assert!(md.contains("| s_source_skip | use_source_skip |"), "{md}");
    for f in [
        "curves_total.png",
        "curves_cross.png",
        "curves_psnr.png",
        "report.html",
    ] {
        assert!(suite_dir.join(f).exists(), "{f}");
    }
    assert!(!suite_dir.join("curves_content.png").exists() || reports[0].final_losses[0].is_some());
    let html = fs::read_to_string(suite_dir.join("report.html")).unwrap();
    assert!(html.matches("data:image/png;base64,").count() >= 3 + 3);
    assert!(suite_dir.join("s_only_cross/report.html").exists());
}

/// The checkpointed parameters of `config`'s run in `out`, flattened.
fn checkpointed(config: &Config, out: &Path) -> Vec<f32> {
    checkpointed_weights(config, out, Weights::Last)
}

/// The checkpoint's `which` parameters of `config`'s run in `out`, flattened.
fn checkpointed_weights(config: &Config, out: &Path, which: Weights) -> Vec<f32> {
    use crossdenoise_train::run::checkpoint;
    use crossdenoise_train::run::collective::parameters;
    let device = burn::prelude::Device::flex();
    let ckpt = checkpoint::find(&out.join(&config.name)).unwrap();
    if config.model.kind.is_denoiser() {
        let init = crossdenoise_train::denoiser::training::model_config(config).init_pair(&device);
        parameters(&checkpoint::load_weights(&ckpt, init, which).unwrap())
    } else {
        let init = study::model_config(config).init(&device);
        parameters(&checkpoint::load_weights(&ckpt, init, which).unwrap())
    }
}

/// `trainer.average_weights`: the checkpoint keeps the running average beside the last
/// weights, validation reads the average, and an interrupted run resumes it exactly.
#[test]
fn a_run_that_averages_its_weights_validates_and_resumes_the_average() {
    let mut c = tiny("avg");
    c.model.kind = crossdenoise_train::config::ModelKind::Guided;
    c.trainer.crop_size = 16;
    c.trainer.steps_per_epoch = 3;
    let plain = c.clone();
    c.trainer.average_weights = Some(0.5);
    let (whole, parts, last) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    job::train(&c, &opts(whole.path()), &mut Quiet).unwrap();
    job::train(&plain, &opts(last.path()), &mut Quiet).unwrap();
    let averaged = checkpointed_weights(&c, whole.path(), Weights::Average);
    let trained = checkpointed(&c, whole.path());
    // The same steps as without the average; the average is elsewhere.
    assert_eq!(trained, checkpointed(&plain, last.path()));
    assert_ne!(averaged, trained);
    assert_ne!(
        last_validation(whole.path(), &c),
        last_validation(last.path(), &plain)
    );
    assert!(!last.path().join("avg/checkpoint/average.bpk").exists());

    let first = job::train(
        &c,
        &TrainOptions {
            stop_after_steps: Some(4),
            ..opts(parts.path())
        },
        &mut Quiet,
    )
    .unwrap();
    assert!(first.interrupted);
    let resumed = TrainOptions {
        resume: true,
        ..opts(parts.path())
    };
    job::train(&c, &resumed, &mut Quiet).unwrap();
    assert_eq!(
        checkpointed_weights(&c, parts.path(), Weights::Average),
        averaged
    );
    assert_eq!(
        metrics(&parts.path().join("avg")),
        metrics(&whole.path().join("avg"))
    );
}

fn lr_sum(run: &Path) -> f32 {
    metrics(run)
        .lines()
        .filter_map(|l| match serde_json::from_str(l).ok()? {
            MetricLine::Step { lr, .. } => Some(lr as f32),
            _ => None,
        })
        .sum()
}

/// `trainer.devices`: three training threads in this process (flex, so all on the CPU)
/// train the model one does, for the dual-domain network and the guided denoisers alike.
#[test]
fn several_devices_in_one_process_train_the_model_one_device_does() {
    use crossdenoise_train::run::collective::divergence;
    let mut guided = tiny("guided");
    guided.model.kind = crossdenoise_train::config::ModelKind::Guided;
    guided.trainer.crop_size = 16;
    guided.trainer.steps_per_epoch = 3;
    guided.trainer.batch_size = 5;
    // Batches of 3 for the dual-domain network (6 images: two steps an epoch, one image of
    // each per device); 5 crops for the denoisers (2, 2 and 1).
    let mut dual = tiny("dual");
    dual.trainer.batch_size = 3;
    dual.model.base_channels = 4;
    for c in [dual, guided] {
        let (one, three) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let s1 = job::train(&c, &opts(one.path()), &mut Quiet).unwrap();
        let mut on_three = c.clone();
        on_three.trainer.devices = vec![0, 0, 0];
        let s3 = job::train(&on_three, &opts(three.path()), &mut Quiet).unwrap();
        assert_eq!((s3.processes, s1.processes), (3, 1));
        assert_eq!(s3.steps, s1.steps);
        let (p90, worst) = divergence(
            &checkpointed(&c, one.path()),
            &checkpointed(&c, three.path()),
        );
        let bound = 2.0 * lr_sum(&one.path().join(&c.name));
        assert!(
            p90 <= 1e-5 && worst <= bound,
            "{}: {p90} {worst} {bound}",
            c.name
        );
        // What the models compute agrees: the last validation's every figure.
        let (v1, v3) = (
            last_validation(one.path(), &c),
            last_validation(three.path(), &c),
        );
        assert_numbers_close(&v1, &v3, &c.name);
        // One writer: the same lines as the single device's run.
        let lines = |d: &Path| metrics(&d.join(&c.name)).lines().count();
        assert_eq!(lines(one.path()), lines(three.path()));
    }
}

/// A device whose run fails ends the others' too, with its error, instead of leaving them
/// waiting for a sum that never comes.
#[test]
fn a_failing_device_ends_the_run_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = tiny("taken");
    c.trainer.devices = vec![0, 0];
    job::train(&c, &opts(dir.path()), &mut Quiet).unwrap();
    // The folder holds a run now: the first device refuses it, the second was waiting.
    let err = job::train(&c, &opts(dir.path()), &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
}

/// The last epoch line of `config`'s run in `out`: its validation figures.
fn last_validation(out: &Path, config: &Config) -> serde_json::Value {
    let text = metrics(&out.join(&config.name));
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains(r#""kind":"epoch""#))
        .unwrap();
    serde_json::from_str::<serde_json::Value>(line).unwrap()["val"].clone()
}

/// Every number of `a` within 1e-4 (relative) of `b`'s in the same place.
fn assert_numbers_close(a: &serde_json::Value, b: &serde_json::Value, what: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                "{what}: {x} against {y}"
            );
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.len(), y.len(), "{what}");
            for (k, v) in x {
                assert_numbers_close(v, &y[k], &format!("{what}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{what}");
            for (v, w) in x.iter().zip(y) {
                assert_numbers_close(v, w, what);
            }
        }
        _ => assert_eq!(a, b, "{what}"),
    }
}
