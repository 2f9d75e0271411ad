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

use crate::metrics::{self, Kind, counters};
use crate::peers::{PeerCounts, PeerSlot};
use config::DicomConfig;

/// The node's metrics' prefix.
const PREFIX: &str = "crossdenoise_dicom_";
use spool::{Spool, SpoolError};

counters! {
    /// What the node has done, for the log, /metrics and the tests: each counter with its
    /// Prometheus kind, name (after `crossdenoise_dicom_`) and help, declared once.
    pub struct NodeStats {
        associations: Counter "associations_total" "DICOM associations accepted.",
        /// Rejected: an AE title not allowed, nothing acceptable proposed, or the limit reached.
        associations_rejected: Counter "associations_rejected_total" "DICOM associations rejected (AE title, nothing acceptable, max_associations, max_associations_per_peer, handshake_timeout_s).",
        /// Aborted by this node: a protocol error or silence past `timeout_s`.
        associations_aborted: Counter "associations_aborted_total" "DICOM associations aborted by this node (protocol error, silence past timeout_s).",
        echoes: Counter "echoes_total" "C-ECHO requests answered.",
        instances_received: Counter "instances_received_total" "Instances received by C-STORE (= stored + duplicate + refused).",
        /// Written to the spool (a duplicate is not counted again).
        instances_stored: Counter "instances_stored_total" "Instances synced into the spool.",
        /// Acknowledged and not stored again: already in the spool (a resend), or of a stored
        /// UID with other content under `on_conflict = "keep_first"`.
        instances_duplicate: Counter "instances_duplicate_total" "Instances acknowledged and not stored again (a resend, or a conflicting one kept first).",
        /// Of a stored SOP Instance UID with other content (counted too as duplicate or
        /// refused, as `on_conflict` says).
        instances_conflicting: Counter "instances_conflicting_total" "Instances of a stored SOP Instance UID with other content.",
        /// Answered with an error status: unreadable, mismatched, too large, or not written.
        instances_refused: Counter "instances_refused_total" "Instances answered with an error status.",
        /// Acknowledged by the destination (and gone from the outbox and the spool).
        instances_forwarded: Counter "instances_forwarded_total" "Instances the destination acknowledged.",
        /// Refused by the destination (or unreadable): set aside in `failed/`.
        forward_failed: Counter "forward_failed_total" "Instances the destination refused, set aside in failed/.",
        /// Tries to reach the destination that failed (it was down or broke off).
        forward_retries: Counter "forward_retries_total" "Tries to reach the destination that failed (down or broke off).",
        /// Instances denoised into the outbox.
        instances_denoised: Counter "instances_denoised_total" "Instances denoised into the outbox.",
        /// Series denoised with their partner contrast as guide.
        series_paired: Counter "series_paired_total" "Series denoised with their partner contrast as guide.",
        /// Series denoised alone (no partner within `pair_wait_s`).
        series_alone: Counter "series_alone_total" "Series denoised alone (no partner within pair_wait_s).",
        /// Slices of a paired series that their partner series does not cover, denoised by
        /// their contrast's single-contrast model.
        instances_unmatched: Counter "instances_unmatched_total" "Slices of a paired series without a partner slice, denoised by the single-contrast model.",
        /// Enhanced MR (multi-frame) instances split into one instance per frame.
        instances_split: Counter "instances_split_total" "Enhanced MR instances split into one instance per frame.",
        /// Instances that came after their series was denoised (within `pair_wait_s`), denoised
        /// alone into its derived series.
        instances_late: Counter "instances_late_total" "Instances that came after their series was denoised, denoised alone into its derived series.",
        /// Complete series waiting for their partner contrast (a gauge the pipeline sets).
        series_waiting: Gauge "series_waiting" "Complete series waiting for their partner contrast.",
        /// Received instances set aside in `failed/`: unreadable, not PD or PDFS (with
        /// `other_series = "set_aside"`), two contrasts or patients in one series, no model to
        /// take them, or denoising failed for good.
        instances_set_aside: Counter "instances_set_aside_total" "Received instances set aside in failed/ (not PD or PDFS, mixed, no model, a fault for good).",
        /// Instances of a pair whose pixels disagree with its labels, or whose result resembled
        /// its guide more than its own input (the output guard): passed on or set aside as
        /// `other_series` says.
        instances_guard_refused: Counter "instances_guard_refused_total" "Instances of a pair whose pixels disagree with its labels or whose result resembled its guide more than its input.",
        /// Instances of a series that is not PD or PDFS, passed on unchanged.
        instances_passed_on: Counter "instances_passed_on_total" "Instances of a series that is not PD or PDFS, passed on unchanged.",
        /// Series not denoised for a reason that may pass (a full disk), to be tried again.
        processing_retries: Counter "processing_retries_total" "Series not denoised for a reason that may pass (a full disk), tried again.",
    }
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

    /// The node's counts in the Prometheus text format, with the spool's and the outbox's
    /// depth now.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for (kind, name, help, counter) in self.stats.metrics() {
            metrics::write(
                &mut out,
                PREFIX,
                (kind, name, help),
                NodeStats::get(counter),
            );
        }
        let spooled = std::fs::read_dir(self.spool.received())
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0) as u64;
        let spool_depth = "Received instances in the spool: not yet delivered (or set aside).";
        metrics::write(
            &mut out,
            PREFIX,
            (Kind::Gauge, "spool_depth", spool_depth),
            spooled,
        );
        let depth = outbox::pending(&self.config.spool).len() as u64;
        let outbox_depth = "Derived instances waiting for the destination.";
        metrics::write(
            &mut out,
            PREFIX,
            (Kind::Gauge, "outbox_depth", outbox_depth),
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
