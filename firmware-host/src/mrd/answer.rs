//! The image that answers an MRD image: its denoised (or synthesised) copy as a new series,
//! its pixels in the original's data type, its attributes carried over and marked, and the
//! check that a model's output can stand for the image at all.

use crate::mrd::config::HostConfig;
use crate::mrd::image::PlaneError;
use crate::mrd::{Image, Meta};

/// Marks written into a denoised image's attributes.
pub const IMAGE_TYPE_MARK: &str = "DENOISED";
/// The mark of the cross path's output: an image of the other contrast, synthesised.
pub const SYNTHESIZED_MARK: &str = "SYNTHESIZED";
pub const COMMENT_MARK: &str = "crossdenoise";

/// Why a model's output cannot stand for the image.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutputError {
    #[error(
        "the model's output has {count} pixels outside the range of the image's data type ({lo} ..= {hi})"
    )]
    OutOfRange { count: usize, lo: f64, hi: f64 },
    #[error(transparent)]
    Planes(#[from] PlaneError),
}

/// The denoised copy of `original`: a new series, pixels in the original's data type,
/// attributes (`meta`, as read from the original) carried over and marked; `label`
/// (`denoised`, or `synthesized_pd` for the cross path) ends its description.
pub fn denoised_image(
    original: &Image,
    meta: Option<Meta>,
    planes: &[ndarray::Array2<f32>],
    label: &str,
    cfg: &HostConfig,
) -> Result<Image, OutputError> {
    check_output(planes, original)?;
    let mut image = original.clone();
    image.header.image_series_index = original
        .header
        .image_series_index
        .wrapping_add(cfg.series_offset);
    image.set_planes(planes)?;
    image.attributes = match meta {
        Some(mut meta) => {
            let synthesized = label.starts_with("synthesized");
            meta.append(
                "ImageType",
                if synthesized {
                    SYNTHESIZED_MARK
                } else {
                    IMAGE_TYPE_MARK
                },
            );
            meta.append("ImageComment", COMMENT_MARK);
            meta.append("ImageProcessingHistory", "CROSSDENOISE");
            match meta.get("SequenceDescription").and_then(|v| v.first()) {
                Some(desc) => {
                    let desc = format!("{desc}_{label}");
                    meta.set("SequenceDescription", vec![desc]);
                }
                None => meta.append("SequenceDescriptionAdditional", label),
            }
            meta.to_xml()
        }
        // Attributes we cannot read are carried over as they are, unmarked, rather than lost.
        None => original.attributes.clone(),
    };
    Ok(image)
}

/// A model's output that cannot stand for an image of integer pixels: beyond the data type's
/// range by more than rounding (or not a number), which the conversion would clip. The
/// runtime has already refused outputs that are not finite in the input's units.
fn check_output(planes: &[ndarray::Array2<f32>], original: &Image) -> Result<(), OutputError> {
    let Some((lo, hi)) = original.header.data_type().and_then(|d| d.integer_range()) else {
        return Ok(());
    };
    let margin = 0.01 * (hi - lo);
    let inside = |v: f32| (lo - margin..=hi + margin).contains(&f64::from(v));
    let count = planes.iter().flatten().filter(|&&v| !inside(v)).count();
    if count > 0 {
        return Err(OutputError::OutOfRange { count, lo, hi });
    }
    Ok(())
}
