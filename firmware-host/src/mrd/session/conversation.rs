//! One connection's side of the conversation: what the client has told it (profile,
//! parameters, study), each message answered by kind, and the images waiting on it for
//! their partners.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::shared::{Context, Outgoing};
use crate::contrast::Label;
use crate::mrd::config::{Forward, Profile};
use crate::mrd::header;
use crate::mrd::pairing::{Place, study_key};
use crate::mrd::stats::inc;
use crate::mrd::worker::{Answer, JobError, ModelInfo, Planes, Worker};
use crate::mrd::{Image, Message, Meta};

/// What one connection has been told so far, and the images it holds for their partners.
pub(super) struct Conversation {
    ctx: Arc<Context>,
    worker: Worker,
    peer: String,
    header_seen: bool,
    profile: String,
    send_original: bool,
    partners: Partners,
    air: AirNotice,
}

impl Conversation {
    pub(super) fn new(ctx: Arc<Context>, peer: String) -> Self {
        Conversation {
            worker: ctx.worker.for_connection(),
            profile: ctx.config.default_profile.clone(),
            send_original: ctx.config.send_original,
            ctx,
            peer,
            header_seen: false,
            partners: Partners::default(),
            air: AirNotice::default(),
        }
    }

    pub(super) fn header_seen(&self) -> bool {
        self.header_seen
    }

    /// When the first waiting image's partner is overdue.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let wait = self.ctx.config.pair_wait();
        self.partners
            .waiting
            .iter()
            .map(|w| w.job.arrived + wait)
            .min()
    }

    /// Lets the images whose partner is overdue go on without it.
    pub(super) async fn overdue(&mut self) {
        let cfg = &self.ctx.config;
        let now = Instant::now();
        let (due, keep): (Vec<Waiting>, Vec<Waiting>) = self
            .partners
            .waiting
            .drain(..)
            .partition(|w| now.duration_since(w.job.arrived) >= cfg.pair_wait());
        self.partners.waiting = keep;
        for w in due {
            let why = JobError::NoPartner {
                guide: w.guide.clone(),
                wait_s: cfg.pair_wait_s,
            };
            without_partner(&self.ctx, &self.worker, w, why, &self.peer).await;
        }
    }

    /// Lets every waiting image go on without its partner, `why`: the reading side ended.
    pub(super) async fn end(&mut self, why: JobError) {
        for w in self.partners.waiting.drain(..) {
            without_partner(&self.ctx, &self.worker, w, why.clone(), &self.peer).await;
        }
    }

    /// The answer to a message other than close, by its kind, if it has one.
    pub(super) async fn answer(&mut self, msg: Message) -> Option<Outgoing> {
        match msg {
            Message::Close => None,
            Message::ConfigFile(name) | Message::ConfigText(name) => self.config(name),
            Message::Header(xml) => {
                self.header(&xml);
                None
            }
            Message::Text(text) => {
                self.text(&text);
                None
            }
            Message::Image(image) => Some(self.image(image).await),
            Message::Acquisition(_) | Message::Waveform(_) => {
                inc(&self.ctx.stats.other_messages);
                let forward = match msg {
                    Message::Acquisition(_) => self.ctx.config.acquisitions,
                    _ => self.ctx.config.waveforms,
                };
                (forward == Forward::Pass).then_some(Outgoing::Now(msg))
            }
        }
    }

    /// A config name: the profile it names, or a warning and the default profile.
    fn config(&mut self, name: String) -> Option<Outgoing> {
        let (cfg, peer) = (&self.ctx.config, &self.peer);
        let name = name.trim().to_owned();
        if cfg.profiles.contains_key(&name) {
            info!(%peer, profile = %name, "config");
            self.profile = name;
            return None;
        }
        let text = format!(
            "WRN crossdenoise: unknown config '{name}', using profile '{}'",
            cfg.default_profile
        );
        warn!(%peer, config = %name, profile = %cfg.default_profile, "unknown config name: using the default profile");
        Some(Outgoing::Now(Message::Text(text)))
    }

    /// The XML header: the study its partner images are kept under, and the acceleration
    /// the noise maps follow.
    fn header(&mut self, xml: &str) {
        let peer = &self.peer;
        debug!(%peer, bytes = xml.len(), "XML header");
        self.header_seen = true;
        self.partners.study = study_key(xml);
        let stated = header::stated(xml);
        if let Some(acceleration) = stated.acceleration {
            info!(%peer, acceleration, "the header states the acceleration: noise maps follow it");
        }
        self.worker.set_stated(stated);
        match &self.partners.study {
            Some(key) => debug!(%peer, study = %key, "study"),
            None => {
                info!(%peer, "the MRD header names no frame of reference or study: partner contrasts meet within this connection only")
            }
        }
    }

    /// A text: JSON parameters, or a line for the log.
    fn text(&mut self, text: &str) {
        let peer = &self.peer;
        match parameters(text) {
            Ok(Some(p)) => {
                if let Some(v) = p.send_original {
                    self.send_original = v;
                }
                info!(%peer, ?p, "parameters");
            }
            Ok(None) => info!(%peer, %text, "text"),
            Err(e) => warn!(%peer, error = %e, "parameters text ignored"),
        }
    }

    async fn image(&mut self, image: Image) -> Outgoing {
        let ctx = &self.ctx;
        inc(&ctx.stats.images_received);
        let profile = &ctx.config.profiles[&self.profile];
        let original = self.send_original;
        let partners = &mut self.partners;
        submit(
            ctx,
            &self.worker,
            profile,
            image,
            original,
            partners,
            &mut self.air,
            &self.peer,
        )
        .await
    }

    /// A warning for the client that an answer raised (what an image's air says against its
    /// model's coils), once taken.
    pub(super) fn take_notice(&mut self) -> Option<Outgoing> {
        self.air
            .pending
            .take()
            .map(|text| Outgoing::Now(Message::Text(text)))
    }
}

