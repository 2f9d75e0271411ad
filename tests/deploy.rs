//! The cluster launchers in deploy/ (a Slurm batch script, a Kubeflow MPIJob and its
//! image), checked as far as can be done offline by scripts/check_deploy.py.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::python::{python, workspace_root};

fn check(deploy: &Path) -> Output {
    let root = workspace_root();
    Command::new(python())
        .arg(root.join("scripts/check_deploy.py"))
        .arg(deploy)
        .arg(root.join("configs"))
        .output()
        .expect("python runs")
}

#[test]
fn the_shipped_launchers_pass_their_check() {
    let out = check(&workspace_root().join("deploy"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ok ") && text.contains("MPIJob"), "{text}");
    assert!(text.contains("train.sbatch"), "{text}");
}

#[test]
fn a_launcher_whose_rank_count_disagrees_with_its_workers_is_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let src = workspace_root().join("deploy");
    for f in ["k8s/mpijob.yaml", "k8s/Dockerfile", "slurm/train.sbatch"] {
        let to = dir.path().join(f);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(src.join(f), &to).unwrap();
    }
    let manifest = dir.path().join("k8s/mpijob.yaml");
    let text = fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("      replicas: 4\n"));
    fs::write(
        &manifest,
        text.replace("      replicas: 4\n", "      replicas: 3\n"),
    )
    .unwrap();
    let out = check(dir.path());
    let err = crate::util::failed(&out);
    assert!(
        err.contains("Launcher command") && err.contains("-np 4") && err.contains("= 3"),
        "{err}"
    );
}
