//! The DICOM node: the scanner or the PACS sends a study by C-STORE, and every instance is
//! in the spool, synced, before the node answers success ([`spool`]). It answers C-ECHO,
//! accepts MR Image Storage and Enhanced MR Image Storage (split per frame,
//! [`enhanced`]) in Implicit or Explicit VR Little Endian, JPEG, RLE or JPEG 2000 (decoded
//! when the series is denoised; the derived series is uncompressed) from the calling AE
//! titles it is told to (any, when none is listed), and bounds what one peer can take:
//! associations at once, PDU and instance size, silence.
//!
//! [`association`] serves one association, [`dimse`] reads and writes the command sets.

pub mod association;
pub mod config;
pub mod dimse;
pub mod enhanced;
pub mod models;
pub mod outbox;
pub mod pipeline;
pub mod series;
pub mod spool;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJSource, Pdu,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::peers::{PeerCounts, PeerSlot};
use config::DicomConfig;
use spool::{Spool, SpoolError};

/// What the node has done, for the log and the tests.
#[derive(Debug, Default)]
pub struct NodeStats {
    pub associations: AtomicU64,
    /// Rejected: an AE title not allowed, nothing acceptable proposed, or the limit reached.
    pub associations_rejected: AtomicU64,
    /// Aborted by this node: a protocol error or silence past `timeout_s`.
    pub associations_aborted: AtomicU64,
    pub echoes: AtomicU64,
    pub instances_received: AtomicU64,
    /// Written to the spool (a duplicate is not counted again).
    pub instances_stored: AtomicU64,
    /// Acknowledged and not stored again: already in the spool (a resend), or of a stored
    /// UID with other content under `on_conflict = "keep_first"`.
    pub instances_duplicate: AtomicU64,
    /// Of a stored SOP Instance UID with other content (counted too as duplicate or
    /// refused, as `on_conflict` says).
    pub instances_conflicting: AtomicU64,
    /// Answered with an error status: unreadable, mismatched, too large, or not written.
    pub instances_refused: AtomicU64,
    /// Acknowledged by the destination (and gone from the outbox and the spool).
    pub instances_forwarded: AtomicU64,
    /// Refused by the destination (or unreadable): set aside in `failed/`.
    pub forward_failed: AtomicU64,
    /// Tries to reach the destination that failed (it was down or broke off).
    pub forward_retries: AtomicU64,
    /// Instances denoised into the outbox.
    pub instances_denoised: AtomicU64,
    /// Series denoised with their partner contrast as guide.
    pub series_paired: AtomicU64,
    /// Series denoised alone (no partner within `pair_wait_s`).
    pub series_alone: AtomicU64,
    /// Slices of a paired series that their partner series does not cover, denoised by
    /// their contrast's single-contrast model.
    pub instances_unmatched: AtomicU64,
    /// Enhanced MR (multi-frame) instances split into one instance per frame.
    pub instances_split: AtomicU64,
    /// Instances that came after their series was denoised (within `pair_wait_s`), denoised
    /// alone into its derived series.
    pub instances_late: AtomicU64,
    /// Complete series waiting for their partner contrast (a gauge the pipeline sets).
    pub series_waiting: AtomicU64,
    /// Received instances set aside in `failed/`: unreadable, not PD or PDFS (with
    /// `other_series = "set_aside"`), two contrasts or patients in one series, no model to
    /// take them, or denoising failed for good.
    pub instances_set_aside: AtomicU64,
    /// Instances of a pair whose pixels disagree with its labels, or whose result resembled
    /// its guide more than its own input (the output guard): passed on or set aside as
    /// `other_series` says.
    pub instances_guard_refused: AtomicU64,
    /// Instances of a series that is not PD or PDFS, passed on unchanged.
    pub instances_passed_on: AtomicU64,
    /// Series not denoised for a reason that may pass (a full disk), to be tried again.
    pub processing_retries: AtomicU64,
}

