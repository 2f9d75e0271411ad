//! Partner series on separate connections, as a scanner sends two acquisitions: the first
//! series finds no partner and goes back denoised alone by its own contrast's model; its
//! slices are kept under its study; the partner series, on a later connection, is denoised
//! with the kept slices as guides. Stand-in engines make every answer say which model made
//! it and from what, so each path is checked exactly; the limits (`pair_window_s`,
//! `pair_keep_mib`) are checked at their edges.

mod common;
use crossdenoise_test_support as support;

use std::path::PathBuf;
use std::time::Duration;

use common::{Client, Server, images};
use crossdenoise_host::mrd::client::header_with_frame_of_reference;
use crossdenoise_host::mrd::config::{DEFAULT_PROFILE, ModelRule, Profile};
use crossdenoise_host::mrd::server::{HostError, check_alone_models};
use crossdenoise_host::mrd::session::{IMAGE_TYPE_MARK, SYNTHESIZED_MARK};
use crossdenoise_host::mrd::worker::{Engine, ModelInfo, Planes};
use crossdenoise_host::mrd::{DataType, Image, Message, Meta};
use crossdenoise_host::{Host, HostConfig};
use ndarray::{Array2, ArrayView2};

/// A guided model adds a thousandth of its guide and `add`; a single-contrast model adds
/// `add`: every answer tells which model made it and with which guide.
struct Fake {
    info: ModelInfo,
    add: f32,
}

impl Engine for Fake {
    fn denoise_batch(&mut self, slices: &[ArrayView2<f32>]) -> Result<Planes, String> {
        if self.info.guide.is_some() {
            return Err("a guided model needs its guide".into());
        }
        Ok(slices.iter().map(|s| s.mapv(|v| v + self.add)).collect())
    }

    fn denoise_guided_batch(
        &mut self,
        slices: &[ArrayView2<f32>],
        guides: &[ArrayView2<f32>],
    ) -> Result<Planes, String> {
        Ok(slices
            .iter()
            .zip(guides)
            .map(|(s, g)| s + &g.mapv(|v| v / 1000.0) + self.add)
            .collect())
    }

    fn info(&self) -> ModelInfo {
        self.info.clone()
    }
}

const PD_GUIDED: f32 = 0.5;
const PDFS_GUIDED: f32 = 0.25;
const PD_ALONE: f32 = 100.0;
const PDFS_ALONE: f32 = 200.0;

fn info(output: &str, guide: Option<&str>) -> ModelInfo {
    ModelInfo {
        output: output.into(),
        guide: guide.map(String::from),
        label: "denoised".into(),
        coils: 1,
    }
}

/// PD images to the PD guided model, PDFS ones (by their description) to the PDFS guided
/// model, and a single-contrast model of each contrast for images without a partner.
fn host(edit: impl FnOnce(&mut HostConfig)) -> Host {
    let profile = Profile {
        rules: vec![ModelRule {
            model: "pdfs_guided.onnx".into(),
            contrast: None,
            attribute: Some("SequenceDescription".into()),
            contains: Some("pdfs".into()),
        }],
        alone: [
            ("pd".to_string(), PathBuf::from("pd_single.onnx")),
            ("pdfs".to_string(), PathBuf::from("pdfs_single.onnx")),
        ]
        .into(),
        ..Profile::of("pd_guided.onnx".as_ref())
    };
    let mut config = HostConfig::serving("pd_guided.onnx".as_ref());
    config.profiles.insert(DEFAULT_PROFILE.into(), profile);
    config.stats_interval_s = 0.0;
    config.pair_wait_s = 0.3;
    edit(&mut config);
    // The engines in model_paths order: the default model, the rules', the alone ones.
    let engines = vec![
        Fake {
            info: info("pd", Some("pdfs")),
            add: PD_GUIDED,
        },
        Fake {
            info: info("pdfs", Some("pd")),
            add: PDFS_GUIDED,
        },
        Fake {
            info: info("pd", None),
            add: PD_ALONE,
        },
        Fake {
            info: info("pdfs", None),
            add: PDFS_ALONE,
        },
    ];
    let infos: Vec<ModelInfo> = engines.iter().map(Engine::info).collect();
    check_alone_models(&config, &infos).expect("the alone models are single-contrast");
    Host::with_engines(config, engines)
}

/// Slice `k` of a series: every pixel `base + k`, at slice number `k`.
fn slice(description: &str, base: f32, k: u16, size: usize) -> Image {
    let plane = Array2::from_elem((size, size), base + f32::from(k));
    let mut image = Image::from_plane(&plane, DataType::F32);
    image.header.image_index = k + 1;
    image.header.slice = k;
    let mut meta = Meta::new();
    meta.set("SequenceDescription", vec![description.into()]);
    image.attributes = meta.to_xml();
    image.header.attribute_string_len = image.attributes.len() as u32;
    image
}

