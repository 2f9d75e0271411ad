//! The MRD daemon: the MRD (ISMRMRD) streaming protocol as Gadgetron and the FIRE servers
//! speak it ([`message`], [`image`], [`meta`], [`connection`], and MRD's HDF5 files in
//! [`h5`]), one client's conversation ([`session`]) and the image that answers each image
//! ([`answer`]), the partner images kept across connections ([`pairing`]), the inference
//! thread every connection shares ([`worker`]), accepting and shutting down ([`server`]),
//! the counters ([`stats`]), the sending side used by tests and demos ([`client`]), and the
//! host's configuration ([`config`]).

pub mod answer;
pub mod client;
pub mod config;
pub mod connection;
pub mod h5;
pub mod header;
pub mod image;
pub mod message;
pub mod meta;
pub mod pairing;
pub mod server;
pub mod session;
pub mod stats;
mod wire;
pub mod worker;

pub use connection::{MessageReader, MessageWriter, ReadError};
pub use image::{DataType, IMTYPE_MAGNITUDE, Image, ImageHeader, TextEncoding};
pub use message::{Acquisition, DecodeError, Message, Waveform};
pub use meta::Meta;
