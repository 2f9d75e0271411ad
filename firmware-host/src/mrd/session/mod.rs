//! One client connection, as FIRE clients drive it: config (1 or 2), XML header (3), an
//! optional JSON text (5), the data, close (4). The server answers with images and text,
//! then close, then ends the connection.
//!
//! Reading and writing are two tasks joined by a bounded, ordered queue. The reader turns
//! each image into a job for the inference worker and queues the pending answer; the writer
//! sends answers in arrival order, each denoised image or, if its denoising failed or took
//! too long, the original. Whatever ends the reading — the client's close, a bad message,
//! silence, shutdown — the writer still answers every image already read, then sends close:
//! an image that reached the daemon is never dropped.
//!
//! An image for a guided model needs the same slice of its partner contrast. It waits on
//! its connection (its answer's place in the queue kept) until an image arrives whose model
//! is guided by this one's contrast and that lies at the same place; both are then denoised,
//! each guided by the other (a client sending the two series slice by slice, `send
//! --interleave`). One whose partner does not come within `pair_wait_s` is kept for
//! `pair_window_s` under its study ([`crate::mrd::pairing`]) and goes back denoised by its
//! profile's single-contrast model of its own contrast, or unchanged when there is none.
//! When the partner series comes later — on this connection or, as scanners send two
//! acquisitions, on another — each of its images is denoised with the kept slice as guide.
//! An image is only ever answered by a model of its own contrast: a guided model's output
//! is its input's contrast, and the cross path's output is labelled synthesized.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

mod conversation;
mod shared;
mod writer;

pub use crate::mrd::answer::{
    COMMENT_MARK, IMAGE_TYPE_MARK, OutputError, SYNTHESIZED_MARK, denoised_image,
};
use crate::mrd::stats::inc;
use crate::mrd::worker::JobError;
use crate::mrd::{Message, MessageReader, MessageWriter, ReadError};
use conversation::Conversation;
pub use conversation::choose_model;
use shared::until_abort;
pub use shared::{Context, Phase};
use writer::write_loop;

/// Why the reading side stopped.
#[derive(Debug)]
enum End {
    ClientClose,
    Eof,
    Idle,
    NoHeader,
    Shutdown,
    Protocol(String),
}

pub async fn handle<R, W>(
    reader: R,
    writer: W,
    peer: String,
    ctx: Arc<Context>,
    mut phase: watch::Receiver<Phase>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &ctx.config;
    let (tx, rx) = mpsc::channel(cfg.in_flight_per_connection);
    let gone = Arc::new(AtomicBool::new(false));
    let mut writer_task = tokio::spawn(write_loop(
        MessageWriter::new(writer),
        rx,
        ctx.clone(),
        peer.clone(),
        phase.clone(),
        gone.clone(),
    ));
    let mut talk = Conversation::new(ctx.clone(), peer.clone());
    let mut reader = MessageReader::new(reader, cfg.max_message_bytes());
    let end = loop {
        let expiry = talk.next_due().map(tokio::time::Instant::from_std);
        // Until its header arrives a connection gets only a short while.
        let (timeout, end_on_timeout) = if talk.header_seen() {
            (cfg.idle_timeout(), End::Idle)
        } else {
            (cfg.handshake_timeout(), End::NoHeader)
        };
        let next = tokio::select! {
            biased;
            _ = phase.wait_for(|p| *p != Phase::Serving) => break End::Shutdown,
            _ = async { tokio::time::sleep_until(expiry.expect("guarded")).await }, if expiry.is_some() => None,
            r = tokio::time::timeout(timeout, reader.read()) => Some(r),
        };
        // Partners overdue: handled outside the select, whose futures hold the phase.
        let Some(next) = next else {
            talk.overdue().await;
            continue;
        };
        let msg = match next {
            Err(_) => break end_on_timeout,
            Ok(Ok(None)) => break End::Eof,
            Ok(Err(ReadError::Io(e))) => {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) {
                    // Nobody is there to answer: the queued images need not be computed.
                    gone.store(true, Ordering::Relaxed);
                }
                break End::Protocol(format!("read failed: {e}"));
            }
            Ok(Err(e)) => break End::Protocol(e.to_string()),
            Ok(Ok(Some(msg))) => msg,
        };
        if matches!(msg, Message::Close) {
            break End::ClientClose;
        }
        let answered = talk.answer(msg).await;
        let notice = talk.take_notice();
        let mut stopped = false;
        for out in answered.into_iter().chain(notice) {
            stopped |= tx.send(out).await.is_err();
        }
        if stopped {
            break End::Protocol("the writer stopped (client gone)".into());
        }
    };
    log_end(&end, &ctx, &peer);
    talk.end(JobError::ConnectionEnded).await;
    drop(tx);
    linger(
        reader.into_inner(),
        &mut writer_task,
        &ctx,
        &mut phase,
        &peer,
    )
    .await;
}

