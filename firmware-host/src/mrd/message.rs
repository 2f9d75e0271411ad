//! The MRD streaming messages: a little-endian `u16` id, then a layout of its own per id.
//!
//! There is no outer frame length, so [`decode`] reads each kind's own length fields to know
//! whether a whole message is buffered ([`DecodeError::Incomplete`] if not) and checks every
//! declared size against a limit before anything is allocated: a hostile length costs
//! nothing but the connection it came on.

use super::image::{Image, ImageHeader, TextEncoding};
use super::wire::{Put, u16_at};

pub const ID_CONFIG_FILE: u16 = 1;
pub const ID_CONFIG_TEXT: u16 = 2;
pub const ID_HEADER: u16 = 3;
pub const ID_CLOSE: u16 = 4;
pub const ID_TEXT: u16 = 5;
pub const ID_ACQUISITION: u16 = 1008;
pub const ID_IMAGE: u16 = 1022;
pub const ID_WAVEFORM: u16 = 1026;

/// Fixed size of the config-file name (NUL padded).
pub const CONFIG_FILE_LEN: usize = 1024;
/// `ISMRMRD_AcquisitionHeader`, packed to 2 bytes.
pub const ACQUISITION_HEADER_LEN: usize = 340;
/// `ISMRMRD_WaveformHeader`, natural alignment (40 bytes, not the 240 some docs state).
pub const WAVEFORM_HEADER_LEN: usize = 40;

/// A k-space readout, passed through untouched: header bytes plus trajectory and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Acquisition {
    pub header: Vec<u8>,
    pub body: Vec<u8>,
}

impl Acquisition {
    /// `(number_of_samples, active_channels, trajectory_dimensions)` from the header.
    pub fn dims(header: &[u8]) -> (u16, u16, u16) {
        (u16_at(header, 34), u16_at(header, 38), u16_at(header, 176))
    }
}

/// A physiological or gradient waveform, passed through untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct Waveform {
    pub header: Vec<u8>,
    pub body: Vec<u8>,
}

impl Waveform {
    /// `(number_of_samples, channels)` from the header.
    pub fn dims(header: &[u8]) -> (u16, u16) {
        (u16_at(header, 28), u16_at(header, 30))
    }
}

/// Images are most of the traffic and each is moved a few times at most (decoded, queued,
/// encoded): boxing the common variant would cost an allocation per image and buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// 1: name of a configuration (here: a model profile).
    ConfigFile(String),
    /// 2: configuration text.
    ConfigText(String),
    /// 3: the ISMRMRD XML header of the measurement.
    Header(String),
    /// 4: no more data from this side.
    Close,
    /// 5: free text (FIRE: a `DBG` / `WRN` / `ERR` prefix sets its colour).
    Text(String),
    Acquisition(Acquisition),
    Image(Image),
    Waveform(Waveform),
}

impl Message {
    pub fn id(&self) -> u16 {
        match self {
            Message::ConfigFile(_) => ID_CONFIG_FILE,
            Message::ConfigText(_) => ID_CONFIG_TEXT,
            Message::Header(_) => ID_HEADER,
            Message::Close => ID_CLOSE,
            Message::Text(_) => ID_TEXT,
            Message::Acquisition(_) => ID_ACQUISITION,
            Message::Image(_) => ID_IMAGE,
            Message::Waveform(_) => ID_WAVEFORM,
        }
    }

