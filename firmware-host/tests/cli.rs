//! The `crossdenoise-host` binary as an operator runs it: `serve` in the background, `send`
//! from the scanner's side, SIGTERM to stop.

use crossdenoise_test_support as support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn host() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crossdenoise-host"))
}

/// What [`serve_dicom`] returns: the process, the node's port, the metrics address (when the
/// config asks for one) and a thread collecting the rest of the log.
type Serving = (
    std::process::Child,
    String,
    Option<String>,
    std::thread::JoinHandle<Vec<String>>,
);

/// Starts `serve --config CONFIG` whose DICOM node is `ae_title`.
fn serve_dicom(config: &Path, ae_title: &str, with_metrics: bool) -> Serving {
    let mut server = host()
        .args(["serve", "--config"])
        .arg(config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let prefix = format!("DICOM node {ae_title} on ");
    let (mut port, mut metrics) = (None, None);
    let mut early = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        early.push(line.clone());
        if let Some(rest) = line.strip_prefix(&prefix) {
            port = rest
                .split(' ')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .map(str::to_owned);
        }
        if let Some(m) = line.strip_prefix("metrics on http://") {
            metrics = m.strip_suffix("/metrics").map(str::to_owned);
        }
        if port.is_some() && (metrics.is_some() || !with_metrics) {
            break;
        }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    let log = std::thread::spawn(move || {
        early.extend(lines.map_while(Result::ok));
        early
    });
    let port = port.expect("serve prints the DICOM node's address");
    (server, port, metrics, log)
}

/// Stops `serve` as an operator does and checks that it exits cleanly.
fn sigterm_and_wait(server: &mut std::process::Child) {
    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "a clean exit on SIGTERM: {status}");
}

#[test]
fn serve_then_send_then_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let model = support::test_model(dir.path(), "model.onnx", &[]);
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    for (i, slice) in support::phantom_slices(3, 48, 40).iter().enumerate() {
        crossdenoise_image::io::write_npy(&inputs.join(format!("s{i}.npy")), slice.view()).unwrap();
    }
    let mut server = host()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--model",
        ])
        .arg(&model)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let (mut addr, mut metrics) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.to_owned());
        }
        if let Some(m) = line.strip_prefix("metrics on http://") {
            metrics = m.strip_suffix("/metrics").map(str::to_owned);
            break;
        }
    }
    let addr = addr.expect("serve prints its address");
    // Keep draining the log so the server never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let out = dir.path().join("out");
    let send = host()
        .args(["send", "--connect", &addr, "--out"])
        .arg(&out)
        .arg(&inputs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&send.stdout);
    assert!(
        send.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&send.stderr)
    );
    assert!(stdout.contains("sent 3 images: 3 denoised"), "{stdout}");
    for i in 0..3 {
        assert!(
            Path::new(&out)
                .join(format!("in/s{i}.denoised.npy"))
                .is_file()
        );
    }

    let body = http_get(metrics.as_deref().expect("the metrics address"), "/metrics");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("crossdenoise_images_denoised_total 3\n"),
        "{body}"
    );
    assert!(
        body.contains("crossdenoise_latency_seconds{quantile=\"0.99\"}"),
        "{body}"
    );
    assert!(http_get(metrics.as_deref().unwrap(), "/other").starts_with("HTTP/1.1 404"));

    let bad = host()
        .args(["send", "--connect", &addr, "--out"])
        .arg(dir.path().join("out2"))
        .arg(dir.path().join("missing.npy"))
        .output()
        .unwrap();
    support::refused(&bad, "missing.npy");

    sigterm_and_wait(&mut server);
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("denoised 3"), "the final stats line: {log}");
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    // Written in pieces, as some clients do: the server must read the whole request head.
    for piece in ["GET ", path, " HTTP/1.1\r\n", "Host: x\r\n\r\n"] {
        s.write_all(piece.as_bytes()).unwrap();
        s.flush().unwrap();
    }
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn a_remote_address_needs_the_flag() {
    let out = host()
        .args(["serve", "--listen", "0.0.0.0:0", "--model", "m.onnx"])
        .output()
        .unwrap();
    support::refused(&out, "listen: not a loopback address");
}

/// host.toml is checked once, after the flags went over it: `--model` supplies a missing
/// profile, `--listen` replaces a non-loopback address and `--allow-remote` permits one.
/// (Each run then stops at opening the model that does not exist, past the config check.)
#[test]
fn flags_go_over_the_config_before_it_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("host.toml");
    std::fs::write(&toml, "listen = \"0.0.0.0:9002\"\n").unwrap();
    let serve = |extra: &[&str]| {
        let out = host()
            .arg("serve")
            .arg("--config")
            .arg(&toml)
            .args(extra)
            .output()
            .unwrap();
        support::failed(&out)
    };
    let err = serve(&["--model", "missing.onnx"]);
    assert!(err.contains("listen: not a loopback address"), "{err}");
    for extra in [
        &["--model", "missing.onnx", "--listen", "127.0.0.1:0"][..],
        &["--model", "missing.onnx", "--allow-remote"][..],
    ] {
        let err = serve(extra);
        assert!(
            err.contains("missing.onnx") && !err.contains("listen:") && !err.contains("profiles:"),
            "{extra:?}: {err}"
        );
    }
    let err = serve(&["--listen", "127.0.0.1:0"]);
    assert!(err.contains("profiles: nothing to serve"), "{err}");
}

