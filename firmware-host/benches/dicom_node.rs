//! Load on the DICOM node: two series of 40 slices of 320 x 320 (16-bit, written by pydicom)
//! sent by DCMTK's `storescu`, received, denoised and delivered to DCMTK's `storescp`,
//! against the bare `Denoiser` running the same slices in memory. Reports the time from the
//! first instance sent to the last one delivered (less the `series_stable_s` wait, which is
//! configured, not work), the node's throughput as a share of the bare Denoiser's, and this
//! process's peak resident memory.
//!
//! `cargo bench -p crossdenoise-host --bench dicom_node [-- --slices 40 --size 320]`
//! (needs `scripts/install-ort.sh`, `scripts/python-env.sh` and `scripts/install-dcmtk.sh`).
//! Both series are PDFS so that the test model (a PDFS single-contrast denoiser) takes both,
//! each alone; the guided pair runs two models instead of one per slice.

use crossdenoise_test_support as support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossdenoise_host::dicom::models::Models;
use crossdenoise_host::dicom::{self, Node, NodeStats};
use crossdenoise_host::mrd::config::{Destination, DicomConfig};
use crossdenoise_image::dicom::DicomSlice;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    // The node's log with timestamps, when RUST_LOG asks for it (e.g. RUST_LOG=info).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let (n, size) = (arg("--slices", 40), arg("--size", 320));
    let stable_s = 1.0;
    let dir = tempfile::tempdir().unwrap();
    let model = support::test_model(dir.path(), "pdfs_single.onnx", &[]);
    let mut files = Vec::new();
    for series in 0..2 {
        let flags = [
            format!("--description=PD_TSE_FS_COR_{series}"),
            format!("--protocol=knee_pd_tse_fs_cor_{series}"),
        ];
        let slices = support::phantom_slices(n, size, size);
        files.extend(support::dicom_series(
            &dir.path().join(format!("series{series}")),
            "s16",
            &slices,
            &flags,
        ));
    }
    let runtime = support::runtime();
    let options = crossdenoise_runtime::DenoiserOptions::default();

    // The bare Denoiser on the same slices, read beforehand.
    let images: Vec<_> = files
        .iter()
        .map(|f| DicomSlice::read(f).unwrap().image)
        .collect();
    let mut bare = crossdenoise_runtime::Denoiser::open(&runtime, &model, &options).unwrap();
    bare.denoise(images[0].view()).unwrap();
    let t = Instant::now();
    for image in &images {
        bare.denoise(image.view()).unwrap();
    }
    let bare_s = t.elapsed().as_secs_f64();

    let port = support::free_port();
    let pacs = support::Storescp::start(port, &dir.path().join("pacs"));
    let config = DicomConfig {
        spool: dir.path().join("spool"),
        destination: Some(Destination {
            ae_title: "PACS".into(),
            address: format!("127.0.0.1:{port}"),
        }),
        series_stable_s: stable_s,
        models: crossdenoise_host::mrd::config::DicomModels {
            pdfs_alone: Some(model.clone()),
            ..Default::default()
        },
        ..DicomConfig::default()
    };
    let node = Arc::new(Node::open(config).unwrap());
    let models = Models::open(&node.config, &runtime, &options).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let node_port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let working = {
        let _entered = rt.enter();
        dicom::start(node.clone(), models, listener, stop_rx)
    };

    let t = Instant::now();
    support::storescu(&node_port.to_string(), "MR1", "CROSSDENOISE", &files);
    let received_s = t.elapsed().as_secs_f64();
    while pacs.received().len() < files.len() {
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "{}",
            node.stats.line()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let total_s = t.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    rt.block_on(working.join());
    let work_s = total_s - stable_s;
    let count = files.len() as f64;
    println!(
        "| slices | size | storescu done | delivered all | less series_stable_s | node slices/s | bare Denoiser slices/s | node / bare | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| 2 x {n} | {size} x {size} | {received_s:.2} s | {total_s:.2} s | {work_s:.2} s | {:.1} | {:.1} | {:.0}% | {:.0} MB |",
        count / work_s,
        count / bare_s,
        100.0 * bare_s / work_s,
        peak_rss_mb()
    );
    assert_eq!(
        NodeStats::get(&node.stats.instances_forwarded),
        files.len() as u64
    );
    println!("{}", node.stats.line());
}
