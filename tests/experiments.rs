//! The study's experiment workflow through the binary: `check`, `quick-test`, the
//! cross-domain suite with its summaries, `diagnose`, and the suite page in a browser. The
//! shipped configs run at a tiny scale through `--set`.

use std::path::PathBuf;

use crate::util::{crossdenoise, failed, refused, stderr};

fn configs() -> PathBuf {
    crate::support::workspace_root().join("configs")
}

/// The tiny scale, without the shipped config's warm-up (two steps would see none of the
/// learning rate).
const TINY: [&str; 10] = {
    let t = crate::util::TINY;
    [
        t[0],
        t[1],
        t[2],
        t[3],
        t[4],
        t[5],
        t[6],
        t[7],
        "--set",
        "trainer.warmup_steps=0",
    ]
};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn check_warns_about_the_original_failing_setups() {
    let dir = tempfile::tempdir().unwrap();
    let out = crossdenoise(
        &[
            "check",
            configs().join("ablation_only_cross.json").to_str().unwrap(),
            "--strict",
        ],
        dir.path(),
    );
    assert!(!out.status.success(), "--strict fails on warnings");
    let err = stderr(&out);
    for key in [
        "trainer.loss_weights.content",
        "trainer.loss_weights.recon",
        "trainer.loss_weights.edge",
    ] {
        assert!(err.contains(key), "{key} in {err}");
    }
    let out = crossdenoise(
        &["check", configs().join("config.json").to_str().unwrap()],
        dir.path(),
    );
    assert!(out.status.success());
    assert!(stdout(&out).contains("none of the known traps"));
    // A denoiser's crop smaller than its network's reach is named, the config's is not.
    let guided = configs().join("guided.json");
    let out = crossdenoise(&["check", guided.to_str().unwrap(), "--strict"], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let small = [
        "check",
        guided.to_str().unwrap(),
        "--strict",
        "--set",
        "trainer.crop_size=48",
    ];
    let out = crossdenoise(&small, dir.path());
    let err = failed(&out);
    assert!(
        err.contains("trainer.crop_size: 48 is smaller than 64"),
        "{err}"
    );
}

#[test]
fn quick_test_fails_the_cross_only_setup_naming_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = configs().join("ablation_only_cross.json");
    let mut args = vec!["quick-test", config.to_str().unwrap(), "--epochs", "1"];
    args.extend(TINY);
    let out = crossdenoise(&args, dir.path());
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("FAIL content loss converges to a small value")
            && text.contains("content loss is switched off"),
        "{text}"
    );
    let verdict = text.lines().last().unwrap_or_default();
    assert!(
        verdict.starts_with("quick test FAILED:")
            && verdict.contains("content loss converges to a small value"),
        "{text}"
    );
    assert!(
        dir.path()
            .join("runs/quick-test/ablation_only_cross/report.html")
            .is_file()
    );
}

#[test]
fn the_cross_domain_suite_summarises_diagnoses_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let configs = configs();
    let mut args = vec![
        "experiments",
        "--cross-domain",
        "--epochs",
        "1",
        "--configs",
        configs.to_str().unwrap(),
    ];
    args.extend(TINY);
    let out = crossdenoise(&args, dir.path());
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("5 runs, 5 to train"), "{text}");
    let suite = dir.path().join("runs/cross_domain");
    let csv = std::fs::read_to_string(suite.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    for (line, strategy) in csv.lines().skip(1).zip([
        "cross_no_skip,no_skip,",
        "cross_target_skip,use_target_skip,",
        "cross_baseline,use_source_skip,",
        "cross_zero_skip,zero_skip,",
        "cross_mixed_skip,mixed_skip,",
    ]) {
        assert!(line.starts_with(strategy), "{line}");
    }
    let md = std::fs::read_to_string(suite.join("summary.md")).unwrap();
    assert!(md.contains("## Success criteria"), "{md}");
    assert!(md.contains("cross loss falls >= 50% from its first value"));

    // A second call finds everything done and only rewrites the summaries.
    let out = crossdenoise(&args, dir.path());
    assert!(
        stdout(&out).contains("5 runs, 0 to train"),
        "{}",
        stdout(&out)
    );

    // Two steps cannot halve the cross loss: diagnose names the seed's row with numbers.
    let out = crossdenoise(
        &["diagnose", suite.join("cross_baseline").to_str().unwrap()],
        dir.path(),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("diagnosis: cross loss does not fall"),
        "{text}"
    );
    assert!(
        text.contains("use_source_skip feeds the source domain's skips"),
        "{text}"
    );
    assert!(
        text.contains("%), less than the 50% drop required"),
        "{text}"
    );

    let out = crossdenoise(&["diagnose", "nowhere"], dir.path());
    refused(&out, "nowhere: not a run folder");

    let html = suite.join("report.html");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.matches("data:image/png;base64,iVBORw0KGgo").count() >= 6 + 5);
    let shot = dir.path().join("suite.png");
    if crate::util::chromium_screenshot(&html, &shot).is_some() {
        let blue = crate::util::pixels_near(&shot, [31, 119, 180], 30);
        assert!(
            blue > 100,
            "only {blue} curve pixels on the rendered suite page"
        );
    }
}
