//! Across the crates: the shared tiny trained run -> `crossdenoise export` (parity-checked)
//! -> the daemon on 127.0.0.1 -> `send` of a held-out phantom series. Every image must come
//! back denoised, and exactly as `crossdenoise denoise` denoises the same files.

use std::path::Path;

use crossdenoise_host::client::{self, SendOptions};
use crossdenoise_host::config::DEFAULT_PROFILE;
use crossdenoise_host::mrd::DataType;
use crossdenoise_host::{Host, HostConfig};

use crate::util::{crossdenoise, stderr, tiny_run};

#[test]
fn a_trained_model_served_over_mrd_matches_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let run = tiny_run(false);
    let model = cwd.join("model.onnx");
    let out = crossdenoise(
        &[
            "export",
            run.to_str().unwrap(),
            "--out",
            model.to_str().unwrap(),
        ],
        cwd,
    );
    assert!(out.status.success(), "export: {}", stderr(&out));
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

    let mut config = HostConfig::serving(&model);
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
        let report = client::send(
            &addr,
            std::slice::from_ref(&series),
            &cwd.join("returned"),
            &options,
        )
        .await
        .expect("every image comes back");
        let _ = stop.send(());
        server.await.unwrap();
        report
    });
    assert_eq!((report.sent, report.denoised, report.unchanged), (5, 5, 0));
    assert!(report.server_closed);
    let s = stats.snapshot();
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