impl NodeStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// One log line.
    pub fn line(&self) -> String {
        let g = Self::get;
        format!(
            "DICOM associations {} ({} rejected, {} aborted), echoes {}; instances received {}, stored {}, duplicate {}, refused {}, multi-frame split {}; denoised {} (series paired {}, alone {}; slices without a partner slice {}, late {}; instances passed on {}, set aside {}; retries {}); forwarded {}, set aside {}, retries {}",
            g(&self.associations),
            g(&self.associations_rejected),
            g(&self.associations_aborted),
            g(&self.echoes),
            g(&self.instances_received),
            g(&self.instances_stored),
            g(&self.instances_duplicate),
            g(&self.instances_refused),
            g(&self.instances_split),
            g(&self.instances_denoised),
            g(&self.series_paired),
            g(&self.series_alone),
            g(&self.instances_unmatched),
            g(&self.instances_late),
            g(&self.instances_passed_on),
            g(&self.instances_set_aside),
            g(&self.processing_retries),
            g(&self.instances_forwarded),
            g(&self.forward_failed),
            g(&self.forward_retries),
        )
    }
}

pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The node: its config, its spool and its counters.
#[derive(Debug)]
pub struct Node {
    pub config: DicomConfig,
    pub spool: Spool,
    pub stats: Arc<NodeStats>,
    /// The series open associations are sending: not complete while they may send more.
    pub receiving: series::Receiving,
}

impl Node {
    /// Opens the spool (creating it and its outbox).
    pub fn open(config: DicomConfig) -> Result<Self, SpoolError> {
        let spool = Spool::open(&config.spool, config.min_free_mib)?;
        let outbox = outbox::dir(&config.spool);
        std::fs::create_dir_all(&outbox).map_err(|source| SpoolError::Io {
            path: outbox,
            source,
        })?;
        Ok(Node {
            config,
            spool,
            stats: Arc::default(),
            receiving: series::Receiving::default(),
        })
    }

    /// The node's counts in the Prometheus text format, with the outbox's depth now.
    pub fn prometheus(&self) -> String {
        let s = &self.stats;
        let g = NodeStats::get;
        let mut out = String::new();
        let mut metric = |kind: &str, name: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP crossdenoise_dicom_{name} {help}\n# TYPE crossdenoise_dicom_{name} {kind}\ncrossdenoise_dicom_{name} {v}\n"
            ));
        };
        for (name, help, v) in [
            (
                "associations_total",
                "DICOM associations accepted.",
                g(&s.associations),
            ),
            (
                "associations_rejected_total",
                "DICOM associations rejected (AE title, nothing acceptable, max_associations, max_associations_per_peer, handshake_timeout_s).",
                g(&s.associations_rejected),
            ),
            (
                "associations_aborted_total",
                "DICOM associations aborted by this node (protocol error, silence past timeout_s).",
                g(&s.associations_aborted),
            ),
            (
                "instances_received_total",
                "Instances received by C-STORE (= stored + duplicate + refused).",
                g(&s.instances_received),
            ),
            (
                "instances_stored_total",
                "Instances synced into the spool.",
                g(&s.instances_stored),
            ),
            (
                "instances_duplicate_total",
                "Instances acknowledged and not stored again (a resend, or a conflicting one kept first).",
                g(&s.instances_duplicate),
            ),
            (
                "instances_conflicting_total",
                "Instances of a stored SOP Instance UID with other content.",
                g(&s.instances_conflicting),
            ),
            (
                "instances_refused_total",
                "Instances answered with an error status.",
                g(&s.instances_refused),
            ),
            (
                "instances_split_total",
                "Enhanced MR instances split into one instance per frame.",
                g(&s.instances_split),
            ),
            (
                "instances_denoised_total",
                "Instances denoised into the outbox.",
                g(&s.instances_denoised),
            ),
            (
                "instances_unmatched_total",
                "Slices of a paired series without a partner slice, denoised by the single-contrast model.",
                g(&s.instances_unmatched),
            ),
            (
                "instances_late_total",
                "Instances that came after their series was denoised, denoised alone into its derived series.",
                g(&s.instances_late),
            ),
            (
                "instances_passed_on_total",
                "Instances of a series that is not PD or PDFS, passed on unchanged.",
                g(&s.instances_passed_on),
            ),
            (
                "instances_guard_refused_total",
                "Instances of a pair whose pixels disagree with its labels or whose result resembled its guide more than its input.",
                g(&s.instances_guard_refused),
            ),
            (
                "instances_set_aside_total",
                "Received instances set aside in failed/ (not PD or PDFS, mixed, no model, a fault for good).",
                g(&s.instances_set_aside),
            ),
            (
                "processing_retries_total",
                "Series not denoised for a reason that may pass (a full disk), tried again.",
                g(&s.processing_retries),
            ),
            (
                "instances_forwarded_total",
                "Instances the destination acknowledged.",
                g(&s.instances_forwarded),
            ),
            (
                "forward_failed_total",
                "Instances the destination refused, set aside in failed/.",
                g(&s.forward_failed),
            ),
            (
                "forward_retries_total",
                "Tries to reach the destination that failed (down or broke off).",
                g(&s.forward_retries),
            ),
        ] {
            metric("counter", name, help, v);
        }
        metric(
            "gauge",
            "series_waiting",
            "Complete series waiting for their partner contrast.",
            g(&s.series_waiting),
        );
        let spooled = std::fs::read_dir(self.spool.received())
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0) as u64;
        metric(
            "gauge",
            "spool_depth",
            "Received instances in the spool: not yet delivered (or set aside).",
            spooled,
        );
        let depth = outbox::pending(&self.config.spool).len() as u64;
        metric(
            "gauge",
            "outbox_depth",
            "Derived instances waiting for the destination.",
            depth,
        );
        out
    }

    /// Accepts associations on `listener` until `shutdown`; then stops accepting. An
    /// association cut by the end of the process loses nothing acknowledged: what was
    /// answered is in the spool, what was not the sender still holds.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let slots = Arc::new(Semaphore::new(self.config.max_associations));
        let per_peer = PeerCounts::default();
        tokio::pin!(shutdown);
        loop {
            let (socket, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "DICOM accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = socket.set_nodelay(true);
            let max_per_peer = self.config.max_associations_per_peer;
            let Some(peer_slot) = PeerSlot::take(&per_peer, peer.ip(), max_per_peer) else {
                warn!(%peer, max = max_per_peer, "DICOM association rejected: max_associations_per_peer reached");
                inc(&self.stats.associations_rejected);
                tokio::spawn(reject_busy(socket));
                continue;
            };
            match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let node = self.clone();
                    tokio::spawn(async move {
                        association::serve(socket, peer, node).await;
                        drop((permit, peer_slot));
                    });
                }
                Err(_) => {
                    warn!(%peer, max = self.config.max_associations, "DICOM association rejected: max_associations reached");
                    inc(&self.stats.associations_rejected);
                    tokio::spawn(reject_busy(socket));
                }
            }
        }
        info!("{}", self.stats.line());
    }
}

