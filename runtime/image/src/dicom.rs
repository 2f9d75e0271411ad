//! DICOM MR slices in and derived, denoised slices out (dicom-rs).
//!
//! A denoised image is a new image: it gets its own SOP Instance UID, joins a new series
//! (one per input series), says DERIVED in its Image Type and " denoised" in its Series
//! Description, so a PACS never confuses it with the acquisition. Everything else — patient,
//! study, geometry, timing, rescale, bit depth — is carried over unchanged, because the
//! denoised series must overlay the original in a viewer and route to the same patient.
//!
//! Uncompressed transfer syntaxes are read as they are; JPEG (baseline, extended, lossless),
//! RLE Lossless and JPEG 2000 are decoded by dicom-rs's pure-Rust codecs, so no C codec
//! library is linked into the console-side box. A derived slice is always written
//! uncompressed (Explicit VR Little Endian): re-encoding denoised pixels lossily would
//! undo the denoising, and every PACS takes the uncompressed syntax. A syntax without a
//! codec in this build (JPEG-LS, JPEG XL, HTJ2K, deflate) is refused with its name.

use std::path::Path;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::PixelDecoder;
use ndarray::{Array2, ArrayView2};

use crate::lineage::{Lineage, Reference};
use crate::noise_map::{PhaseEncoding, Stated};
use crate::{Error, Result};

mod bounds;
mod syntax;

use bounds::{check_lengths, check_rle};
use syntax::{EXPLICIT_VR_LE, IMPLICIT_VR_LE, UNCOMPRESSED};
pub use syntax::{can_decode, transfer_syntax_name};

/// The largest slice decoded from a compressed file, in pixels: a compressed file's size
/// says nothing of what its Rows x Columns make the decoder allocate.
const MAX_DECODED_PIXELS: usize = 8192 * 8192;
/// RLE Lossless.
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
/// The most an RLE segment expands: a 2-byte replicate run makes 128 bytes.
const RLE_MAX_EXPANSION: usize = 64;

/// Where a slice lies: what pairs a slice of one series with the same slice of another.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    pub frame_of_reference: String,
    /// ImageOrientationPatient: row and column direction cosines.
    pub orientation: [f64; 6],
    /// ImagePositionPatient (mm).
    pub position: [f64; 3],
    /// SliceThickness (or SpacingBetweenSlices) in mm.
    pub thickness: f64,
}

impl Geometry {
    /// Distance between the two slices' positions (mm) when they share a frame of
    /// reference and an orientation (direction cosines equal within 1e-3), else `None`.
    pub fn distance(&self, other: &Geometry) -> Option<f64> {
        let same_orientation = self
            .orientation
            .iter()
            .zip(&other.orientation)
            .all(|(a, b)| (a - b).abs() < 1e-3);
        (self.frame_of_reference == other.frame_of_reference && same_orientation).then(|| {
            self.position
                .iter()
                .zip(&other.position)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt()
        })
    }

    /// Whether `other` is the same slice: same frame of reference and orientation, position
    /// within half a slice thickness.
    pub fn same_slice(&self, other: &Geometry) -> bool {
        self.distance(other)
            .is_some_and(|d| d <= 0.5 * self.thickness)
    }
}

/// One single-frame grayscale DICOM image and what is needed to write a derived copy.
pub struct DicomSlice {
    object: DefaultDicomObject,
    /// Pixel values in real-world units (stored value * slope + intercept).
    pub image: Array2<f32>,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
}

impl std::fmt::Debug for DicomSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DicomSlice")
            .field("dim", &self.image.dim())
            .field("bits_stored", &self.bits_stored)
            .field("signed", &self.signed)
            .finish()
    }
}

/// The direction a DICOM In-plane Phase Encoding Direction names: phase encoded along the
/// rows (`ROW`) runs left-right across the image, along the columns (`COL`) up-down.
fn stated_phase_encoding(value: &str) -> Option<PhaseEncoding> {
    match value {
        "ROW" => Some(PhaseEncoding::LeftRight),
        "COL" => Some(PhaseEncoding::UpDown),
        _ => None,
    }
}

