//! Across the crates: the shared tiny guided run -> `crossdenoise export` of each
//! contrast's denoiser (parity-checked) -> the daemon on 127.0.0.1 -> `send` of a held-out
//! PD and PDFS series, slice by slice. Every image must come back denoised, in its own
//! contrast, exactly as `crossdenoise denoise --guide` denoises the same files; models that
//! have learned must return images closer to the clean anatomy than the acquired ones. The
//! study's cross path, served, must say that it synthesises the other contrast.

use std::path::{Path, PathBuf};

use crossdenoise_host::mrd::DataType;
use crossdenoise_host::mrd::client::{self, SendOptions};
use crossdenoise_host::mrd::config::{DEFAULT_PROFILE, ModelRule, Profile};
use crossdenoise_host::{Host, HostConfig};

use crossdenoise_host::mrd::stats::Snapshot;
use crossdenoise_image::metrics::Quality;

use crate::util::{
    crossdenoise, export, export_pair, learned_guided_run, stderr, tiny_coil_run, tiny_guided_run,
    tiny_run,
};

/// How a test streams its series.
struct Stream {
    interleave: bool,
    /// The daemon's `pair_wait_s` (its default when `None`).
    pair_wait_s: Option<f64>,
    /// The daemon's `noise_pool_slices` (its default when `None`).
    noise_pool_slices: Option<usize>,
}

const INTERLEAVED: Stream = Stream {
    interleave: true,
    pair_wait_s: None,
    noise_pool_slices: None,
};
const ONE_AFTER_ANOTHER: Stream = Stream {
    interleave: false,
    pair_wait_s: None,
    noise_pool_slices: None,
};

/// Starts the daemon on a free loopback port with `profile`, streams `series` to it as a
/// FIRE client, stops it, and returns the client's report and the daemon's counters.
fn serve_and_send(
    profile: Profile,
    series: &[PathBuf],
    stream: Stream,
    returned: &Path,
) -> (client::SendReport, Snapshot) {
    let options = SendOptions {
        config_name: DEFAULT_PROFILE.into(),
        data_type: DataType::F32,
        max_message: 1 << 28,
        interleave: stream.interleave,
        header: None,
    };
    let tune = |c: &mut HostConfig| {
        if let Some(wait) = stream.pair_wait_s {
            c.pair_wait_s = wait;
        }
        if let Some(slices) = stream.noise_pool_slices {
            c.noise_pool_slices = slices;
        }
    };
    let (mut reports, stats) = serve(profile, tune, &[(series, options)], returned);
    (reports.remove(0), stats)
}

/// Each of `series` on a connection of its own, one after the other, as a scanner sends
/// two acquisitions: the same frame of reference in each MRD header.
fn serve_and_send_apart(
    profile: Profile,
    series: &[PathBuf],
    pair_wait_s: f64,
    returned: &Path,
) -> (Vec<client::SendReport>, Snapshot) {
    let options = SendOptions {
        config_name: DEFAULT_PROFILE.into(),
        data_type: DataType::F32,
        max_message: 1 << 28,
        interleave: false,
        header: Some(client::header_with_frame_of_reference(
            "1.2.826.0.1.3680043.8.498.42",
        )),
    };
    let sends: Vec<(&[PathBuf], SendOptions)> = series
        .iter()
        .map(|s| (std::slice::from_ref(s), options.clone()))
        .collect();
    serve(profile, |c| c.pair_wait_s = pair_wait_s, &sends, returned)
}

