//! One training step on each optional backend that is compiled in. wgpu runs where a
//! Vulkan (or Metal / DX12) device exists — on a CPU-only Linux box that is Mesa's lavapipe
//! (`apt-get install mesa-vulkan-drivers`) — and says why it skipped otherwise.

#![cfg(any(feature = "wgpu", feature = "ndarray"))]

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