/// `serve --config` with a `[dicom]` table starts the DICOM node beside the MRD listener:
/// DCMTK's echoscu and storescu reach it, the instances are in the spool, SIGTERM stops both.
#[test]
fn the_config_starts_the_dicom_node_beside_the_mrd_listener() {
    let dir = tempfile::tempdir().unwrap();
    support::test_model(dir.path(), "model.onnx", &[]);
    let series = dir.path().join("series");
    let files = support::dicom_series(&series, "u12", &support::phantom_slices(2, 32, 32), &[]);
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\
         [profiles.crossdenoise]\nmodel = \"model.onnx\"\n\
         [dicom]\nlisten = \"127.0.0.1:0\"\nae_title = \"KNEE\"\nspool = \"spool\"\n",
    )
    .unwrap();
    let (mut server, port, metrics, log) = serve_dicom(&config, "KNEE", true);
    let port = port.as_str();
    let dcmtk = |tool: &str, extra: &[&Path]| {
        let out = Command::new(tool)
            .args(["-aet", "MR1", "-aec", "KNEE", "127.0.0.1", port])
            .args(extra)
            .output()
            .expect("DCMTK installed (scripts/install-dcmtk.sh)");
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    dcmtk("echoscu", &[]);
    dcmtk("storescu", &[&files[0], &files[1]]);
    let spooled = std::fs::read_dir(dir.path().join("spool/received"))
        .unwrap()
        .count();
    assert_eq!(spooled, 2);
    // /metrics has the node's counts beside the MRD daemon's.
    let body = http_get(metrics.as_deref().expect("the metrics address"), "/metrics");
    for line in [
        "crossdenoise_dicom_associations_total 2\n",
        "crossdenoise_dicom_instances_stored_total 2\n",
        "crossdenoise_dicom_outbox_depth 0\n",
        "crossdenoise_images_received_total 0\n",
    ] {
        assert!(body.contains(line), "{line:?} missing from:\n{body}");
    }

    sigterm_and_wait(&mut server);
    let log = log.join().unwrap().join("\n");
    assert!(
        log.contains("instances received 2, instances stored 2"),
        "{log}"
    );
}

/// A config with a `[dicom]` table and no model profile: the DICOM node alone, no MRD
/// listener; it takes a study and stops cleanly on SIGTERM.
#[test]
fn without_a_model_profile_the_dicom_node_serves_alone() {
    let dir = tempfile::tempdir().unwrap();
    let files = support::dicom_series(
        &dir.path().join("series"),
        "u12",
        &support::phantom_slices(2, 32, 32),
        &[],
    );
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        "[dicom]\nlisten = \"127.0.0.1:0\"\nae_title = \"KNEE\"\nspool = \"spool\"\n",
    )
    .unwrap();
    let (mut server, port, _, log) = serve_dicom(&config, "KNEE", false);
    support::storescu(&port, "MR1", "KNEE", &files);
    let spooled = std::fs::read_dir(dir.path().join("spool/received"))
        .unwrap()
        .count();
    assert_eq!(spooled, 2);
    sigterm_and_wait(&mut server);
    let log = log.join().unwrap().join("\n");
    assert!(
        log.contains("the MRD listener is off") && !log.contains("listening on"),
        "{log}"
    );
}

/// `kill -9` in the middle of a study: what the node acknowledged was on disk, and the
/// restarted node denoises and delivers every instance of it.
#[test]
fn after_kill_9_the_restarted_node_delivers_the_whole_study() {
    let dir = tempfile::tempdir().unwrap();
    support::test_model(dir.path(), "pdfs_single.onnx", &[]);
    let flags = ["--description=PD_TSE_FS_COR".to_string()];
    let slices = support::phantom_slices(4, 32, 32);
    let files = support::dicom_series(&dir.path().join("series"), "u12", &slices, &flags);
    let pacs_port = support::free_port();
    let pacs = support::Storescp::start(pacs_port, &dir.path().join("pacs"));
    let pacs_dir = pacs.dir.clone();
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[profiles.crossdenoise]\nmodel = \"pdfs_single.onnx\"\n\
             [dicom]\nlisten = \"127.0.0.1:0\"\nspool = \"spool\"\nseries_stable_s = 3\n\
             destination = {{ ae_title = \"PACS\", address = \"127.0.0.1:{pacs_port}\" }}\n\
             [dicom.models]\npdfs_alone = \"pdfs_single.onnx\"\n"
        ),
    )
    .unwrap();
    let start = || serve_dicom(&config, "CROSSDENOISE", false);

    let (mut first, port, _, _) = start();
    support::storescu(&port, "MR1", "CROSSDENOISE", &files);
    // Before the series is complete (series_stable_s = 3): nothing denoised yet.
    first.kill().unwrap();
    first.wait().unwrap();
    let received = dir.path().join("spool/received");
    assert_eq!(
        std::fs::read_dir(&received).unwrap().count(),
        4,
        "acknowledged = on disk"
    );
    assert_eq!(std::fs::read_dir(&pacs_dir).unwrap().count(), 0);

    let (mut second, _, _, log) = start();
    let mut delivered = 0;
    for _ in 0..150 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        delivered = std::fs::read_dir(&pacs_dir).unwrap().count();
        if delivered == 4 && std::fs::read_dir(&received).unwrap().count() == 0 {
            break;
        }
    }
    sigterm_and_wait(&mut second);
    drop(pacs);
    let log = log.join().unwrap().join("\n");
    assert_eq!(delivered, 4, "{log}");
    assert_eq!(std::fs::read_dir(&received).unwrap().count(), 0, "{log}");
    assert!(log.contains("instances forwarded 4"), "{log}");
}
