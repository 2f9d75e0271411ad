//! The DICOM node as radiology deploys it, end to end with real peers: models that learned
//! (the shared learned guided run, exported), a study of a PD and a PDFS series written by
//! pydicom from held-out phantoms, sent by DCMTK's `storescu` to the node, paired, denoised
//! each with the other as guide, and C-STOREd to DCMTK's `storescp` as the PACS. What arrives
//! is read back by pydicom: every slice, new UIDs, its own contrast under its own name, the
//! input's geometry, and closer to the clean anatomy than the acquired image.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossdenoise_host::dicom::models::Models;
use crossdenoise_host::dicom::{self, Node, NodeStats, outbox};
use crossdenoise_host::mrd::config::{Destination, DicomConfig};
use crossdenoise_image::io::read_npy;
use crossdenoise_image::metrics::Quality;
use ndarray::Array2;
use serde_json::Value;

use crate::support::reference;
use crate::support::{Storescp, dicom_series, free_port};
use crate::util::{crossdenoise, learned_guided_run, stderr};

/// DICOM stores integers: the phantoms (brightest tissue about 1) in scanner-like units.
const UNITS: f32 = 1000.0;

/// Writes the slices of `folder` (NNNN.npy), in scanner-like units, as one pydicom series
/// of one study and frame of reference in `out`.
fn write_series(folder: &Path, out: &Path, n: usize, description: &str, frame: &str) {
    let slices: Vec<Array2<f32>> = (0..n)
        .map(|i| read_npy(&folder.join(format!("{i:04}.npy"))).unwrap() * UNITS)
        .collect();
    let flags = [
        format!("--description={description}"),
        format!("--protocol=knee_{}", description.to_ascii_lowercase()),
        format!("--frame={frame}"),
        // One study: its uid made from the frame of reference's, for the test.
        format!("--study={frame}.1"),
    ];
    dicom_series(out, "u12", &slices, &flags);
}

fn dicom_files(dir: &Path) -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.ends_with(".dcm") || name.starts_with("MR.")
        })
        .collect();
    f.sort();
    f
}

