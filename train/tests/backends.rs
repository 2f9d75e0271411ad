//! One training step on each optional backend that is compiled in. wgpu runs where a
//! Vulkan (or Metal / DX12) device exists — on a CPU-only Linux box that is Mesa's lavapipe
//! (`apt-get install mesa-vulkan-drivers`) — and says why it skipped otherwise. LibTorch
//! (feature `tch`, built through scripts/with-libtorch.sh) trains a whole small run that
//! must match flex's step by step, and hands its checkpoint to flex. Each also trains a few
//! steps of the guided denoiser (both directions, blind-spot U-Nets with their guides).

#![cfg(any(feature = "wgpu", feature = "ndarray", feature = "tch"))]

use crossdenoise_train::device::Backend;
use crossdenoise_train::model::Precision;
use crossdenoise_train::study::bench::{BenchModel, StepBenchConfig, train_step};

fn one_step(backend: Backend) {
    for model in [BenchModel::DualDomain, BenchModel::Guided] {
        one_step_of(backend, model);
    }
}

fn one_step_of(backend: Backend, model: BenchModel) {
    let cfg = StepBenchConfig {
        model,
        backend,
        device_index: 0,
        base_channels: 2,
        depth: 2,
        size: 32,
        batch: 2,
        warmup: 0,
        steps: 1,
        edge: true,
        precision: Precision::F32,
    };
    let r = train_step(&cfg, |_| {}).unwrap();
    assert!(r.median_s > 0.0);
    assert_eq!(r.model, model);
}

/// Three steps of the guided denoisers (32 x 32 slices, 16 x 16 crops, two channels) on
/// `backend`, then validation on whole slices: every loss finite, the phantoms scored
/// against clean. Then the same on two of the backend's devices at once (`trainer.devices`,
/// both device 0), whose gradients go through the host: the same losses.
fn guided_steps(backend: Backend) {
    let one = guided_run(backend, "[]");
    let two = guided_run(backend, "[0, 0]");
    for (a, b) in one.iter().zip(&two) {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs(),
            "{backend}: {one:?} against {two:?}"
        );
    }
}

