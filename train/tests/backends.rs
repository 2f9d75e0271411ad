//! One training step on each optional backend that is compiled in. wgpu runs where a
//! Vulkan (or Metal / DX12) device exists — on a CPU-only Linux box that is Mesa's lavapipe
//! (`apt-get install mesa-vulkan-drivers`) — and says why it skipped otherwise. LibTorch
//! (feature `tch`, built through scripts/with-libtorch.sh) trains a whole small run that
//! must match flex's step by step, and hands its checkpoint to flex.

#![cfg(any(feature = "wgpu", feature = "ndarray", feature = "tch"))]

use crossdenoise_train::bench::{StepBenchConfig, train_step};
use crossdenoise_train::device::Backend;

fn one_step(backend: Backend) {
    let cfg = StepBenchConfig {
        backend,
        device_index: 0,
        base_channels: 2,
        depth: 2,
        size: 32,
        batch: 2,
        warmup: 0,
        steps: 1,
        edge: true,
    };
    let r = train_step(&cfg, |_| {}).unwrap();
    assert!(r.median_s > 0.0);
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_trains_one_step() {
    one_step(Backend::Libtorch);
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_trains_one_step() {
    one_step(Backend::Ndarray);
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
}

#[cfg(feature = "tch")]
mod libtorch {
    use std::path::Path;

    use burn::prelude::*;
    use crossdenoise_train::Config;
    use crossdenoise_train::device::{Backend, BackendError};
    use crossdenoise_train::training::{self, MetricLine, Quiet, TrainOptions};

    /// A small run that still exercises every loss (edge included) and Adam's warm-up and
    /// cosine schedule over 8 steps.
    fn config(name: &str, backend: Backend, epochs: usize) -> Config {
        let text = format!(
            r#"{{
            "name": "{name}", "seed": 11,
            "data": {{ "source": "synthetic", "image_size": 32, "train_pairs": 8, "val_pairs": 2 }},
            "model": {{ "base_channels": 4, "depth": 2 }},
            "trainer": {{ "epochs": {epochs}, "batch_size": 2, "lr": 0.002, "backend": "{backend}",
                          "warmup_steps": 2, "lr_schedule": "cosine" }}
        }}"#
        );
        let c: Config = serde_json::from_str(&text).unwrap();
        c.validate(Path::new("libtorch.json")).unwrap();
        c
    }

    fn train(c: &Config, out: &Path, resume: bool) -> training::RunSummary {
        train_until(c, out, resume, None)
    }

    fn train_until(
        c: &Config,
        out: &Path,
        resume: bool,
        stop_after_steps: Option<u64>,
    ) -> training::RunSummary {
        let opts = TrainOptions {
            out: out.into(),
            resume,
            stop_after_steps,
            ..Default::default()
        };
        training::train(c, &opts, &mut Quiet).unwrap()
    }

    /// Each step's [total, content, recon, cross, edge] and each epoch's validation PSNRs.
    fn read(run: &Path) -> (Vec<[f32; 5]>, Vec<[f64; 4]>) {
        let lines = crossdenoise_train::curves::read_metrics(&run.join("metrics.jsonl")).unwrap();
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

    /// Step by step, the five losses of two runs agree to 1e-5 (relative) over the first two
    /// steps, where a wrong gradient would show at once, and to 1e-3 after: LibTorch's
    /// convolution gradients (oneDNN) and flex's sum in different orders, and Adam divides
    /// each gradient by its own running size, so a last-bit difference in a gradient near
    /// zero (a bias before an InstanceNorm has an exact gradient of zero) becomes a visible
    /// one in its update a few steps later.
    fn assert_close(
        what: &str,
        a: &(Vec<[f32; 5]>, Vec<[f64; 4]>),
        b: &(Vec<[f32; 5]>, Vec<[f64; 4]>),
    ) {
        assert_eq!(a.0.len(), b.0.len(), "{what}: step count");
        let mut worst = 0f32;
        for (i, (x, y)) in a.0.iter().zip(&b.0).enumerate() {
            for (k, (p, q)) in x.iter().zip(y).enumerate() {
                let rel = (p - q).abs() / p.abs().max(1e-3);
                let tolerance = if i < 2 { 1e-5 } else { 1e-3 };
                assert!(
                    rel < tolerance,
                    "{what}: step {} loss {k}: {p} vs {q}",
                    i + 1
                );
                worst = worst.max(rel);
            }
        }
        eprintln!("{what}: largest relative loss difference {worst:.1e}");
        for (x, y) in a.1.iter().zip(&b.1) {
            for (p, q) in x.iter().zip(y) {
                assert!(
                    (p - q).abs() < 0.05,
                    "{what}: validation PSNR {p} vs {q} dB"
                );
            }
        }
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
        );
    }

    #[test]
    fn a_failed_allocation_is_an_error_not_a_crash() {
        let device = Backend::Libtorch.device(0).unwrap();
        // 200k x 200k floats: 160 GB, more than any test machine has.
        let r = training::catch_allocation_failure(|| {
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
