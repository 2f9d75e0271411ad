//! The scanner-side daemon: receives images over the MRD (ISMRMRD) streaming protocol,
//! denoises them through `crossdenoise-runtime` and sends them back, never losing one.
//!
//! [`mrd`] is the wire format, [`session`] one client's conversation, [`pairing`] the partner
//! images kept across connections, [`worker`] the inference thread every connection shares,
//! [`server`] accepting and shutting down, [`peers`] each peer's share of the connections, and
//! [`client`] the sending side used by tests and demos; [`dicom`] is the DICOM node that
//! receives studies by C-STORE. It never links Burn.

pub mod answer;
pub mod client;
pub mod config;
pub mod contrast;
pub mod dicom;
pub mod metrics;
pub mod mrd;
pub mod mrd_h5;
pub mod pairing;
pub mod peers;
pub mod server;
pub mod session;
pub mod stats;
pub mod worker;

pub use config::HostConfig;
pub use server::Host;