/// Whether a connection's images were told what their air says against how they are
/// served: the first image whose air disagrees is (a FIRE console shows a `WRN` text), the
/// rest of the connection not again. A 16-coil series served as 8 coils has its noise maps
/// 11-18% low, and the images still come back denoised: the reading advises, as the CLI's
/// and the DICOM node's do (docs/scanner-noise.md, "What the air says").
#[derive(Default)]
struct AirNotice {
    told: bool,
    pending: Option<String>,
}

impl AirNotice {
    fn check(&mut self, plane: &ndarray::Array2<f32>, coils: u32, peer: &str, index: u16) {
        if self.told {
            return;
        }
        let reading = crossdenoise_image::air::read_air(plane.view());
        let Some(mismatch) = reading.and_then(|r| r.mismatch(coils)) else {
            return;
        };
        warn!(%peer, index, %mismatch, "images served against what their air says");
        self.told = true;
        self.pending = Some(format!("WRN crossdenoise: image {index}: {mismatch}"));
    }
}

/// A connection's images waiting for their partners, and the study its header names.
#[derive(Default)]
struct Partners {
    waiting: Vec<Waiting>,
    study: Option<String>,
}

/// An image for a guided model, waiting for its partner.
struct Waiting {
    job: Job,
    /// Its study (from the connection's MRD header), if the header names one.
    study: Option<String>,
    /// The single-contrast model of its contrast, if its profile has one.
    alone: Option<usize>,
    /// Its model's output contrast and guide contrast.
    contrast: String,
    guide: String,
    reply: oneshot::Sender<Answer>,
}