/// The acceleration a Parallel Reduction Factor In-plane (`factor`) and Parallel Acquisition
/// (`parallel`, `YES` / `NO`) state ([`Stated::acceleration_factor`]); 1 where parallel
/// imaging was off, `None` where neither states anything usable.
fn stated_acceleration(factor: Option<f64>, parallel: Option<&str>) -> Option<u32> {
    factor
        .and_then(Stated::acceleration_factor)
        .or_else(|| (parallel == Some("NO")).then_some(1))
}

/// True for a `.dcm` / `.dicom` / `.ima` name, or a file with the DICOM preamble and `DICM`
/// magic (scanner exports often have no extension).
pub fn is_dicom(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if matches!(ext.as_deref(), Some("dcm" | "dicom" | "ima")) {
        return true;
    }
    if ext.is_some() {
        return false;
    }
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head[128..] == b"DICM"
}

/// A new globally unique UID under the UUID-derived root `2.25` (ISO/IEC 9834-8), which
/// needs no registered organisation root.
pub fn new_uid() -> String {
    format!("2.25.{}", rand::random::<u128>())
}

/// How far below 0 a slice's real-world values may ring (lossy compression), as a fraction
/// of its brightest value, before it is refused as not a magnitude image.
pub const NEGATIVE_TOLERANCE: f32 = 0.25;

