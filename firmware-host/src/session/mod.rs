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
//! `pair_window_s` under its study ([`crate::pairing`]) and goes back denoised by its
//! profile's single-contrast model of its own contrast, or unchanged when there is none.
//! When the partner series comes later — on this connection or, as scanners send two
//! acquisitions, on another — each of its images is denoised with the kept slice as guide.
//! An image is only ever answered by a model of its own contrast: a guided model's output
//! is its input's contrast, and the cross path's output is labelled synthesized.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

mod shared;
mod writer;

pub use crate::answer::{
    COMMENT_MARK, IMAGE_TYPE_MARK, OutputError, SYNTHESIZED_MARK, denoised_image,
};
use crate::config::{Forward, Profile};
use crate::contrast::Label;
use crate::mrd::{Image, Message, MessageReader, MessageWriter, Meta, ReadError};
use crate::pairing::{Place, study_key};
use crate::stats::inc;
use crate::worker::{Answer, JobError, Planes, Worker};
pub use shared::{Context, Phase};
use shared::{Outgoing, until_abort};
use writer::write_loop;

/// A connection's images waiting for their partners, and the study its header names.
#[derive(Default)]
struct Partners {
    waiting: Vec<Waiting>,
    study: Option<String>,
}

/// An image for a guided model, waiting for its partner.
struct Waiting {
    model: usize,
    planes: Planes,
    place: Place,
    /// Its study (from the connection's MRD header), if the header names one.
    study: Option<String>,
    /// The single-contrast model of its contrast, if its profile has one.
    alone: Option<usize>,
    /// Its model's output contrast and guide contrast.
    contrast: String,
    guide: String,
    reply: oneshot::Sender<Answer>,
    arrived: Instant,
    index: u16,
}

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
    let mut header_seen = false;
    let worker = ctx.worker.for_connection();
    let mut reader = MessageReader::new(reader, cfg.max_message_bytes());
    let mut profile_name = cfg.default_profile.clone();
    let mut send_original = cfg.send_original;
    let mut partners = Partners::default();
    let end = loop {
        let expiry = partners
            .waiting
            .iter()
            .map(|w| w.arrived + cfg.pair_wait())
            .min()
            .map(tokio::time::Instant::from_std);
        // Until its header arrives a connection gets only a short while.
        let (timeout, end_on_timeout) = if header_seen {
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
        let Some(next) = next else {
            // Partners overdue: handled outside the select, whose futures hold the phase.
            let now = Instant::now();
            let (due, keep): (Vec<Waiting>, Vec<Waiting>) = partners
                .waiting
                .drain(..)
                .partition(|w| now.duration_since(w.arrived) >= cfg.pair_wait());
            partners.waiting = keep;
            for w in due {
                let why = JobError::NoPartner {
                    guide: w.guide.clone(),
                    wait_s: cfg.pair_wait_s,
                };
                without_partner(&ctx, &worker, w, why, &peer).await;
            }
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
        let out = match msg {
            Message::Close => break End::ClientClose,
            Message::ConfigFile(name) | Message::ConfigText(name) => {
                let name = name.trim().to_owned();
                if cfg.profiles.contains_key(&name) {
                    info!(%peer, profile = %name, "config");
                    profile_name = name;
                    None
                } else {
                    let text = format!(
                        "WRN crossdenoise: unknown config '{name}', using profile '{}'",
                        cfg.default_profile
                    );
                    warn!(%peer, config = %name, profile = %cfg.default_profile, "unknown config name: using the default profile");
                    Some(Outgoing::Now(Message::Text(text)))
                }
            }
            Message::Header(xml) => {
                debug!(%peer, bytes = xml.len(), "XML header");
                header_seen = true;
                partners.study = study_key(&xml);
                match &partners.study {
                    Some(key) => debug!(%peer, study = %key, "study"),
                    None => {
                        info!(%peer, "the MRD header names no frame of reference or study: partner contrasts meet within this connection only")
                    }
                }
                None
            }
            Message::Text(text) => {
                match parameters(&text) {
                    Ok(Some(p)) => {
                        if let Some(v) = p.send_original {
                            send_original = v;
                        }
                        info!(%peer, ?p, "parameters");
                    }
                    Ok(None) => info!(%peer, %text, "text"),
                    Err(e) => warn!(%peer, error = %e, "parameters text ignored"),
                }
                None
            }
            Message::Image(image) => {
                inc(&ctx.stats.images_received);
                let profile = &cfg.profiles[&profile_name];
                Some(
                    submit(
                        &ctx,
                        &worker,
                        profile,
                        image,
                        send_original,
                        &mut partners,
                        &peer,
                    )
                    .await,
                )
            }
            Message::Acquisition(_) | Message::Waveform(_) => {
                inc(&ctx.stats.other_messages);
                let forward = match msg {
                    Message::Acquisition(_) => cfg.acquisitions,
                    _ => cfg.waveforms,
                };
                (forward == Forward::Pass).then_some(Outgoing::Now(msg))
            }
        };
        if let Some(o) = out
            && tx.send(o).await.is_err()
        {
            break End::Protocol("the writer stopped (client gone)".into());
        }
    };
    match &end {
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
    for w in partners.waiting.drain(..) {
        without_partner(&ctx, &worker, w, JobError::ConnectionEnded, &peer).await;
    }
    drop(tx);
    // The client may still be sending (it has not seen our close yet). What it sent is
    // read and discarded while the answers go out and until it closes its side: closing a
    // socket with unread input makes the kernel reset the connection, and a reset throws
    // away the answers the client has not read yet.
    let mut input = reader.into_inner();
    let written = tokio::select! {
        w = &mut writer_task => Some(w.unwrap_or(0)),
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
                _ = until_abort(&mut phase) => {}
            }
        }
    }
}

