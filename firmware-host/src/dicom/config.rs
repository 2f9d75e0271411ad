//! `[dicom]` in `host.toml`: the DICOM node's settings, beside the node (docs/daemon.md,
//! "The DICOM node").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crossdenoise_image::fat_signal::SeriesLimits;

use crate::contrast::{ContrastRules, Strength};

/// `[dicom]`: the DICOM node that a scanner or PACS sends studies to.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DicomConfig {
    /// Loopback unless the host's `allow_remote` is set.
    pub listen: SocketAddr,
    /// This node's AE title: an association calling another title is rejected.
    pub ae_title: String,
    /// Calling AE titles let in; empty lets any in (loopback only, unless `allow_remote`).
    pub allowed_calling_aes: Vec<String>,
    /// Where received instances are kept (relative to host.toml's folder).
    pub spool: PathBuf,
    /// Largest PDU this node receives, in bytes (negotiated down to the peer's).
    pub max_pdu_bytes: u32,
    /// Associations served at once; beyond it a request is rejected as transient
    /// ("local limit exceeded") and the sender retries later.
    pub max_associations: usize,
    /// Associations served at once from one peer address, within `max_associations`: a
    /// few sockets from one place cannot take every slot.
    pub max_associations_per_peer: usize,
    /// A connection that has not asked for an association this long after it opened is
    /// closed (shorter than `timeout_s`: a silent socket must not hold a slot for long).
    pub handshake_timeout_s: f64,
    /// Largest instance received, in MiB; a larger one is refused (out of resources) and
    /// the association goes on.
    pub max_instance_mib: usize,
    /// MiB kept free on the spool's disk: an instance is refused (out of resources, the
    /// sender keeps it and retries) unless the disk has room for it, its derived copy, the
    /// derived copies of everything acknowledged and not yet processed, and this much more.
    pub min_free_mib: u64,
    /// An association silent this long (mid-message or between messages) is aborted.
    pub timeout_s: f64,
    /// Where derived series are sent (C-STORE); none: they stay in the outbox.
    pub destination: Option<Destination>,
    /// Longest wait between two tries to reach a destination that is down (the waits
    /// double from 1 s up to it).
    pub retry_max_s: f64,
    /// A series is complete once no instance of it has arrived for this long.
    pub series_stable_s: f64,
    /// How long a complete series waits for its partner contrast (same study and frame of
    /// reference) before it is denoised alone.
    pub pair_wait_s: f64,
    /// What a second instance with a stored instance's SOP Instance UID and other content
    /// gets: `keep_first` (acknowledged and dropped) or `refuse` (status 0x0111).
    pub on_conflict: OnConflict,
    /// What becomes of a series that is not PD or PDFS (T2, STIR, no weighting named, a
    /// derived image): passed on unchanged to the destination, or set aside in `failed/`.
    pub other_series: OtherSeries,
    /// The models each series is denoised with.
    pub models: DicomModels,
    /// The host's `[strength]`, copied here when host.toml is read.
    #[serde(skip)]
    pub strength: Strength,
    /// Added to the source's SeriesNumber for a derived series.
    pub series_number_offset: i64,
    /// Also send each received instance of a denoised series to the destination, after
    /// its derived copy (a site whose PACS gets its originals only through this node).
    pub forward_originals: bool,
    /// Which series is PD, which PDFS and which neither (by SeriesDescription, then
    /// ProtocolName, then ScanOptions).
    pub contrasts: ContrastRules,
    /// `[dicom.bright_share]`: what share of its tissue a series denoised alone (no partner
    /// to compare with) must show bright to be taken for its label: `pd_min` for PD,
    /// `pdfs_max` for PDFS; 0 and 1 turn them off.
    pub bright_share: SeriesLimits,
}

/// `dicom.on_conflict`: what a second instance with a stored instance's SOP Instance UID and
/// other content gets. A UID names one instance for good, so one of the two is wrong; which
/// one the node cannot know, and it never replaces what it may already have denoised.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Acknowledged; the first kept, the second dropped, logged and counted.
    #[default]
    KeepFirst,
    /// Refused with status 0x0111 (duplicate SOP instance), logged and counted.
    Refuse,
}

/// `dicom.other_series`: the node never denoises what its models were not trained for;
/// where it sits in the scanner's only route to the archive it passes such series on.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtherSeries {
    #[default]
    SetAside,
    PassOn,
}

/// `[dicom.models]`: a guided model per contrast (the partner series as its guide), and a
/// single-contrast model per contrast for a series whose partner does not come. Each model
/// must output its own contrast: an image of one contrast is never answered with the other.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomModels {
    pub pd: Option<PathBuf>,
    pub pdfs: Option<PathBuf>,
    pub pd_alone: Option<PathBuf>,
    pub pdfs_alone: Option<PathBuf>,
}