impl DicomSlice {
    // Long: the header's promises checked in the order the pixels are decoded, each check
    // before the allocation it guards.
    pub fn read(path: &Path) -> Result<Self> {
        let err = |reason: String| Error::Dicom {
            path: path.into(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let ts = check_lengths(&bytes)
            .map_err(|reason| err(format!("not a readable DICOM file: {reason}")))?;
        if !can_decode(&ts) {
            return Err(err(format!(
                "transfer syntax {} ({ts}) has no decoder in this build (uncompressed, JPEG, \
                 RLE and JPEG 2000 are read); decompress the series first (e.g. \
                 `gdcmconv --raw` or `dcmdjpls`)",
                transfer_syntax_name(&ts)
            )));
        }
        let encapsulated = !UNCOMPRESSED.contains(&ts.as_str());
        let object = dicom_object::OpenFileOptions::new()
            .from_reader(std::io::Cursor::new(&bytes[128..]))
            .map_err(|e| err(format!("not a readable DICOM file: {e}")))?;
        let int = |tag, name: &str| -> Result<u16> {
            object
                .element(tag)
                .map_err(|_| err(format!("{name} is missing")))?
                .to_int::<u16>()
                .map_err(|e| err(format!("{name}: {e}")))
        };
        let float_or = |tag, default: f64| -> Result<f64> {
            match object.element_opt(tag) {
                Ok(Some(e)) => e
                    .to_float64()
                    .map_err(|x| err(format!("{}: {x}", tag_name(tag)))),
                _ => Ok(default),
            }
        };
        let samples = int(tags::SAMPLES_PER_PIXEL, "SamplesPerPixel")?;
        if samples != 1 {
            return Err(err(format!(
                "SamplesPerPixel is {samples}; only grayscale magnitude images are denoised"
            )));
        }
        let frames = match object.element_opt(tags::NUMBER_OF_FRAMES) {
            Ok(Some(e)) => e.to_int::<u32>().unwrap_or(1),
            _ => 1,
        };
        if frames != 1 {
            return Err(err(format!(
                "has {frames} frames; only single-frame images are supported"
            )));
        }
        // MONOCHROME1 stores the image inverted for display: its values are not the signal
        // magnitude the models denoise.
        if let Ok(Some(e)) = object.element_opt(tags::PHOTOMETRIC_INTERPRETATION) {
            let pi = e.to_str().unwrap_or_default();
            let pi = pi.trim_end_matches(['\0', ' ']);
            if pi != "MONOCHROME2" {
                return Err(err(format!(
                    "PhotometricInterpretation is {pi}; only MONOCHROME2 magnitude images are denoised"
                )));
            }
        }
        let rows = int(tags::ROWS, "Rows")? as usize;
        let cols = int(tags::COLUMNS, "Columns")? as usize;
        let bits_allocated = int(tags::BITS_ALLOCATED, "BitsAllocated")?;
        let bits_stored = int(tags::BITS_STORED, "BitsStored")?;
        let signed = int(tags::PIXEL_REPRESENTATION, "PixelRepresentation")? == 1;
        if !(bits_allocated == 8 || bits_allocated == 16)
            || bits_stored == 0
            || bits_stored > bits_allocated
        {
            return Err(err(format!(
                "BitsAllocated {bits_allocated} / BitsStored {bits_stored} not supported \
                 (expected 8- or 16-bit integer pixels)"
            )));
        }
        let rescale_slope = float_or(tags::RESCALE_SLOPE, 1.0)?;
        let rescale_intercept = float_or(tags::RESCALE_INTERCEPT, 0.0)?;
        if rescale_slope == 0.0 || !rescale_slope.is_finite() {
            return Err(err(format!("RescaleSlope {rescale_slope} is not usable")));
        }
        // What the header promises against what the file holds, before decoding allocates
        // for the promise. Compressed pixel data is smaller than the slice by design: its
        // promise is bounded instead.
        let needed = rows * cols * usize::from(bits_allocated / 8);
        let pixel_data = object
            .element(tags::PIXEL_DATA)
            .map_err(|_| err("PixelData is missing".into()))?;
        if encapsulated {
            if rows * cols > MAX_DECODED_PIXELS {
                return Err(err(format!(
                    "Rows {rows} x Columns {cols} is more than the {MAX_DECODED_PIXELS} pixels \
                     a compressed slice is decoded to"
                )));
            }
            let Some(fragments) = pixel_data.fragments() else {
                return Err(err(format!(
                    "PixelData is not encapsulated, as transfer syntax {ts} requires"
                )));
            };
            // RLE's expansion is bounded, so its promise can be checked against its bytes
            // before the decoder allocates for it; and its segments are checked to decode to
            // a whole slice each, which the decoder assumes (it panics on a short one).
            let held: usize = fragments.iter().map(|f| f.len()).sum();
            if ts.trim_end_matches(['\0', ' ']) == RLE_LOSSLESS {
                if needed > held.saturating_mul(RLE_MAX_EXPANSION) {
                    return Err(err(format!(
                        "Rows {rows} x Columns {cols} at {bits_allocated} bits need {needed} \
                         bytes, more than the {held} bytes of RLE data can decode to"
                    )));
                }
                let fragment = fragments.first().map(Vec::as_slice).unwrap_or_default();
                check_rle(fragment, usize::from(bits_allocated / 8), rows * cols)
                    .map_err(|e| err(format!("RLE pixel data: {e}")))?;
            }
        } else {
            let held = pixel_data
                .to_bytes()
                .map_err(|e| err(format!("PixelData: {e}")))?
                .len();
            if held < needed {
                return Err(err(format!(
                    "PixelData holds {held} bytes, but Rows {rows} x Columns {cols} at {bits_allocated} bits need {needed}"
                )));
            }
        }
        // The codecs are dicom-rs's; some malformed fragments (an RLE segment offset past
        // its fragment) make them panic instead of failing. A corrupt file is an error that
        // names it, never a crash of the node or the daemon that read it.
        let decode = || -> std::result::Result<Vec<f32>, String> {
            let decoded = object.decode_pixel_data().map_err(|e| e.to_string())?;
            decoded.to_vec::<f32>().map_err(|e| e.to_string())
        };
        let values = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
            .unwrap_or_else(|_| Err("the decoder failed on malformed compressed data".into()))
            .map_err(|e| err(format!("pixel data: {e}")))?;
        let image = Array2::from_shape_vec((rows, cols), values)
            .map_err(|_| err(format!("pixel data does not hold {rows} x {cols} values")))?;
        // A magnitude image has nothing below zero signal; values below 0 after the rescale
        // (a signed offset, a negative RescaleIntercept) hide where zero is, and denoising
        // them as magnitude would clip them to 0 without a word. Lossy compression rings a
        // little below 0 near edges: up to NEGATIVE_TOLERANCE of the brightest value passes.
        let lowest = image.iter().copied().fold(f32::INFINITY, f32::min);
        let highest = image.iter().copied().fold(0.0f32, f32::max);
        if lowest < -NEGATIVE_TOLERANCE * highest.max(1.0) {
            return Err(err(format!(
                "real-world values go down to {lowest} (stored values with PixelRepresentation {} under RescaleSlope {rescale_slope} / RescaleIntercept {rescale_intercept}); a magnitude image has none below 0",
                u8::from(signed)
            )));
        }
        Ok(DicomSlice {
            object,
            image,
            rescale_slope,
            rescale_intercept,
            bits_allocated,
            bits_stored,
            signed,
        })
    }

    pub fn series_instance_uid(&self) -> Option<String> {
        self.string(tags::SERIES_INSTANCE_UID)
    }

    pub fn sop_instance_uid(&self) -> Option<String> {
        self.string(tags::SOP_INSTANCE_UID)
    }

    /// This instance as a reference from another (SOP class and instance UIDs).
    pub fn reference(&self) -> Reference {
        Reference {
            sop_class: self.string(tags::SOP_CLASS_UID).unwrap_or_default(),
            sop_instance: self.sop_instance_uid().unwrap_or_default(),
        }
    }

    /// Which way the phase encoding ran, as the acquisition states it (In-plane Phase
    /// Encoding Direction): the noise map's tiles are narrowed across it. `None` where the
    /// attribute is absent or holds neither `ROW` nor `COL`.
    pub fn phase_encoding(&self) -> Option<PhaseEncoding> {
        stated_phase_encoding(self.string(tags::IN_PLANE_PHASE_ENCODING_DIRECTION)?.trim())
    }

    /// Parallel imaging's in-plane acceleration, as the acquisition states it (Parallel
    /// Reduction Factor In-plane, or 1 where Parallel Acquisition says `NO`): a noise map is
    /// read between its fold lines where it jumps there. `None` where neither is stated.
    pub fn acceleration(&self) -> Option<u32> {
        let factor = self
            .object
            .element_opt(tags::PARALLEL_REDUCTION_FACTOR_IN_PLANE)
            .ok()
            .flatten()
            .and_then(|e| e.to_float64().ok());
        let parallel = self.string(tags::PARALLEL_ACQUISITION);
        stated_acceleration(factor, parallel.as_deref().map(str::trim))
    }

    /// What the slice states of its acquisition that a noise map follows.
    pub fn stated(&self) -> Stated {
        Stated {
            phase_encoding: self.phase_encoding(),
            acceleration: self.acceleration(),
        }
    }

    /// Where the slice lies in the patient (frame of reference, orientation, position and
    /// thickness); `None` when an attribute is missing or malformed.
    pub fn geometry(&self) -> Option<Geometry> {
        let floats = |tag| -> Option<Vec<f64>> {
            self.object
                .element_opt(tag)
                .ok()
                .flatten()
                .and_then(|e| e.to_multi_float64().ok())
        };
        let orientation = floats(tags::IMAGE_ORIENTATION_PATIENT)?;
        let position = floats(tags::IMAGE_POSITION_PATIENT)?;
        let thickness = floats(tags::SLICE_THICKNESS)
            .or_else(|| floats(tags::SPACING_BETWEEN_SLICES))?
            .first()
            .copied()?;
        Some(Geometry {
            frame_of_reference: self.string(tags::FRAME_OF_REFERENCE_UID)?,
            orientation: orientation.try_into().ok()?,
            position: position.try_into().ok()?,
            thickness,
        })
    }

    fn string(&self, tag: dicom_core::Tag) -> Option<String> {
        self.object
            .element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
    }

    /// The stored integer range of this image's pixel format.
    fn stored_range(&self) -> (f64, f64) {
        let bits = i32::from(self.bits_stored);
        if self.signed {
            (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0)
        } else {
            (0.0, 2f64.powi(bits) - 1.0)
        }
    }

    /// Builds the derived object for a denoised version of this image: same attributes and
    /// pixel format, new identity (`series_uid` shared by the whole derived series).
    /// `label` is appended to the Series Description (`denoised`; a synthesised image says
    /// so, with the contrast it shows).
    pub fn derive(
        &self,
        denoised: ArrayView2<f32>,
        series_uid: &str,
        label: &str,
        lineage: &Lineage,
    ) -> Result<DefaultDicomObject> {
        if denoised.dim() != self.image.dim() {
            return Err(Error::Shape {
                what: "denoised DICOM image",
                expected: format!("{:?}", self.image.dim()),
                got: format!("{:?}", denoised.dim()),
            });
        }
        let mut out = self.object.clone();
        let sop_uid = new_uid();
        let (lo, hi) = self.stored_range();
        let stored = denoised.iter().map(|&v| {
            ((f64::from(v) - self.rescale_intercept) / self.rescale_slope)
                .round()
                .clamp(lo, hi)
        });
        let pixels = if self.bits_allocated == 8 {
            let bytes: Vec<u8> = stored
                .map(|s| if self.signed { s as i8 as u8 } else { s as u8 })
                .collect();
            DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(bytes.into()))
        } else {
            let words: Vec<u16> = stored
                .map(|s| {
                    if self.signed {
                        s as i16 as u16
                    } else {
                        s as u16
                    }
                })
                .collect();
            DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(words.into()))
        };
        out.put(pixels);

        put_str(&mut out, tags::SOP_INSTANCE_UID, VR::UI, &sop_uid);
        put_str(&mut out, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
        let description = self
            .string(tags::SERIES_DESCRIPTION)
            .filter(|d| !d.is_empty())
            .map_or_else(|| label.to_string(), |d| format!("{d} {label}"));
        put_str(&mut out, tags::SERIES_DESCRIPTION, VR::LO, &description);
        let mut image_type: Vec<String> = self
            .object
            .element_opt(tags::IMAGE_TYPE)
            .ok()
            .flatten()
            .and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec()))
            .unwrap_or_default();
        if image_type.is_empty() {
            image_type = vec!["DERIVED".into(), "SECONDARY".into()];
        } else {
            image_type[0] = "DERIVED".into();
        }
        out.put(DataElement::new(
            tags::IMAGE_TYPE,
            VR::CS,
            PrimitiveValue::Strs(image_type.into()),
        ));
        let source = self.reference();
        let series_number = self
            .string(tags::SERIES_NUMBER)
            .and_then(|n| n.trim().parse::<i64>().ok());
        lineage.write(&mut out, &source, series_number);
        // Type-3 pixel statistics of the acquisition no longer hold for the new pixels.
        out.remove_element(tags::SMALLEST_IMAGE_PIXEL_VALUE);
        out.remove_element(tags::LARGEST_IMAGE_PIXEL_VALUE);