/// Reads and drops whatever comes until the peer closes its side (or the read fails).
pub(crate) async fn discard<R: AsyncRead + Unpin>(input: &mut R) {
    let _ = tokio::io::copy(input, &mut tokio::io::sink()).await;
}

/// An image whose partner did not come (`why`): kept for a partner series to come, when its
/// stream names its study, then denoised by the single-contrast model of its contrast, or
/// sent back unchanged when its profile has none.
async fn without_partner(ctx: &Context, worker: &Worker, w: Waiting, why: JobError, peer: &str) {
    if let Some(key) = &w.study {
        let (dropped, held) = {
            let mut kept = ctx.kept.lock().expect("kept images lock");
            let dropped = kept.keep(key, &w.contrast, w.place, w.planes.clone());
            (dropped, kept.len())
        };
        ctx.stats
            .images_kept
            .store(held as u64, std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            warn!(%peer, dropped, max_mib = ctx.config.pair_keep_mib, "kept images let go before pair_window_s: pair_keep_mib reached");
            ctx.stats
                .images_kept_dropped
                .fetch_add(dropped as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
    match w.alone {
        Some(model) => {
            info!(%peer, index = w.index, reason = %why, "no partner image: denoised alone by the single-contrast model");
            inc(&ctx.stats.images_alone);
            if worker
                .submit_to(model, w.planes, None, w.reply)
                .await
                .is_err()
            {
                warn!(%peer, index = w.index, "the inference worker has stopped");
            }
        }
        None => {
            info!(%peer, index = w.index, reason = %why, "no partner image and no single-contrast model: sent back unchanged");
            inc(&ctx.stats.images_unpaired);
            let _ = w.reply.send(Err(why));
        }
    }
}

/// JSON parameters a client may send as TEXT before the data.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    send_original: Option<bool>,
}

/// `Ok(None)`: plain text, not JSON.
fn parameters(text: &str) -> Result<Option<Parameters>, String> {
    let t = text.trim();
    if !t.starts_with('{') {
        return Ok(None);
    }
    serde_json::from_str(t)
        .map(Some)
        .map_err(|e| format!("{e}"))
}

/// Which model of `profile` serves this image: the first rule that matches, else the
/// profile's own model.
pub fn choose_model<'a>(profile: &'a Profile, image: &Image, meta: &Meta) -> &'a Path {
    profile
        .rules
        .iter()
        .find(|r| {
            r.contrast.is_none_or(|c| c == image.header.contrast)
                && match (&r.attribute, &r.contains) {
                    (Some(name), Some(text)) => meta
                        .get(name)
                        .is_some_and(|vs| vs.iter().any(|v| v.contains(text.as_str()))),
                    _ => true,
                }
        })
        .map_or(profile.model.as_path(), |r| r.model.as_path())
}

