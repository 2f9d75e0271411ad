//! Across the crates: the shared tiny trained run -> `crossdenoise export` (parity-checked)
//! -> the daemon on 127.0.0.1 -> `send` of a held-out phantom series. Every image must come
//! back denoised, and exactly as `crossdenoise denoise` denoises the same files; a model
//! that has learned must return images closer to the clean anatomy than the acquired ones.

use std::path::Path;

use crossdenoise_host::client::{self, SendOptions};
use crossdenoise_host::config::DEFAULT_PROFILE;
use crossdenoise_host::mrd::DataType;
use crossdenoise_host::{Host, HostConfig};

use crossdenoise_host::stats::Snapshot;
use crossdenoise_runtime::metrics::Quality;
use crossdenoise_runtime::normalize::Normalization;
use ndarray::Array2;

use crate::util::{crossdenoise, denoising_run, stderr, tiny_run};

/// `crossdenoise export RUN --out MODEL EXTRA...`, parity-checked as always.
fn export(run: &Path, model: &Path, extra: &[&str]) {
    let mut args = vec![
        "export",
        run.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = crossdenoise(&args, model.parent().unwrap());
    assert!(out.status.success(), "export: {}", stderr(&out));
}

/// Starts the daemon on a free loopback port with `model`, streams `series` to it as a FIRE
/// client, stops it, and returns the client's report and the daemon's counters.
fn serve_and_send(model: &Path, series: &Path, returned: &Path) -> (client::SendReport, Snapshot) {
    let mut config = HostConfig::serving(model);
    config.stats_interval_s = 0.0;
    let host = Host::open(config).expect("the daemon opens the exported model");
    let stats = host.stats();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(host.serve(listener, async move {
            let _ = stopped.await;
        }));
        let options = SendOptions {
            config_name: DEFAULT_PROFILE.into(),
            data_type: DataType::F32,
            max_message: 1 << 28,
        };
        let report = client::send(&addr, &[series.to_path_buf()], returned, &options)
            .await
            .expect("every image comes back");
        let _ = stop.send(());
        server.await.unwrap();
        report
    });
    (report, stats.snapshot())
}

#[test]
fn a_trained_model_served_over_mrd_matches_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let run = tiny_run(false);
    let model = cwd.join("model.onnx");
    export(&run, &model, &[]);
    let out = crossdenoise(
        &[
            "phantoms", "--out", "held", "--pairs", "5", "--size", "48", "--seed", "77",
        ],
        cwd,
    );
    assert!(out.status.success(), "phantoms: {}", stderr(&out));
    let series = cwd.join("held/pdfs");
    let out = crossdenoise(
        &[
            "denoise",
            "--model",
            model.to_str().unwrap(),
            "--out",
            "direct",
            series.to_str().unwrap(),
        ],
        cwd,
    );
    assert!(out.status.success(), "denoise: {}", stderr(&out));

    let (report, s) = serve_and_send(&model, &series, &cwd.join("returned"));
    assert_eq!((report.sent, report.denoised, report.unchanged), (5, 5, 0));
    assert!(report.server_closed);
    assert_eq!((s.received, s.denoised, s.failed), (5, 5, 0));

    let mut compared = 0;
    for entry in std::fs::read_dir(cwd.join("direct/pdfs")).unwrap() {
        let direct = entry.unwrap().path();
        let name = direct.file_stem().unwrap().to_str().unwrap();
        let served = cwd.join(format!("returned/pdfs/{name}.denoised.npy"));
        let a = crossdenoise_runtime::io::read_slice(&direct).unwrap();
        let b = crossdenoise_runtime::io::read_slice(&served).unwrap();
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            diff <= 1e-5 * scale.max(1.0),
            "{name}: served differs from direct by {diff}"
        );
        compared += 1;
    }
    assert_eq!(compared, 5);

    // The report gathers it all into one page.
    let out = crossdenoise(
        &[
            "report",
            "--run",
            run.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--phantoms",
            "held",
            "--denoised",
            "direct",
            "--returned",
            "returned",
            "--out",
            "report/report.html",
        ],
        cwd,
    );
    assert!(out.status.success(), "report: {}", stderr(&out));
    let html = std::fs::read_to_string(cwd.join("report/report.html")).unwrap();
    assert_eq!(
        html.matches("<img ").count(),
        3,
        "curves, samples, held-out grid"
    );
    assert_eq!(html.matches("data:image/png;base64,iVBORw0KGgo").count(), 3);
    assert_eq!(
        html.matches("<td>identical</td>").count(),
        5,
        "daemon = runtime"
    );
    assert!(Path::new(&cwd.join("report/heldout.png")).is_file());

    // And a browser shows it with its pictures: the curves' blue line is on screen.
    let shot = cwd.join("report/screenshot.png");
    if crate::util::chromium_screenshot(&cwd.join("report/report.html"), &shot).is_some() {
        let blue = crate::util::pixels_near(&shot, [31, 119, 180], 30);
        assert!(
            blue > 100,
            "only {blue} curve pixels on the rendered report"
        );
    }
}

/// Scores as training's validation does (see `Quality::measure_normalised`).
fn validation_psnr(clean: &Array2<f32>, image: &Array2<f32>, input: &Array2<f32>) -> f64 {
    Quality::measure_normalised(
        &Normalization::default(),
        clean.view(),
        image.view(),
        input.view(),
    )
    .unwrap()
    .psnr
}

#[test]
fn a_model_that_learned_denoises_the_held_out_series_over_mrd() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (run, snr) = denoising_run();
    let model = cwd.join("model.onnx");
    // The PD -> PDFS cross path: the PDFS decoder on the PD acquisition's latent.
    export(&run, &model, &["--from", "a", "--to", "b"]);
    let out = crossdenoise(
        &[
            "phantoms", "--out", "held", "--pairs", "6", "--size", "32", "--seed", "91", "--snr",
            snr,
        ],
        cwd,
    );
    assert!(out.status.success(), "phantoms: {}", stderr(&out));

    let (report, s) = serve_and_send(&model, &cwd.join("held/pd"), &cwd.join("returned"));
    assert_eq!((report.sent, report.denoised, report.unchanged), (6, 6, 0));
    assert_eq!((s.received, s.denoised, s.failed), (6, 6, 0));

    let (mut acquired_db, mut denoised_db) = (0.0, 0.0);
    for i in 0..6 {
        let name = format!("{i:04}");
        let read = |p: String| crossdenoise_runtime::io::read_slice(&cwd.join(p)).unwrap();
        let clean = read(format!("held/clean/pdfs/{name}.npy"));
        let acquired = read(format!("held/pdfs/{name}.npy"));
        let denoised = read(format!("returned/pd/{name}.denoised.npy"));
        let input = read(format!("held/pd/{name}.npy"));
        let (a, d) = (
            validation_psnr(&clean, &acquired, &acquired),
            validation_psnr(&clean, &denoised, &input),
        );
        eprintln!("{name}: acquired PDFS {a:.2} dB, denoised {d:.2} dB");
        acquired_db += a / 6.0;
        denoised_db += d / 6.0;
    }
    assert!(
        denoised_db > acquired_db + 1.0,
        "denoised {denoised_db:.2} dB does not beat the acquired {acquired_db:.2} dB by 1 dB"
    );
}
