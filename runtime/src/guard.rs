//! What a result may be. A slice with nothing in it comes back as it is, and a guided
//! model's output must show its own input. A
//! series labelled with the wrong contrast (PD pixels under a fat-sat name), a guide from
//! another slice or patient, or a model that learned to copy its guide, all give an output
//! that resembles the guide more than the image it claims to be a denoised copy of. Such a
//! result is never delivered under the input's name: the caller gets an error that says so.
//!
//! Two conditions, both needed: the output resembles its guide more than its input (by
//! `MARGIN`), and it clearly resembles its guide (correlation above `GUIDE_LIKENESS`). At
//! a very low SNR the acquired input's noise makes even a good result correlate weakly with
//! it, and a poorly trained model's output may resemble neither image much; neither is a
//! guide taking the input's place, which shows as an output that *is* its guide.

use ndarray::{Array2, ArrayView2};

use crate::{Error, Result};
use crossdenoise_image::metrics::correlation;

/// How much more the output must resemble its guide than its input to be refused. Two
/// contrasts of one anatomy can be alike (little fat, the same edges); a tie is no fault,
/// and a result that took its guide's place stands out by far more.
pub const MARGIN: f64 = 0.02;

/// How much an output must resemble its guide (Pearson correlation) before it can be taken
/// for it. Two contrasts of one knee correlate about 0.2 to 0.45 (the phantoms); an output
/// that copied its guide, about 1.
pub const GUIDE_LIKENESS: f64 = 0.5;

/// Checks one guided result against its input and guide.
pub fn check(
    output: ArrayView2<f32>,
    input: ArrayView2<f32>,
    guide: ArrayView2<f32>,
) -> Result<()> {
    let with_input = correlation(output, input)?;
    let with_guide = correlation(output, guide)?;
    if with_guide > with_input + MARGIN && with_guide > GUIDE_LIKENESS {
        return Err(Error::GuideDominates {
            with_input,
            with_guide,
        });
    }
    Ok(())
}

/// A slice of one value everywhere (an empty slice, all zero) holds no signal and no noise
/// to remove: it comes back as it went in, where a network would add its own bias.
pub(crate) fn keep_flat(images: &[ArrayView2<f32>], out: &mut [Array2<f32>]) {
    for (image, o) in images.iter().zip(out.iter_mut()) {
        let first = image.first().copied().unwrap_or_default();
        if image.iter().all(|&v| v == first) {
            o.assign(image);
        }
    }
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
        // An output that resembles neither much (a poor model, a very noisy input) is no
        // guide taking the input's place.
        let vague = guide.mapv(|v| v * 0.05) + input.mapv(|v| ((v * 13.0) % 7.0) * 0.2);
        let (i, g) = (
            correlation(vague.view(), input.view()).unwrap(),
            correlation(vague.view(), guide.view()).unwrap(),
        );
        assert!(g < GUIDE_LIKENESS, "{i} {g}");
        assert!(check(vague.view(), input.view(), guide.view()).is_ok());
    }

    #[test]
    fn a_flat_slice_comes_back_unchanged() {
        let zero = Array2::<f32>::zeros((4, 4));
        let live = Array2::from_shape_fn((4, 4), |(y, x)| (x + y) as f32);
        let mut out = vec![Array2::from_elem((4, 4), 0.3f32), live.mapv(|v| v + 0.5)];
        keep_flat(&[zero.view(), live.view()], &mut out);
        assert_eq!(out[0], zero);
        assert_eq!(out[1], live.mapv(|v| v + 0.5));
    }
}
