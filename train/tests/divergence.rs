//! A run that blows up goes back to its last checkpoint and trains on at half the learning
//! rate, as often as `trainer.blow_up_retries` allows; then it stops with the error, which
//! the diagnosis reads.

use std::fs;
use std::path::Path;

use crossdenoise_train::Config;
use crossdenoise_train::job;
use crossdenoise_train::run::{Observer, Quiet, TrainOptions};
use crossdenoise_train::study::experiment::{criteria, diagnosis};

/// The guided denoisers on 32 x 32 slices (2 epochs of 3 steps) at learning rate `lr`.
fn guided(lr: f64, retries: u32) -> Config {
    let text = format!(
        r#"{{"name": "g", "data": {{"image_size": 32, "train_pairs": 4, "val_pairs": 2}},
            "model": {{"kind": "guided", "base_channels": 2, "depth": 2}},
            "trainer": {{"epochs": 2, "steps_per_epoch": 3, "batch_size": 2, "crop_size": 16,
                         "lr": {lr:e}, "blow_up_retries": {retries}}}}}"#
    );
    Config::from_value(serde_json::from_str(&text).unwrap(), Path::new("g.json")).unwrap()
}

fn opts(out: &Path) -> TrainOptions {
    TrainOptions {
        out: out.into(),
        ..Default::default()
    }
}

/// The warnings a run gives.
#[derive(Default)]
struct Warnings(Vec<String>);

impl Observer for Warnings {
    fn warn(&mut self, line: &str) {
        self.0.push(line.into());
    }
}

/// At 1e30 the first step's update overflows the next step's loss; each rollback halves the
/// rate until a step survives. The run ends with every step once in metrics.jsonl, at the
/// rate it trained with, and says how often it went back.
#[test]
fn a_run_that_blows_up_goes_back_and_trains_on_at_half_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut warnings = Warnings::default();
    let summary = job::train(&guided(1e30, 200), &opts(dir.path()), &mut warnings).unwrap();
    let rollbacks = summary.rollbacks;
    assert!((1..200).contains(&rollbacks), "{rollbacks}");
    assert_eq!(summary.lr_scale, 0.5f64.powi(rollbacks as i32));
    assert_eq!(warnings.0.len(), rollbacks as usize);
    assert!(warnings.0[0].contains("diverged"), "{}", warnings.0[0]);
    assert!(
        warnings.0[0].contains("rollback 1 of trainer.blow_up_retries = 200"),
        "{}",
        warnings.0[0]
    );
    let run = dir.path().join("g");
    let text = fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let steps: Vec<(u64, f64)> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| (v["step"].as_u64().unwrap(), v["lr"].as_f64().unwrap()))
        .collect();
    let numbers: Vec<u64> = steps.iter().map(|s| s.0).collect();
    assert_eq!(numbers, (1..=6).collect::<Vec<u64>>(), "each step once");
    let (_, last_lr) = steps[5];
    assert!(last_lr <= 1e30 * summary.lr_scale, "{last_lr}");
    assert!(!run.join("error.txt").exists());
    let summary_json = fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(summary_json.contains(&format!("\"rollbacks\": {rollbacks}")));
}

#[test]
fn a_run_out_of_retries_leaves_its_error_for_the_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let mut warnings = Warnings::default();
    let err = job::train(&guided(1e30, 2), &opts(dir.path()), &mut warnings).unwrap_err();
    assert!(err.to_string().contains("diverged"), "{err}");
    assert_eq!(warnings.0.len(), 2, "{:?}", warnings.0);
    let text = fs::read_to_string(dir.path().join("g/error.txt")).unwrap();
    let found = diagnosis::diagnose(
        &criteria::RunMetrics::default(),
        &guided(1e30, 2),
        &diagnosis::RunOutcome { error: Some(text) },
    );
    assert_eq!(found[0].symptom, "training unstable", "{found:#?}");
    assert!(found[0].remedy.contains("to 1e-4"));

    // With no retries the first blow-up stops the run.
    let none = tempfile::tempdir().unwrap();
    let err = job::train(&guided(1e30, 0), &opts(none.path()), &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("diverged"), "{err}");
}
