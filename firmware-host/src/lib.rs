//! The scanner-side daemon: receives images over the MRD (ISMRMRD) streaming protocol,
//! denoises them through `crossdenoise-runtime` and sends them back, never losing one; and
//! the DICOM node that receives studies by C-STORE and forwards their denoised series. It
//! never links Burn.
//!
//! [`mrd`] is the MRD daemon (the wire format, one client's conversation, the partner
//! images kept across connections, the inference thread every connection shares, accepting
//! and shutting down, its counters, its configuration: the host's whole `host.toml`, whose
//! `[dicom]` section is the node's), [`dicom`] the DICOM node; what both servers share sits
//! beside them: the contrast rules ([`contrast`]), each peer's share of the connections
//! ([`peers`]) and the Prometheus text format ([`metrics`]).

pub mod contrast;
pub mod dicom;
pub mod metrics;
pub mod mrd;
pub mod peers;

pub use mrd::config::HostConfig;
pub use mrd::server::Host;