/// Sends `n` slices of a series on a connection of its own with `header`; returns the
/// answers' first pixel per slice and checks each is its own contrast, marked denoised.
async fn send_series(
    server: &Server,
    header: &str,
    description: &str,
    base: f32,
    n: u16,
    size: usize,
) -> Vec<f32> {
    let mut client = Client::connect_with_header(server.addr, DEFAULT_PROFILE, header).await;
    for k in 0..n {
        client
            .send(&Message::Image(slice(description, base, k, size)))
            .await;
    }
    client.send(&Message::Close).await;
    let answers = client.until_close().await;
    let images = images(&answers);
    assert_eq!(images.len(), usize::from(n));
    images
        .iter()
        .map(|image| {
            let meta = Meta::parse(&image.attributes).unwrap();
            let types = meta.get("ImageType").unwrap_or_default();
            assert!(
                types.iter().any(|t| t == IMAGE_TYPE_MARK)
                    && !types.iter().any(|t| t == SYNTHESIZED_MARK),
                "{description}: {types:?}"
            );
            // Its own series, its own contrast's description.
            assert_eq!(
                meta.first("SequenceDescription"),
                Some(format!("{description}_denoised").as_str())
            );
            image.planes().unwrap()[0][[0, 0]]
        })
        .collect()
}

