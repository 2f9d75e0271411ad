//! Latency of the exported no_skip cross path: one 320 x 320 slice and a batch through the
//! runtime's Denoiser on ONNX Runtime's CPU provider (pre- and post-processing included),
//! the same forward pass in Burn (flex; LibTorch too with `--features tch`) for
//! comparison, and a cold start.
//!
//! The models are built here at random initialisation and exported with the export crate's
//! own lowering: weights do not change speed. Needs ONNX Runtime (`scripts/install-ort.sh`).

mod support;

use std::hint::black_box;
use std::time::Duration;

use burn::prelude::*;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use crossdenoise_image::Normalization;
use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use crossdenoise_runtime::{Denoiser, DenoiserOptions, OnnxRuntime, ProviderSettings};
use crossdenoise_train::model::{Domain, DualDomainConfig};

const SIZE: usize = 320;
const DEPTH: usize = 4;

/// ONNX Runtime CPU with 2 intra-op threads, or the providers named in
/// `CROSSDENOISE_BENCH_EP` (e.g. `tensorrt,cuda`), strictly: a GPU figure is never
/// silently a CPU one.
fn options() -> DenoiserOptions {
    let mut providers = ProviderSettings::default();
    providers.cpu.threads = Some(2);
    if let Ok(list) = std::env::var("CROSSDENOISE_BENCH_EP") {
        providers.order = ProviderSettings::parse_order(&list).expect("CROSSDENOISE_BENCH_EP");
        providers.strict = true;
        if let Ok(cache) = std::env::var("CROSSDENOISE_TRT_CACHE") {
            providers.tensorrt.engine_cache = Some(cache.into());
        }
    }
    DenoiserOptions {
        providers,
        warmup: Some([1, SIZE, SIZE]),
        ..DenoiserOptions::default()
    }
}

/// The Burn backends whose forward pass is timed beside ONNX Runtime: flex always, LibTorch
/// when built with `--features tch` (through scripts/with-libtorch.sh).
fn burn_devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut devices = vec![("flex", Device::flex())];
    #[cfg(feature = "tch")]
    #[allow(deprecated)] // burn-tch is deprecated upstream, still the fastest CPU route here
    devices.push(("libtorch", Device::libtorch()));
    devices
}

fn latency(c: &mut Criterion) {
    let runtime = OnnxRuntime::load().expect("ONNX Runtime: run scripts/install-ort.sh");
    let dir = tempfile::tempdir().unwrap();
    let generator = PhantomGenerator::new(
        PhantomConfig {
            size: SIZE,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let slices: Vec<_> = (0..16).map(|i| generator.pair(i).pdfs).collect();
    let device = Device::flex();

    let mut group = c.benchmark_group("denoise");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for channels in [32, 16] {
        let model = DualDomainConfig::new(channels, DEPTH).init(&device);
        let path = support::export_model(&model, channels, DEPTH, dir.path());
        let mut denoiser = Denoiser::open(&runtime, &path, &options()).unwrap();
        let label = format!("C{channels} d{DEPTH} {}", denoiser.provider());
        group.bench_function(BenchmarkId::new("ort-cpu slice 320x320", &label), |b| {
            b.iter(|| denoiser.denoise(black_box(slices[0].view())).unwrap())
        });
        let views: Vec<_> = slices.iter().map(|s| s.view()).collect();
        group.bench_function(BenchmarkId::new("ort-cpu batch 16x320x320", &label), |b| {
            b.iter(|| denoiser.denoise_batch(black_box(&views)).unwrap())
        });
        let (normed, _) = Normalization::default()
            .normalize(slices[0].view())
            .unwrap();
        let pixels: Vec<f32> = normed.iter().copied().collect();
        for (name, burn_device) in burn_devices() {
            // The same weights on each Burn backend: the record moves across devices.
            let on_device = model.clone().to_device(&burn_device);
            let x = Tensor::<4>::from_data(
                TensorData::new(pixels.clone(), [1, 1, SIZE, SIZE]),
                &burn_device,
            );
            group.bench_function(
                BenchmarkId::new(format!("burn-{name} forward 320x320"), &label),
                |b| {
                    b.iter(|| {
                        on_device
                            .translate(Domain::B, Domain::A, black_box(x.clone()))
                            .into_data()
                    })
                },
            );
        }
        group.bench_function(
            BenchmarkId::new("cold start (open + first slice)", &label),
            |b| {
                b.iter(|| {
                    let mut options = options();
                    options.warmup = None;
                    let mut d = Denoiser::open(&runtime, &path, &options).unwrap();
                    d.denoise(slices[0].view()).unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, latency);
criterion_main!(benches);