/// The daemon with `profile` (and its settings as `tune` leaves them) on a free loopback
/// port; each send in turn, then stopped.
fn serve(
    profile: Profile,
    tune: impl FnOnce(&mut HostConfig),
    sends: &[(&[PathBuf], SendOptions)],
    returned: &Path,
) -> (Vec<client::SendReport>, Snapshot) {
    let mut config = HostConfig::serving(&profile.model);
    config.profiles.insert(DEFAULT_PROFILE.into(), profile);
    config.stats_interval_s = 0.0;
    tune(&mut config);
    let host = Host::open(config).expect("the daemon opens the exported models");
    let stats = host.stats();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reports = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(host.serve(listener, async move {
            let _ = stopped.await;
        }));
        let mut reports = Vec::new();
        for (series, options) in sends {
            reports.push(
                client::send(&addr, series, returned, options)
                    .await
                    .expect("every image comes back"),
            );
        }
        let _ = stop.send(());
        server.await.unwrap();
        reports
    });
    (reports, stats.snapshot())
}

/// PD images (contrast 0) to `pd`, PDFS images (contrast 1) to `pdfs`.
fn two_contrasts(pd: &Path, pdfs: &Path) -> Profile {
    Profile {
        rules: vec![ModelRule {
            model: pdfs.into(),
            contrast: Some(1),
            attribute: None,
            contains: None,
        }],
        ..Profile::of(pd)
    }
}