fn near(got: &[f32], want: &[f32]) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_series_on_a_later_connection_is_guided_by_the_kept_first_series() {
    let server = Server::serve(host(|_| {})).await;
    let knee = header_with_frame_of_reference("1.2.826.0.1.3680043.8.498.1");
    // The PD series comes first: no partner, so each slice is denoised alone, and kept.
    let pd = send_series(&server, &knee, "pd_tse", 1.0, 4, 8).await;
    assert!(near(&pd, &[101.0, 102.0, 103.0, 104.0]), "{pd:?}");
    assert_eq!(server.stats.snapshot().images_kept, 4);

    // The PDFS series of the same study, minutes later on its own connection: each slice
    // guided by the kept PD slice at its place.
    let pdfs = send_series(&server, &knee, "pdfs_tse", 10.0, 4, 8).await;
    let want: Vec<f32> = (0..4)
        .map(|k| 10.0 + k as f32 + (1.0 + k as f32) / 1000.0 + PDFS_GUIDED)
        .collect();
    assert!(near(&pdfs, &want), "{pdfs:?} != {want:?}");

    // Another study's PDFS series finds no partner: alone, never guided by this knee.
    let other = header_with_frame_of_reference("1.2.826.0.1.3680043.8.498.2");
    let alone = send_series(&server, &other, "pdfs_tse", 10.0, 2, 8).await;
    assert!(near(&alone, &[210.0, 211.0]), "{alone:?}");

    // A stream whose header names no study pairs within its connection only: alone, and
    // nothing kept for later.
    let kept_before = server.stats.snapshot().images_kept;
    let anonymous = send_series(&server, "<ismrmrdHeader/>", "pd_tse", 1.0, 2, 8).await;
    assert!(near(&anonymous, &[101.0, 102.0]), "{anonymous:?}");
    let s = server.shutdown().await.snapshot();
    assert_eq!(s.images_kept, kept_before);
    assert_eq!(
        (s.images_received, s.images_denoised, s.images_failed),
        (12, 12, 0),
        "{}",
        s.line()
    );
    assert_eq!(
        (s.images_alone, s.images_paired_kept, s.images_unpaired),
        (8, 4, 0),
        "{}",
        s.line()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_slices_go_after_pair_window_s_and_beyond_pair_keep_mib() {
    let knee = header_with_frame_of_reference("1.2.826.0.1.3680043.8.498.3");
    // pair_window_s: a partner that comes too late is denoised alone.
    let server = Server::serve(host(|c| c.pair_window_s = 0.5)).await;
    send_series(&server, &knee, "pd_tse", 1.0, 2, 8).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let late = send_series(&server, &knee, "pdfs_tse", 10.0, 2, 8).await;
    assert!(near(&late, &[210.0, 211.0]), "{late:?}");
    let s = server.shutdown().await.snapshot();
    assert_eq!(
        (s.images_paired_kept, s.images_alone),
        (0, 4),
        "{}",
        s.line()
    );

    // pair_window_s = 0: partners meet within a connection only.
    let server = Server::serve(host(|c| c.pair_window_s = 0.0)).await;
    send_series(&server, &knee, "pd_tse", 1.0, 2, 8).await;
    let off = send_series(&server, &knee, "pdfs_tse", 10.0, 2, 8).await;
    assert!(near(&off, &[210.0, 211.0]), "{off:?}");
    assert_eq!(server.shutdown().await.snapshot().images_kept, 0);

    // pair_keep_mib = 1 holds four 256 x 256 float slices: of six, the two oldest are let
    // go (counted), and their partners are denoised alone.
    let server = Server::serve(host(|c| c.pair_keep_mib = 1)).await;
    send_series(&server, &knee, "pd_tse", 1.0, 6, 256).await;
    let pdfs = send_series(&server, &knee, "pdfs_tse", 10.0, 6, 256).await;
    let want: Vec<f32> = (0..6)
        .map(|k| {
            let own = 10.0 + k as f32;
            if k < 2 {
                own + PDFS_ALONE
            } else {
                own + (1.0 + k as f32) / 1000.0 + PDFS_GUIDED
            }
        })
        .collect();
    assert!(near(&pdfs, &want), "{pdfs:?} != {want:?}");
    let s = server.shutdown().await.snapshot();
    // Two PD slices let go for the later PD ones, then two more for the two PDFS slices
    // that found no partner (kept in turn, for a series to come).
    assert_eq!(
        (s.images_kept, s.images_kept_dropped, s.images_paired_kept),
        (4, 4, 4),
        "{}",
        s.line()
    );
}

#[test]
fn an_alone_model_must_denoise_its_own_contrast_without_a_guide() {
    let profile = |alone: &str| Profile {
        alone: [("pd".to_string(), PathBuf::from(alone))].into(),
        ..Profile::of("pd_guided.onnx".as_ref())
    };
    let check = |alone: &str, alone_info: ModelInfo| {
        let mut config = HostConfig::serving("pd_guided.onnx".as_ref());
        config
            .profiles
            .insert(DEFAULT_PROFILE.into(), profile(alone));
        check_alone_models(&config, &[info("pd", Some("pdfs")), alone_info])
    };
    assert!(check("pd_single.onnx", info("pd", None)).is_ok());
    for (what, bad) in [
        ("a pdfs model", info("pdfs", None)),
        ("a guided pd model", info("pd", Some("pdfs"))),
        (
            "a synthesized_pd model",
            ModelInfo {
                label: "synthesized_pd".into(),
                ..info("pd", None)
            },
        ),
        ("names no contrast", info("", None)),
    ] {
        let e = check("other.onnx", bad).unwrap_err();
        assert!(matches!(e, HostError::AloneModel { .. }));
        let text = e.to_string();
        assert!(
            text.contains("profiles.crossdenoise.alone.pd") && text.contains(what),
            "{text}"
        );
    }
}

/// Rule 1 without relying on the profile's rules: an image whose description says PDFS,
/// sent where only a PD model serves, comes back unchanged, never as a PD image labelled
/// denoised, and so does one whose words name another weighting (T2); a PD image and one
/// whose words name no weighting are denoised as configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_never_answered_by_a_model_of_the_other_contrast() {
    let mut config = HostConfig::serving("pd_single.onnx".as_ref());
    config.stats_interval_s = 0.0;
    let engines = vec![Fake {
        info: info("pd", None),
        add: PD_ALONE,
    }];
    let server = Server::serve(Host::with_engines(config, engines)).await;
    let mut client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    for (k, description) in ["PD_TSE_FS_COR", "PD_TSE_COR", "COR_3MM", "T2_TSE_SAG"]
        .iter()
        .enumerate()
    {
        client
            .send(&Message::Image(slice(description, 1.0, k as u16, 8)))
            .await;
    }
    client.send(&Message::Close).await;
    let answers = client.until_close().await;
    let back = images(&answers);
    assert_eq!(back.len(), 4);
    let denoised = |image: &Image| {
        Meta::parse(&image.attributes)
            .unwrap()
            .get("ImageType")
            .unwrap_or_default()
            .iter()
            .any(|t| t == IMAGE_TYPE_MARK)
    };
    // The PDFS image: its own pixels, unmarked.
    assert!(!denoised(back[0]));
    assert_eq!(back[0].planes().unwrap()[0][[0, 0]], 1.0);
    assert!(denoised(back[1]) && denoised(back[2]));
    assert_eq!(back[1].planes().unwrap()[0][[0, 0]], 2.0 + PD_ALONE);
    // The T2 image: its own pixels, unmarked.
    assert!(!denoised(back[3]));
    assert_eq!(back[3].planes().unwrap()[0][[0, 0]], 4.0);
    let s = server.shutdown().await.snapshot();
    assert_eq!(
        (s.images_passed_through, s.images_denoised),
        (2, 2),
        "{}",
        s.line()
    );
}