        let ts = out
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        // The fragments' offset tables went with the compressed pixels.
        out.remove_element(tags::EXTENDED_OFFSET_TABLE);
        out.remove_element(tags::EXTENDED_OFFSET_TABLE_LENGTHS);
        out.update_meta(|m| {
            m.media_storage_sop_instance_uid = sop_uid.clone();
            if ts != IMPLICIT_VR_LE && ts != EXPLICIT_VR_LE {
                // Big endian is retired and a compressed source's pixels are now native: a
                // derived file is written in the default little-endian syntax.
                m.transfer_syntax = EXPLICIT_VR_LE.to_string();
            }
        });
        Ok(out)
    }

    /// Writes a derived object (from [`DicomSlice::derive`]) to `path`. Encoded in memory
    /// first, so that an object that cannot be encoded (`Error::Dicom`, for good) is told
    /// apart from a disk that cannot take it (`Error::Io`: full, failing, for now).
    pub fn write(object: &DefaultDicomObject, path: &Path) -> Result<()> {
        let mut bytes = Vec::new();
        object.write_all(&mut bytes).map_err(|e| Error::Dicom {
            path: path.into(),
            reason: format!("cannot encode: {e}"),
        })?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}

fn put_str(obj: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::from(value.to_string()),
    ));
}