/// The step losses of the run `guided_steps` describes, on `devices`.
fn guided_run(backend: Backend, devices: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{{"name": "guided_{backend}", "data": {{"image_size": 32, "train_pairs": 4, "val_pairs": 2}},
            "model": {{"kind": "guided", "base_channels": 2, "depth": 2}},
            "trainer": {{"epochs": 1, "steps_per_epoch": 3, "batch_size": 2, "crop_size": 16,
                         "lr": 3e-3, "backend": "{backend}", "devices": {devices}}}}}"#
    );
    let config: crossdenoise_train::Config = crossdenoise_train::Config::from_value(
        serde_json::from_str(&text).unwrap(),
        "t.json".as_ref(),
    )
    .unwrap();
    let opts = crossdenoise_train::run::TrainOptions {
        out: dir.path().into(),
        ..Default::default()
    };
    let summary =
        crossdenoise_train::denoiser::train(&config, &opts, &mut crossdenoise_train::run::Quiet)
            .unwrap();
    assert_eq!(summary.steps, 3);
    let metrics = std::fs::read_to_string(summary.run_dir.join("metrics.jsonl")).unwrap();
    let lines: Vec<crossdenoise_train::denoiser::DenoiserLine> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "three steps and the epoch");
    let mut losses = vec![];
    for line in &lines {
        match line {
            crossdenoise_train::denoiser::DenoiserLine::Step { loss, .. } => {
                assert!(loss.total.is_finite() && loss.to_a.is_finite() && loss.to_b.is_finite());
                losses.push(loss.total);
            }
            crossdenoise_train::denoiser::DenoiserLine::Epoch { val, .. } => {
                assert!(val.a.loss.is_finite() && val.b.loss.is_finite());
                assert!(
                    val.a.denoised.is_some(),
                    "phantoms are scored against clean"
                );
            }
        }
    }
    losses
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_trains_one_step() {
    one_step(Backend::Libtorch);
    guided_steps(Backend::Libtorch);
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_trains_one_step() {
    one_step(Backend::Ndarray);
    guided_steps(Backend::Ndarray);
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_trains_one_step() {
    let icds = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"];
    let has_vulkan = icds
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .any(|e| {
            e.map(|e| e.path().extension().is_some_and(|x| x == "json"))
                .unwrap_or(false)
        });
    if !has_vulkan {
        eprintln!(
            "skipped: no Vulkan driver found in {icds:?} (install mesa-vulkan-drivers for lavapipe)"
        );
        return;
    }
    one_step(Backend::Wgpu);
    guided_steps(Backend::Wgpu);
}

#[cfg(feature = "tch")]
mod libtorch {
    use std::path::Path;

    use burn::prelude::*;
    use crossdenoise_train::Config;
    use crossdenoise_train::device::{Backend, BackendError};
    use crossdenoise_train::model::Precision;
    use crossdenoise_train::run::{self, Quiet, TrainOptions};
    use crossdenoise_train::study::{self, MetricLine, StudySummary};

    /// A small run that still exercises every loss (edge included) and Adam's warm-up and
    /// cosine schedule over 8 steps.
    fn config(name: &str, backend: Backend, epochs: usize) -> Config {
        config_in(name, backend, epochs, Precision::F32)
    }

    fn config_in(name: &str, backend: Backend, epochs: usize, precision: Precision) -> Config {
        let text = format!(
            r#"{{
            "name": "{name}", "seed": 11,
            "data": {{ "source": "synthetic", "image_size": 32, "train_pairs": 8, "val_pairs": 2 }},
            "model": {{ "base_channels": 4, "depth": 2 }},
            "trainer": {{ "epochs": {epochs}, "batch_size": 2, "lr": 0.002, "backend": "{backend}",
                          "warmup_steps": 2, "lr_schedule": "cosine", "precision": "{precision}" }}
        }}"#
        );
        let c: Config = serde_json::from_str(&text).unwrap();
        c.validate(Path::new("libtorch.json")).unwrap();
        c
    }

    fn train(c: &Config, out: &Path, resume: bool) -> StudySummary {
        train_until(c, out, resume, None)
    }

    fn train_until(
        c: &Config,
        out: &Path,
        resume: bool,
        stop_after_steps: Option<u64>,
    ) -> StudySummary {
        let opts = TrainOptions {
            out: out.into(),
            resume,
            stop_after_steps,
            ..Default::default()
        };
        study::train(c, &opts, &mut Quiet).unwrap()
    }

    /// Each step's [total, content, recon, cross, edge] and each epoch's validation PSNRs.
    fn read(run: &Path) -> (Vec<[f32; 5]>, Vec<[f64; 4]>) {
        let lines =
            crossdenoise_train::study::curves::read_metrics(&run.join("metrics.jsonl")).unwrap();
        let mut steps = Vec::new();
        let mut vals = Vec::new();
        for l in lines {
            match l {
                MetricLine::Step { loss, .. } => steps.push([
                    loss.total,
                    loss.content.unwrap(),
                    loss.recon.unwrap(),
                    loss.cross.unwrap(),
                    loss.edge.unwrap(),
                ]),
                MetricLine::Epoch { val, .. } => vals.push([
                    val.recon_a.psnr,
                    val.recon_b.psnr,
                    val.cross_a.psnr,
                    val.cross_b.psnr,
                ]),
            }
        }
        (steps, vals)
    }

    /// How close two runs must be: each loss's relative difference over the first two steps
    /// (where a wrong gradient would show at once) and after, and each validation PSNR.
    struct Tolerance {
        early: f32,
        late: f32,
        psnr_db: f64,
    }

    /// Same as flex: LibTorch's convolution gradients (oneDNN) and flex's sum in different
    /// orders, and Adam divides each gradient by its own running size, so a last-bit
    /// difference in a gradient near zero (a bias before an InstanceNorm has an exact
    /// gradient of zero) becomes a visible one in its update a few steps later.
    const SAME: Tolerance = Tolerance {
        early: 1e-5,
        late: 1e-3,
        psnr_db: 0.05,
    };

    /// Step by step, the five losses of run `b` against run `a`'s (a NaN fails), and the
    /// validation PSNRs. Prints and returns each step's largest relative difference.
    fn assert_close(
        what: &str,
        a: &(Vec<[f32; 5]>, Vec<[f64; 4]>),
        b: &(Vec<[f32; 5]>, Vec<[f64; 4]>),
        tolerance: &Tolerance,
    ) -> Vec<f32> {
        assert_eq!(a.0.len(), b.0.len(), "{what}: step count");
        let mut per_step = Vec::new();
        for (i, (x, y)) in a.0.iter().zip(&b.0).enumerate() {
            let limit = if i < 2 {
                tolerance.early
            } else {
                tolerance.late
            };
            let mut worst = 0f32;
            for (k, (p, q)) in x.iter().zip(y).enumerate() {
                let rel = (p - q).abs() / p.abs().max(1e-3);
                assert!(rel < limit, "{what}: step {} loss {k}: {p} vs {q}", i + 1);
                worst = worst.max(rel);
            }
            per_step.push(worst);
        }
        let shown: Vec<String> = per_step.iter().map(|w| format!("{w:.1e}")).collect();
        eprintln!(
            "{what}: largest relative loss difference per step {}",
            shown.join(" ")
        );
        for (x, y) in a.1.iter().zip(&b.1) {
            for (p, q) in x.iter().zip(y) {
                assert!(
                    (p - q).abs() < tolerance.psnr_db,
                    "{what}: validation PSNR {p} vs {q} dB"
                );
            }
        }
        per_step
    }

    #[test]
    fn libtorch_trains_like_flex_and_its_checkpoint_resumes_on_flex() {
        let dir = tempfile::tempdir().unwrap();
        let flex = train(&config("flex", Backend::Flex, 2), dir.path(), false);
        let torch = train(&config("torch", Backend::Libtorch, 2), dir.path(), false);
        assert_eq!(torch.backend, "libtorch");
        assert_eq!(torch.device, "libtorch (CPU)");
        let reference = read(&dir.path().join("flex"));
        assert_eq!(reference.0.len(), 8);
        let first = reference.0[0][3];
        let last = reference.0[7][3];
        assert!(last < first, "the cross loss falls: {first} -> {last}");
        assert_close(
            "libtorch vs flex",
            &reference,
            &read(&dir.path().join("torch")),
            &SAME,
        );
        assert_eq!(
            flex.config_hash,
            config("flex", Backend::Libtorch, 2).hash(),
            "the backend is not part of the hash"
        );
        assert_ne!(flex.seconds, torch.seconds);

        // The first epoch on LibTorch, the second on flex from LibTorch's checkpoint.
        let first = train_until(
            &config("mixed", Backend::Libtorch, 2),
            dir.path(),
            false,
            Some(4),
        );
        assert!(first.interrupted);
        let resumed = train(&config("mixed", Backend::Flex, 2), dir.path(), true);
        assert_eq!((resumed.epochs_done, resumed.steps), (2, 8));
        assert_close(
            "libtorch then flex",
            &reference,
            &read(&dir.path().join("mixed")),
            &SAME,
        );
    }

    /// Mixed precision really computes in bf16 (the losses differ from the f32 run's) and
    /// still trains the same model: each loss within 1% of f32's over the first two steps
    /// and 5% after (bf16's rounding compounds through Adam's updates), the cross loss
    /// falling, the validation within 0.5 dB. Its checkpoint (f32 parameters) resumes on
    /// flex in f32.
    #[test]
    fn bf16_trains_close_to_f32_and_resumes_on_flex_in_f32() {
        let dir = tempfile::tempdir().unwrap();
        train(&config("f32", Backend::Libtorch, 2), dir.path(), false);
        let low = train(
            &config_in("bf16", Backend::Libtorch, 2, Precision::Bf16),
            dir.path(),
            false,
        );
        assert_eq!(low.precision, Precision::Bf16);
        let f32_run = read(&dir.path().join("f32"));
        let bf16_run = read(&dir.path().join("bf16"));
        // bf16's rounding compounds through Adam's updates.
        let bf16 = Tolerance {
            early: 1e-2,
            late: 5e-2,
            psnr_db: 0.5,
        };
        let per_step = assert_close("bf16 vs f32", &f32_run, &bf16_run, &bf16);
        assert!(
            per_step.iter().any(|&w| w > 1e-5),
            "bf16 gave f32's losses: the casts did nothing"
        );
        assert!(
            bf16_run.0[7][3] < bf16_run.0[0][3],
            "the cross loss falls in bf16"
        );

        train_until(
            &config_in("handover", Backend::Libtorch, 2, Precision::Bf16),
            dir.path(),
            false,
            Some(4),
        );
        let resumed = train(&config("handover", Backend::Flex, 2), dir.path(), true);
        assert_eq!((resumed.steps, resumed.precision), (8, Precision::F32));
    }

    #[test]
    fn a_failed_allocation_is_an_error_not_a_crash() {
        let device = Backend::Libtorch.device(0).unwrap();
        // 200k x 200k floats: 160 GB, more than any test machine has.
        let r = run::catch_allocation_failure(|| {
            Tensor::<2>::zeros([200_000, 200_000], &device).into_data()
        });
        let detail = r.unwrap_err();
        assert!(detail.contains("allocate"), "{detail}");
    }

    #[test]
    fn without_a_gpu_libtorch_cuda_says_so_and_auto_falls_back() {
        if tch::Cuda::device_count() > 0 {
            eprintln!("skipped: this machine has a CUDA device");
            return;
        }
        let e = Backend::LibtorchCuda.resolve(0).unwrap_err();
        assert!(matches!(e, BackendError::NoCuda { .. }));
        let e = e.to_string();
        assert!(
            e.contains("no CUDA device") && e.contains("--backend libtorch"),
            "{e}"
        );
        let auto = Backend::Auto.resolve(0).unwrap();
        if auto.backend == Backend::Wgpu {
            eprintln!("auto chose a hardware wgpu adapter: {:?}", auto.reason);
            return;
        }
        assert_eq!(
            auto.backend,
            Backend::Libtorch,
            "the fastest CPU backend compiled in"
        );
        let why = auto.reason.unwrap();
        assert!(why.contains("no GPU") && why.contains("libtorch"), "{why}");
    }
}
