//! A batch's model input: each slice normalised by the model's own rule and reflect-padded
//! to its size multiple, straight into a reused buffer.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::{Error, Result};
use crossdenoise_image::Error as ImageError;
use crossdenoise_image::{NormScale, Normalization, Padding};

/// Normalises and reflect-pads `images` into `buffer` (`[N, 1, H', W']`); returns each
/// slice's scale. `what` names the slices in errors (`slice 3: ...`, `guide 3: ...`).
pub(crate) fn fill(
    buffer: &mut Vec<f32>,
    images: &[ArrayView2<f32>],
    norm: &Normalization,
    padding: &Padding,
    (ph, pw): (usize, usize),
    scratch: &mut Vec<f32>,
    what: &'static str,
) -> Result<Vec<NormScale>> {
    let plane = ph * pw;
    buffer.resize(images.len() * plane, 0.0);
    let mut scales = Vec::with_capacity(images.len());
    for (i, (image, chunk)) in images.iter().zip(buffer.chunks_mut(plane)).enumerate() {
        let scale = fit_scale(norm, *image, scratch).map_err(|e| match e {
            Error::Image(ImageError::Invalid { reason, .. }) => Error::Image(ImageError::Invalid {
                what,
                reason: format!("{what} {i}: {reason}"),
            }),
            e => e,
        })?;
        let inv = 1.0 / scale.0;
        let hi = norm.clamp_max;
        let out = ArrayViewMut2::from_shape((ph, pw), chunk).expect("chunk is one plane");
        padding.pad_map_into(*image, out, |v| (v * inv).clamp(0.0, hi));
        scales.push(scale);
    }
    Ok(scales)
}

/// [`Normalization::fit`] with a reused scratch buffer (the percentile needs a
/// mutable copy of the values).
fn fit_scale(
    norm: &Normalization,
    image: ArrayView2<f32>,
    scratch: &mut Vec<f32>,
) -> Result<NormScale> {
    scratch.clear();
    scratch.extend(image.iter().copied());
    // An unusable slice (empty, not finite) is this slice's problem, which the caller words
    // with the slice's number.
    Ok(norm.fit_values(scratch)?)
}
