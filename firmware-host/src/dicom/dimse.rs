//! DIMSE command sets (DICOM PS3.7, chapter 9 and annex E) for the services the node
//! provides: C-ECHO and C-STORE requests in, their responses out. A command set is always
//! Implicit VR Little Endian and small, so it is read and written by hand here: the parser
//! checks every length against the bytes it was given and never allocates from them.

/// Verification SOP class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
/// MR Image Storage SOP class.
pub const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Compressed syntaxes a modality or archive may send MR images in; the node accepts those
/// the build decodes ([`crossdenoise_image::dicom::can_decode`]: JPEG baseline, extended and
/// lossless, RLE Lossless, JPEG 2000) and refuses the rest per presentation context.
pub const COMPRESSED: [&str; 9] = [
    "1.2.840.10008.1.2.4.70", // JPEG Lossless, first-order prediction (SV1)
    "1.2.840.10008.1.2.4.57", // JPEG Lossless
    "1.2.840.10008.1.2.5",    // RLE Lossless
    "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91", // JPEG 2000
    "1.2.840.10008.1.2.4.50", // JPEG baseline
    "1.2.840.10008.1.2.4.51", // JPEG extended
    "1.2.840.10008.1.2.4.80", // JPEG-LS lossless
    "1.2.840.10008.1.2.4.81", // JPEG-LS near-lossless
];

const C_STORE_RQ: u16 = 0x0001;
const C_STORE_RSP: u16 = 0x8001;
const C_ECHO_RQ: u16 = 0x0030;
const C_ECHO_RSP: u16 = 0x8030;
/// CommandDataSetType value meaning "no data set follows".
const NO_DATA_SET: u16 = 0x0101;

/// C-STORE / C-ECHO status codes (PS3.4 annex B and PS3.7 annex C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success = 0x0000,
    /// Failure: an instance of this SOP Instance UID is stored already, with other content.
    DuplicateInstance = 0x0111,
    /// The command is one this node does not provide.
    UnrecognizedOperation = 0x0211,
    /// Refused: out of resources (the spool could not be written, the instance is too large).
    OutOfResources = 0xA700,
    /// Error: the data set does not match the SOP class (or the command's SOP instance).
    DataSetMismatch = 0xA900,
    /// Error: cannot understand (the data set cannot be parsed).
    CannotUnderstand = 0xC000,
}

/// A request the node received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Echo {
        message_id: u16,
        sop_class: String,
    },
    Store {
        message_id: u16,
        sop_class: String,
        sop_instance: String,
        /// Whether a data set follows (a C-STORE-RQ without one is malformed).
        has_data: bool,
    },
    /// Any other command (C-FIND, C-MOVE, N-...): answered as unrecognized.
    Other {
        command: u16,
        message_id: u16,
        sop_class: String,
    },
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DimseError {
    #[error("command set ends inside element ({group:04X},{element:04X})")]
    Truncated { group: u16, element: u16 },
    #[error("command set lacks {0}")]
    Missing(&'static str),
    #[error("command element {0} has the wrong length")]
    BadValue(&'static str),
}

/// The elements of one command set, by tag (group 0000 only).
struct Elements<'a>(Vec<(u16, &'a [u8])>);

impl<'a> Elements<'a> {
    fn parse(mut bytes: &'a [u8]) -> Result<Self, DimseError> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (group, element) = match bytes {
                [g0, g1, e0, e1, ..] => (
                    u16::from_le_bytes([*g0, *g1]),
                    u16::from_le_bytes([*e0, *e1]),
                ),
                _ => {
                    return Err(DimseError::Truncated {
                        group: 0,
                        element: 0,
                    });
                }
            };
            let truncated = DimseError::Truncated { group, element };
            let len = bytes
                .get(4..8)
                .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
                .ok_or(truncated.clone())?;
            let value = bytes.get(8..8 + len).ok_or(truncated)?;
            if group == 0x0000 {
                out.push((element, value));
            }
            bytes = &bytes[8 + len..];
        }
        Ok(Elements(out))
    }

    fn get(&self, element: u16) -> Option<&'a [u8]> {
        self.0.iter().find(|(e, _)| *e == element).map(|(_, v)| *v)
    }

    fn u16(&self, element: u16, name: &'static str) -> Result<u16, DimseError> {
        match self.get(element) {
            Some([a, b]) => Ok(u16::from_le_bytes([*a, *b])),
            Some(_) => Err(DimseError::BadValue(name)),
            None => Err(DimseError::Missing(name)),
        }
    }

    fn uid(&self, element: u16, name: &'static str) -> Result<String, DimseError> {
        let v = self.get(element).ok_or(DimseError::Missing(name))?;
        let text = std::str::from_utf8(v).map_err(|_| DimseError::BadValue(name))?;
        Ok(text.trim_end_matches(['\0', ' ']).to_string())
    }
}

