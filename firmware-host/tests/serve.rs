//! The daemon on real TCP on 127.0.0.1 with real ONNX Runtime models: every image comes
//! back, denoised exactly as the runtime denoises it, or unchanged when it cannot be.

mod common;
use crossdenoise_test_support as support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Client, Server, config, image, images, is_denoised, model};
use crossdenoise_host::mrd::config::DEFAULT_PROFILE;
use crossdenoise_host::mrd::{
    Acquisition, DataType, Image, Message, MessageReader, Meta, Waveform,
};
use crossdenoise_runtime::{Denoiser, DenoiserOptions};
use ndarray::Array2;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_image_comes_back_denoised_exactly_as_the_runtime_does_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let server = Server::start(config(&model)).await;
    // 60 x 52 is not a multiple of the model's size: padding and cropping are exercised.
    let planes = support::phantom_slices(12, 60, 52);
    let mut client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let answers = client.answers_to(&planes).await;
    let back = images(&answers);
    assert_eq!(back.len(), planes.len());

    let mut reference =
        Denoiser::open(&support::runtime(), &model, &DenoiserOptions::default()).unwrap();
    for (i, (got, plane)) in back.iter().zip(&planes).enumerate() {
        assert_eq!(
            got.header.image_index,
            i as u16 + 1,
            "answers keep arrival order"
        );
        assert_eq!(got.header.image_series_index, 101, "a new series");
        assert!(is_denoised(got));
        let meta = Meta::parse(&got.attributes).unwrap();
        assert_eq!(meta.first("SequenceDescription"), Some("pdfs_tse_denoised"));
        let expected = reference.denoise(plane.view()).unwrap();
        let diff = max_abs_diff(&got.planes().unwrap()[0], &expected);
        assert!(
            diff <= 1e-3,
            "image {i}: differs from the runtime by {diff}"
        );
        assert!(
            max_abs_diff(&expected, plane) > 1.0,
            "the model changes the image"
        );
    }
    let stats = server.shutdown().await;
    let s = stats.snapshot();
    assert_eq!(
        (s.images_received, s.images_denoised, s.images_failed),
        (12, 12, 0)
    );
    assert!(s.p50_ms.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_returns_every_original() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &["--fail-unless-64"]);
    let server = Server::start(config(&model)).await;
    let mut client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let planes = support::phantom_slices(6, 80, 80);
    let sent: Vec<Image> = planes
        .iter()
        .enumerate()
        .map(|(i, p)| image(p, i as u16 + 1))
        .collect();
    for im in &sent {
        client.send(&Message::Image(im.clone())).await;
    }
    // A slice the model can handle still gets denoised between the failures.
    let ok = image(&support::phantom_slices(1, 64, 64)[0], 99);
    client.send(&Message::Image(ok)).await;
    client.send(&Message::Close).await;
    let answers = client.until_close().await;
    let back = images(&answers);
    assert_eq!(back.len(), 7);
    for (got, original) in back.iter().zip(&sent) {
        assert!(
            *got == original,
            "image {}: the original, unchanged",
            original.header.image_index
        );
    }
    assert!(is_denoised(back[6]));
    let s = server.shutdown().await.snapshot();
    assert_eq!(
        (s.images_received, s.images_denoised, s.images_failed),
        (7, 1, 6)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_messages_pass_through_in_order_and_unknown_configs_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let server = Server::start(config(&model)).await;
    let mut client = Client::connect(server.addr, "no-such-profile").await;
    let plane = &support::phantom_slices(1, 32, 32)[0];
    let mut phase = image(plane, 1);
    phase.header.image_type = 2;
    let mut complex = image(plane, 2);
    complex.header.data_type = DataType::ComplexF32 as u16;
    complex.data = complex.data.iter().flat_map(|&b| [b, 0]).collect();
    let mut acq_header = vec![0u8; 340];
    acq_header[34] = 1; // one sample
    acq_header[38] = 1; // one channel
    let acquisition = Message::Acquisition(Acquisition {
        header: acq_header,
        body: vec![1; 8],
    });
    let waveform = Message::Waveform(Waveform {
        header: vec![0; 40],
        body: vec![],
    });
    let sent = vec![
        Message::Image(phase.clone()),
        acquisition.clone(),
        Message::Image(complex.clone()),
        waveform.clone(),
        Message::Image(image(plane, 3)),
    ];
    for m in &sent {
        client.send(m).await;
    }
    client.send(&Message::Close).await;
    let answers = client.until_close().await;
    let Message::Text(warning) = &answers[0] else {
        panic!("a text first, got {:?}", answers[0].kind())
    };
    assert!(
        warning.starts_with("WRN") && warning.contains("no-such-profile"),
        "{warning}"
    );
    assert!(
        answers[1..5] == sent[..4],
        "passed through unchanged, in order"
    );
    let Message::Image(last) = &answers[5] else {
        panic!("the magnitude image")
    };
    assert!(is_denoised(last), "the default profile served it");
    let s = server.shutdown().await.snapshot();
    assert_eq!(
        (
            s.images_received,
            s.images_denoised,
            s.images_passed_through
        ),
        (3, 1, 2)
    );
}