/// The node at work: associations served on its listener, complete series denoised by the
/// pipeline thread, results delivered by the outbox (when a destination is configured).
pub struct Working {
    serve: JoinHandle<()>,
    pipeline: std::thread::JoinHandle<()>,
    outbox: Option<JoinHandle<()>>,
}

/// Starts the node's three parts; `stop` turning true ends them all: no new association,
/// the pipeline after the series it is on, the outbox after the file in flight. What is
/// left stays in the spool for the next start.
pub fn start(
    node: Arc<Node>,
    models: models::Models,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> Working {
    let pipeline = {
        let (node, stop) = (node.clone(), stop.clone());
        std::thread::Builder::new()
            .name("dicom-pipeline".into())
            .spawn(move || pipeline::run(node, models, stop))
            .expect("spawn the DICOM pipeline thread")
    };
    let outbox = node
        .config
        .destination
        .clone()
        .map(|d| tokio::spawn(outbox::deliver(node.clone(), d, stop.clone())));
    let mut stop = stop;
    let serve = tokio::spawn(node.serve(listener, async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
    Working {
        serve,
        pipeline,
        outbox,
    }
}

impl Working {
    /// Waits for the parts to end (after `stop`).
    pub async fn join(self) {
        let _ = self.serve.await;
        if let Some(outbox) = self.outbox {
            let _ = outbox.await;
        }
        let _ = tokio::task::spawn_blocking(move || self.pipeline.join()).await;
    }
}

/// Rejects an association as transient (local limit exceeded), so the sender retries
/// later, then reads what it sends until it closes (or 2 s), so the rejection is not lost
/// to a reset.
async fn reject_busy(mut socket: TcpStream) {
    let rj = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut bytes = Vec::new();
    if dicom_ul::pdu::write_pdu(&mut bytes, &rj).is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        socket.write_all(&bytes).await?;
        socket.shutdown().await?;
        tokio::io::copy(&mut socket, &mut tokio::io::sink()).await
    })
    .await;
}