/// Reads a command set.
pub fn parse(bytes: &[u8]) -> Result<Request, DimseError> {
    let e = Elements::parse(bytes)?;
    let command = e.u16(0x0100, "CommandField")?;
    let message_id = e.u16(0x0110, "MessageID")?;
    let sop_class = e.uid(0x0002, "AffectedSOPClassUID").unwrap_or_default();
    Ok(match command {
        C_ECHO_RQ => Request::Echo {
            message_id,
            sop_class,
        },
        C_STORE_RQ => Request::Store {
            message_id,
            sop_class,
            sop_instance: e.uid(0x1000, "AffectedSOPInstanceUID")?,
            has_data: e.u16(0x0800, "CommandDataSetType")? != NO_DATA_SET,
        },
        command => Request::Other {
            command,
            message_id,
            sop_class,
        },
    })
}

/// A C-STORE-RQ for `sop_instance` of `sop_class`, a data set following.
pub fn store_request(message_id: u16, sop_class: &str, sop_instance: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_uid(&mut body, 0x0002, sop_class);
    put_u16(&mut body, 0x0100, C_STORE_RQ);
    put_u16(&mut body, 0x0110, message_id);
    put_u16(&mut body, 0x0700, 0x0000); // priority: medium
    put_u16(&mut body, 0x0800, 0x0000); // a data set follows
    put_uid(&mut body, 0x1000, sop_instance);
    let mut out = Vec::with_capacity(body.len() + 12);
    put(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// The message answered and the status of a response command set.
pub fn response_status(bytes: &[u8]) -> Result<(u16, u16), DimseError> {
    let e = Elements::parse(bytes)?;
    Ok((
        e.u16(0x0120, "MessageIDBeingRespondedTo")?,
        e.u16(0x0900, "Status")?,
    ))
}

/// Whether a C-STORE status means the destination has the instance: success, or one of the
/// warnings (coercion of data elements, elements discarded, data set does not match).
pub fn is_stored(status: u16) -> bool {
    status == 0x0000 || status == 0x0001 || (0xB000..=0xB0FF).contains(&status)
}

/// The response to `request` with `status`.
pub fn response(request: &Request, status: Status) -> Vec<u8> {
    let (command, message_id, sop_class, sop_instance) = match request {
        Request::Echo {
            message_id,
            sop_class,
        } => (C_ECHO_RSP, *message_id, sop_class, None),
        Request::Store {
            message_id,
            sop_class,
            sop_instance,
            ..
        } => (C_STORE_RSP, *message_id, sop_class, Some(sop_instance)),
        Request::Other {
            command,
            message_id,
            sop_class,
        } => (command | 0x8000, *message_id, sop_class, None),
    };
    let mut body = Vec::new();
    put_uid(&mut body, 0x0002, sop_class);
    put_u16(&mut body, 0x0100, command);
    put_u16(&mut body, 0x0120, message_id);
    put_u16(&mut body, 0x0800, NO_DATA_SET);
    put_u16(&mut body, 0x0900, status as u16);
    if let Some(uid) = sop_instance {
        put_uid(&mut body, 0x1000, uid);
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    put(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

fn put(out: &mut Vec<u8>, element: u16, value: &[u8]) {
    out.extend(0u16.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend((value.len() as u32).to_le_bytes());
    out.extend(value);
}

fn put_u16(out: &mut Vec<u8>, element: u16, v: u16) {
    put(out, element, &v.to_le_bytes());
}

/// A UID, padded with a NUL to an even length.
fn put_uid(out: &mut Vec<u8>, element: u16, uid: &str) {
    let mut v = uid.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    put(out, element, &v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_rq(instance: &str) -> Vec<u8> {
        store_request(7, MR_IMAGE_STORAGE, instance)
    }

    #[test]
    fn a_store_request_is_read_and_answered_with_its_ids() {
        let rq = parse(&store_rq("1.2.3.4")).unwrap();
        assert_eq!(
            rq,
            Request::Store {
                message_id: 7,
                sop_class: MR_IMAGE_STORAGE.into(),
                sop_instance: "1.2.3.4".into(),
                has_data: true,
            }
        );
        let rsp = response(&rq, Status::Success);
        let e = Elements::parse(&rsp).unwrap();
        assert_eq!(e.u16(0x0100, "").unwrap(), C_STORE_RSP);
        assert_eq!(e.u16(0x0120, "").unwrap(), 7);
        assert_eq!(e.u16(0x0900, "").unwrap(), 0);
        assert_eq!(e.uid(0x1000, "").unwrap(), "1.2.3.4");
        assert_eq!(response_status(&rsp), Ok((7, 0)));
        let group = u32::from_le_bytes(e.get(0x0000).unwrap().try_into().unwrap());
        assert_eq!(
            group as usize,
            rsp.len() - 12,
            "group length counts what follows it"
        );
    }

    #[test]
    fn a_truncated_or_incomplete_command_is_an_error_not_a_panic() {
        let full = store_rq("1.2.3.4");
        for cut in 0..full.len() {
            let _ = parse(&full[..cut]);
        }
        assert!(matches!(
            parse(&full[..full.len() - 3]),
            Err(DimseError::Truncated { .. })
        ));
        let mut b = Vec::new();
        put_u16(&mut b, 0x0100, C_STORE_RQ);
        assert_eq!(parse(&b), Err(DimseError::Missing("MessageID")));
        // A length far beyond the bytes given.
        let mut huge = Vec::new();
        huge.extend([0, 0, 0, 1]);
        huge.extend(u32::MAX.to_le_bytes());
        assert!(parse(&huge).is_err());
    }
}
