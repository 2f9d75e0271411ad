//! The MRD (ISMRMRD) streaming protocol, as Gadgetron and the FIRE servers speak it.

pub mod connection;
pub mod image;
pub mod message;
pub mod meta;
mod wire;

pub use connection::{MessageReader, MessageWriter, ReadError};
pub use image::{DataType, IMTYPE_MAGNITUDE, Image, ImageHeader, TextEncoding};
pub use message::{Acquisition, DecodeError, Message, Waveform};
pub use meta::Meta;
