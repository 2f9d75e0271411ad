//! Data-parallel training over MPI (the `mpi` feature): `mpirun -np 2 crossdenoise train`
//! on loopback against one process, a resumed run, a killed rank and a batch too small to
//! split. Open MPI comes from scripts/install-mpi.sh, which the test command runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crossdenoise_export::{Network, TrainedModel};
use crossdenoise_train::run::collective::{divergence, parameters};

use crate::util::{TINY_GUIDED, failed, stderr};

/// `mpirun -np n crossdenoise args...`: as root, with more ranks than cores, and its
/// session directory under the test's own folder `dir` (Open MPI creates it under `TMPDIR`,
/// and two launches at once in the same `/tmp` can race on it: "unable to create the
/// desired directory ... File exists").
fn mpirun(n: usize, dir: &Path) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.env("TMPDIR", dir)
        .args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(n.to_string())
        .arg(env!("CARGO_BIN_EXE_crossdenoise"));
    cmd
}

fn run(mut cmd: Command, cwd: &Path) -> Output {
    cmd.current_dir(cwd).output().expect("mpirun runs")
}

/// `crossdenoise` alone, as one process.
fn alone() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crossdenoise"))
}

fn train_args(config: &str, out: &Path, epochs: usize, sets: &[impl AsRef<str>]) -> Vec<String> {
    let config = crate::support::workspace_root()
        .join("configs")
        .join(format!("{config}.json"));
    let mut args = vec![
        "train".to_string(),
        config.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--epochs".into(),
        epochs.to_string(),
    ];
    for s in sets {
        args.extend(["--set".to_string(), s.as_ref().to_string()]);
    }
    args
}

/// The run's checkpointed parameters, flattened.
fn checkpointed(run: &Path) -> Vec<f32> {
    match TrainedModel::load(run, None).unwrap().network {
        Network::Denoisers(pair) => parameters(pair.as_ref()),
        Network::DualDomain(model) => parameters(model.as_ref()),
    }
}

/// Asserts that two runs' parameters `a` and `b` agree as data-parallel training promises
/// (`collective::divergence`), when `lr_sum` is the sum of their steps' learning rates.
fn assert_close(a: &[f32], b: &[f32], lr_sum: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: parameter count");
    assert!(a.iter().any(|v| *v != 0.0), "{what}: no parameters");
    let (p90, worst) = divergence(a, b);
    assert!(
        p90 <= 1e-5,
        "{what}: a tenth of the parameters differ by more than {p90}"
    );
    assert!(
        worst <= 2.0 * lr_sum,
        "{what}: parameters differ by up to {worst}, more than Adam's steps could move them \
         ({})",
        2.0 * lr_sum
    );
}

/// The sum of the learning rates of a run's steps (metrics.jsonl).
fn lr_sum(run: &Path) -> f32 {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["kind"] == "step")
        .map(|l| l["lr"].as_f64().unwrap() as f32)
        .sum()
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// The tests' tiny guided denoisers (`util::TINY_GUIDED`) at 4 crops a step, which two
/// processes split, and `steps` steps an epoch.
fn guided(steps: usize) -> Vec<String> {
    let mut sets: Vec<String> = TINY_GUIDED
        .iter()
        .filter(|s| {
            !s.starts_with("trainer.batch_size=") && !s.starts_with("trainer.steps_per_epoch=")
        })
        .map(|s| s.to_string())
        .collect();
    sets.push("trainer.batch_size=4".into());
    sets.push(format!("trainer.steps_per_epoch={steps}"));
    sets
}

/// The study's dual-domain network at its smallest: 32 x 32, 6 images in batches of 4 (an
/// epoch's last batch of 2 is split too).
const DUAL_DOMAIN: [&str; 5] = [
    "data.image_size=32",
    "data.train_pairs=6",
    "data.val_pairs=2",
    "model.base_channels=4",
    "trainer.batch_size=4",
];

fn one_and_two_processes_agree(config: &str, sets: &[impl AsRef<str>]) {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let mut cmd = alone();
    cmd.args(train_args(config, &one, 2, sets));
    let out = run(cmd, dir.path());
    assert!(out.status.success(), "one process: {}", stderr(&out));
    let mut cmd = mpirun(2, dir.path());
    cmd.args(train_args(config, &two, 2, sets));
    let out = run(cmd, dir.path());
    assert!(out.status.success(), "two processes: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("x 2 processes"), "{stdout}");
    // Rank 0 alone reports: one line per epoch, not one per process.
    assert_eq!(stdout.matches("trained 2 epochs").count(), 1, "{stdout}");

    let (run_one, run_two) = (one.join(config), two.join(config));
    assert_close(
        &checkpointed(&run_one),
        &checkpointed(&run_two),
        lr_sum(&run_one),
        &format!("{config}: 2 processes x half the batch against 1 x the batch"),
    );
    // What the models compute agrees: every step's loss on the whole batch.
    let (l1, l2) = (step_losses(&run_one), step_losses(&run_two));
    assert_eq!(l1.len(), l2.len());
    for (x, y) in l1.iter().zip(&l2) {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs(),
            "{config}: step losses {l1:?} against {l2:?}"
        );
    }
    let s = summary(&run_two);
    assert_eq!(s["processes"], 2, "{s}");
    assert_eq!(s["batch_per_process"], 2, "{s}");
    assert_eq!(summary(&run_one)["processes"], 1);
    // The same metric lines (each step's loss is the whole batch's, written once).
    let lines = |run: &PathBuf| fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(
        lines(&run_one).lines().count(),
        lines(&run_two).lines().count()
    );
    assert!(run_two.join("samples").is_dir() && run_two.join("curves.png").is_file());
}