fn max_diff(a: &Path, b: &Path) -> f32 {
    let a = crossdenoise_image::io::read_slice(a).unwrap();
    let b = crossdenoise_image::io::read_slice(b).unwrap();
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn guided_models_served_over_mrd_match_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (pd, pdfs) = export_pair(&tiny_guided_run(), cwd);
    let out = crossdenoise(
        &[
            "phantoms", "--out", "held", "--pairs", "5", "--size", "48", "--seed", "77",
        ],
        cwd,
    );
    assert!(out.status.success(), "phantoms: {}", stderr(&out));
    for (model, contrast, partner) in [(&pd, "pd", "pdfs"), (&pdfs, "pdfs", "pd")] {
        let out = crossdenoise(
            &[
                "denoise",
                "--model",
                model.to_str().unwrap(),
                "--guide",
                &format!("held/{partner}"),
                "--out",
                "direct",
                &format!("held/{contrast}"),
            ],
            cwd,
        );
        assert!(out.status.success(), "denoise {contrast}: {}", stderr(&out));
    }

    let series = [cwd.join("held/pd"), cwd.join("held/pdfs")];
    let (report, s) = serve_and_send(
        two_contrasts(&pd, &pdfs),
        &series,
        INTERLEAVED,
        &cwd.join("returned"),
    );
    assert_eq!(
        (report.sent, report.denoised, report.unchanged),
        (10, 10, 0)
    );
    assert!(report.server_closed);
    assert_eq!(
        (
            s.images_received,
            s.images_denoised,
            s.images_failed,
            s.images_unpaired
        ),
        (10, 10, 0, 0)
    );
    for contrast in ["pd", "pdfs"] {
        for i in 0..5 {
            let direct = cwd.join(format!("direct/{contrast}/{i:04}.npy"));
            let served = cwd.join(format!("returned/{contrast}/{i:04}.denoised.npy"));
            let d = max_diff(&direct, &served);
            assert!(
                d <= 1e-5,
                "{contrast} {i}: served differs from direct by {d}"
            );
        }
    }

    // One series alone: no partner ever comes, so every image goes back unchanged, counted.
    let (report, s) = serve_and_send(
        two_contrasts(&pd, &pdfs),
        &[cwd.join("held/pd")],
        Stream {
            interleave: false,
            pair_wait_s: Some(0.3),
            noise_pool_slices: None,
        },
        &cwd.join("alone"),
    );
    assert_eq!((report.sent, report.denoised, report.unchanged), (5, 0, 5));
    assert_eq!(
        (s.images_received, s.images_failed, s.images_unpaired),
        (5, 5, 5)
    );

    // The two series apart, on two connections naming one frame of reference, as a scanner
    // sends two acquisitions. PD comes first: no partner yet, no single-contrast model in
    // the profile, so it goes back unchanged and is kept. PDFS comes next: each slice is
    // denoised with the kept PD slice as its guide, exactly as the runtime pairs the files.
    let profile = Profile {
        rules: vec![ModelRule {
            model: pdfs.clone(),
            contrast: None,
            attribute: Some("SequenceDescription".into()),
            contains: Some("pdfs".into()),
        }],
        ..Profile::of(&pd)
    };
    let (reports, s) = serve_and_send_apart(profile, &series, 0.3, &cwd.join("apart"));
    assert_eq!((reports[0].denoised, reports[0].unchanged), (0, 5));
    assert_eq!((reports[1].denoised, reports[1].synthesized), (5, 0));
    assert_eq!(
        (s.images_paired_kept, s.images_unpaired),
        (5, 5),
        "{}",
        s.line()
    );
    for i in 0..5 {
        let direct = cwd.join(format!("direct/pdfs/{i:04}.npy"));
        let served = cwd.join(format!("apart/pdfs/{i:04}.denoised.npy"));
        let d = max_diff(&direct, &served);
        assert!(
            d <= 1e-5,
            "pdfs {i}: sent apart, differs from direct by {d}"
        );
    }

    // The report gathers it all into one page.
    let out = crossdenoise(
        &[
            "report",
            "--run",
            tiny_guided_run().to_str().unwrap(),
            "--pd-model",
            pd.to_str().unwrap(),
            "--pdfs-model",
            pdfs.to_str().unwrap(),
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("PD: denoised") && stdout.contains("PDFS: denoised"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(cwd.join("report/report.html")).unwrap();
    assert_eq!(
        html.matches("<img ").count(),
        3,
        "curves, samples, held-out grid"
    );
    assert_eq!(html.matches("data:image/png;base64,iVBORw0KGgo").count(), 3);
    assert_eq!(
        html.matches("<td>identical</td>").count() + html.matches("<td>max diff ").count(),
        2,
        "daemon = runtime, per contrast"
    );
    assert!(
        html.contains("denoiser guided by"),
        "the models say what they are"
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

/// Models trained on a coil array are served as their metadata records, with no setting:
/// a noise map of their 8 coils, the noncentral chi correction and posterior. The daemon
/// answers each image as it comes, so each image's map is pooled with the images of its
/// series before it: image `i` comes back exactly as `crossdenoise denoise --noise map
/// --coils 8` serves it from a folder of the series' first `i + 1` slices, and with
/// `noise_pool_slices = 1` exactly as `--noise-pool slice` serves it. An image of twice
/// the noise in the middle of the series is set apart as the folder sets it apart, and
/// the image after it is pooled with those before it.
#[test]
fn coil_array_models_are_served_with_the_noise_they_were_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (pd, pdfs) = export_pair(&tiny_coil_run(), cwd);
    // 64 x 64: the 48 x 48 slices of this seed differ too much to be pooled as one series.
    crate::util::coil_phantoms(cwd, "held", "4", "64", "78");
    // The third pair at half the SNR: another acquisition's noise level.
    let snr = ["--snr", "10", "--snr-pdfs", "6"];
    crate::util::coil_phantoms_with(cwd, "noisier", ["4", "64", "78"], &snr);
    for contrast in ["pd", "pdfs"] {
        std::fs::copy(
            cwd.join(format!("noisier/{contrast}/0002.npy")),
            cwd.join(format!("held/{contrast}/0002.npy")),
        )
        .unwrap();
    }
    // The series up to each slice, as a folder of its own.
    for upto in 0..4 {
        for contrast in ["pd", "pdfs"] {
            let folder = cwd.join(format!("upto{upto}/{contrast}"));
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..=upto {
                let name = format!("{i:04}.npy");
                std::fs::copy(
                    cwd.join(format!("held/{contrast}/{name}")),
                    folder.join(&name),
                )
                .unwrap();
            }
        }
    }
    let direct = |set: &str, pool: &str, out: &str| {
        let mut said = String::new();
        for (model, contrast, partner) in [(&pd, "pd", "pdfs"), (&pdfs, "pdfs", "pd")] {
            let (guide, input) = (format!("{set}/{partner}"), format!("{set}/{contrast}"));
            let args = [
                "denoise",
                "--model",
                model.to_str().unwrap(),
                "--noise",
                "map",
                "--coils",
                "8",
                "--noise-pool",
                pool,
                "--guide",
                &guide,
                "--out",
                out,
                &input,
            ];
            let done = crossdenoise(&args, cwd);
            assert!(
                done.status.success(),
                "denoise {contrast}: {}",
                stderr(&done)
            );
            said.push_str(&stderr(&done));
        }
        said
    };
    direct("held", "slice", "alone");
    for upto in 0..4 {
        let said = direct(&format!("upto{upto}"), "series", &format!("pooled{upto}"));
        // The noisier pair is set apart from the folder's pool, in both contrasts.
        assert_eq!(said.contains("(slice 2 +"), upto >= 2, "{said}");
    }
    let series = [cwd.join("held/pd"), cwd.join("held/pdfs")];
    for (pool, expected) in [(None, "pooled"), (Some(1), "alone")] {
        let returned = cwd.join(format!("returned_{expected}"));
        let stream = Stream {
            noise_pool_slices: pool,
            ..INTERLEAVED
        };
        let (report, s) = serve_and_send(two_contrasts(&pd, &pdfs), &series, stream, &returned);
        assert_eq!((report.sent, report.denoised), (8, 8));
        assert_eq!((s.images_denoised, s.images_failed), (8, 0));
        for contrast in ["pd", "pdfs"] {
            for i in 0..4 {
                let direct = match expected {
                    "pooled" => cwd.join(format!("pooled{i}/{contrast}/{i:04}.npy")),
                    _ => cwd.join(format!("alone/{contrast}/{i:04}.npy")),
                };
                let served = returned.join(format!("{contrast}/{i:04}.denoised.npy"));
                let d = max_diff(&direct, &served);
                assert!(
                    d <= 1e-5,
                    "{contrast} {i} ({expected}): served differs from direct by {d}"
                );
            }
        }
    }
    // The series' last slice, pooled past the one set apart, is not served as it is alone
    // (the tiny model's PDFS output hardly moves with its map; its PD output does).
    let moved = ["pd", "pdfs"]
        .iter()
        .map(|c| {
            let pooled = cwd.join(format!("pooled3/{c}/0003.npy"));
            max_diff(&pooled, &cwd.join(format!("alone/{c}/0003.npy")))
        })
        .fold(0.0, f32::max);
    assert!(moved > 1e-4, "the pooled map changed nothing ({moved})");
}

/// A FIRE chain whose images have more coils than the model is served as is told once per
/// connection, as a `WRN` text its console shows; the images still come back denoised.
#[test]
fn images_of_more_coils_than_served_are_told_once_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (pd, pdfs) = export_pair(&tiny_coil_run(), cwd);
    // 128 x 128: enough air blocks for the air to be read. The model is served as 8 coils:
    // 12 read as 11 to 13, more than a quarter over 8; 8 read as 8.
    for coils in ["12", "8"] {
        let set = format!("coils{coils}");
        let args = [
            "phantoms",
            "--out",
            &set,
            "--pairs",
            "2",
            "--size",
            "128",
            "--seed",
            "81",
            "--coils",
            coils,
            "--acceleration",
            "2",
        ];
        let out = crossdenoise(&args, cwd);
        assert!(out.status.success(), "phantoms: {}", stderr(&out));
        let series = [
            cwd.join(format!("{set}/pd")),
            cwd.join(format!("{set}/pdfs")),
        ];
        let returned = cwd.join(format!("returned{coils}"));
        let (report, _) =
            serve_and_send(two_contrasts(&pd, &pdfs), &series, INTERLEAVED, &returned);
        assert_eq!((report.sent, report.denoised), (4, 4), "{coils} coils");
        let told: Vec<&String> = report
            .texts
            .iter()
            .filter(|t| t.contains("the air reads as"))
            .collect();
        if coils == "12" {
            assert_eq!(told.len(), 1, "{:?}", report.texts);
            assert!(
                told[0].starts_with("WRN crossdenoise: image "),
                "{}",
                told[0]
            );
            assert!(
                told[0].contains("served as a root-sum-of-squares of about 8 coils"),
                "{}",
                told[0]
            );
        } else {
            assert!(told.is_empty(), "{:?}", report.texts);
        }
    }
}

#[test]
fn the_cross_path_served_says_it_synthesises_the_other_contrast() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let model = cwd.join("synthesis.onnx");
    export(&tiny_run(false), &model, &["--from", "b", "--to", "a"]);
    let out = crossdenoise(
        &[
            "phantoms", "--out", "held", "--pairs", "2", "--size", "32", "--seed", "5",
        ],
        cwd,
    );
    assert!(out.status.success(), "phantoms: {}", stderr(&out));
    let profile = Profile::of(&model);
    let (report, _) = serve_and_send(
        profile,
        &[cwd.join("held/pdfs")],
        ONE_AFTER_ANOTHER,
        &cwd.join("back"),
    );
    // Never "denoised": the PDFS series comes back as synthesised PD images.
    assert_eq!((report.denoised, report.synthesized), (0, 2));
    assert!(cwd.join("back/pdfs/0000.synthesized.npy").is_file());
}

/// Scored against the clean image of the output's own contrast, in the acquired image's
/// units (as the report and QUALITY.md score).
fn psnr(clean: &Path, image: &Path) -> f64 {
    let read = |p: &Path| crossdenoise_image::io::read_slice(p).unwrap();
    Quality::measure(read(clean).view(), read(image).view())
        .unwrap()
        .psnr
}

#[test]
fn guided_models_that_learned_denoise_the_held_out_series_over_mrd() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (run, [snr_pd, snr_pdfs]) = learned_guided_run();
    let (pd, pdfs) = export_pair(&run, cwd);
    let out = crossdenoise(
        &[
            "phantoms",
            "--out",
            "held",
            "--pairs",
            "6",
            "--size",
            "32",
            "--seed",
            "91",
            "--snr",
            snr_pd,
            "--snr-pdfs",
            snr_pdfs,
        ],
        cwd,
    );
    assert!(out.status.success(), "phantoms: {}", stderr(&out));
    let series = [cwd.join("held/pd"), cwd.join("held/pdfs")];
    let (report, s) = serve_and_send(
        two_contrasts(&pd, &pdfs),
        &series,
        INTERLEAVED,
        &cwd.join("returned"),
    );
    assert_eq!(
        (report.sent, report.denoised, report.unchanged),
        (12, 12, 0)
    );
    assert_eq!(
        (s.images_received, s.images_denoised, s.images_failed),
        (12, 12, 0)
    );
    for contrast in ["pd", "pdfs"] {
        let (mut acquired_db, mut denoised_db) = (0.0, 0.0);
        for i in 0..6 {
            let clean = cwd.join(format!("held/clean/{contrast}/{i:04}.npy"));
            let a = psnr(&clean, &cwd.join(format!("held/{contrast}/{i:04}.npy")));
            let d = psnr(
                &clean,
                &cwd.join(format!("returned/{contrast}/{i:04}.denoised.npy")),
            );
            eprintln!("{contrast} {i}: acquired {a:.2} dB, denoised {d:.2} dB");
            acquired_db += a / 6.0;
            denoised_db += d / 6.0;
        }
        assert!(
            denoised_db > acquired_db + 1.0,
            "{contrast}: denoised {denoised_db:.2} dB does not beat the acquired {acquired_db:.2} dB by 1 dB"
        );
    }
}