/// Logs (and counts) why the reading side stopped.
fn log_end(end: &End, ctx: &Context, peer: &str) {
    let cfg = &ctx.config;
    match end {
        End::ClientClose => debug!(%peer, "client close"),
        End::Eof => warn!(%peer, "client disconnected without close"),
        End::Idle => {
            warn!(%peer, timeout_s = cfg.idle_timeout_s, "client silent too long: closing")
        }
        End::NoHeader => {
            inc(&ctx.stats.protocol_errors);
            warn!(%peer, timeout_s = cfg.handshake_timeout_s, "no MRD header within handshake_timeout_s: closing");
        }
        End::Shutdown => info!(%peer, "shutting down: answering what was received, then close"),
        End::Protocol(reason) => {
            inc(&ctx.stats.protocol_errors);
            warn!(%peer, %reason, "closing the connection");
        }
    }
}

/// Waits for the answers to go out, then for the client to close its side.
///
/// The client may still be sending (it has not seen our close yet). What it sent is read
/// and discarded while the answers go out and until it closes its side: closing a socket
/// with unread input makes the kernel reset the connection, and a reset throws away the
/// answers the client has not read yet.
async fn linger<R: AsyncRead + Unpin>(
    mut input: R,
    writer_task: &mut tokio::task::JoinHandle<usize>,
    ctx: &Context,
    phase: &mut watch::Receiver<Phase>,
    peer: &str,
) {
    let cfg = &ctx.config;
    let written = tokio::select! {
        w = &mut *writer_task => Some(w.unwrap_or(0)),
        _ = discard(&mut input) => None,
    };
    match written {
        // The client closed its side: nothing left to wait for once the answers are out.
        None => {
            let _ = writer_task.await;
        }
        // Nothing was sent but close: no answer a reset could destroy.
        Some(0) => {}
        Some(_) => {
            let linger = tokio::time::timeout(cfg.write_timeout(), discard(&mut input));
            tokio::select! {
                r = linger => if r.is_err() {
                    warn!(%peer, timeout_s = cfg.write_timeout_s, "the client did not close its side after our close: closing anyway");
                },
                _ = until_abort(phase) => {}
            }
        }
    }
}

