//! The guard on every guided result: a guided model's output must show its own input. A
//! series labelled with the wrong contrast (PD pixels under a fat-sat name), a guide from
//! another slice or patient, or a model that learned to copy its guide, all give an output
//! that resembles the guide more than the image it claims to be a denoised copy of. Such a
//! result is never delivered under the input's name: the caller gets an error that says so.

use ndarray::ArrayView2;

use crate::{Error, Result};
use crossdenoise_image::metrics::correlation;

/// How much more the output must resemble its guide than its input to be refused. Two
/// contrasts of one anatomy can be alike (little fat, the same edges); a tie is no fault,
/// and a result that took its guide's place stands out by far more.
pub const MARGIN: f64 = 0.02;

/// Checks one guided result against its input and guide.
pub fn check(
    output: ArrayView2<f32>,
    input: ArrayView2<f32>,
    guide: ArrayView2<f32>,
) -> Result<()> {
    let with_input = correlation(output, input)?;
    let with_guide = correlation(output, guide)?;
    if with_guide > with_input + MARGIN {
        return Err(Error::GuideDominates {
            with_input,
            with_guide,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn an_output_like_its_guide_is_refused_and_one_like_its_input_passes() {
        let input = Array2::from_shape_fn((16, 16), |(y, x)| (x + y) as f32);
        let guide = Array2::from_shape_fn((16, 16), |(y, x)| ((x * 7 + y * 3) % 11) as f32);
        let smoothed = input.mapv(|v| v * 0.9 + 1.0);
        assert!(check(smoothed.view(), input.view(), guide.view()).is_ok());
        // Partners alike (one a scaled copy of the other) are no fault.
        let alike = input.mapv(|v| v * 0.6);
        assert!(check(smoothed.view(), input.view(), alike.view()).is_ok());
        let copied = guide.mapv(|v| v * 0.5) + input.mapv(|v| v * 0.01);
        let e = check(copied.view(), input.view(), guide.view()).unwrap_err();
        assert!(matches!(e, Error::GuideDominates { .. }), "{e}");
        assert!(e.to_string().contains("guide"), "{e}");
    }
}
