//! Every shipped config loads under the strict rules, and `train` reports a bad one with
//! the file and key at fault before doing any work.

use crate::util::{crossdenoise, failed, refused};

#[test]
fn shipped_configs_are_valid() {
    let dir = crate::support::workspace_root().join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            crossdenoise_train::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1, "no configs in {}", dir.display());
}

#[test]
fn train_names_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.json"),
        r#"{"name":"x","trainer":{"loss_weights":{"crosss":1}}}"#,
    )
    .unwrap();
    let out = crossdenoise(&["train", "x.json"], dir.path());
    let err = failed(&out);
    assert!(
        err.contains("x.json: trainer.loss_weights.crosss: unknown key (expected content, recon, cross, edge)"),
        "{err}"
    );
    assert!(
        !dir.path().join("runs").exists(),
        "nothing may be written for a bad config"
    );

    let out = crossdenoise(&["train", "x.json", "--backend", "wgpu"], dir.path());
    refused(&out, "trainer.loss_weights.crosss");
    std::fs::write(dir.path().join("y.json"), r#"{"name":"y"}"#).unwrap();
    let out = crossdenoise(
        &["train", "y.json", "--backend", "wgpu", "--epochs", "1"],
        dir.path(),
    );
    if !cfg!(feature = "wgpu") {
        refused(&out, "rebuild with `--features wgpu`");
    }
}