/// Reads and drops whatever comes until the peer closes its side (or the read fails).
pub(crate) async fn discard<R: AsyncRead + Unpin>(input: &mut R) {
    let _ = tokio::io::copy(input, &mut tokio::io::sink()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mrd::DataType;
    use crate::mrd::config::{HostConfig, ModelRule, Profile};
    use crate::mrd::{Image, Meta};
    use std::path::Path;

    fn image(contrast: u16, description: &str) -> (Image, Meta) {
        let mut im = Image::from_plane(&ndarray::Array2::zeros((2, 2)), DataType::F32);
        im.header.contrast = contrast;
        let mut meta = Meta::new();
        meta.set("SequenceDescription", vec![description.into()]);
        im.attributes = meta.to_xml();
        (im, meta)
    }

    #[test]
    fn the_first_matching_rule_picks_the_model() {
        let rule = |model: &str, contrast, attr: Option<(&str, &str)>| ModelRule {
            model: model.into(),
            contrast,
            attribute: attr.map(|a| a.0.into()),
            contains: attr.map(|a| a.1.into()),
        };
        let profile = Profile {
            alone: Default::default(),
            model: "default.onnx".into(),
            rules: vec![
                rule("fs.onnx", None, Some(("SequenceDescription", "PDFS"))),
                rule("c2.onnx", Some(2), None),
                rule("both.onnx", Some(3), Some(("SequenceDescription", "PD"))),
            ],
        };
        let pick = |c, d| {
            let (im, meta) = image(c, d);
            choose_model(&profile, &im, &meta).to_owned()
        };
        assert_eq!(pick(0, "knee_PDFS_sag"), Path::new("fs.onnx"));
        assert_eq!(pick(2, "knee_PD_sag"), Path::new("c2.onnx"));
        assert_eq!(pick(3, "knee_PD_sag"), Path::new("both.onnx"));
        assert_eq!(pick(3, "T1"), Path::new("default.onnx"));
        assert_eq!(pick(0, "T1"), Path::new("default.onnx"));
    }

    #[test]
    fn the_denoised_copy_is_a_marked_new_series() {
        let (original, meta) = image(0, "pd_tse");
        let cfg = HostConfig::default();
        let planes = vec![ndarray::Array2::from_elem((2, 2), 7.0)];
        let d = denoised_image(&original, Some(meta.clone()), &planes, "denoised", &cfg).unwrap();
        assert_eq!(
            d.header.image_series_index,
            original.header.image_series_index + 100
        );
        assert_eq!(d.planes().unwrap()[0][[1, 1]], 7.0);
        let meta = Meta::parse(&d.attributes).unwrap();
        assert_eq!(meta.first("SequenceDescription"), Some("pd_tse_denoised"));
        assert_eq!(meta.first("ImageType"), Some(IMAGE_TYPE_MARK));
        assert_eq!(meta.first("ImageComment"), Some(COMMENT_MARK));
        // Wrong plane count: an error (the caller sends the original), never a panic.
        assert!(denoised_image(&original, Some(meta), &[], "denoised", &cfg).is_err());
        // Unreadable attributes travel unchanged.
        let d = denoised_image(&original, None, &planes, "denoised", &cfg).unwrap();
        assert_eq!(d.attributes, original.attributes);
        // The cross path's output says what it is.
        let (original, meta) = image(0, "pdfs_tse");
        let d = denoised_image(&original, Some(meta), &planes, "synthesized_pd", &cfg).unwrap();
        let meta = Meta::parse(&d.attributes).unwrap();
        assert_eq!(
            meta.first("SequenceDescription"),
            Some("pdfs_tse_synthesized_pd")
        );
        assert_eq!(meta.first("ImageType"), Some(SYNTHESIZED_MARK));
    }

    #[test]
    fn an_output_that_cannot_stand_for_the_image_is_refused() {
        let cfg = HostConfig::default();
        let u16_image = Image::from_plane(&ndarray::Array2::zeros((2, 2)), DataType::U16);
        let plane = |v: f32| vec![ndarray::Array2::from_elem((2, 2), v)];
        for bad in [f32::NAN, f32::INFINITY, 1e6, -1000.0] {
            let e = denoised_image(&u16_image, None, &plane(bad), "denoised", &cfg).unwrap_err();
            assert!(
                matches!(e, OutputError::OutOfRange { count: 4, .. }),
                "{bad}: {e}"
            );
        }
        // Rounding below zero is no reason to refuse: the conversion clamps it.
        assert!(denoised_image(&u16_image, None, &plane(-3.0), "denoised", &cfg).is_ok());
        let f32_image = Image::from_plane(&ndarray::Array2::zeros((2, 2)), DataType::F32);
        assert!(denoised_image(&f32_image, None, &plane(1e30), "denoised", &cfg).is_ok());
    }
}
