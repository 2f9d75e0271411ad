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
//! guide taking the input's place, which shows as an output that *is* its guide. So the
//! input is also compared with its noise averaged down (`INPUT_REACH`), and the closer of the
//! two likenesses counts: at PDFS SNR 4 a result that correlates 0.75 with the clean image
//! correlates only 0.23-0.32 with its acquired input, against 0.44-0.50 with its PD guide
//! (two contrasts of one knee alike in their outline), and 0.60-0.69 with the input's 5 x 5
//! means. An output that copied its guide resembles those means no more than the guide does.

use ndarray::{Array2, ArrayView2};

use crate::{Error, Result};
use crossdenoise_image::metrics::correlation;
use crossdenoise_image::neighbourhood::local_mean;

/// What is served of the network's outputs: a flat slice as it came, a guided result only
/// if it shows its own input, blended with the input by `strength` (1: all denoised).
pub(crate) fn finish(
    images: &[ArrayView2<f32>],
    guides: Option<&[ArrayView2<f32>]>,
    mut out: Vec<Array2<f32>>,
    strength: f32,
) -> Result<Vec<Array2<f32>>> {
    keep_flat(images, &mut out);
    if let Some(guides) = guides {
        for ((o, i), g) in out.iter().zip(images).zip(guides) {
            check(o.view(), *i, *g)?;
        }
    }
    if strength < 1.0 {
        for (o, i) in out.iter_mut().zip(images) {
            o.zip_mut_with(i, |o, &x| *o = strength * *o + (1.0 - strength) * x);
        }
    }
    Ok(out)
}

/// How much more the output must resemble its guide than its input to be refused. Two
/// contrasts of one anatomy can be alike (little fat, the same edges); a tie is no fault,
/// and a result that took its guide's place stands out by far more.
pub const MARGIN: f64 = 0.02;

/// How much an output must resemble its guide (Pearson correlation) before it can be taken
/// for it. Two contrasts of one knee correlate about 0.2 to 0.45 (the phantoms); an output
/// that copied its guide, about 1.
pub const GUIDE_LIKENESS: f64 = 0.5;

/// The input is also compared averaged over each pixel's neighbourhood this many rows and
/// columns wide on each side (5 x 5): its noise falls fivefold, the anatomy that tells one
/// contrast from the other (fat bright or dark, fluid) stays.
pub const INPUT_REACH: usize = 2;

/// Checks one guided result against its input and guide.
pub fn check(
    output: ArrayView2<f32>,
    input: ArrayView2<f32>,
    guide: ArrayView2<f32>,
) -> Result<()> {
    let with_guide = correlation(output, guide)?;
    let refused = |with_input: f64| with_guide > with_input + MARGIN && with_guide > GUIDE_LIKENESS;
    let mut with_input = correlation(output, input)?;
    // The closer of the two likenesses counts, so the averaged input is read only where the
    // acquired one alone would refuse: not for almost every slice served.
    if refused(with_input) {
        with_input = with_input.max(correlation(output, averaged(input).view())?);
    }
    if refused(with_input) {
        return Err(Error::GuideDominates {
            with_input,
            with_guide,
        });
    }
    Ok(())
}

/// The input's mean over each pixel's neighbourhood [`INPUT_REACH`] wide.
fn averaged(input: ArrayView2<f32>) -> Array2<f32> {
    local_mean(input.mapv(f64::from).view(), INPUT_REACH).mapv(|v| v as f32)
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

    /// A fat-suppressed slice at a very low SNR: its clean image (the good result) is the
    /// knee's outline with dark fat inside, its guide the same outline with the fat bright.
    /// The good result resembles the noisy input less than the guide, but its 5 x 5 means
    /// more; a result that copied its guide is refused all the same.
    #[test]
    fn at_a_very_low_snr_a_good_result_passes_and_a_copied_guide_does_not() {
        use rand::{Rng, SeedableRng};
        let inside =
            |y: usize, x: usize| (y as f32 - 32.0).powi(2) + (x as f32 - 32.0).powi(2) < 576.0;
        let clean = Array2::from_shape_fn((64, 64), |(y, x)| match (inside(y, x), x % 16 < 8) {
            (false, _) => 0.0,
            (true, true) => 1.0,
            (true, false) => 0.3,
        });
        // Where the slice's fat is dark, its guide's is bright.
        let guide = Array2::from_shape_fn((64, 64), |(y, x)| match (inside(y, x), x % 16 < 8) {
            (false, _) => 0.0,
            (true, true) => 0.6,
            (true, false) => 1.0,
        });
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let input = clean.mapv(|v| v + (rng.random::<f32>() - 0.5) * 3.46);
        let raw = correlation(clean.view(), input.view()).unwrap();
        let like_guide = correlation(clean.view(), guide.view()).unwrap();
        assert!(
            like_guide > GUIDE_LIKENESS && like_guide > raw + MARGIN,
            "{raw} {like_guide}"
        );
        assert!(check(clean.view(), input.view(), guide.view()).is_ok());
        let e = check(guide.view(), input.view(), guide.view()).unwrap_err();
        assert!(matches!(e, Error::GuideDominates { .. }), "{e}");
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