/// Turns an image into its answer: a pending denoising, or the original right away when it
/// is not for the model.
async fn submit(
    ctx: &Context,
    worker: &Worker,
    profile: &Profile,
    image: Image,
    send_original: bool,
    partners: &mut Partners,
    peer: &str,
) -> Outgoing {
    let arrived = Instant::now();
    let index = image.header.image_index;
    let pixels = image.header.pixel_count();
    if pixels > ctx.config.max_image_pixels {
        info!(%peer, index, pixels, max = ctx.config.max_image_pixels, "image larger than max_image_pixels: passed through unchanged");
        inc(&ctx.stats.images_passed_through);
        return Outgoing::Now(Message::Image(image));
    }
    let planes = match image.planes() {
        Ok(p) => p,
        Err(reason) => {
            info!(%peer, index, %reason, "image passed through unchanged");
            inc(&ctx.stats.images_passed_through);
            return Outgoing::Now(Message::Image(image));
        }
    };
    // Read once: the model choice and the denoised copy's attributes both need them.
    let meta = match Meta::parse(&image.attributes) {
        Ok(m) => Some(m),
        Err(e) => {
            warn!(%peer, index, error = %e, "attributes are not an ISMRMRD meta container: carried over unchanged and unmarked");
            None
        }
    };
    let model = choose_model(profile, &image, meta.as_ref().unwrap_or(&Meta::new()));
    let Some(&model_index) = ctx.models.get(model) else {
        warn!(%peer, index, model = %model.display(), "no worker model for this path: image sent back unchanged");
        inc(&ctx.stats.images_failed);
        return Outgoing::Now(Message::Image(image));
    };
    let info = &ctx.infos[model_index];
    // Never another contrast under the name "denoised": an image recognised as one
    // contrast goes back unchanged rather than through a model that denoises the other, and
    // one whose words name another weighting (T2, STIR, ...) is not denoised at all.
    let label = meta.as_ref().map(|m| {
        let text = |key| m.first(key).unwrap_or_default();
        ctx.config
            .contrasts
            .classify(text("SequenceDescription"), text("ProtocolName"), "")
    });
    let synthesizes = info.label.starts_with("synthesized");
    match label {
        Some(Label::Ours(shows))
            if !info.output.is_empty()
                && !synthesizes
                && !info.output.eq_ignore_ascii_case(shows.name()) =>
        {
            warn!(%peer, index, model = %model.display(), model_contrast = %info.output, image_contrast = shows.name(), "the model denoises another contrast than the image shows: image sent back unchanged");
            inc(&ctx.stats.images_passed_through);
            return Outgoing::Now(Message::Image(image));
        }
        Some(Label::Other(why)) if !synthesizes => {
            warn!(%peer, index, model = %model.display(), reason = %why, "the image shows a contrast the models were not trained for: sent back unchanged");
            inc(&ctx.stats.images_passed_through);
            return Outgoing::Now(Message::Image(image));
        }
        _ => {}
    }
    let answer = match &info.guide {
        None => worker.submit(model_index, planes, None).await,
        Some(guide) => {
            let place = Place::of(&image);
            let partner = partners.waiting.iter().position(|w| {
                w.contrast == *guide && w.guide == info.output && w.place.same(&place)
            });
            match partner {
                Some(k) => {
                    // Both are ready: the partner is denoised guided by this image, this
                    // image guided by the partner.
                    let w = partners.waiting.remove(k);
                    debug!(%peer, index, partner = w.index, "paired");
                    let theirs = w.planes.clone();
                    if worker
                        .submit_to(w.model, w.planes, Some(planes.clone()), w.reply)
                        .await
                        .is_err()
                    {
                        warn!(%peer, index = w.index, "the inference worker has stopped");
                    }
                    worker.submit(model_index, planes, Some(theirs)).await
                }
                None => {
                    let kept = partners.study.as_deref().and_then(|key| {
                        let mut kept = ctx.kept.lock().expect("kept images lock");
                        kept.find(key, guide, &place)
                    });
                    match kept {
                        Some(theirs) => {
                            // The partner series came earlier: its slice, kept, is the guide.
                            debug!(%peer, index, "guided by a kept partner slice");
                            inc(&ctx.stats.images_paired_kept);
                            worker.submit(model_index, planes, Some(theirs)).await
                        }
                        None => {
                            let alone = profile
                                .alone
                                .iter()
                                .find(|(c, _)| c.eq_ignore_ascii_case(&info.output))
                                .and_then(|(_, p)| ctx.models.get(p))
                                .copied();
                            let (reply, answer) = oneshot::channel();
                            partners.waiting.push(Waiting {
                                model: model_index,
                                planes,
                                place,
                                study: partners.study.clone(),
                                alone,
                                contrast: info.output.clone(),
                                guide: guide.clone(),
                                reply,
                                arrived,
                                index,
                            });
                            Ok(answer)
                        }
                    }
                }
            }
        }
    };
    match answer {
        Ok(answer) => Outgoing::Pending {
            original: Box::new(image),
            meta,
            label: info.label.clone(),
            answer,
            arrived,
            send_original,
        },
        Err(_) => {
            warn!(%peer, index, "the inference worker has stopped: image sent back unchanged");
            inc(&ctx.stats.images_failed);
            Outgoing::Now(Message::Image(image))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HostConfig, ModelRule};
    use crate::mrd::DataType;

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
