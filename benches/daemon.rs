//! Throughput of the daemon against the bare Denoiser on the same images: one client
//! streams a series of 320 x 320 slices over MRD on 127.0.0.1 and waits for every answer;
//! the bare runs denoise the same slices one by one and in batches of 4; the daemon runs
//! with `batch_size` 1 and 4.
//! The daemon's own latency percentiles (arrival to denoised result) are printed at the end.
//!
//! The model is the exported C16 d4 no_skip path at random initialisation (weights do not
//! change speed). Needs ONNX Runtime (`scripts/install-ort.sh`).

use std::time::Duration;

mod support;

use burn::prelude::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossdenoise_host::mrd::config::DEFAULT_PROFILE;
use crossdenoise_host::mrd::{DataType, Image, Message, MessageReader, MessageWriter};
use crossdenoise_host::{Host, HostConfig};
use crossdenoise_image::phantom::{PhantomConfig, PhantomGenerator};
use crossdenoise_runtime::{Denoiser, DenoiserOptions, OnnxRuntime, ProviderSettings};
use crossdenoise_train::model::DualDomainConfig;
use ndarray::Array2;

const SIZE: usize = 320;
const DEPTH: usize = 4;
const CHANNELS: usize = 16;
const SERIES: usize = 16;
const BATCH: usize = 4;

fn providers() -> ProviderSettings {
    let mut p = ProviderSettings::default();
    p.cpu.threads = Some(2);
    p
}

/// Sends the series on one connection and reads every answer and the close.
async fn round_trip(addr: std::net::SocketAddr, images: &[Image]) -> usize {
    let (r, w) = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap()
        .into_split();
    let mut reader = MessageReader::new(r, 1 << 28);
    let mut writer = MessageWriter::new(w);
    let images = images.to_vec();
    let send = tokio::spawn(async move {
        writer
            .write(&Message::ConfigFile(DEFAULT_PROFILE.into()))
            .await
            .unwrap();
        for im in images {
            writer.write(&Message::Image(im)).await.unwrap();
        }
        writer.write(&Message::Close).await.unwrap();
        writer
    });
    let mut back = 0;
    while let Some(m) = reader.read().await.unwrap() {
        match m {
            Message::Close => break,
            Message::Image(_) => back += 1,
            _ => {}
        }
    }
    let _ = send.await.unwrap();
    back
}

fn throughput(c: &mut Criterion) {
    let runtime = OnnxRuntime::load().expect("ONNX Runtime: run scripts/install-ort.sh");
    let dir = tempfile::tempdir().unwrap();
    let model = DualDomainConfig::new(CHANNELS, DEPTH).init(&Device::flex());
    let path = support::export_model(&model, CHANNELS, DEPTH, dir.path());

    let generator = PhantomGenerator::new(
        PhantomConfig {
            size: SIZE,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let slices: Vec<Array2<f32>> = (0..SERIES as u64)
        .map(|i| generator.pair(i).pdfs.mapv(|v| v * 1000.0))
        .collect();
    let images: Vec<Image> = slices
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut im = Image::from_plane(s, DataType::U16);
            im.header.image_index = i as u16 + 1;
            im
        })
        .collect();

    let mut group = c.benchmark_group("daemon");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(SERIES as u64));
    let label = format!("C{CHANNELS} d{DEPTH} {SERIES}x{SIZE}x{SIZE}");

    let options = DenoiserOptions {
        providers: providers(),
        warmup: Some([BATCH, SIZE, SIZE]),
        ..DenoiserOptions::default()
    };
    let mut bare = Denoiser::open(&runtime, &path, &options).unwrap();
    group.bench_function(BenchmarkId::new("bare denoiser, one by one", &label), |b| {
        b.iter(|| {
            for s in &slices {
                bare.denoise(s.view()).unwrap();
            }
        })
    });
    group.bench_function(
        BenchmarkId::new("bare denoiser, batches of 4", &label),
        |b| {
            b.iter(|| {
                for chunk in slices.chunks(BATCH) {
                    let views: Vec<_> = chunk.iter().map(|s| s.view()).collect();
                    bare.denoise_batch(&views).unwrap();
                }
            })
        },
    );
    drop(bare);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for batch in [1, BATCH] {
        let mut config = HostConfig::serving(&path);
        config.execution_providers = providers();
        config.batch_size = batch;
        config.stats_interval_s = 0.0;
        let host = Host::open(config).unwrap();
        let stats = host.stats();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = rt.spawn(host.serve(listener, async move {
            let _ = stopped.await;
        }));
        let name = format!("daemon over MRD, batch {batch}");
        group.bench_function(BenchmarkId::new(&name, &label), |b| {
            b.iter(|| assert_eq!(rt.block_on(round_trip(addr, &images)), SERIES))
        });
        let _ = stop.send(());
        rt.block_on(server).unwrap();
        let s = stats.snapshot();
        if s.images_denoised == 0 {
            continue; // filtered out on the command line
        }
        eprintln!(
            "{name}: arrival to denoised result over {} images, p50 {:.1} ms, p99 {:.1} ms \
             (a series of {SERIES} sent at once: most of it is queueing)",
            s.images_denoised.min(4096),
            s.p50_ms.unwrap_or(f64::NAN),
            s.p99_ms.unwrap_or(f64::NAN)
        );
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