/// A DICOM peer the node sends to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub ae_title: String,
    /// `host:port`.
    pub address: String,
}

impl Default for DicomConfig {
    fn default() -> Self {
        DicomConfig {
            listen: "127.0.0.1:11112".parse().expect("valid address"),
            ae_title: "CROSSDENOISE".into(),
            allowed_calling_aes: Vec::new(),
            spool: PathBuf::from("spool"),
            max_pdu_bytes: 65536,
            max_associations: 8,
            max_associations_per_peer: 4,
            handshake_timeout_s: 5.0,
            max_instance_mib: 64,
            min_free_mib: 256,
            timeout_s: 30.0,
            destination: None,
            retry_max_s: 60.0,
            series_stable_s: 5.0,
            pair_wait_s: 600.0,
            on_conflict: Default::default(),
            other_series: OtherSeries::default(),
            models: DicomModels::default(),
            strength: Strength::default(),
            series_number_offset: 1000,
            forward_originals: false,
            contrasts: ContrastRules::default(),
            bright_share: SeriesLimits::default(),
        }
    }
}

impl DicomConfig {
    pub fn max_instance_bytes(&self) -> usize {
        self.max_instance_mib.saturating_mul(1 << 20)
    }

    pub fn pair_wait(&self) -> Duration {
        Duration::from_secs_f64(self.pair_wait_s)
    }

    pub fn series_stable(&self) -> Duration {
        Duration::from_secs_f64(self.series_stable_s)
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.handshake_timeout_s)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s)
    }

    /// `bad(key, reason)` for the first problem, keys prefixed with `dicom.`.
    pub(crate) fn problem(&self, allow_remote: bool) -> Option<(&'static str, String)> {
        let ae_ok = |t: &str| {
            let t = t.trim();
            !t.is_empty()
                && t.len() <= 16
                && t.bytes()
                    .all(|b| (b == b' ' || b.is_ascii_graphic()) && b != b'\\')
        };
        if !allow_remote && !self.listen.ip().is_loopback() {
            return Some((
                "dicom.listen",
                "not a loopback address: set allow_remote = true (or --allow-remote) to serve on the network".into(),
            ));
        }
        const AE: &str = "an AE title is 1 to 16 printable characters, no backslash";
        if !ae_ok(&self.ae_title) {
            return Some(("dicom.ae_title", AE.into()));
        }
        if let Some(bad) = self.allowed_calling_aes.iter().find(|t| !ae_ok(t)) {
            return Some(("dicom.allowed_calling_aes", format!("{bad:?}: {AE}")));
        }
        if self.spool.as_os_str().is_empty() {
            return Some(("dicom.spool", "needs a folder".into()));
        }
        if !(4096..=4 << 20).contains(&self.max_pdu_bytes) {
            return Some(("dicom.max_pdu_bytes", "must be 4096 ..= 4194304".into()));
        }
        if self.max_associations < 1 {
            return Some(("dicom.max_associations", "must be at least 1".into()));
        }
        if self.max_instance_mib < 1 {
            return Some(("dicom.max_instance_mib", "must be at least 1".into()));
        }
        if self.max_associations_per_peer < 1 {
            return Some((
                "dicom.max_associations_per_peer",
                "must be at least 1".into(),
            ));
        }
        for (key, v) in [
            ("dicom.timeout_s", self.timeout_s),
            ("dicom.handshake_timeout_s", self.handshake_timeout_s),
            ("dicom.series_stable_s", self.series_stable_s),
            ("dicom.pair_wait_s", self.pair_wait_s),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Some((key, "must be a positive number of seconds".into()));
            }
        }
        if !(self.retry_max_s >= 1.0 && self.retry_max_s.is_finite()) {
            return Some(("dicom.retry_max_s", "must be at least 1 second".into()));
        }
        if self.models.pd.is_some() != self.models.pdfs.is_some() {
            return Some((
                "dicom.models",
                "`pd` and `pdfs` (the guided models) go together: each guides the other".into(),
            ));
        }
        if let Some(key) = self.contrasts.problem() {
            return Some((
                "dicom.contrasts",
                format!("`{key}` needs at least one word"),
            ));
        }
        if let Some(key) = self.bright_share.problem() {
            return Some((
                match key {
                    "pd_min" => "dicom.bright_share.pd_min",
                    _ => "dicom.bright_share.pdfs_max",
                },
                "must be a share between 0 and 1".into(),
            ));
        }
        if let Some(d) = &self.destination {
            if !ae_ok(&d.ae_title) {
                return Some(("dicom.destination.ae_title", AE.into()));
            }
            let host_port = d.address.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !host_port {
                return Some((
                    "dicom.destination.address",
                    format!("{:?} is not host:port", d.address),
                ));
            }
        }
        None
    }
}