/// Sends raw bytes on a connection and waits for the server to end it.
async fn misbehave(addr: SocketAddr, bytes: Vec<u8>, vanish: bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    if vanish {
        // Gone mid-frame without a word.
        drop(stream);
        return;
    }
    stream.shutdown().await.unwrap();
    let (r, _w) = stream.into_split();
    let mut reader = MessageReader::new(r, 1 << 20);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = reader.read().await {}
    })
    .await;
    assert!(ended.is_ok(), "the server ends a bad connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_do_not_disturb_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let mut cfg = config(&model);
    cfg.max_message_mib = 1;
    let server = Server::start(cfg).await;
    let addr = server.addr;
    let planes = support::phantom_slices(20, 48, 48);
    let good = {
        let planes = planes.clone();
        tokio::spawn(async move {
            let mut client = Client::connect(addr, DEFAULT_PROFILE).await;
            for (i, p) in planes.iter().enumerate() {
                client.send(&Message::Image(image(p, i as u16 + 1))).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            client.send(&Message::Close).await;
            images(&client.until_close().await).len()
        })
    };
    let frame = Message::Image(image(&planes[0], 1)).to_bytes();
    let bad: Vec<(&str, Vec<u8>, bool)> = vec![
        ("garbage", b"GET /metrics HTTP/1.1\r\n\r\n".to_vec(), false),
        ("truncated frame", frame[..frame.len() / 2].to_vec(), false),
        (
            "oversize length",
            vec![0x05, 0x00, 0xFF, 0xFF, 0xFF, 0x7F],
            false,
        ),
        ("unknown id", vec![0x10, 0x27, 0, 0, 0, 0], false),
        ("vanished mid-frame", frame[..300].to_vec(), true),
    ];
    for (what, bytes, vanish) in bad {
        eprintln!("misbehaving client: {what}");
        misbehave(addr, bytes, vanish).await;
    }
    assert_eq!(
        good.await.unwrap(),
        20,
        "the well-behaved client lost nothing"
    );
    // And the server still takes new clients.
    let mut late = Client::connect(addr, DEFAULT_PROFILE).await;
    late.send(&Message::Image(image(&planes[1], 1))).await;
    late.send(&Message::Close).await;
    assert_eq!(images(&late.until_close().await).len(), 1);
    let s = server.shutdown().await.snapshot();
    assert!(s.protocol_errors >= 4, "{s:?}");
    assert_eq!(
        s.images_received,
        s.images_denoised + s.images_failed + s.images_passed_through
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_clients_of_fifty_images_lose_none() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let server = Server::start(config(&model)).await;
    let planes = Arc::new(support::phantom_slices(50, 32, 32));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let planes = planes.clone();
        let addr = server.addr;
        clients.push(tokio::spawn(async move {
            let client = Client::connect(addr, DEFAULT_PROFILE).await;
            // Read while sending, as a scanner does: the daemon's answers never wait on us.
            let Client {
                mut reader,
                mut writer,
            } = client;
            let send = tokio::spawn(async move {
                for (i, p) in planes.iter().enumerate() {
                    writer
                        .write(&Message::Image(image(p, i as u16 + 1)))
                        .await
                        .unwrap();
                }
                writer.write(&Message::Close).await.unwrap();
                writer
            });
            let mut indices = Vec::new();
            while let Some(m) = reader.read().await.unwrap() {
                match m {
                    Message::Close => break,
                    Message::Image(i) if is_denoised(&i) => indices.push(i.header.image_index),
                    other => panic!("unexpected {}", other.kind()),
                }
            }
            let _ = send.await.unwrap();
            indices
        }));
    }
    for c in clients {
        let indices = c.await.unwrap();
        assert_eq!(indices, (1..=50).collect::<Vec<u16>>());
    }
    let s = server.shutdown().await.snapshot();
    assert_eq!((s.images_received, s.images_denoised), (400, 400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_timed_out_after_its_images_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let mut cfg = config(&model);
    cfg.idle_timeout_s = 0.5;
    let server = Server::start(cfg).await;
    let mut client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let plane = &support::phantom_slices(1, 32, 32)[0];
    client.send(&Message::Image(image(plane, 1))).await;
    // No close: the server gives up on us, but answers first.
    let answers = client.until_close().await;
    assert_eq!(images(&answers).len(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_what_was_received_then_closes() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let server = Server::start(config(&model)).await;
    let mut client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let planes = support::phantom_slices(10, 64, 64);
    for (i, p) in planes.iter().enumerate() {
        client.send(&Message::Image(image(p, i as u16 + 1))).await;
    }
    // Wait until the daemon has read them all, then stop it with the client still open.
    let stats = server.stats.clone();
    tokio::time::timeout(Duration::from_secs(30), async {
        while stats.snapshot().images_received < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let stopping = tokio::spawn(server.shutdown());
    let answers = client.until_close().await;
    assert_eq!(images(&answers).len(), 10);
    let s = stopping.await.unwrap().snapshot();
    assert_eq!(s.images_received, s.images_denoised + s.images_failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_that_does_not_read_is_held_back_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let mut cfg = config(&model);
    cfg.in_flight_per_connection = 4;
    cfg.queue_depth = 4;
    let server = Server::start(cfg).await;
    let client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let Client {
        mut reader,
        mut writer,
    } = client;
    // 256 x 256 float slices (256 KiB each): the answers fill the socket buffers quickly.
    let plane = support::phantom_slices(1, 256, 256).remove(0);
    const N: u16 = 200;
    let send = tokio::spawn(async move {
        for i in 1..=N {
            writer
                .write(&Message::Image(image(&plane, i)))
                .await
                .unwrap();
        }
        writer.write(&Message::Close).await.unwrap();
        writer
    });
    // Not reading: the daemon must stop reading too, holding a bounded number of images.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = server.stats.snapshot().images_received;
    assert!(
        held < u64::from(N) / 2,
        "the daemon read {held} of {N} images from a client that reads nothing back"
    );
    let mut back = 0;
    while let Some(m) = reader.read().await.unwrap() {
        match m {
            Message::Close => break,
            Message::Image(_) => back += 1,
            other => panic!("unexpected {}", other.kind()),
        }
    }
    let _ = send.await.unwrap();
    assert_eq!(back, N, "once the client reads, every image comes back");
    eprintln!("held at most {held} images while the client was not reading");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquisitions_and_waveforms_can_be_dropped_by_config() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let mut cfg = config(&model);
    cfg.acquisitions = crossdenoise_host::mrd::config::Forward::Drop;
    cfg.waveforms = crossdenoise_host::mrd::config::Forward::Drop;
    let server = Server::start(cfg).await;
    let mut client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    client
        .send(&Message::Waveform(Waveform {
            header: vec![0; 40],
            body: vec![],
        }))
        .await;
    let plane = &support::phantom_slices(1, 32, 32)[0];
    client.send(&Message::Image(image(plane, 1))).await;
    client.send(&Message::Close).await;
    let answers = client.until_close().await;
    assert_eq!(answers.len(), 1, "only the image comes back");
    assert!(matches!(&answers[0], Message::Image(i) if is_denoised(i)));
    let s = server.shutdown().await.snapshot();
    assert_eq!(s.other_messages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_mrd_file_is_replayed_and_every_image_answered() {
    use crossdenoise_host::mrd::client::{SendOptions, send};
    use crossdenoise_host::mrd::h5::read_images;

    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let recording = dir.path().join("rec.h5");
    support::reference(&["mrd-h5".into(), recording.display().to_string()]);

    // The file as ismrmrd-python wrote it: headers byte for byte, attributes, pixels.
    let images = read_images(&recording).unwrap();
    let kinds: Vec<(String, u16, u16)> = images
        .iter()
        .map(|(g, i)| (g.clone(), i.header.image_index, i.header.data_type))
        .collect();
    assert_eq!(
        kinds,
        [
            ("dataset/image_0".into(), 1, 5),
            ("dataset/image_0".into(), 2, 5),
            ("dataset/image_1".into(), 3, 1),
            ("dataset/image_2".into(), 4, 5),
            ("dataset/image_3".into(), 5, 7),
        ]
    );
    assert!(images.iter().all(|(_, i)| i.header.slice == 7));
    assert!(images[0].1.attributes.contains("pdfs_tse"));
    assert_eq!(images[3].1.planes().unwrap().len(), 2, "a 2-slice image");

    let server = Server::start(config(&model)).await;
    let out = dir.path().join("out");
    let options = SendOptions {
        config_name: DEFAULT_PROFILE.into(),
        data_type: DataType::F32,
        max_message: 1 << 28,
        interleave: false,
        header: None,
    };
    let report = send(&server.addr.to_string(), &[recording], &out, &options)
        .await
        .unwrap();
    assert_eq!((report.sent, report.denoised, report.unchanged), (5, 4, 1));
    for file in [
        "rec/dataset_image_0_0000.denoised.npy",
        "rec/dataset_image_1_0002.denoised.npy",
        "rec/dataset_image_2_0003_p1.denoised.npy",
    ] {
        assert!(out.join(file).is_file(), "{file}");
    }
    // The ushort image comes back as ushort: whole numbers.
    let back = crossdenoise_image::io::read_npy(&out.join("rec/dataset_image_1_0002.denoised.npy"))
        .unwrap();
    assert!(back.iter().all(|v| v.fract() == 0.0 && *v >= 0.0));
    let s = server.shutdown().await.snapshot();
    assert_eq!(
        (
            s.images_received,
            s.images_denoised,
            s.images_passed_through
        ),
        (5, 4, 1)
    );

    let bad = dir.path().join("bad.h5");
    std::fs::write(&bad, b"\x89HDF\r\n\x1a\nnot really").unwrap();
    let err = read_images(&bad).unwrap_err().to_string();
    assert!(err.contains("bad.h5") && err.contains("HDF5"), "{err}");
}

/// An MRD header states parallel imaging's acceleration: a coil-array model's noise maps
/// are read between its fold lines (the configuration states the phase encoding, none the
/// acceleration), each image exactly as the runtime told the same denoises it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acceleration_a_header_states_reads_the_noise_maps_between_the_fold_lines() {
    use crossdenoise_image::noise_map::{PhaseEncoding, Stated};

    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &["--noise-coils", "8"]);
    let mut cfg = config(&model);
    cfg.phase_encoding = PhaseEncoding::LeftRight;
    // Each image's own map, as the reference below reads it.
    cfg.noise_pool_slices = 1;
    let options = cfg.denoiser_options();
    let server = Server::start(cfg).await;
    // Phase encoded along the rows: the map jumps at the fold lines.
    let planes = support::accelerated_slices(2, 256, 1000.0);
    let header = "<?xml version=\"1.0\"?><ismrmrdHeader xmlns=\"http://www.ismrm.org/ISMRMRD\">\
        <encoding><parallelImaging><accelerationFactor>\
        <kspace_encoding_step_1>3</kspace_encoding_step_1>\
        <kspace_encoding_step_2>1</kspace_encoding_step_2>\
        </accelerationFactor></parallelImaging></encoding></ismrmrdHeader>";
    let mut client = Client::connect_with_header(server.addr, DEFAULT_PROFILE, header).await;
    let answers = client.answers_to(&planes).await;
    let back = images(&answers);
    assert_eq!(back.len(), planes.len());
    let reference = |acceleration| {
        let mut d = Denoiser::open(&support::runtime(), &model, &options).unwrap();
        d.set_stated(Stated {
            phase_encoding: None,
            acceleration,
        });
        d
    };
    let (mut between, mut whole) = (reference(Some(3)), reference(None));
    for (i, (got, plane)) in back.iter().zip(&planes).enumerate() {
        assert!(is_denoised(got));
        let got = &got.planes().unwrap()[0];
        let expected = between.denoise(plane.view()).unwrap();
        let diff = max_abs_diff(got, &expected);
        assert!(
            diff <= 1e-3,
            "image {i}: differs from the runtime by {diff}"
        );
        let apart = max_abs_diff(got, &whole.denoise(plane.view()).unwrap());
        assert!(apart > 1.0, "image {i}: as read whole ({apart} apart)");
    }
    server.shutdown().await;
}