    /// Name for logs: the id and what it is.
    pub fn kind(&self) -> &'static str {
        id_name(self.id()).unwrap_or("unknown")
    }

    /// Appends the wire form. Text bodies get a trailing NUL counted in their length, as
    /// the FIRE and Gadgetron senders write them.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.id());
        match self {
            Message::ConfigFile(name) => {
                let bytes = name.as_bytes();
                let n = bytes.len().min(CONFIG_FILE_LEN - 1);
                out.extend_from_slice(&bytes[..n]);
                out.resize(out.len() + CONFIG_FILE_LEN - n, 0);
            }
            Message::ConfigText(t) | Message::Header(t) | Message::Text(t) => {
                out.put_u32(t.len() as u32 + 1);
                out.extend_from_slice(t.as_bytes());
                out.push(0);
            }
            Message::Close => {}
            Message::Acquisition(Acquisition { header, body })
            | Message::Waveform(Waveform { header, body }) => {
                out.extend_from_slice(header);
                out.extend_from_slice(body);
            }
            Message::Image(image) => {
                let mut attributes = Vec::with_capacity(image.attributes.len());
                image
                    .attribute_encoding
                    .encode(&image.attributes, &mut attributes);
                let mut header = image.header.clone();
                header.attribute_string_len = attributes.len() as u32;
                header.write(out);
                out.put_u64(attributes.len() as u64);
                out.extend_from_slice(&attributes);
                out.extend_from_slice(&image.data);
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

pub fn id_name(id: u16) -> Option<&'static str> {
    Some(match id {
        ID_CONFIG_FILE => "config file",
        ID_CONFIG_TEXT => "config text",
        ID_HEADER => "XML header",
        ID_CLOSE => "close",
        ID_TEXT => "text",
        ID_ACQUISITION => "acquisition",
        ID_IMAGE => "image",
        ID_WAVEFORM => "waveform",
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a whole message yet: read more.
    #[error("incomplete message")]
    Incomplete,
    #[error("unknown message id {0}")]
    UnknownId(u16),
    #[error("{kind} message declares {size} bytes, over the limit of {limit}")]
    TooLarge {
        kind: &'static str,
        size: u64,
        limit: usize,
    },
    #[error("{kind} message: {reason}")]
    Malformed { kind: &'static str, reason: String },
}

/// Decodes one message from the front of `buf`; returns it and the bytes it used.
/// `limit` bounds the size of any one message.
pub fn decode(buf: &[u8], limit: usize) -> Result<(Message, usize), DecodeError> {
    let len = check(buf, limit)?;
    let id = u16_at(buf, 0);
    let body = &buf[2..len];
    let msg = match id {
        ID_CONFIG_FILE => Message::ConfigFile(text(body)),
        ID_CONFIG_TEXT => Message::ConfigText(text(&body[4..])),
        ID_HEADER => Message::Header(text(&body[4..])),
        ID_CLOSE => Message::Close,
        ID_TEXT => Message::Text(text(&body[4..])),
        ID_ACQUISITION => Message::Acquisition(Acquisition {
            header: body[..ACQUISITION_HEADER_LEN].to_vec(),
            body: body[ACQUISITION_HEADER_LEN..].to_vec(),
        }),
        ID_WAVEFORM => Message::Waveform(Waveform {
            header: body[..WAVEFORM_HEADER_LEN].to_vec(),
            body: body[WAVEFORM_HEADER_LEN..].to_vec(),
        }),
        ID_IMAGE => {
            let header = ImageHeader::read(&body[..ImageHeader::SIZE]);
            let at = ImageHeader::SIZE;
            let attr_len =
                u64::from_le_bytes(body[at..at + 8].try_into().expect("checked")) as usize;
            let attr = &body[at + 8..at + 8 + attr_len];
            let (attributes, attribute_encoding) = TextEncoding::decode(trim_nul(attr));
            Message::Image(Image {
                header,
                attributes,
                attribute_encoding,
                data: body[at + 8 + attr_len..].to_vec(),
            })
        }
        _ => unreachable!("check refuses unknown ids"),
    };
    Ok((msg, len))
}

/// The length of the whole message at the front of `buf`, without decoding it.
pub fn check(buf: &[u8], limit: usize) -> Result<usize, DecodeError> {
    if buf.len() < 2 {
        return Err(DecodeError::Incomplete);
    }
    let id = u16_at(buf, 0);
    let kind = id_name(id).ok_or(DecodeError::UnknownId(id))?;
    let body = &buf[2..];
    let need = |n: usize| {
        if body.len() < n {
            Err(DecodeError::Incomplete)
        } else {
            Ok(())
        }
    };
    let bounded = |size: u64| -> Result<usize, DecodeError> {
        if size > limit as u64 {
            Err(DecodeError::TooLarge { kind, size, limit })
        } else {
            Ok(size as usize)
        }
    };
    let body_len = match id {
        ID_CONFIG_FILE => CONFIG_FILE_LEN,
        ID_CONFIG_TEXT | ID_HEADER | ID_TEXT => {
            need(4)?;
            let n = u32::from_le_bytes(body[..4].try_into().expect("4 bytes"));
            4 + bounded(u64::from(n))?
        }
        ID_CLOSE => 0,
        ID_ACQUISITION => {
            need(ACQUISITION_HEADER_LEN)?;
            let (samples, channels, traj) = Acquisition::dims(body);
            let (s, c, t) = (u64::from(samples), u64::from(channels), u64::from(traj));
            ACQUISITION_HEADER_LEN + bounded(s * t * 4 + s * c * 8)?
        }
        ID_WAVEFORM => {
            need(WAVEFORM_HEADER_LEN)?;
            let (samples, channels) = Waveform::dims(body);
            WAVEFORM_HEADER_LEN + bounded(u64::from(samples) * u64::from(channels) * 4)?
        }
        ID_IMAGE => {
            need(ImageHeader::SIZE + 8)?;
            let code = u16_at(body, ImageHeader::DATA_TYPE_AT);
            let dt =
                super::image::DataType::from_code(code).ok_or_else(|| DecodeError::Malformed {
                    kind,
                    reason: format!("unknown data_type {code}"),
                })?;
            let m = ImageHeader::MATRIX_SIZE_AT;
            let pixels = [m, m + 2, m + 4, ImageHeader::CHANNELS_AT]
                .map(|at| u64::from(u16_at(body, at)))
                .iter()
                .fold(1u64, |a, &b| a.saturating_mul(b));
            let at = ImageHeader::SIZE;
            let attr = u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
            let attr = bounded(attr)?;
            let data = bounded(pixels.saturating_mul(dt.size() as u64))?;
            ImageHeader::SIZE + 8 + bounded((attr + data) as u64)?
        }
        _ => unreachable!("id_name knows every id"),
    };
    need(body_len)?;
    Ok(2 + body_len)
}

fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Text up to the first NUL; invalid UTF-8 is replaced rather than refused (a log line or an
/// XML header is still worth having).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(trim_nul(bytes)).into_owned()
}
