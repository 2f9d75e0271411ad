//! The node's shared state: its config, its spool, the series being received and its
//! counters, which the associations, the pipeline and the outbox all update.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::config::DicomConfig;
use super::series;
use super::spool::{Spool, SpoolError, outbox_dir, outbox_pending};
use crate::metrics::{self, Kind, counters};

/// The node's metrics' prefix.
const PREFIX: &str = "crossdenoise_dicom_";

counters! {
    /// What the node has done, for the log, /metrics and the tests: each counter with its
    /// Prometheus kind, name (after `crossdenoise_dicom_`) and help, declared once.
    pub struct NodeStats / NodeCounts {
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
        format!("DICOM {}", self.now().line())
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
        let outbox = outbox_dir(&config.spool);
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
        let mut out = self.stats.now().prometheus(PREFIX);
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
        let depth = outbox_pending(&self.config.spool).len() as u64;
        let outbox_depth = "Derived instances waiting for the destination.";
        metrics::write(
            &mut out,
            PREFIX,
            (Kind::Gauge, "outbox_depth", outbox_depth),
            depth,
        );
        out
    }
}