/// pydicom's view: attributes as strings and pixel values after the rescale.
fn dump(files: &[PathBuf], out: &Path) -> Vec<Value> {
    let mut args: Vec<String> = vec!["dicom-dump".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.push(out.display().to_string());
    reference(&args);
    serde_json::from_str::<Value>(&std::fs::read_to_string(out).unwrap())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn attr(v: &Value, key: &str) -> String {
    match &v["attrs"][key] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn a_study_sent_by_storescu_comes_back_to_the_pacs_denoised_each_contrast_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (run_dir, [snr_pd, snr_pdfs]) = learned_guided_run();
    let (pd_model, pdfs_model) = (cwd.join("pd.onnx"), cwd.join("pdfs.onnx"));
    for (model, domain) in [(&pd_model, "a"), (&pdfs_model, "b")] {
        let out = crossdenoise(
            &[
                "export",
                run_dir.to_str().unwrap(),
                "--out",
                model.to_str().unwrap(),
                "--to",
                domain,
            ],
            cwd,
        );
        assert!(out.status.success(), "export: {}", stderr(&out));
    }
    let n = 6;
    let out = crossdenoise(
        &[
            "phantoms",
            "--out",
            "held",
            "--pairs",
            &n.to_string(),
            // The matrix of a knee PD / PDFS protocol.
            "--size",
            "256",
            "--seed",
            "93",
            "--snr",
            snr_pd,
            "--snr-pdfs",
            snr_pdfs,
        ],
        cwd,
    );
    assert!(out.status.success(), "phantoms: {}", stderr(&out));
    let frame = "1.2.826.0.1.3680043.8.498.777";
    let mut acquired = std::collections::HashMap::new();
    for (contrast, description) in [("pd", "PD_TSE_COR"), ("pdfs", "PD_TSE_FS_COR")] {
        write_series(
            &cwd.join("held").join(contrast),
            &cwd.join("study").join(contrast),
            n,
            description,
            frame,
        );
        let clean: Vec<Array2<f32>> = (0..n)
            .map(|i| {
                read_npy(&cwd.join(format!("held/clean/{contrast}/{i:04}.npy"))).unwrap() * UNITS
            })
            .collect();
        acquired.insert(description.to_string(), clean);
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    let pacs_port = free_port();
    let pacs_dir = cwd.join("pacs");
    let pacs = Storescp::start(pacs_port, &pacs_dir);
    let config = DicomConfig {
        spool: cwd.join("spool"),
        destination: Some(Destination {
            ae_title: "PACS".into(),
            address: format!("127.0.0.1:{pacs_port}"),
        }),
        // A series is complete only once its association has ended, so a sender slowed by
        // the other tests on a loaded machine does not split it, however short this is.
        series_stable_s: 0.5,
        pair_wait_s: 60.0,
        ..DicomConfig::default()
    };
    let mut config = config;
    config.models.pd = Some(pd_model.clone());
    config.models.pdfs = Some(pdfs_model.clone());
    let node = Arc::new(Node::open(config).unwrap());
    let runtime = crossdenoise_runtime::OnnxRuntime::load().unwrap();
    let models = Models::open(&node.config, &runtime, &Default::default()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let working = {
        let _entered = rt.enter();
        dicom::start(node.clone(), models, listener, stop_rx)
    };

    // The scanner sends the study: both series in one association, PD first.
    let mut files = dicom_files(&cwd.join("study/pd"));
    files.extend(dicom_files(&cwd.join("study/pdfs")));
    crate::support::storescu(&port.to_string(), "MR1", "CROSSDENOISE", &files);

    let mut arrived = Vec::new();
    for _ in 0..900 {
        std::thread::sleep(Duration::from_millis(100));
        arrived = dicom_files(&pacs_dir);
        if arrived.len() == 2 * n && outbox::pending(&node.config.spool).is_empty() {
            break;
        }
    }
    let _ = stop_tx.send(true);
    rt.block_on(working.join());
    drop(pacs);
    let stats = &node.stats;
    assert_eq!(arrived.len(), 2 * n, "{}", stats.line());
    assert_eq!(NodeStats::get(&stats.series_paired), 2, "{}", stats.line());
    assert_eq!(NodeStats::get(&stats.instances_forwarded), 2 * n as u64);

    let inputs = dump(&files, &cwd.join("inputs.json"));
    let outputs = dump(&arrived, &cwd.join("outputs.json"));
    // The same series through `crossdenoise denoise`, the runtime as a user runs it: the
    // node must serve exactly what it serves.
    let mut cli_files = Vec::new();
    for (model, contrast, partner) in [(&pd_model, "pd", "pdfs"), (&pdfs_model, "pdfs", "pd")] {
        let out = crossdenoise(
            &[
                "denoise",
                "--model",
                model.to_str().unwrap(),
                "--guide",
                &format!("study/{partner}"),
                &format!("study/{contrast}"),
                "--out",
                "cli",
            ],
            cwd,
        );
        assert!(out.status.success(), "denoise: {}", stderr(&out));
        cli_files.extend(dicom_files(&cwd.join("cli").join(contrast)));
    }
    let cli = dump(&cli_files, &cwd.join("cli.json"));
    for description in ["PD_TSE_COR", "PD_TSE_FS_COR"] {
        let ins: Vec<&Value> = inputs
            .iter()
            .filter(|v| attr(v, "SeriesDescription") == description)
            .collect();
        let outs: Vec<&Value> = outputs
            .iter()
            .filter(|v| attr(v, "SeriesDescription") == format!("{description} denoised"))
            .collect();
        assert_eq!(
            outs.len(),
            n,
            "{description}: every slice back, as its own contrast"
        );
        let series: std::collections::HashSet<String> =
            outs.iter().map(|v| attr(v, "SeriesInstanceUID")).collect();
        assert_eq!(series.len(), 1);
        assert_ne!(
            series.iter().next().unwrap(),
            &attr(ins[0], "SeriesInstanceUID")
        );
        let (mut acquired_db, mut denoised_db) = (0.0, 0.0);
        for input in &ins {
            let position = attr(input, "ImagePositionPatient");
            let output = outs
                .iter()
                .find(|o| attr(o, "ImagePositionPatient") == position)
                .unwrap_or_else(|| panic!("{description}: nothing back at {position}"));
            assert_ne!(
                attr(output, "SOPInstanceUID"),
                attr(input, "SOPInstanceUID")
            );
            for key in [
                "ImageOrientationPatient",
                "PixelSpacing",
                "SliceThickness",
                "FrameOfReferenceUID",
                "StudyInstanceUID",
                "Rows",
                "Columns",
            ] {
                assert_eq!(attr(output, key), attr(input, key), "{description}: {key}");
            }
            assert!(attr(output, "ImageType").contains("DERIVED"));
            let index: usize = attr(input, "InstanceNumber").parse::<usize>().unwrap() - 1;
            let clean = &acquired[description][index];
            let pixels = |v: &Value| {
                Array2::from_shape_vec(
                    clean.dim(),
                    v["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap() as f32)
                        .collect(),
                )
                .unwrap()
            };
            let by_cli = cli
                .iter()
                .find(|o| {
                    attr(o, "ImagePositionPatient") == position
                        && attr(o, "SeriesDescription") == format!("{description} denoised")
                })
                .unwrap_or_else(|| panic!("{description}: the CLI wrote nothing at {position}"));
            let node_px = pixels(output);
            let cli_px = pixels(by_cli);
            let worst = node_px
                .iter()
                .zip(cli_px.iter())
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1.0,
                "{description} at {position}: the node's pixels differ from the runtime's by {worst}"
            );
            acquired_db += Quality::measure(clean.view(), pixels(input).view())
                .unwrap()
                .psnr
                / n as f64;
            denoised_db += Quality::measure(clean.view(), pixels(output).view())
                .unwrap()
                .psnr
                / n as f64;
        }
        eprintln!("{description}: acquired {acquired_db:.2} dB, denoised {denoised_db:.2} dB");
        assert!(
            denoised_db > acquired_db + 1.0,
            "{description}: denoised {denoised_db:.2} dB does not beat the acquired {acquired_db:.2} dB by 1 dB"
        );
    }
}