fn tag_name(tag: dicom_core::Tag) -> String {
    if tag == tags::RESCALE_SLOPE {
        "RescaleSlope".into()
    } else if tag == tags::RESCALE_INTERCEPT {
        "RescaleIntercept".into()
    } else {
        format!("{tag}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RLE fragment of one segment: the 64-byte header, then PackBits `data`.
    fn rle(count: u32, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(&count.to_le_bytes());
        f[4..8].copy_from_slice(&64u32.to_le_bytes());
        f.extend_from_slice(data);
        f
    }

    #[test]
    fn a_stated_acceleration_is_a_whole_factor_and_anything_else_reads_the_map_whole() {
        assert_eq!(stated_acceleration(Some(3.0), None), Some(3));
        assert_eq!(stated_acceleration(Some(2.0), Some("YES")), Some(2));
        assert_eq!(stated_acceleration(Some(1.999_999), None), Some(2));
        // Fractional, or past any strip wide enough to read: no fold lines to read between.
        assert_eq!(stated_acceleration(Some(1.5), None), Some(1));
        assert_eq!(stated_acceleration(Some(64.0), None), Some(1));
        assert_eq!(stated_acceleration(None, Some("NO")), Some(1));
        // Nothing usable stated: the configured acceleration holds.
        for bad in [0.0, -2.0, f64::NAN, f64::INFINITY] {
            assert_eq!(stated_acceleration(Some(bad), None), None, "{bad}");
        }
        assert_eq!(stated_acceleration(None, Some("YES")), None);
        assert_eq!(stated_acceleration(None, None), None);
    }

    #[test]
    fn the_stated_phase_encoding_is_read_as_its_direction_across_the_image() {
        assert_eq!(stated_phase_encoding("ROW"), Some(PhaseEncoding::LeftRight));
        assert_eq!(stated_phase_encoding("COL"), Some(PhaseEncoding::UpDown));
        for unknown in ["", "OTHER", "row"] {
            assert_eq!(stated_phase_encoding(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn rle_segments_must_decode_to_a_whole_slice() {
        // 3 literal bytes, then one byte repeated 5 times: 8 bytes.
        let data = [2, 10, 11, 12, (-4i8) as u8, 7];
        assert!(check_rle(&rle(1, &data), 1, 8).is_ok());
        let short = check_rle(&rle(1, &data), 1, 9).unwrap_err();
        assert!(short.contains("decodes to 8 bytes of the 9"), "{short}");
        let count = check_rle(&rle(2, &data), 1, 8).unwrap_err();
        assert!(count.contains("2 segments"), "{count}");
        assert!(
            check_rle(&[1, 0], 1, 8)
                .unwrap_err()
                .contains("no RLE header")
        );
        let mut past = rle(1, &data);
        past[4..8].copy_from_slice(&500u32.to_le_bytes());
        assert!(
            check_rle(&past, 1, 8)
                .unwrap_err()
                .contains("spans bytes 500")
        );
    }

    #[test]
    fn uids_are_valid_and_distinct() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        assert!(a.len() <= 64, "{a}");
        assert!(a.starts_with("2.25."));
        assert!(a[5..].chars().all(|c| c.is_ascii_digit()));
        assert!(!a[5..].starts_with('0') || a.len() == 6);
    }
}
