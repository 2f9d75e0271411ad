//! The transfer syntaxes this build reads: the uncompressed ones, and the encapsulated
//! ones dicom-rs has a pure-Rust decoder for.

use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

pub(super) const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
pub(super) const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
pub(super) const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
pub(super) const UNCOMPRESSED: [&str; 3] = [IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE];

/// Whether this build reads the pixel data of files in transfer syntax `uid`: the
/// uncompressed syntaxes, and the encapsulated ones with a decoder here.
pub fn can_decode(uid: &str) -> bool {
    let uid = uid.trim_end_matches(['\0', ' ']);
    UNCOMPRESSED.contains(&uid) || encapsulated_with_decoder(uid)
}

pub(super) fn encapsulated_with_decoder(uid: &str) -> bool {
    TransferSyntaxRegistry
        .get(uid)
        .is_some_and(|ts| ts.is_encapsulated_pixel_data() && ts.can_decode_all())
}

/// A transfer syntax's name for messages, e.g. "JPEG-LS Lossless Image Compression".
pub fn transfer_syntax_name(uid: &str) -> String {
    TransferSyntaxRegistry
        .get(uid.trim_end_matches(['\0', ' ']))
        .map(|t| t.name().to_string())
        .unwrap_or_else(|| "an unknown transfer syntax".into())
}