#[test]
fn two_processes_train_the_guided_denoisers_one_process_does() {
    one_and_two_processes_agree("guided", &guided(3));
}

#[test]
fn two_processes_train_the_dual_domain_network_one_process_does() {
    one_and_two_processes_agree("config", &DUAL_DOMAIN);
}

#[test]
fn a_run_of_two_processes_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, parts) = (dir.path().join("whole"), dir.path().join("parts"));
    let mut cmd = alone();
    cmd.args(train_args("guided", &whole, 2, &guided(3)));
    let out = run(cmd, dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let mut first = mpirun(2, dir.path());
    first.args(train_args("guided", &parts, 1, &guided(3)));
    let out = run(first, dir.path());
    assert!(out.status.success(), "first epoch: {}", stderr(&out));
    // Raising the epochs of a finished run continues it (every rank reads the checkpoint
    // before rank 0 rewrites the run's config).
    let mut rest = mpirun(2, dir.path());
    rest.args(train_args("guided", &parts, 2, &guided(3)))
        .arg("--resume");
    let out = run(rest, dir.path());
    assert!(out.status.success(), "resumed: {}", stderr(&out));
    assert_close(
        &checkpointed(&whole.join("guided")),
        &checkpointed(&parts.join("guided")),
        lr_sum(&whole.join("guided")),
        "resumed on 2 processes against 2 epochs on one",
    );
}

#[test]
fn a_batch_smaller_than_the_processes_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mpirun(3, dir.path());
    // The tiny runs' batch of 2 over 3 processes.
    let sets = TINY_GUIDED.to_vec();
    cmd.args(train_args("guided", dir.path(), 1, &sets));
    let out = run(cmd, dir.path());
    let err = failed(&out);
    assert!(
        err.contains("trainer.batch_size is 2, fewer than the 3 processes"),
        "{err}"
    );
    assert!(!dir.path().join("guided").exists(), "no run folder is left");
}

/// The pid of rank `rank` among `mpirun`'s children (Open MPI starts local ranks directly).
fn rank_pid(mpirun: u32, rank: usize) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{mpirun}/task/{mpirun}/children")).ok()?;
    children.split_whitespace().find_map(|pid| {
        let env = fs::read(format!("/proc/{pid}/environ")).ok()?;
        let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
        env.split(|&b| b == 0)
            .any(|v| v == wanted.as_bytes())
            .then(|| pid.parse().ok())?
    })
}

/// `mpirun -np 2` training the tiny guided denoisers for `steps` steps into `dir`, returned
/// once rank 0 has written its first step (both ranks train).
fn two_processes_stepping(dir: &Path, steps: usize) -> std::process::Child {
    let mut cmd = mpirun(2, dir);
    cmd.args(train_args("guided", dir, 1, &guided(steps)))
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let metrics = dir.join("guided/metrics.jsonl");
    let start = Instant::now();
    while fs::metadata(&metrics).map_or(true, |m| m.len() == 0) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no step written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_killed_process_ends_the_run_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // Kill rank 1 once both train.
    let mut child = two_processes_stepping(dir.path(), 100_000);
    let pid = rank_pid(child.id(), 1).expect("rank 1 is a child of mpirun");
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    // Rank 0, waiting in the gradient sum, must not hang.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the run went on after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rank 1"), "{text}");
}

/// Each step's loss (the whole batch's) from a run's metrics.jsonl.
fn step_losses(run: &Path) -> Vec<f64> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["kind"] == "step")
        .map(|l| l["loss"]["total"].as_f64().unwrap())
        .collect()
}

/// SIGUSR1 to mpirun (which forwards it to every rank; Ctrl-C would end the job) stops
/// every rank after the same step with a checkpoint, and the run then resumes to its end.
#[test]
fn sigusr1_stops_every_process_with_a_checkpoint_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let child = two_processes_stepping(dir.path(), 60);
    Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}{}", stderr(&out));
    assert!(stdout.contains("checkpoint saved"), "{stdout}");
    let s = summary(&dir.path().join("guided"));
    assert_eq!(s["interrupted"], true, "{s}");
    let stopped = s["steps"].as_u64().unwrap();
    assert!(stopped < 60, "stopped after {stopped} of 60 steps");

    let mut rest = mpirun(2, dir.path());
    rest.args(train_args("guided", dir.path(), 1, &guided(60)))
        .arg("--resume");
    let out = run(rest, dir.path());
    assert!(out.status.success(), "resumed: {}", stderr(&out));
    let s = summary(&dir.path().join("guided"));
    assert_eq!(s["steps"].as_u64(), Some(60), "{s}");
    assert_eq!(s["interrupted"], false, "{s}");
}
