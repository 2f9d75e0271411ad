//! The daemon under clients that misbehave in ways a real network produces: slow readers,
//! readers that stop, stray connections, floods from one address, images too large, text
//! in the wrong character set. Every image received is answered or counted undeliverable,
//! and nothing holds the daemon hostage.

mod common;
use crossdenoise_test_support as support;

use std::time::{Duration, Instant};

use common::{Client, Server, config, image, images, is_denoised, model};
use crossdenoise_host::mrd::config::DEFAULT_PROFILE;
use crossdenoise_host::mrd::{Message, MessageReader, Meta, TextEncoding};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Waits until the daemon has read `n` images.
async fn received(server: &Server, n: u64) {
    let stats = server.stats.clone();
    tokio::time::timeout(Duration::from_secs(30), async {
        while stats.snapshot().images_received < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the daemon reads the images");
}

/// Reads every message up to close, slowly (as a scanner writing each answer to disk),
/// failing on a reset or a stream that ends without close.
async fn read_slowly(
    reader: &mut MessageReader<tokio::net::tcp::OwnedReadHalf>,
    pause: Duration,
) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        tokio::time::sleep(pause).await;
        match reader.read().await {
            Ok(Some(Message::Close)) => return out,
            Ok(Some(m)) => out.push(m),
            Ok(None) => panic!(
                "the stream ended without close after {} messages",
                out.len()
            ),
            Err(e) => panic!("after {} messages: {e}", out.len()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_every_answer_when_a_bad_message_ends_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&model(dir.path(), &[]))).await;
    let Client { mut reader, writer } = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let planes = support::phantom_slices(20, 64, 64);
    let mut stream = writer;
    for (i, p) in planes.iter().enumerate() {
        stream
            .write(&Message::Image(image(p, i as u16 + 1)))
            .await
            .unwrap();
    }
    received(&server, 20).await;
    // An unknown message id, then more bytes still arriving after the daemon stopped
    // reading: a plain close would reset the connection under the unread answers.
    let sender = tokio::spawn(async move {
        let mut raw = stream.into_inner();
        raw.write_all(&[0x10, 0x27, 0, 0, 0, 0]).await.unwrap();
        for _ in 0..64 {
            if raw.write_all(&[0x55; 16 * 1024]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = raw.shutdown().await;
    });
    let answers = read_slowly(&mut reader, Duration::from_millis(30)).await;
    assert_eq!(images(&answers).len(), 20);
    assert!(images(&answers).iter().all(|i| is_denoised(i)));
    sender.await.unwrap();
    let s = server.shutdown().await.snapshot();
    assert_eq!(
        (s.images_received, s.images_denoised, s.images_undeliverable),
        (20, 20, 0)
    );
    assert_eq!(s.protocol_errors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_a_client_that_is_still_sending_and_reads_slowly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&model(dir.path(), &[]))).await;
    let Client { mut reader, writer } = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let plane = support::phantom_slices(1, 64, 64).remove(0);
    // The scanner goes on sending while the daemon stops.
    let sender = tokio::spawn(async move {
        let mut writer = writer;
        let mut sent = 0u16;
        while sent < 400 {
            sent += 1;
            if writer
                .write(&Message::Image(image(&plane, sent)))
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = writer.shutdown().await;
    });
    received(&server, 10).await;
    let stats = server.stats.clone();
    let stopping = tokio::spawn(server.shutdown());
    let answers = read_slowly(&mut reader, Duration::from_millis(20)).await;
    sender.await.unwrap();
    let s = stopping.await.unwrap().snapshot();
    assert_eq!(s, stats.snapshot());
    assert_eq!(
        images(&answers).len() as u64,
        s.images_received,
        "every image the daemon read is answered: {s:?}"
    );
    assert_eq!(
        (s.images_denoised, s.images_undeliverable),
        (s.images_received, 0)
    );
}

/// A client that sends and never reads: after `write_timeout_s` the daemon stops writing to
/// it, counts the rest undeliverable, and frees its slot; SIGTERM is bounded by
/// `shutdown_grace_s` whatever such a client does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_given_up_on_and_cannot_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(dir.path(), &[]);
    let plane = support::phantom_slices(1, 256, 256).remove(0);
    for (write_timeout_s, shutdown_grace_s) in [(1.0, 60.0), (60.0, 1.0)] {
        let mut cfg = config(&model);
        cfg.write_timeout_s = write_timeout_s;
        cfg.shutdown_grace_s = shutdown_grace_s;
        let server = Server::start(cfg).await;
        let Client { reader, writer } = Client::connect(server.addr, DEFAULT_PROFILE).await;
        let plane = plane.clone();
        // 256 x 256 floats: a few answers fill the socket buffers.
        let sender = tokio::spawn(async move {
            let mut writer = writer;
            for i in 1..=100u16 {
                let m = Message::Image(image(&plane, i));
                let write = writer.write(&m);
                match tokio::time::timeout(Duration::from_secs(5), write).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
            writer
        });
        let stats = server.stats.clone();
        if write_timeout_s < 10.0 {
            // The daemon gives up on the writes, then on the connection.
            tokio::time::timeout(Duration::from_secs(30), async {
                while stats.snapshot().images_undeliverable == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("undelivered answers are counted after write_timeout_s");
        } else {
            // Until the daemon stops reading: its answers fill the socket buffers.
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = stats.snapshot().images_received;
                if now > 0 && now == last {
                    break;
                }
                last = now;
            }
        }
        let started = Instant::now();
        let s = server.shutdown().await.snapshot();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "shutdown took {:?}",
            started.elapsed()
        );
        assert!(s.images_undeliverable > 0, "{s:?}");
        assert_eq!(
            s.images_received,
            s.images_denoised + s.images_failed + s.images_passed_through,
            "{s:?}"
        );
        drop((reader, sender));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_connections_are_closed_and_floods_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&model(dir.path(), &[]));
    cfg.handshake_timeout_s = 0.5;
    cfg.max_connections_per_peer = 2;
    let server = Server::start(cfg).await;

    // A connection that says nothing is closed after handshake_timeout_s, not idle_timeout_s.
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let (r, _w) = silent.into_split();
    let mut silent = MessageReader::new(r, 1 << 20);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = silent.read().await {}
    })
    .await;
    assert!(closed.is_ok(), "a connection without a header is closed");

    // Two connections from this address are served; the third is told why it is refused.
    let mut a = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let mut b = Client::connect(server.addr, DEFAULT_PROFILE).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let refused = c.until_close().await;
    match refused.as_slice() {
        [Message::Text(t)] => assert!(
            t.starts_with("ERR") && t.contains("max_connections_per_peer = 2"),
            "{t}"
        ),
        other => panic!("{other:?}"),
    }
    // The ones let in still work, and a slot comes back when one of them ends.
    let plane = &support::phantom_slices(1, 32, 32)[0];
    for client in [&mut a, &mut b] {
        client.send(&Message::Image(image(plane, 1))).await;
        client.send(&Message::Close).await;
        let answers = client.until_close().await;
        assert_eq!(images(&answers).len(), 1, "{answers:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut d = Client::connect(server.addr, DEFAULT_PROFILE).await;
    d.send(&Message::Image(image(plane, 1))).await;
    d.send(&Message::Close).await;
    let answers = d.until_close().await;
    assert!(is_denoised(images(&answers)[0]));
    let s = server.shutdown().await.snapshot();
    assert_eq!(s.connections_refused, 1);
    assert!(s.protocol_errors >= 1, "the silent connection: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_beyond_max_image_pixels_comes_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&model(dir.path(), &[]));
    cfg.max_image_pixels = 48 * 48;
    let server = Server::start(cfg).await;
    let mut client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let big = image(&support::phantom_slices(1, 64, 64)[0], 1);
    let fits = image(&support::phantom_slices(1, 48, 48)[0], 2);
    client.send(&Message::Image(big.clone())).await;
    client.send(&Message::Image(fits)).await;
    client.send(&Message::Close).await;
    let answers = client.until_close().await;
    let back = images(&answers);
    assert_eq!(back.len(), 2);
    assert_eq!(*back[0], big, "unchanged");
    assert!(is_denoised(back[1]));
    let s = server.shutdown().await.snapshot();
    assert_eq!((s.images_passed_through, s.images_denoised), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latin1_attributes_are_denoised_and_come_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&model(dir.path(), &[]))).await;
    let mut client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let planes = support::phantom_slices(2, 32, 32);
    let mut latin = image(&planes[0], 1);
    let mut meta = Meta::parse(&latin.attributes).unwrap();
    meta.set("PatientName", vec!["Müller^Zoë".into()]);
    latin.attributes = meta.to_xml();
    latin.attribute_encoding = TextEncoding::Latin1;
    let bytes = Message::Image(latin.clone()).to_bytes();
    assert!(
        std::str::from_utf8(&bytes[2 + 198 + 8..]).is_err(),
        "the wire carries Latin-1, not UTF-8"
    );
    client.send(&Message::Image(latin)).await;
    client.send(&Message::Image(image(&planes[1], 2))).await;
    client.send(&Message::Close).await;
    let answers = client.until_close().await;
    let back = images(&answers);
    assert_eq!(back.len(), 2, "neither image is lost");
    assert!(back.iter().all(|i| is_denoised(i)));
    assert_eq!(back[0].attribute_encoding, TextEncoding::Latin1);
    let meta = Meta::parse(&back[0].attributes).unwrap();
    assert_eq!(meta.first("PatientName"), Some("Müller^Zoë"));
    let s = server.shutdown().await.snapshot();
    assert_eq!((s.images_denoised, s.protocol_errors), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_is_not_finite_sends_the_original_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(&model(dir.path(), &[]))).await;
    let mut client = Client::connect(server.addr, DEFAULT_PROFILE).await;
    let huge = image(&ndarray::Array2::from_elem((32, 32), 3e38), 1);
    client.send(&Message::Image(huge.clone())).await;
    client.send(&Message::Close).await;
    let answers = client.until_close().await;
    let back = images(&answers);
    assert_eq!(back.len(), 1);
    let planes = back[0].planes().unwrap();
    assert!(planes[0].iter().all(|v| v.is_finite()), "no inf comes back");
    assert!(!is_denoised(back[0]));
    assert_eq!(*back[0], huge);
    let s = server.shutdown().await.snapshot();
    assert_eq!((s.images_denoised, s.images_failed), (0, 1));
}

/// `send` against a server that vanishes mid-series says how far it got, not "broken pipe".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reports_what_was_sent_and_answered_when_the_server_vanishes() {
    use crossdenoise_host::mrd::DataType;
    use crossdenoise_host::mrd::client::{SendError, SendOptions, send};
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    for (i, slice) in support::phantom_slices(40, 128, 128).iter().enumerate() {
        crossdenoise_image::io::write_npy(&inputs.join(format!("s{i:02}.npy")), slice.view())
            .unwrap();
    }
    // Answers the first two images unchanged, then is gone.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, w) = stream.into_split();
        let mut reader = MessageReader::new(r, 1 << 24);
        let mut writer = crossdenoise_host::mrd::MessageWriter::new(w);
        let mut answered = 0;
        while answered < 2 {
            if let Ok(Some(Message::Image(i))) = reader.read().await {
                writer.write(&Message::Image(i)).await.unwrap();
                answered += 1;
            }
        }
    });
    let options = SendOptions {
        config_name: DEFAULT_PROFILE.into(),
        data_type: DataType::F32,
        max_message: 1 << 26,
        interleave: false,
        header: None,
    };
    let err = send(
        &addr.to_string(),
        &[inputs],
        &dir.path().join("out"),
        &options,
    )
    .await
    .unwrap_err();
    let SendError::Incomplete {
        total, answered, ..
    } = &err
    else {
        panic!("{err}");
    };
    // The server's vanishing resets the connection, which may take its last answer with it.
    let answered = *answered;
    assert!(*total == 40 && answered <= 2, "{err}");
    let text = err.to_string();
    let counts = format!(
        "of 40 images sent, {answered} answered and written, {} not processed",
        40 - answered
    );
    assert!(text.contains(&counts), "{text}");
    let files = walk(&dir.path().join("out"));
    assert_eq!(
        files.len(),
        answered,
        "the answers received are written: {files:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A stand-in model that takes 40 ms per slice and counts what it computed.
struct Slow(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl crossdenoise_host::mrd::worker::Engine for Slow {
    fn denoise_batch(
        &mut self,
        slices: &[ndarray::ArrayView2<f32>],
    ) -> Result<crossdenoise_host::mrd::worker::Planes, String> {
        std::thread::sleep(Duration::from_millis(40) * slices.len() as u32);
        self.0
            .fetch_add(slices.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(slices.iter().map(|s| s.to_owned()).collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queued_images_of_a_client_that_reset_are_not_computed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let computed = Arc::new(AtomicUsize::new(0));
    let cfg = config(std::path::Path::new("slow.onnx"));
    let server = Server::serve(crossdenoise_host::Host::with_engines(
        cfg,
        vec![Slow(computed.clone())],
    ))
    .await;
    let (addr, stats) = (server.addr, server.stats.clone());

    let client = Client::connect(addr, DEFAULT_PROFILE).await;
    let Client { reader, mut writer } = client;
    let plane = support::phantom_slices(1, 32, 32).remove(0);
    for i in 1..=40u16 {
        writer
            .write(&Message::Image(image(&plane, i)))
            .await
            .unwrap();
    }
    while stats.snapshot().images_received < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Gone with a reset, as a crashed client's kernel does.
    let stream = reader.into_inner().reunite(writer.into_inner()).unwrap();
    stream.set_zero_linger().unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.shutdown().await;
    let s = stats.snapshot();
    let done = computed.load(Ordering::Relaxed) as u64;
    assert!(
        done < s.images_received,
        "{done} of {} images computed after the client reset: {s:?}",
        s.images_received
    );
    assert!(s.images_undeliverable > 0, "{s:?}");
    assert_eq!(
        s.images_received,
        s.images_denoised + s.images_failed + s.images_passed_through,
        "{s:?}"
    );
}

/// Records the first pixel of every slice it computes, 40 ms each.
struct Recording(std::sync::Arc<std::sync::Mutex<Vec<f32>>>);

impl crossdenoise_host::mrd::worker::Engine for Recording {
    fn denoise_batch(
        &mut self,
        slices: &[ndarray::ArrayView2<f32>],
    ) -> Result<crossdenoise_host::mrd::worker::Planes, String> {
        std::thread::sleep(Duration::from_millis(40) * slices.len() as u32);
        let mut seen = self.0.lock().unwrap();
        seen.extend(slices.iter().map(|s| s[[0, 0]]));
        Ok(slices.iter().map(|s| s.to_owned()).collect())
    }
}

/// A client with a dozen slices queued does not make the next client wait for all of them:
/// the worker takes connections in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_served_in_turn() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let cfg = config(std::path::Path::new("recording.onnx"));
    let server = Server::serve(crossdenoise_host::Host::with_engines(
        cfg,
        vec![Recording(seen.clone())],
    ))
    .await;
    let (addr, stats) = (server.addr, server.stats.clone());
    let mut a = Client::connect(addr, DEFAULT_PROFILE).await;
    for i in 1..=12 {
        a.send(&Message::Image(image(
            &ndarray::Array2::from_elem((16, 16), 1.0),
            i,
        )))
        .await;
    }
    while stats.snapshot().images_received < 12 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut b = Client::connect(addr, DEFAULT_PROFILE).await;
    b.send(&Message::Image(image(
        &ndarray::Array2::from_elem((16, 16), 2.0),
        1,
    )))
    .await;
    b.send(&Message::Close).await;
    assert_eq!(images(&b.until_close().await).len(), 1);
    a.send(&Message::Close).await;
    assert_eq!(images(&a.until_close().await).len(), 12);
    server.shutdown().await;
    let order = seen.lock().unwrap().clone();
    let turn = order.iter().position(|&v| v == 2.0).unwrap();
    assert!(
        turn <= 3,
        "the second client's slice was computed {turn}th, after the first client's queue: {order:?}"
    );
}
