//! The training loop end to end on a tiny phantom config: outputs, reproducibility, and a
//! resumed run ending identical to an uninterrupted one.

use std::fs;
use std::path::Path;

use crossdenoise_train::Config;
use crossdenoise_train::training::{self, MetricLine, Quiet, TrainOptions};

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
    let s = training::train(&c, &opts(dir.path()), &mut Quiet).unwrap();
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
    let err = training::train(&c, &opts(dir.path()), &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");

    // Same config, same seed: the same metrics, line for line.
    let other = tempfile::tempdir().unwrap();
    training::train(&c, &opts(other.path()), &mut Quiet).unwrap();
    assert_eq!(metrics(&run), metrics(&other.path().join("run")));
}

#[test]
fn resumed_run_ends_identical_to_an_uninterrupted_one() {
    let whole = tempfile::tempdir().unwrap();
    let c = tiny("r");
    training::train(&c, &opts(whole.path()), &mut Quiet).unwrap();

    let parts = tempfile::tempdir().unwrap();
    // Stop mid-epoch 0, then at the end of epoch 0 ... the checkpoint takes over each time.
    let first = training::train(
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
    let second = training::train(
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
    let last = training::train(
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
    let err = training::train(&tiny("m"), &resume, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("no checkpoint"), "{err}");

    let c = tiny("m");
    training::train(
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
    let err = training::train(&changed, &resume, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("different config"), "{err}");
}

#[test]
fn a_finished_run_trains_on_when_only_its_epochs_are_raised() {
    let dir = tempfile::tempdir().unwrap();
    let c = tiny("more");
    let done = training::train(&c, &opts(dir.path()), &mut Quiet).unwrap();
    assert_eq!(done.epochs_done, 2);
    let resume = TrainOptions {
        resume: true,
        ..opts(dir.path())
    };
    let mut longer = c.clone();
    longer.trainer.epochs = 3;
    let more = training::train(&longer, &resume, &mut Quiet).unwrap();
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
    let err = training::train(&other, &resume, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("different config"), "{err}");
}

#[test]
fn trains_on_paired_folders_and_names_bad_folders() {
    use crossdenoise_runtime::io::Format;
    use crossdenoise_runtime::phantom::{PhantomConfig, PhantomGenerator};
    use crossdenoise_runtime::phantom_set;

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
    let s = training::train(&c, &opts(dir.path()), &mut Quiet).unwrap();
    assert_eq!(s.steps, 1, "3 training pairs in batches of 4");
    let v = s.final_val.unwrap();
    assert!(v.cross_a.psnr.is_finite() && v.cross_a.psnr_clean.is_none() && v.baseline_a.is_none());

    c.data.val_pairs = 5;
    let err = training::train(
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
    let err = training::train(
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