/// An image whose partner did not come (`why`): kept for a partner series to come, when its
/// stream names its study, then denoised by the single-contrast model of its contrast, or
/// sent back unchanged when its profile has none.
async fn without_partner(ctx: &Context, worker: &Worker, w: Waiting, why: JobError, peer: &str) {
    if let Some(key) = &w.study {
        let (dropped, held) = {
            let mut kept = ctx.kept.lock().expect("kept images lock");
            let dropped = kept.keep(key, &w.contrast, w.job.place, w.job.planes.clone());
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
            info!(%peer, index = w.job.index, reason = %why, "no partner image: denoised alone by the single-contrast model");
            inc(&ctx.stats.images_alone);
            if worker
                .submit_to(model, w.job.planes, None, w.reply)
                .await
                .is_err()
            {
                warn!(%peer, index = w.job.index, "the inference worker has stopped");
            }
        }
        None => {
            info!(%peer, index = w.job.index, reason = %why, "no partner image and no single-contrast model: sent back unchanged");
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
#[allow(clippy::too_many_arguments)]
async fn submit(
    ctx: &Context,
    worker: &Worker,
    profile: &Profile,
    image: Image,
    send_original: bool,
    partners: &mut Partners,
    air: &mut AirNotice,
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
    if refused(ctx, info, meta.as_ref(), model, peer, index) {
        inc(&ctx.stats.images_passed_through);
        return Outgoing::Now(Message::Image(image));
    }
    if let Some(plane) = planes.first() {
        air.check(plane, info.coils, peer, index);
    }
    let answer = match &info.guide {
        None => worker.submit(model_index, planes, None).await,
        Some(guide) => {
            let job = Job {
                model: model_index,
                planes,
                place: Place::of(&image),
                arrived,
                index,
            };
            guided(
                ctx,
                worker,
                profile,
                guide,
                &info.output,
                job,
                partners,
                peer,
            )
            .await
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

/// One image for a model: what it is denoised with, and what it waits with for a partner.
struct Job {
    model: usize,
    planes: Planes,
    place: Place,
    arrived: Instant,
    index: u16,
}

/// A guided model's image: denoised with its partner slice as guide when the partner is
/// waiting (which is then denoised too) or kept from an earlier series, else set waiting.
#[allow(clippy::too_many_arguments)]
async fn guided(
    ctx: &Context,
    worker: &Worker,
    profile: &Profile,
    guide: &str,
    output: &str,
    job: Job,
    partners: &mut Partners,
    peer: &str,
) -> Result<oneshot::Receiver<Answer>, Planes> {
    let partner = partners
        .waiting
        .iter()
        .position(|w| w.contrast == *guide && w.guide == *output && w.job.place.same(&job.place));
    match partner {
        Some(k) => {
            // Both are ready: the partner is denoised guided by this image, this
            // image guided by the partner.
            let w = partners.waiting.remove(k);
            debug!(%peer, index = job.index, partner = w.job.index, "paired");
            let theirs = w.job.planes.clone();
            if worker
                .submit_to(w.job.model, w.job.planes, Some(job.planes.clone()), w.reply)
                .await
                .is_err()
            {
                warn!(%peer, index = w.job.index, "the inference worker has stopped");
            }
            worker.submit(job.model, job.planes, Some(theirs)).await
        }
        None => {
            let kept = partners.study.as_deref().and_then(|key| {
                let mut kept = ctx.kept.lock().expect("kept images lock");
                kept.find(key, guide, &job.place)
            });
            match kept {
                Some(theirs) => {
                    // The partner series came earlier: its slice, kept, is the guide.
                    debug!(%peer, index = job.index, "guided by a kept partner slice");
                    inc(&ctx.stats.images_paired_kept);
                    worker.submit(job.model, job.planes, Some(theirs)).await
                }
                None => {
                    let alone = profile
                        .alone
                        .iter()
                        .find(|(c, _)| c.eq_ignore_ascii_case(output))
                        .and_then(|(_, p)| ctx.models.get(p))
                        .copied();
                    let (reply, answer) = oneshot::channel();
                    partners.waiting.push(Waiting {
                        job,
                        study: partners.study.clone(),
                        alone,
                        contrast: output.to_string(),
                        guide: guide.to_string(),
                        reply,
                    });
                    Ok(answer)
                }
            }
        }
    }
}

/// Whether the image is refused for the model (and why, logged): never another contrast
/// under the name "denoised".
fn refused(
    ctx: &Context,
    info: &ModelInfo,
    meta: Option<&Meta>,
    model: &Path,
    peer: &str,
    index: u16,
) -> bool {
    // Never another contrast under the name "denoised": an image recognised as one
    // contrast goes back unchanged rather than through a model that denoises the other, and
    // one whose words name another weighting (T2, STIR, ...) is not denoised at all.
    let label = meta.map(|m| {
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
            true
        }
        Some(Label::Other(why)) if !synthesizes => {
            warn!(%peer, index, model = %model.display(), reason = %why, "the image shows a contrast the models were not trained for: sent back unchanged");
            true
        }
        _ => false,
    }
}
