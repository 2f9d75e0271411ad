//! What a file promises against what it holds, checked before a parser or decoder
//! allocates for the promise: every declared length, and an RLE fragment's segments.

use super::syntax::{EXPLICIT_VR_BE, IMPLICIT_VR_LE, can_decode};

/// Checks an RLE Lossless fragment (PS3.5 G): a header of its segment count and offsets,
/// `segments` of them in order inside the fragment, each decoding (PackBits) to at least
/// `pixels` bytes.
pub(super) fn check_rle(
    fragment: &[u8],
    segments: usize,
    pixels: usize,
) -> std::result::Result<(), String> {
    let word = |i: usize| -> Option<usize> {
        let b = fragment.get(4 * i..4 * i + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0).ok_or("the fragment has no RLE header")?;
    if count != segments {
        return Err(format!(
            "{count} segments, where the pixels need {segments}"
        ));
    }
    for k in 0..count {
        let start = word(k + 1).ok_or("the RLE header is cut short")?;
        let end = if k + 1 < count {
            word(k + 2).ok_or("the RLE header is cut short")?
        } else {
            fragment.len()
        };
        let segment = fragment
            .get(start..end)
            .filter(|_| start >= 64)
            .ok_or_else(|| {
                format!(
                    "segment {k} spans bytes {start}..{end} of {}",
                    fragment.len()
                )
            })?;
        let (mut at, mut decoded) = (0, 0usize);
        while at < segment.len() && decoded < pixels {
            let n = segment[at] as i8;
            at += 1;
            match n {
                0.. => {
                    decoded += n as usize + 1;
                    at += n as usize + 1;
                }
                -127..=-1 => {
                    decoded += (1 - i32::from(n)) as usize;
                    at += 1;
                }
                -128 => {}
            }
        }
        if decoded < pixels {
            return Err(format!(
                "segment {k} decodes to {decoded} bytes of the {pixels} a slice needs"
            ));
        }
    }
    Ok(())
}

/// Walks the file's elements checking that every declared length fits in the bytes left,
/// before the parser reserves memory for what a length claims (it reserves first, then
/// reads), and returns the transfer syntax. Past the meta group only the uncompressed
/// syntaxes and the encapsulated ones this build decodes (Explicit VR Little Endian around
/// the pixel data's fragments) are walked: any other is refused by the caller before the
/// parser runs.
pub(super) fn check_lengths(bytes: &[u8]) -> std::result::Result<String, String> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err("no DICM preamble".into());
    }
    let u16_at = |at: usize, be: bool| {
        let b = [bytes[at], bytes[at + 1]];
        if be {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |at: usize, be: bool| {
        let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    // The VRs whose length takes two bytes in explicit VR; any other (unknown ones too, which
    // a parser reads as UN) has two reserved bytes and a four-byte length.
    const SHORT: [&[u8; 2]; 21] = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
        b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    ];
    let mut pos = 132;
    let mut syntax = String::new();
    let mut in_meta = true;
    let (mut explicit, mut be) = (true, false);
    // Inside encapsulated pixel data: its items are compressed bytes, not elements.
    let mut fragments = false;
    while pos < bytes.len() {
        if in_meta && (pos + 2 > bytes.len() || u16_at(pos, false) != 0x0002) {
            in_meta = false;
            let ts = syntax.trim_end_matches(['\0', ' ']).to_owned();
            if !can_decode(&ts) {
                return Ok(ts);
            }
            explicit = ts != IMPLICIT_VR_LE;
            be = ts == EXPLICIT_VR_BE;
        }
        if pos + 8 > bytes.len() {
            return Err(format!("an element header is cut short at byte {pos}"));
        }
        let (group, element) = (u16_at(pos, be), u16_at(pos + 2, be));
        let delimiter = group == 0xFFFE;
        let (len, header, vr) = if delimiter || !explicit {
            (u32_at(pos + 4, be), 8, None)
        } else {
            let vr = [bytes[pos + 4], bytes[pos + 5]];
            if !SHORT.contains(&&vr) {
                if pos + 12 > bytes.len() {
                    return Err(format!("an element header is cut short at byte {pos}"));
                }
                (u32_at(pos + 8, be), 12, Some(vr))
            } else {
                (u32::from(u16_at(pos + 6, be)), 8, Some(vr))
            }
        };
        pos += header;
        if fragments && delimiter {
            if element == 0xE0DD {
                fragments = false;
                continue;
            }
        } else if (group, element) == (0x7FE0, 0x0010) && len == u32::MAX {
            fragments = true;
            continue;
        } else if delimiter || vr == Some(*b"SQ") || len == u32::MAX {
            // Sequences and items are walked into (their contents are elements); an
            // undefined length has nothing to check.
            continue;
        }
        let len = len as usize;
        if len > bytes.len() - pos {
            return Err(format!(
                "element ({group:04X},{element:04X}) at byte {} declares {len} bytes, but {} are left",
                pos - header,
                bytes.len() - pos
            ));
        }
        if in_meta && (group, element) == (0x0002, 0x0010) {
            syntax = String::from_utf8_lossy(&bytes[pos..pos + len]).into_owned();
        }
        pos += len;
    }
    Ok(syntax.trim_end_matches(['\0', ' ']).to_owned())
}
